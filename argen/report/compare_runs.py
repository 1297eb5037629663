"""Reading runs for ``argen.compare``: run directories (``summary.json``, config) and W&B projects.

Every run becomes a :class:`RunRecord`, finished or not, so that the comparison can list failed,
interrupted and incomplete runs with their real status instead of dropping them.

A run directory's ``epochs.csv`` (one row per validation) gives its learning curve: validation
NLL against the cumulative counts written at each validation (training FLOPs, process CPU
seconds, examples seen, ...). Runs written before those columns existed have no curve; nothing
is reconstructed for them.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from argen.training.legacy import upgrade_targets
from argen.training.summary import (
    FAILED,
    FINISHED,
    SUMMARY_FILE,
    RunSummary,
    from_json,
    is_text,
    read_summary_file,
    status_of,
)
from argen.training.summary import INTERRUPTED as INTERRUPTED  # re-exported for argen.compare

INCOMPLETE = "incomplete"
WANDB_PREFIX = "wandb:"
NO_SUMMARY = "killed, crashed or still running (no summary.json)"
RESUME_HINT = "has checkpoints/last.ckpt: resume with ckpt_path=auto"
# Where a run directory keeps its composed config: train.py's, or a copy saved beside a summary.
CONFIG_FILES = (Path(".hydra") / "config.yaml", Path("config.yaml"))
EPOCHS_CSV = "epochs.csv"
# Cumulative counts written at each validation (x axes of learning curves) and the curves' y.
CURVE_X = (
    "train_flops",
    "cpu_seconds",
    "examples_seen",
    "characters_seen",
    "optimizer_steps",
    "wall_seconds",
)
CURVE_Y = ("val/nll", "val/bits_per_dim")

# Config keys that never change what a run measures: they must not split seeds into variants.
IGNORED_CONFIG_PREFIXES = (
    "seed",
    "paths",
    "logger",
    "hydra",
    "tags",
    "ckpt_path",
    "train",
    "test",
    "optimized_metric",
    "summary",
    "model.name",
    "data.name",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.sync_batchnorm",
    "trainer.default_root_dir",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.deterministic",
    "_wandb",
)
# Config keys renamed since older runs were written: read under their current name, so that an old
# and a new run of the same set-up are not told apart by the rename.
RENAMED_CONFIG_KEYS = {"model.module.net.seed": "model.module.net.ordering_seed"}  # MADE
IGNORED_CONFIG_LEAVES = {
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "data_dir",
    "cache_dir",
    "root_dir",
}


class CompareError(Exception):
    """A user-facing problem (no such path, W&B unreachable): printed without a traceback."""


@dataclass
class RunRecord:
    """One training run, read from its directory or from W&B; metrics are None when absent.

    ``source`` is where it was read from (as given); ``name`` the same relative to the directory
    that was searched, so that a page generated from it does not depend on the working directory.
    """

    source: str
    model: str
    data: str
    status: str
    reason: str = ""
    name: str = ""
    seed: int | None = None
    params: int | None = None
    test_nll: float | None = None
    test_bpd: float | None = None
    test_recon_loss: float | None = None
    train_examples_per_sec: float | None = None
    sample_seconds_per_example: float | None = None
    train_seconds: float | None = None
    epochs: int | None = None
    is_text: bool = False
    wandb_run: str | None = None
    config: dict[str, str] = field(default_factory=dict, repr=False)
    # text: characters in one training example (the window), when the config says it exactly
    window: int | None = None
    train_chars_per_sec: float | None = None  # text: characters (not windows) per second
    train_flops: float | None = None  # what the run measured, when its summary has it
    cpu_seconds: float | None = None
    examples_seen: float | None = None
    # provenance and budget, as the summary recorded them (absent in runs made before either)
    git_commit: str | None = None
    git_dirty: bool | None = None
    command: str | None = None
    budget_kind: str | None = None
    budget_value: float | None = None
    # epochs.csv: {column: values at each validation}; None without the file or a val/nll column
    curve: dict[str, list[float | None]] | None = field(default=None, repr=False)


# ------------------------------------------------------------------------------------ values


def number(value: Any) -> float | None:
    """A finite float, or None for missing, non-numeric and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    """``number`` rounded down to an int."""
    value = number(value)
    return int(value) if value is not None else None


def one_line(text: Any, limit: int | None = None) -> str:
    """``text`` with runs of whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    line = " ".join(str(text).split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return line


def _unwrap(value: Any) -> Any:
    """A config value without W&B's raw ``{"value": ..., "desc": ...}`` wrapping."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _config_name(config: dict[str, Any], group: str) -> str | None:
    """``config[group]["name"]`` (nested, or flattened as ``group.name``/``group/name``)."""
    entry = _unwrap(config.get(group))
    if isinstance(entry, dict) and entry.get("name") is not None:
        return str(entry["name"])
    flat = config.get(f"{group}.name", config.get(f"{group}/name"))
    return str(_unwrap(flat)) if flat is not None else None


# ------------------------------------------------------------------------------------ configs


def flatten_config(config: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b.c": json value} for the keys that can distinguish two experiments."""
    config = _unwrap(config)
    if not isinstance(config, dict):
        return {prefix: json.dumps(config, sort_keys=True, default=str)} if prefix else {}
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        name = RENAMED_CONFIG_KEYS.get(name, name)
        if not _ignored_key(name):
            flat.update(flatten_config(value, name))
    return flat


def _ignored_key(name: str) -> bool:
    """Whether a flattened config key is bookkeeping (paths, loggers, seed...) rather than setup."""
    if name.rsplit(".", 1)[-1] in IGNORED_CONFIG_LEAVES:
        return True
    if name.startswith("callbacks") and not name.startswith("callbacks.early_stopping"):
        return True
    return any(name == p or name.startswith(p + ".") for p in IGNORED_CONFIG_PREFIXES)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's composed config: ``.hydra/config.yaml``, else a ``config.yaml`` beside the
    summary (how results/ keeps it); {} when neither is readable."""
    for relative in CONFIG_FILES:
        config = _load_yaml(run_dir / relative)
        if isinstance(config, dict):
            return upgrade_targets(config)  # an old run's class paths: same set-up as today's
    return {}


# ------------------------------------------------------------------------------------ summaries


def _from_summary(summary: RunSummary) -> dict[str, Any]:
    """The RunRecord metric fields of a summary (``argen.training.summary``'s keys)."""
    return {
        "seed": integer(summary.get("seed")),
        "params": integer(summary.get("params")),
        "test_nll": number(summary.get("test_nll")),
        "test_bpd": number(summary.get("test_bits_per_dim")),  # bits/char for text runs
        "test_recon_loss": number(summary.get("test_recon_loss")),
        "train_examples_per_sec": number(summary.get("train_examples_per_sec")),
        "sample_seconds_per_example": number(summary.get("sample_seconds_per_example")),
        "train_seconds": number(summary.get("train_seconds")),
        "epochs": integer(summary.get("epochs")),
        "is_text": is_text(summary),  # older text summaries too (argen.training.summary.from_json)
        "train_flops": number(summary.get("train_flops")),
        "cpu_seconds": number(summary.get("cpu_seconds")),
        "examples_seen": number(summary.get("examples_seen")),
        "train_chars_per_sec": _recorded_chars_per_sec(summary),
        "git_commit": _text(summary.get("git_commit")),
        "git_dirty": summary.get("git_dirty")
        if isinstance(summary.get("git_dirty"), bool)
        else None,
        "command": _text(summary.get("command")),
        "budget_kind": _text(summary.get("budget_kind")),
        "budget_value": number(summary.get("budget_value")),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _recorded_chars_per_sec(summary: RunSummary) -> float | None:
    """Characters/s a text run measured: ``characters_seen / wall_seconds`` (the same time its
    examples/s is measured over), when its summary has both."""
    characters, seconds = (
        number(summary.get("characters_seen")),
        number(summary.get("wall_seconds")),
    )
    if characters is None or not seconds:
        return None
    return characters / seconds


def text_window(config: dict[str, Any]) -> int | None:
    """Characters in one training example of a text run: the ``data.datamodule.seq_len`` its
    composed config sets (every training window is that long and every character in it is a
    training target); None when the config does not say (nothing is assumed)."""
    data = _unwrap(config.get("data"))
    module = _unwrap(data.get("datamodule")) if isinstance(data, dict) else None
    value = _unwrap(module.get("seq_len")) if isinstance(module, dict) else None
    if value is None:
        value = _unwrap(
            config.get("data.datamodule.seq_len", config.get("data/datamodule/seq_len"))
        )
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def per_character(fields: dict[str, Any], window: int | None) -> dict[str, Any]:
    """Text runs: characters/s (measured, else examples/s times the exact window: runs written
    before characters were counted) and the window; images unchanged."""
    if not fields["is_text"]:
        return {**fields, "train_chars_per_sec": None}
    speed = fields["train_chars_per_sec"]
    if speed is None and window is not None and fields["train_examples_per_sec"] is not None:
        speed = fields["train_examples_per_sec"] * window
    return {**fields, "train_chars_per_sec": speed, "window": window}


def read_curve(path: Path) -> dict[str, list[float | None]] | None:
    """``epochs.csv`` as {column: values} for the curve columns it has (None where a row lacks a
    value), keeping rows with a validation NLL; None when there is no such file or row."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    rows = [row for row in rows if _float(row.get("val/nll")) is not None]
    if not rows:
        return None
    columns = [c for c in (*CURVE_X, *CURVE_Y) if c in rows[0]]
    return {c: [_float(row.get(c)) for row in rows] for c in columns}


def _float(text: str | None) -> float | None:
    try:
        return number(float(text)) if text not in (None, "") else None
    except ValueError:
        return None


def summary_status(summary: RunSummary) -> tuple[str, str]:
    """(status, reason) of a summary (``argen.training.summary.status_of``)."""
    return status_of(summary)


def _with_resume_hint(reason: str, run_dir: Path) -> str:
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        return f"{reason}; {RESUME_HINT}"
    return reason


def display_name(run_dir: Path, root: Path | None) -> str:
    """``run_dir`` relative to the searched ``root`` (its own name when it is the root)."""
    if root is None:
        return str(run_dir)
    relative = os.path.relpath(run_dir, root)
    return run_dir.resolve().name if relative == "." else Path(relative).as_posix()


def read_run_dir(run_dir: Path, root: Path | None = None) -> RunRecord:
    """Read one run directory: its summary.json if there is one, else an incomplete record."""
    config = read_config(run_dir)
    model, data = _config_name(config, "model"), _config_name(config, "data")
    base: dict[str, Any] = {
        "source": str(run_dir),
        "name": display_name(run_dir, root),
        "config": flatten_config(config),
        "seed": integer(config.get("seed")),
        "model": model or "?",
        "data": data or "?",
    }
    summary_path = run_dir / SUMMARY_FILE
    if not summary_path.exists():
        return RunRecord(status=INCOMPLETE, reason=_with_resume_hint(NO_SUMMARY, run_dir), **base)
    try:
        summary = read_summary_file(summary_path)  # any version, read as the current one
    except ValueError as exc:
        return RunRecord(status=INCOMPLETE, reason=f"unreadable summary.json: {exc}", **base)
    status, reason = summary_status(summary)
    if status != FINISHED:
        reason = _with_resume_hint(reason, run_dir)
    fields = per_character(_from_summary(summary), text_window(config))
    seed = fields.pop("seed")
    base["seed"] = base["seed"] if seed is None else seed
    base["model"] = str(summary.get("model") or base["model"])
    base["data"] = str(summary.get("data") or base["data"])
    return RunRecord(
        status=status,
        reason=reason,
        wandb_run=summary.get("wandb_run"),
        curve=read_curve(run_dir / EPOCHS_CSV),
        **fields,
        **base,
    )


def find_run_dirs(root: Path) -> list[Path]:
    """Every run directory under ``root`` (itself included): one with .hydra/config.yaml or
    summary.json. A run directory's own subdirectories (checkpoints, wandb, ...) are not searched."""
    found: list[Path] = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        if "summary.json" in files or (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "wandb")
    return sorted(found)


# ---------------------------------------------------------------------------------------- W&B


def wandb_project(spec: str) -> str | None:
    """``entity/project`` when ``spec`` names a W&B project (``wandb:entity/project``, or a string
    with exactly one '/' that is not an existing path), else None."""
    if spec.startswith(WANDB_PREFIX):
        return spec[len(WANDB_PREFIX) :].strip("/")
    if not Path(spec).exists() and spec.count("/") == 1 and all(spec.split("/")):
        return spec
    return None


def _wandb_status(state: str, has_summary: bool) -> tuple[str, str]:
    """(status, reason) of a W&B run from its state and whether argen.training.run wrote summary/ keys."""
    if state == FINISHED and has_summary:
        return FINISHED, ""
    if state == FINISHED:
        return INCOMPLETE, "finished in W&B without summary/ metrics"
    if state == FAILED:
        return FAILED, "W&B state: failed"
    return INCOMPLETE, f"W&B state: {state}"  # running, crashed, killed, preempted, pending


def wandb_record(run: Any) -> RunRecord:
    """A RunRecord from a ``wandb.apis.public.Run``: ``summary/<key>`` metrics (written by
    argen.training.run at the end of a run), falling back on the ``test/<metric>`` keys Lightning logged."""
    values = {key: run.summary[key] for key in list(run.summary.keys())}
    config = {k: _unwrap(v) for k, v in dict(run.config or {}).items()}
    # summary.json's numbers as argen.training.run logged them, else the test metrics Lightning logged
    numbers = {f"test_{k[5:]}": v for k, v in values.items() if k.startswith("test/")}
    numbers.update({k[8:]: v for k, v in values.items() if k.startswith("summary/")})
    fields = per_character(_from_summary(from_json(numbers)), text_window(config))
    if fields["seed"] is None:
        fields["seed"] = integer(config.get("seed"))
    has_summary = any(key.startswith("summary/") for key in values)
    status, reason = _wandb_status(str(getattr(run, "state", FINISHED)), has_summary)
    path = "/".join(str(p) for p in getattr(run, "path", [getattr(run, "id", "?")]))
    return RunRecord(
        source=WANDB_PREFIX + path,
        name=WANDB_PREFIX + path,
        model=_config_name(config, "model") or "?",
        data=_config_name(config, "data") or "?",
        status=status,
        reason=reason,
        wandb_run=path,
        config=flatten_config(config),
        **fields,
    )


def read_wandb_runs(project: str, api: Any = None) -> list[RunRecord]:
    """Every run of a W&B project via the public API (needs network access and a W&B login)."""
    try:
        if api is None:
            import wandb

            api = wandb.Api(timeout=30)
        runs = list(api.runs(project))
    except Exception as exc:  # wandb raises many kinds: auth, HTTP, connection, bad path
        raise CompareError(
            f"Could not read W&B project {project!r}: {type(exc).__name__}: {one_line(exc, 300)}\n"
            "Reading W&B needs network access and a login (`wandb login` or WANDB_API_KEY). "
            "Offline, compare the local run directories instead: python -m argen.compare logs/"
        ) from exc
    return [wandb_record(run) for run in runs if is_training_run(run)]


TRAINING_JOB_TYPES = ("train", "sweep", None, "")


def is_training_run(run: Any) -> bool:
    """Train and sweep runs are results; ``eval`` and ``compare`` runs are views of them (runs
    logged before job types existed have none and count as training runs)."""
    return getattr(run, "job_type", None) in TRAINING_JOB_TYPES


def collect_runs(paths: Iterable[str | os.PathLike]) -> list[RunRecord]:
    """RunRecords of every run under the given directories and W&B projects (see wandb_project)."""
    records: list[RunRecord] = []
    for spec in map(str, paths):
        project = wandb_project(spec)
        if project is not None:
            records += read_wandb_runs(project)
            continue
        path = Path(spec)
        if path.is_file() and path.name == "summary.json":
            path = path.parent
        if not path.is_dir():
            raise CompareError(
                f"{spec}: no such directory (give a runs directory such as logs/, or a W&B project "
                "as wandb:<entity>/<project>)"
            )
        records += [read_run_dir(run_dir, path) for run_dir in find_run_dirs(path)]
    return records
