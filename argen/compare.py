"""Compare finished runs: ``python -m argen.compare logs/ [--out DIR] [--metric nll|bpd]``.

Reads every run directory under the given paths (or a W&B project), groups runs of the same model on
the same dataset (several seeds), and reports test NLL and bits/dim as mean ± std over seeds next to
training throughput and sampling time, i.e. the likelihood-vs-speed trade-off of the PixelRNN paper
(PixelCNN: fast, PixelRNN: better likelihood but slow). Failed and incomplete runs are listed in a
table of their own, never silently dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

FINISHED = "finished"
FAILED = "failed"
INCOMPLETE = "incomplete"
METRICS = ("nll", "bpd")
WANDB_PREFIX = "wandb:"

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
    """One training run, read from its directory or from W&B; metrics are None when absent."""

    source: str
    model: str
    data: str
    status: str
    reason: str = ""
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


# ---------------------------------------------------------------------------------------- reading


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, non-numeric and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _one_line(text: Any, limit: int | None = None) -> str:
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


def flatten_config(config: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b.c": json value} for the keys that can distinguish two experiments."""
    config = _unwrap(config)
    if not isinstance(config, dict):
        return {prefix: json.dumps(config, sort_keys=True, default=str)} if prefix else {}
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if _ignored_key(name):
            continue
        flat.update(flatten_config(value, name))
    return flat


def _ignored_key(name: str) -> bool:
    if name.rsplit(".", 1)[-1] in IGNORED_CONFIG_LEAVES:
        return True
    if name.startswith("callbacks") and not name.startswith("callbacks.early_stopping"):
        return True
    return any(name == p or name.startswith(p + ".") for p in IGNORED_CONFIG_PREFIXES)


def _from_summary(get: Callable[[str], Any]) -> dict[str, Any]:
    """The RunRecord metric fields of a summary, ``get(key)`` reading one of its keys."""
    bpd = _number(get("test_bits_per_dim"))
    if bpd is None:
        bpd = _number(get("test_bpc"))
    return {
        "seed": _integer(get("seed")),
        "params": _integer(get("params")),
        "test_nll": _number(get("test_nll")),
        "test_bpd": bpd,
        "test_recon_loss": _number(get("test_recon_loss")),
        "train_examples_per_sec": _number(get("train_examples_per_sec")),
        "sample_seconds_per_example": _number(get("sample_seconds_per_example")),
        "train_seconds": _number(get("train_seconds")),
        "epochs": _integer(get("epochs")),
        "is_text": get("test_bpc") is not None,
    }


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def read_run_dir(run_dir: Path) -> RunRecord:
    """Read one run directory: its summary.json if there is one, else an incomplete record."""
    config = _load_yaml(run_dir / ".hydra" / "config.yaml")
    config = config if isinstance(config, dict) else {}
    model, data = _config_name(config, "model"), _config_name(config, "data")
    base = {"source": str(run_dir), "config": flatten_config(config)}
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        reason = "no summary.json (killed, crashed or still running)"
        if (run_dir / "checkpoints" / "last.ckpt").exists():
            reason += "; has checkpoints/last.ckpt, resume with ckpt_path=auto"
        return RunRecord(
            model=str(model or "?"),
            data=str(data or "?"),
            status=INCOMPLETE,
            reason=reason,
            seed=_integer(config.get("seed")),
            **base,
        )
    try:
        summary = json.loads(summary_path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return RunRecord(
            model=str(model or "?"),
            data=str(data or "?"),
            status=INCOMPLETE,
            reason=f"unreadable summary.json: {exc}",
            seed=_integer(config.get("seed")),
            **base,
        )
    status = str(summary.get("status", FINISHED))
    if status == FINISHED:
        reason = ""
    elif status == FAILED:
        reason = str(summary.get("error") or "failed (no error message in summary.json)")
    else:
        reason = f"summary.json has status {status!r}"
    fields = _from_summary(summary.get)
    if fields["seed"] is None:
        fields["seed"] = _integer(config.get("seed"))
    return RunRecord(
        model=str(summary.get("model") or model or "?"),
        data=str(summary.get("data") or data or "?"),
        status=status,
        reason=reason,
        wandb_run=summary.get("wandb_run"),
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
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def wandb_project(spec: str) -> str | None:
    """``entity/project`` when ``spec`` names a W&B project (``wandb:entity/project``, or a string
    with exactly one '/' that is not an existing path), else None."""
    if spec.startswith(WANDB_PREFIX):
        return spec[len(WANDB_PREFIX) :].strip("/")
    if not Path(spec).exists() and spec.count("/") == 1 and all(spec.split("/")):
        return spec
    return None


def wandb_record(run: Any) -> RunRecord:
    """A RunRecord from a ``wandb.apis.public.Run``: ``summary/<key>`` metrics (written by
    argen.run at the end of a run), falling back on the ``test/<metric>`` keys Lightning logged."""
    summary = run.summary
    values = {key: summary[key] for key in list(summary.keys())}
    config = {k: _unwrap(v) for k, v in dict(run.config or {}).items()}

    def get(key: str) -> Any:
        if f"summary/{key}" in values:
            return values[f"summary/{key}"]
        if key.startswith("test_") and f"test/{key[5:]}" in values:
            return values[f"test/{key[5:]}"]
        return None

    fields = _from_summary(get)
    if fields["seed"] is None:
        fields["seed"] = _integer(_unwrap(config.get("seed")))
    state = str(getattr(run, "state", FINISHED))
    has_summary = any(key.startswith("summary/") for key in values)
    if state == FINISHED and has_summary:
        status, reason = FINISHED, ""
    elif state == FINISHED:
        status, reason = INCOMPLETE, "finished in W&B without summary/ metrics"
    elif state == FAILED:
        status, reason = FAILED, "W&B state: failed"
    else:  # running, crashed, killed, preempted, pending
        status, reason = INCOMPLETE, f"W&B state: {state}"
    path = "/".join(str(p) for p in getattr(run, "path", [getattr(run, "id", "?")]))
    return RunRecord(
        source=WANDB_PREFIX + path,
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
            f"Could not read W&B project {project!r}: {type(exc).__name__}: {_one_line(exc, 300)}\n"
            "Reading W&B needs network access and a login (`wandb login` or WANDB_API_KEY). "
            "Offline, compare the local run directories instead: python -m argen.compare logs/"
        ) from exc
    return [wandb_record(run) for run in runs]


def collect_runs(paths: Iterable[str | os.PathLike]) -> list[RunRecord]:
    """RunRecords of every run under the given directories and W&B projects (see wandb_project)."""
    records: list[RunRecord] = []
    for spec in paths:
        spec = str(spec)
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
        records += [read_run_dir(run_dir) for run_dir in find_run_dirs(path)]
    return records


# ------------------------------------------------------------------------------------ aggregation


@dataclass
class Stat:
    """Mean and sample standard deviation (None with fewer than two values) over ``n`` runs."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        present = [v for v in values if v is not None]
        if not present:
            return cls(None, None, 0)
        std = statistics.stdev(present) if len(present) > 1 else None
        return cls(statistics.fmean(present), std, len(present))


@dataclass
class ModelRow:
    """One model (or one configuration of it) on one dataset, aggregated over its finished runs."""

    data: str
    model: str
    runs: list[RunRecord]
    nll: Stat
    bpd: Stat
    recon: Stat
    throughput: Stat
    sample_seconds: Stat

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs if r.seed is not None})

    @property
    def params(self) -> list[int]:
        return sorted({r.params for r in self.runs if r.params is not None})

    @property
    def is_text(self) -> bool:
        return any(r.is_text for r in self.runs)

    def metric(self, name: str) -> Stat:
        return self.nll if name == "nll" else self.bpd


def _variants(runs: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Split runs of one model+data by the config keys on which they differ (besides the seed), so
    that a hyper-parameter sweep is not averaged as if it were seeds; label each part."""
    known = [r for r in runs if r.config]
    keys = sorted({k for r in known for k in r.config})
    differing = [k for k in keys if len({r.config.get(k) for r in known}) > 1]
    if not differing:
        return {runs[0].model: runs}
    leaves = [k.rsplit(".", 1)[-1] for k in differing]
    short = [
        leaf if leaves.count(leaf) == 1 else key
        for key, leaf in zip(differing, leaves, strict=True)
    ]
    parts: dict[str, list[RunRecord]] = {}
    for run in runs:
        values = [
            f"{s}={run.config.get(k, 'unset')}" for s, k in zip(short, differing, strict=True)
        ]
        label = ",".join(values) if run.config else "config unknown"
        parts.setdefault(f"{run.model}[{label}]", []).append(run)
    return parts


def aggregate(
    records: Iterable[RunRecord], metric: str = "nll", split_configs: bool = True
) -> dict[str, list[ModelRow]]:
    """{dataset: rows sorted by the metric's mean (best first, runs without it last)} over the
    finished runs; ``split_configs`` keeps different hyper-parameters of one model apart."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        if record.status == FINISHED:
            groups.setdefault((record.data, record.model), []).append(record)
    tables: dict[str, list[ModelRow]] = {}
    for (data, model), runs in sorted(groups.items()):
        parts = _variants(runs) if split_configs else {model: runs}
        for label, part in parts.items():
            tables.setdefault(data, []).append(
                ModelRow(
                    data=data,
                    model=label,
                    runs=part,
                    nll=Stat.of(r.test_nll for r in part),
                    bpd=Stat.of(r.test_bpd for r in part),
                    recon=Stat.of(r.test_recon_loss for r in part),
                    throughput=Stat.of(r.train_examples_per_sec for r in part),
                    sample_seconds=Stat.of(r.sample_seconds_per_example for r in part),
                )
            )
    for rows in tables.values():
        rows.sort(key=lambda row: (row.metric(metric).mean is None, row.metric(metric).mean or 0.0))
    return dict(sorted(tables.items()))


def unfinished(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs that are not in the aggregated tables: failed, incomplete or of unknown status."""
    return [r for r in records if r.status != FINISHED]


# ------------------------------------------------------------------------------------- formatting


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _fmt_ms(ms: float | None) -> str:
    """Milliseconds with about three significant digits (0.012, 4.80, 360)."""
    if ms is None:
        return "n/a"
    return _fmt(ms, 0 if ms >= 100 else 2 if ms >= 1 else 3)


def fmt_stat(stat: Stat, digits: int, runs: int | None = None) -> str:
    """``mean ± std``; ``n/a`` when no run has the value; ``(k/n)`` when only k of n runs do."""
    if stat.mean is None:
        return "n/a"
    text = _fmt(stat.mean, digits)
    if stat.std is not None:
        text += f" ± {_fmt(stat.std, digits)}"
    if runs is not None and stat.n < runs:
        text += f" ({stat.n}/{runs})"
    return text


def _units(rows: Sequence[ModelRow]) -> tuple[str, str]:
    text = any(row.is_text for row in rows)
    return ("nats/char", "bits/char") if text else ("nats", "bits/dim")


def table_columns(rows: Sequence[ModelRow]) -> list[str]:
    nats, bits = _units(rows)
    columns = ["model", "runs", "seeds", "params", f"test NLL ({nats})", f"test {bits}"]
    if any(row.recon.n for row in rows):
        columns.append("test recon loss")
    return columns + ["train examples/s", "sample ms/example"]


def table_cells(row: ModelRow, with_recon: bool) -> list[str]:
    n = len(row.runs)
    params = row.params
    cells = [
        row.model,
        str(n),
        ",".join(str(s) for s in row.seeds) or "?",
        "/".join(f"{p:,}" for p in params) if params else "n/a",
        fmt_stat(row.nll, 2 if not row.is_text else 4, n),
        fmt_stat(row.bpd, 4, n),
    ]
    if with_recon:
        cells.append(fmt_stat(row.recon, 4, n))
    seconds = row.sample_seconds.mean
    ms = None if seconds is None else seconds * 1e3
    return cells + [_fmt(row.throughput.mean, 1), _fmt_ms(ms)]


def _rows_table(rows: Sequence[ModelRow]) -> tuple[list[str], list[list[str]]]:
    columns = table_columns(rows)
    with_recon = "test recon loss" in columns
    return columns, [table_cells(row, with_recon) for row in rows]


UNFINISHED_COLUMNS = ["run", "model", "data", "status", "reason"]


def short_reason(reason: str, limit: int | None = 160) -> str:
    """One line for a table: the exception line of a traceback, else the whole text."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Traceback"):
        lines = lines[-1:]
    return _one_line(" ".join(lines), limit)


def _unfinished_cells(record: RunRecord, limit: int | None = 160) -> list[str]:
    return [
        _display_source(record.source),
        record.model,
        record.data,
        record.status,
        short_reason(record.reason, limit),
    ]


def _display_source(source: str) -> str:
    if source.startswith(WANDB_PREFIX):
        return source
    try:
        return os.path.relpath(source)
    except ValueError:  # another drive on Windows
        return source


def rich_tables(
    tables: dict[str, list[ModelRow]], failed: Sequence[RunRecord], metric: str
) -> list[Table]:
    """Rich tables for the terminal: one per dataset, then one of failed/incomplete runs."""
    out: list[Table] = []
    for data, rows in tables.items():
        columns, cells = _rows_table(rows)
        table = Table(title=f"{data}  (sorted by test {metric}, mean ± std over seeds)")
        for i, name in enumerate(columns):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in cells:
            table.add_row(*row)
        out.append(table)
    if failed:
        table = Table(title="Failed or incomplete runs (not in the tables above)")
        for name in UNFINISHED_COLUMNS:
            table.add_column(name, overflow="fold")
        for record in failed:
            table.add_row(*_unfinished_cells(record))
        out.append(table)
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True) -> str:
    """A Markdown table; with ``numeric`` every column but the first is right-aligned."""
    lines = ["| " + " | ".join(_md_escape(c) for c in columns) + " |"]
    rule = ["---" if i == 0 or not numeric else "---:" for i in range(len(columns))]
    lines.append("|" + "|".join(rule) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(
    tables: dict[str, list[ModelRow]],
    failed: Sequence[RunRecord],
    metric: str,
    plots: dict[str, Path] | None = None,
) -> str:
    """The whole comparison as Markdown: a section per dataset (with its plot) and failed runs."""
    parts = [
        "# Model comparison",
        "",
        f"Test metrics are mean ± sample std over seeds; rows sorted by test {metric}. "
        "`(k/n)`: only k of the n runs have the value.",
    ]
    for data, rows in tables.items():
        parts += ["", f"## {data}", "", _md_table(*_rows_table(rows))]
        if plots and data in plots:
            parts += ["", f"![{data}: likelihood vs sampling time]({plots[data].name})"]
    if failed:
        parts += ["", "## Failed or incomplete runs", ""]
        cells = [_unfinished_cells(r, 300) for r in failed]
        parts.append(_md_table(UNFINISHED_COLUMNS, cells, numeric=False))
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------ files

MODEL_CSV_COLUMNS = [
    "data",
    "model",
    "runs",
    "seeds",
    "params",
    "test_nll_mean",
    "test_nll_std",
    "test_bpd_mean",
    "test_bpd_std",
    "test_recon_loss_mean",
    "test_recon_loss_std",
    "train_examples_per_sec_mean",
    "sample_ms_per_example_mean",
]
RUN_CSV_COLUMNS = [
    "source",
    "model",
    "data",
    "seed",
    "status",
    "reason",
    "params",
    "epochs",
    "train_seconds",
    "test_nll",
    "test_bpd",
    "test_recon_loss",
    "train_examples_per_sec",
    "sample_seconds_per_example",
    "wandb_run",
]


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_model_csv(tables: dict[str, list[ModelRow]], path: Path) -> None:
    """One row per model x dataset, raw numbers (empty where a value is missing)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MODEL_CSV_COLUMNS)
        for rows in tables.values():
            for row in rows:
                ms = row.sample_seconds.mean
                values = [
                    row.data,
                    row.model,
                    len(row.runs),
                    " ".join(str(s) for s in row.seeds),
                    " ".join(str(p) for p in row.params),
                    row.nll.mean,
                    row.nll.std,
                    row.bpd.mean,
                    row.bpd.std,
                    row.recon.mean,
                    row.recon.std,
                    row.throughput.mean,
                    None if ms is None else ms * 1e3,
                ]
                writer.writerow([_csv_value(v) for v in values])


def write_runs_csv(records: Sequence[RunRecord], path: Path) -> None:
    """One row per run, failed and incomplete ones included, with the full reason."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RUN_CSV_COLUMNS)
        for record in records:
            writer.writerow([_csv_value(getattr(record, name)) for name in RUN_CSV_COLUMNS])


def plot_tradeoff(rows: Sequence[ModelRow], data: str, metric: str, path: Path) -> bool:
    """Likelihood vs sampling time per example (log x), one labelled point per model with std
    error bars over seeds; False (nothing written) when no model has both numbers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [
        r for r in rows if r.metric(metric).mean is not None and r.sample_seconds.mean is not None
    ]
    if not points:
        return False
    nats, bits = _units(rows)
    figure = Figure(figsize=(6.4, 4.8), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, row in enumerate(points):
        stat = row.metric(metric)
        x = row.sample_seconds.mean * 1e3
        axes.errorbar(
            [x],
            [stat.mean],
            yerr=[stat.std] if stat.std is not None else None,
            fmt="o",
            capsize=4,
            color=f"C{index % 10}",
        )
        axes.annotate(row.model, (x, stat.mean), textcoords="offset points", xytext=(6, 6))
    axes.set_xscale("log")
    axes.set_xlabel("sampling time per example (ms, log scale)")
    axes.set_ylabel(f"test NLL ({nats})" if metric == "nll" else f"test {bits}")
    axes.set_title(f"{data}: likelihood vs sampling speed (lower left is better)")
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.25, y=0.2)
    missing = [r.model for r in rows if r not in points]
    if missing:
        figure.text(0.01, 0.01, "not plotted (no value): " + ", ".join(missing), fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    return True


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "data"


def write_outputs(
    records: Sequence[RunRecord],
    out_dir: Path,
    metric: str = "nll",
    split_configs: bool = True,
) -> list[Path]:
    """comparison.md, comparison.csv, runs.csv and tradeoff_<data>.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = aggregate(records, metric, split_configs)
    failed = unfinished(records)
    plots: dict[str, Path] = {}
    for data, rows in tables.items():
        path = out_dir / f"tradeoff_{_file_stem(data)}.png"
        if plot_tradeoff(rows, data, metric, path):
            plots[data] = path
    written = [out_dir / "comparison.md", out_dir / "comparison.csv", out_dir / "runs.csv"]
    written[0].write_text(markdown_report(tables, failed, metric, plots))
    write_model_csv(tables, written[1])
    write_runs_csv(records, written[2])
    return written + list(plots.values())


# -------------------------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m argen.compare",
        description="Compare runs: test NLL / bits per dim (mean ± std over seeds) against "
        "training throughput and sampling time, one table per dataset.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="runs directory (e.g. logs/, searched recursively) or W&B project "
        "(wandb:<entity>/<project>)",
    )
    parser.add_argument(
        "--out", type=Path, help="write comparison.md, comparison.csv, runs.csv, tradeoff_*.png"
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="nll",
        help="sort by and plot test NLL (nats) or bits per dim (default: nll)",
    )
    parser.add_argument(
        "--merge-configs",
        action="store_true",
        help="average all runs of a model on a dataset even when their hyper-parameters differ",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Print the comparison (and write files with --out); 0 when runs were found, else 1."""
    args = parse_args(argv)
    console = console or Console()
    try:
        records = collect_runs(args.paths)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not records:
        print(
            f"error: no runs found under {', '.join(args.paths)} (a run directory has "
            ".hydra/config.yaml or summary.json; train one with `python train.py`)",
            file=sys.stderr,
        )
        return 1
    tables = aggregate(records, args.metric, not args.merge_configs)
    failed = unfinished(records)
    for table in rich_tables(tables, failed, args.metric):
        console.print(table)
    if not tables:
        console.print("No finished runs: nothing to compare yet.")
    if args.out is not None:
        try:
            written = write_outputs(records, args.out, args.metric, not args.merge_configs)
        except ImportError as exc:
            print(f"error: --out needs matplotlib ({exc}); pip install matplotlib", file=sys.stderr)
            return 1
        console.print("Wrote " + ", ".join(str(p) for p in written), highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
