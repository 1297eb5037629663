"""What every ``argen.compare`` figure shares: one colour and marker per model, a legend outside
the axes instead of labels beside points (labels there overlapped whenever two models were
close), log axes with readable ticks, and checks that no text overlaps and no axes is empty.

Drawn on matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from matplotlib import ticker
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text

MARKERS = "osD^vP*Xh<>p"
MIN_DECADES = 0.6  # a log axis spans at least this many decades, so that it has two labelled ticks
PLAIN_RANGE = (1e-3, 1e5)  # tick values written as plain numbers; outside, as powers of ten


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas whose layout makes room for titles, labels and an outside
    legend (constrained layout)."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def style(index: int) -> dict[str, object]:
    """The look of the ``index``-th model: a colour and a marker shape (cycling with different
    periods, so distinct for the first 60 models), drawn hollow so that two models at nearly the
    same point both stay visible."""
    color = f"C{index % 10}"
    return {
        "color": color,
        "marker": MARKERS[index % len(MARKERS)],
        "markerfacecolor": "none",
        "markeredgecolor": color,
        "markeredgewidth": 1.6,
        "markersize": 8,
    }


def tick_label(value: float, plain: bool = True) -> str:
    """``0.5``, ``20``, ``1,000`` when ``plain``; else ``2×10¹²`` (mathtext)."""
    if value <= 0:
        return ""
    if plain:
        return f"{value:,.10g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10**exponent, 6)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    power = f"10^{{{exponent}}}"
    return f"${power}$" if mantissa == 1 else f"${mantissa:g}\\times{power}$"


class ReadableLogFormatter(ticker.Formatter):
    """Every tick of an axis in one style: plain numbers when the whole view lies inside
    ``PLAIN_RANGE``, powers of ten otherwise."""

    def __call__(self, value: float, position: float | None = None) -> str:
        low, high = sorted(self.axis.get_view_interval())
        return tick_label(value, PLAIN_RANGE[0] <= low and high < PLAIN_RANGE[1])


def readable_log_axis(axes: Axes, axis: str = "x") -> None:
    """Log scale with labelled ticks that do not crowd: decades when the axis spans several,
    1-2-5 steps when it spans about one, finer below, and at least ``MIN_DECADES`` decades in
    all (an axis of one value or of close values is widened about its centre); minor ticks are
    unlabelled."""
    set_scale = axes.set_xscale if axis == "x" else axes.set_yscale
    get_lim = axes.get_xlim if axis == "x" else axes.get_ylim
    set_lim = axes.set_xlim if axis == "x" else axes.set_ylim
    set_scale("log")
    low, high = get_lim()
    span = math.log10(high / low)
    if span < MIN_DECADES:
        centre = (math.log10(high) + math.log10(low)) / 2
        low, high = 10 ** (centre - MIN_DECADES / 2), 10 ** (centre + MIN_DECADES / 2)
        set_lim(low, high)
        span = MIN_DECADES
    if span > 8:  # many decades: every other one
        base, subs = 100, (1.0,)
    elif span > 2.5:
        base, subs = 10, (1.0,)
    elif span > 0.9:
        base, subs = 10, (1.0, 2.0, 5.0)
    else:
        base, subs = 10, (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    target = axes.xaxis if axis == "x" else axes.yaxis
    target.set_major_locator(ticker.LogLocator(base=base, subs=subs, numticks=12))
    target.set_major_formatter(ReadableLogFormatter())
    target.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(1, 10)), numticks=12))
    target.set_minor_formatter(ticker.NullFormatter())


def shown_tick_labels(axes: Axes, axis: str = "x") -> list[str]:
    """The labels of the major ticks drawn inside the view limits (matplotlib keeps labels of
    ticks just outside them, which are not drawn)."""
    axes.figure.canvas.draw()
    target = axes.xaxis if axis == "x" else axes.yaxis
    low, high = sorted(target.get_view_interval())
    return [
        tick.label1.get_text()
        for tick in target.get_major_ticks()
        if low * (1 - 1e-9) <= tick.get_loc() <= high * (1 + 1e-9) and tick.label1.get_text()
    ]


def legend_below(figure: Figure, handles: Sequence[Artist], labels: Sequence[str]) -> Legend:
    """One legend for the whole figure, below the axes, in as many columns as fit its width."""
    columns = min(len(labels), 4)
    while True:
        legend = figure.legend(
            handles, labels, loc="outside lower center", ncols=columns, fontsize=9, frameon=False
        )
        figure.canvas.draw()
        box = legend.get_window_extent()
        if columns == 1 or box.width <= figure.bbox.width * 0.98:
            return legend
        legend.remove()
        columns -= 1


# --------------------------------------------------------------------------------- checks


def visible_texts(figure: Figure) -> list[Text]:
    """Every text the figure draws: titles, axis labels, tick labels inside the view limits
    (matplotlib keeps labels of ticks outside them, undrawn) and legend entries."""
    figure.canvas.draw()
    ticks: dict[int, bool] = {}
    for axes in figure.axes:
        for axis, (low, high) in ((axes.xaxis, axes.get_xlim()), (axes.yaxis, axes.get_ylim())):
            low, high = min(low, high), max(low, high)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                inside = low - 1e-12 * abs(low) <= tick.get_loc() <= high + 1e-12 * abs(high)
                ticks[id(tick.label1)] = ticks[id(tick.label2)] = inside
    return [
        text
        for text in figure.findobj(Text)
        if text.get_visible() and text.get_text().strip() and ticks.get(id(text), True)
    ]


def overlapping_texts(figure: Figure) -> list[tuple[str, str]]:
    """Pairs of visible texts whose drawn bounding boxes overlap (empty for a readable figure)."""
    texts = visible_texts(figure)
    renderer = figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]


def texts_outside(figure: Figure) -> list[str]:
    """Texts drawn (partly) outside the figure, which the saved PNG would cut off."""
    renderer = figure.canvas.get_renderer()
    bounds = figure.bbox
    return [
        text.get_text()
        for text in visible_texts(figure)
        if not _inside(text.get_window_extent(renderer), bounds)
    ]


def _inside(box, bounds, tolerance: float = 0.5) -> bool:
    return (
        box.x0 >= bounds.x0 - tolerance
        and box.y0 >= bounds.y0 - tolerance
        and box.x1 <= bounds.x1 + tolerance
        and box.y1 <= bounds.y1 + tolerance
    )


def empty_axes(figure: Figure) -> list[str]:
    """Titles of the axes that draw no data (no line, marker or band)."""
    return [
        axes.get_title() or "untitled"
        for axes in figure.axes
        if not (axes.lines or axes.collections or axes.containers)
    ]


def check_readable(figure: Figure, name: str) -> None:
    """Refuse to save a figure with overlapping texts, texts cut off at its edge or an empty
    axes (a bug in the layout)."""
    overlaps, outside, empty = overlapping_texts(figure), texts_outside(figure), empty_axes(figure)
    if overlaps or outside or empty:
        raise RuntimeError(
            f"{name}: overlapping texts {overlaps}, texts cut off {outside}, empty axes {empty}"
        )
