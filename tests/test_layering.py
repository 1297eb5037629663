"""The package layering of ``argen.LAYERS``: every import inside argen runs down the layers or
across one, never up, and no modules import each other in a cycle. Imports inside functions
count too: a lazy import that runs up is still a dependency that runs up."""

from __future__ import annotations

import ast
from pathlib import Path

import argen

PACKAGE = Path(argen.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def argen_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The argen modules ``path`` imports (``from argen.x import y`` names ``argen.x.y`` when that
    is a module, else ``argen.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("argen")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("argen"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found


def layer_of(module: str) -> int | None:
    for index, packages in enumerate(argen.LAYERS):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return index
    return None


def graph() -> dict[str, set[str]]:
    modules = argen_modules()
    known = set(modules)
    return {name: imports_of(path, known) - {name} for name, path in modules.items()}


def test_every_module_has_a_layer_and_the_root_holds_only_entry_points():
    unplaced = [m for m in argen_modules() if m != "argen" and layer_of(m) is None]
    assert not unplaced, f"modules in no layer of argen.LAYERS: {unplaced}"
    root_files = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert root_files == ["__init__.py", "compare.py", "evaluate.py", "sample.py"]


def test_no_import_runs_up_the_layers():
    upward = [
        f"{importer} (layer {layer_of(importer)}) imports {imported} (layer {layer_of(imported)})"
        for importer, targets in graph().items()
        for imported in targets
        if importer != "argen"
        and imported != "argen"
        and layer_of(imported) is not None
        and layer_of(imported) > layer_of(importer)
    ]
    assert not upward, "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``edges`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle():
    # a package's __init__ importing its own modules is how packages work, not a cycle
    edges = {
        m: {t for t in targets if not (t.startswith(m + ".") and m in PACKAGES)}
        for m, targets in graph().items()
    }
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


PACKAGES = {module_name(p) for p in PACKAGE.rglob("__init__.py")}


def test_the_checks_find_an_upward_import_and_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("argen.models.made") < layer_of("argen.training.run")
    assert layer_of("argen.report.compare") > layer_of("argen.training.summary")
