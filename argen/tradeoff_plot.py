"""The likelihood-vs-speed trade-off figure of ``argen.compare``: test NLL (or bits/dim) against
sampling time per example and against training throughput, log-scale x, one labelled point per
model with the seed spread (sample std) as error bars.

Drawn with matplotlib's Agg canvas (no display needed) and saved without a version stamp, so that
the same summaries give the same PNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from argen.compare_cells import display_label, units
from argen.compare_rows import ModelRow
from argen.paper_results import data_name

# PNG metadata: no "Software: matplotlib x.y" line that would change with the installed version.
PNG_METADATA: dict[str, str | None] = {"Software": None}


def _sample_ms(row: ModelRow) -> float | None:
    seconds = row.sample_seconds.mean
    return None if seconds is None else seconds * 1e3


def _throughput(row: ModelRow) -> float | None:
    return row.throughput.mean


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
        "training examples/s (log scale)",
        "vs training throughput (right is faster)",
    ),
]


def _draw_panel(
    axes: Axes,
    rows: Sequence[ModelRow],
    metric: str,
    x_of: Callable[[ModelRow], float | None],
) -> list[str]:
    """One labelled point per row that has both values; returns the labels of those left out."""
    left_out: list[str] = []
    for index, row in enumerate(rows):
        stat, x = row.metric(metric), x_of(row)
        if stat.mean is None or x is None or x <= 0:
            left_out.append(display_label(row))
            continue
        yerr = [stat.std] if stat.std is not None else None
        color = f"C{index % 10}"
        axes.errorbar([x], [stat.mean], yerr=yerr, fmt="o", capsize=4, color=color)
        label = display_label(row)
        axes.annotate(label, (x, stat.mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set_xscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.3, y=0.2)
    return left_out


def plottable(rows: Sequence[ModelRow], metric: str) -> list[ModelRow]:
    """The rows with the metric and at least one of the two speeds."""
    return [
        row
        for row in rows
        if row.metric(metric).mean is not None and any(panel[0](row) for panel in PANELS)
    ]


def tradeoff_figure(rows: Sequence[ModelRow], data: str, metric: str = "nll") -> Figure | None:
    """The two-panel trade-off figure of one dataset's rows; None when no row can be plotted."""
    rows = plottable(rows, metric)
    if not rows:
        return None
    nats, bits, item = units(rows)
    figure = Figure(figsize=(11, 4.6), dpi=100)
    FigureCanvasAgg(figure)
    notes: list[str] = []
    for index, (x_of, what, xlabel, title) in enumerate(PANELS):
        axes = figure.add_subplot(1, 2, index + 1)
        left_out = _draw_panel(axes, rows, metric, x_of)
        if left_out:
            notes.append(f"no {what}: " + ", ".join(left_out))
        axes.set_xlabel(xlabel.format(item=item))
        axes.set_ylabel(f"test NLL ({nats})" if metric == "nll" else f"test {bits}")
        axes.set_title(title, fontsize=10)
    figure.suptitle(f"{data_name(data)}: likelihood (lower is better) against speed")
    if notes:
        figure.text(0.01, 0.01, "; ".join(notes), fontsize=7)
    figure.tight_layout()
    return figure


def save_png(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG without a version stamp."""
    figure.savefig(path, format="png", metadata=PNG_METADATA)


def figure_pixels(figure: Figure) -> np.ndarray:
    """The rendered figure as an H x W x 3 uint8 array (what ``wandb.Image`` expects)."""
    canvas = figure.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
