"""``python -m argen.compare RUNS --wandb``: the comparison as one W&B run (job type ``compare``).

The run holds each dataset's table as a ``wandb.Table``, the trade-off figure as an image, and
native W&B scatter charts of test NLL against sampling time and against training throughput (one
point per model), so that the dashboard shows the same comparison as the results page. Without
a W&B login (and ``WANDB_MODE`` unset) the run is written offline, to be uploaded with
``wandb sync``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argen.report.compare_cells import (
    UNFINISHED_COLUMNS,
    display_label,
    split_rows,
    unfinished_cells,
)
from argen.report.compare_rows import ModelRow
from argen.report.compare_runs import RunRecord
from argen.report.curve_plot import curve_figure
from argen.report.results_page import MODEL_CSV_COLUMNS, file_stem, model_values
from argen.report.tradeoff_plot import figure_pixels, tradeoff_figure

JOB_TYPE = "compare"
DEFAULT_PROJECT = "argen"


@dataclass(frozen=True)
class Chart:
    """A scatter chart of the metric against one speed: x column, key suffix, title words."""

    x_column: str
    key: str
    title: str
    x_of: Callable[[ModelRow], float | None]


CHARTS = (
    Chart(
        "sample_ms_per_example",
        "vs_sampling_time",
        "sampling time per example (ms)",
        lambda row: None if row.sample_seconds.mean is None else row.sample_seconds.mean * 1e3,
    ),
    Chart(
        "train_throughput",
        "vs_train_throughput",
        "training examples/s (characters/s for text)",
        lambda row: row.speed.mean,
    ),
)


@dataclass
class LoggedRun:
    """Where the comparison run went: its local directory, mode and W&B path."""

    directory: Path
    mode: str
    path: str


def model_table(rows: Sequence[ModelRow]) -> Any:
    """A ``wandb.Table`` of rows with the raw numbers of comparison.csv."""
    import wandb

    return wandb.Table(columns=MODEL_CSV_COLUMNS, data=[model_values(row) for row in rows])


def unfinished_table(failed: Sequence[RunRecord]) -> Any:
    """A ``wandb.Table`` of the failed, interrupted and incomplete runs with their reasons."""
    import wandb

    return wandb.Table(
        columns=UNFINISHED_COLUMNS, data=[unfinished_cells(r, r.name or r.source) for r in failed]
    )


def scatter(rows: Sequence[ModelRow], data: str, metric: str, chart: Chart) -> Any | None:
    """A native W&B scatter chart of the metric against ``chart``'s speed, one point per model;
    None when no model has both values."""
    import wandb

    y_column = f"test_{metric}"
    points = [
        [display_label(row), chart.x_of(row), row.metric(metric).mean]
        for row in rows
        if chart.x_of(row) is not None and row.metric(metric).mean is not None
    ]
    if not points:
        return None
    table = wandb.Table(columns=["model", chart.x_column, y_column], data=points)
    title = f"{data}: test {metric} vs {chart.title}"
    return wandb.plot.scatter(table, chart.x_column, y_column, title=title)


def dataset_payload(data: str, rows: Sequence[ModelRow], metric: str) -> dict[str, Any]:
    """The W&B keys of one dataset: tables, scatter charts and the trade-off image."""
    import wandb

    likelihood, recon = split_rows(rows)
    stem = file_stem(data)
    payload: dict[str, Any] = {}
    if likelihood:
        payload[f"tables/{stem}"] = model_table(likelihood)
    if recon:
        payload[f"tables/{stem}_reconstruction"] = model_table(recon)
    for chart in CHARTS:
        plot = scatter(likelihood, data, metric, chart)
        if plot is not None:
            payload[f"charts/{stem}_{metric}_{chart.key}"] = plot
    figure = tradeoff_figure(likelihood, data, metric)
    if figure is not None:
        caption = f"{data}: test {metric} against sampling time and training throughput"
        payload[f"tradeoff/{stem}"] = wandb.Image(figure_pixels(figure), caption=caption)
    figure = curve_figure(likelihood, data, metric)
    if figure is not None:
        caption = f"{data}: validation {metric} against training FLOPs and process CPU seconds"
        payload[f"curves/{stem}"] = wandb.Image(figure_pixels(figure), caption=caption)
    return payload


def comparison_payload(
    tables: dict[str, list[ModelRow]], failed: Sequence[RunRecord], metric: str
) -> dict[str, Any]:
    """Everything the comparison run logs, as one ``run.log`` dictionary."""
    payload: dict[str, Any] = {}
    for data, rows in tables.items():
        payload.update(dataset_payload(data, rows, metric))
    if failed:
        payload["tables/unfinished_runs"] = unfinished_table(failed)
    return payload


def log_comparison(
    tables: dict[str, list[ModelRow]],
    failed: Sequence[RunRecord],
    metric: str,
    directory: Path,
    project: str = DEFAULT_PROJECT,
    entity: str | None = None,
    config: dict[str, Any] | None = None,
) -> LoggedRun:
    """Log the comparison as one W&B run under ``directory``/wandb and finish it exactly once:
    with exit code 1 (and the exception raised again) when logging fails."""
    import wandb

    from argen.training.wandb_mode import choose_wandb_mode

    mode = choose_wandb_mode()
    directory.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project,
        entity=entity,
        job_type=JOB_TYPE,
        name="compare-" + "-".join(tables) if tables else "compare",
        tags=[JOB_TYPE],
        dir=str(directory),
        config=config or {},
        settings=wandb.Settings(console="off"),
    )
    logged = LoggedRun(Path(run.dir).parent, mode, run.path)
    exit_code = 1
    try:
        run.log(comparison_payload(tables, failed, metric))
        exit_code = 0
    finally:
        run.finish(exit_code=exit_code)
    return logged


def sync_hint(logged: LoggedRun) -> str | None:
    """The ``wandb sync`` command for an offline run, None for an online one."""
    if logged.mode not in ("offline", "dryrun"):
        return None
    return f"W&B offline: upload the comparison with `wandb sync {logged.directory}`"
