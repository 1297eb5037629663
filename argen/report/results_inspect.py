"""The results page's section of inspection pictures (``argen.inspect``), from committed files only.

``benchmarks/inspect_draw.sh`` runs ``python -m argen.inspect`` on the checkpoints that
``benchmarks/inspect_train.sh`` trains; it leaves one folder per model under ``results/inspect/``
with the PNGs and an ``inspect.json`` (which run trained the model, with which command, and the
numbers behind each picture). This module reads those manifests and writes the page's section,
deterministically (models in a fixed order, numbers in fixed formats), linking the PNGs relative
to the page (``inspect/<model>/<view>.png``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

INSPECT_DIR = "inspect"
MANIFEST = "inspect.json"
COMPARISON = "dependency_comparison.png"
# The families in the order the lecture meets them.
FAMILY_ORDER = (
    "fvsbn",
    "nade",
    "made",
    "pixelcnn",
    "gated_pixelcnn",
    "row_lstm",
    "diagonal_bilstm",
    "pixelsnail",
    "image_transformer",
    "char_rnn",
    "char_transformer",
)
VIEW_TITLES = {
    "dependency": "Dependency maps",
    "growth": "Receptive field, layer by layer",
    "masks": "MADE's masks",
    "text": "Per-character probabilities",
    "surprise": "Per-pixel surprise",
}
INTRO = """\
Drawn by `python -m argen.inspect` (see the README's "Inspecting a model") from small models
trained for three minutes each on one CPU thread by `benchmarks/inspect_train.sh`, not from the runs
in the tables above. Where a dependency map is zero is fixed by the architecture, however long it
is trained; the magnitudes and the surprise depend on training. Regenerate with
`bash benchmarks/inspect_train.sh && bash benchmarks/inspect_draw.sh`. Dependency maps are exact
gradients |∂ log p(x_t | x_<t) / ∂ x_j| averaged over four test images: white is exactly zero,
grey hatched pixels come after the target in the model's ordering, the target is red.
"""


def find_inspect_dir(out_dir: Path, sources: Sequence[str]) -> Path | None:
    """``<dir>/inspect`` of the page's own directory or, failing that, of the directory the runs
    were found in (their common ancestor), when it holds inspection manifests."""
    local = [s for s in sources if not s.startswith("wandb:") and Path(s).exists()]
    candidates = [out_dir]
    if local:
        candidates.append(Path(os.path.commonpath([str(Path(s).resolve()) for s in local])))
    for base in candidates:
        folder = base / INSPECT_DIR
        if any(folder.glob(f"*/{MANIFEST}")):
            return folder
    return None


def read_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every ``<folder>/<name>/inspect.json``, with ``folder_name`` added, in family order."""
    manifests = []
    for path in sorted(folder.glob(f"*/{MANIFEST}")):
        manifest = json.loads(path.read_text())
        manifest["folder_name"] = path.parent.name
        manifests.append(manifest)
    rank = {name: i for i, name in enumerate(FAMILY_ORDER)}
    return sorted(manifests, key=lambda m: (rank.get(m["model"], len(rank)), m["folder_name"]))


def view_note(view: dict[str, Any]) -> str:
    """One line of the numbers behind a picture (what the tests check, shown for these models)."""
    numbers = view.get("numbers", {})
    if view["view"] == "surprise" and numbers.get("sum_of_maps"):
        sums, nll = numbers["sum_of_maps"], numbers["model_nll"]
        gap = max(abs(a - b) for a, b in zip(sums, nll, strict=True))
        return (
            f"Each map sums to its image's NLL ({', '.join(f'{v:.2f}' for v in nll)} nats; "
            f"largest difference {gap:.1e})."
        )
    if view["view"] == "text" and "log_prob" in numbers:
        chars = len(numbers.get("steps", [])) or 1
        return (
            f"log p = {numbers['log_prob']:.3f} nats = the model's `log_prob` "
            f"({numbers['model_log_prob']:.3f}); {-numbers['log_prob'] / chars / math.log(2):.2f} "
            "bits/char."
        )
    if view["view"] == "dependency" and "inputs_seen" in numbers:
        pairs = [
            f"({t[1]}, {t[2]}): {seen}/{before}"
            for t, seen, before in zip(
                numbers["targets"], numbers["inputs_seen"], numbers["inputs_before"], strict=True
            )
        ]
        return (
            "Inputs with a non-zero gradient / inputs before the target: " + ", ".join(pairs) + "."
        )
    if view["view"] == "growth" and "field_sizes" in numbers:
        return (
            "Pixels in the field after each layer: "
            + ", ".join(map(str, numbers["field_sizes"]))
            + "."
        )
    if view["view"] == "masks" and "mean_inputs_per_output" in numbers:
        return (
            f"On average an output may depend on {numbers['mean_inputs_per_output']:.1f} inputs; "
            f"{numbers['mean_inputs_before']:.1f} come before it in the ordering."
        )
    return ""


def inspect_section(folder: Path | None) -> list[str]:
    """The page's section (Markdown lines), or nothing without manifests."""
    if folder is None:
        return []
    manifests = read_manifests(folder)
    if not manifests:
        return []
    parts = ["", "## What the models condition on", "", INTRO.rstrip()]
    if (folder / COMPARISON).is_file():
        parts += [
            "",
            f"![the centre pixel's dependency map of every image model]({INSPECT_DIR}/{COMPARISON})",
        ]
    for manifest in manifests:
        base = f"{INSPECT_DIR}/{manifest['folder_name']}"
        parts += ["", f"### {manifest['model']} ({manifest['data']})", ""]
        if manifest.get("train_command"):
            parts.append(f"Trained by `{manifest['train_command']}` (run `{manifest['run']}`).")
        for view in manifest["views"]:
            title = VIEW_TITLES.get(view["view"], view["view"])
            note = view_note(view)
            parts += ["", f"{title}: {note}" if note else f"{title}:", ""]
            alt = view["caption"].replace("[", "(").replace("]", ")")
            parts.append(f"![{alt}]({base}/{view['file']})")
    return parts
