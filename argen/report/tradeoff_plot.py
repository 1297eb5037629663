"""The likelihood-vs-speed trade-off figure of ``argen.compare``: test NLL (or bits/dim) against
sampling time per example and against training throughput (characters/s for text), log-scale x,
one point per model with the seed spread (min to max) as error bars, and a legend below the
panels (``argen.report.plot_axes``). A panel no model has a value for is left out.

Drawn with matplotlib's Agg canvas (no display needed) and saved without a version stamp, so that
the same summaries give the same PNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from argen.report.compare_cells import display_label, speed_unit, units
from argen.report.compare_rows import ModelRow
from argen.report.paper_results import data_name
from argen.report.plot_axes import legend_below, new_figure, readable_log_axis, style

# PNG metadata: no "Software: matplotlib x.y" line that would change with the installed version.
PNG_METADATA: dict[str, str | None] = {"Software": None}


def _sample_ms(row: ModelRow) -> float | None:
    seconds = row.sample_seconds.mean
    return None if seconds is None else seconds * 1e3


def _throughput(row: ModelRow) -> float | None:
    return row.speed.mean  # characters/s for text, examples/s for images


# (x of a row, what x is, x axis label, panel title) of each panel.
PANELS: list[tuple[Callable[[ModelRow], float | None], str, str, str]] = [
    (
        _sample_ms,
        "sampling time",
        "sampling time per {item} (ms, log scale)",
        "vs sampling speed (left is faster)",
    ),
    (
        _throughput,
        "training throughput",
        "training {speed} (log scale)",
        "vs training throughput (right is faster)",
    ),
]


def _has(row: ModelRow, metric: str, x_of: Callable[[ModelRow], float | None]) -> bool:
    x = x_of(row)
    return row.metric(metric).mean is not None and x is not None and x > 0


def _draw_panel(
    axes: Axes,
    rows: Sequence[ModelRow],
    styles: dict[str, dict[str, str]],
    metric: str,
    x_of: Callable[[ModelRow], float | None],
    handles: dict[str, Artist],
) -> None:
    """One point per row that has both values, the seed range as an error bar."""
    for row in rows:
        if not _has(row, metric, x_of):
            continue
        stat, x, label = row.metric(metric), x_of(row), display_label(row)
        yerr = None
        if stat.n > 1 and stat.low is not None and stat.high is not None:
            yerr = [[stat.mean - stat.low], [stat.high - stat.mean]]
        container = axes.errorbar(
            [x], [stat.mean], yerr=yerr, linestyle="none", capsize=4, **styles[label]
        )
        handles.setdefault(label, container)
    axes.margins(x=0.15, y=0.15)
    readable_log_axis(axes, "x")
    axes.grid(True, which="major", alpha=0.4)
    axes.grid(True, which="minor", alpha=0.15)


def plottable(rows: Sequence[ModelRow], metric: str) -> list[ModelRow]:
    """The rows with the metric and at least one of the two speeds."""
    return [row for row in rows if any(_has(row, metric, panel[0]) for panel in PANELS)]


def left_out(rows: Sequence[ModelRow], metric: str) -> dict[str, list[str]]:
    """{what a panel plots: labels of the rows with the metric but without that value}."""
    return {
        what: [
            display_label(r)
            for r in rows
            if r.metric(metric).mean is not None and not _has(r, metric, x_of)
        ]
        for x_of, what, _, _ in PANELS
    }


def tradeoff_figure(rows: Sequence[ModelRow], data: str, metric: str = "nll") -> Figure | None:
    """The trade-off figure of one dataset's rows, one panel per speed some row has; None when
    no row can be plotted."""
    rows = plottable(rows, metric)
    if not rows:
        return None
    nats, bits, item = units(rows)
    panels = [panel for panel in PANELS if any(_has(r, metric, panel[0]) for r in rows)]
    styles = {display_label(row): style(i) for i, row in enumerate(rows)}
    figure = new_figure(5.6 * len(panels), 5.4)
    handles: dict[str, Artist] = {}
    for index, (x_of, _what, xlabel, title) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        _draw_panel(axes, rows, styles, metric, x_of, handles)
        axes.set_xlabel(xlabel.format(item=item, speed=speed_unit(rows)))
        axes.set_ylabel(f"test NLL ({nats})" if metric == "nll" else f"test {bits}")
        axes.set_title(title, fontsize=10)
    figure.suptitle(f"{data_name(data)}: likelihood (lower is better) against speed")
    labels = [display_label(row) for row in rows if display_label(row) in handles]
    legend_below(figure, [handles[label] for label in labels], labels)
    return figure


def save_png(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG without a version stamp."""
    figure.savefig(path, format="png", metadata=PNG_METADATA)


def figure_pixels(figure: Figure) -> np.ndarray:
    """The rendered figure as an H x W x 3 uint8 array (what ``wandb.Image`` expects)."""
    canvas = figure.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
