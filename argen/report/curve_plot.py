"""The learning-curve figure of ``argen.compare``: validation NLL (or bits/dim) against training
FLOPs and against process CPU seconds, log-scale x, one line per model (the mean over its seeds,
with markers) with the min-max band over seeds shaded and each seed's measured points as a thin
line of the same colour (``argen.report.compare_curves``), and a legend below the panels. A panel that no
model has a curve for is left out; rows without any curve are not drawn."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from argen.report.compare_cells import display_label, units
from argen.report.compare_curves import CURVE_AXES, SeedCurve, row_curves
from argen.report.compare_rows import ModelRow
from argen.report.paper_results import data_name
from argen.report.plot_axes import legend_below, new_figure, readable_log_axis, style


def _legend_label(row: ModelRow, curves: dict[str, SeedCurve]) -> str:
    seeds = max(curve.seeds for curve in curves.values())
    return f"{display_label(row)} ({seeds} seed{'s' if seeds != 1 else ''})"


def curve_figure(rows: Sequence[ModelRow], data: str, metric: str = "nll") -> Figure | None:
    """Validation NLL against each of ``CURVE_AXES`` that some row has; None when no row has a
    curve. ``rows`` are the dataset's rows in table order (which fixes each model's colour)."""
    styles = {display_label(row): style(i) for i, row in enumerate(rows)}
    drawn = [(row, curves) for row in rows if (curves := row_curves(row, metric))]
    if not drawn:
        return None
    axes_keys = [key for key in CURVE_AXES if any(key in curves for _, curves in drawn)]
    nats, bits, _ = units(rows)
    figure = new_figure(max(5.6 * len(axes_keys), 7.0), 5.6)
    handles: dict[str, Artist] = {}
    for index, key in enumerate(axes_keys):
        axes = figure.add_subplot(1, len(axes_keys), index + 1)
        for row, curves in drawn:
            if key not in curves:
                continue
            curve, look = curves[key], styles[display_label(row)]
            if curve.seeds > 1:  # every measured point, where the mean and band cannot go
                for x, y in curve.seed_points:
                    axes.plot(x, y, color=look["color"], linewidth=0.8, alpha=0.45)
                axes.fill_between(curve.x, curve.low, curve.high, color=look["color"], alpha=0.2)
            if len(curve.x):
                axes.plot(curve.x, curve.mean, **{**look, "markersize": 5})
            # the legend shows the marker line, drawn or not (seeds with no common range)
            handles.setdefault(_legend_label(row, curves), Line2D([], [], **look))
        readable_log_axis(axes, "x")
        axes.grid(True, which="major", alpha=0.4)
        axes.grid(True, which="minor", alpha=0.15)
        axes.set_xlabel(f"{CURVE_AXES[key]} (log scale)")
        axes.set_ylabel(f"validation NLL ({nats})" if metric == "nll" else f"validation {bits}")
        axes.set_title(f"against {CURVE_AXES[key]}", fontsize=10)
    figure.suptitle(
        f"{data_name(data)}: learning curves\n"
        "markers: mean over seeds; band: their min to max; thin lines: each seed",
        fontsize=11,
    )
    labels = list(handles)
    legend_below(figure, [handles[label] for label in labels], labels)
    return figure
