"""Figures of the inspection views (matplotlib, Agg): the computations live in the sibling
modules; here they are only drawn. Every figure has a title that says what is shown, a colour
bar with its unit, the target marked in red and "after the target" hatched where it applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from argen.inspect.masks import MadeConnectivity  # noqa: E402
from argen.inspect.text import CharStep, show_char  # noqa: E402

HATCH_COLOUR = "0.55"
AFTER_COLOUR = "0.86"  # grey under the hatching: tells "after" from a white exact zero
TARGET_COLOUR = "red"
DPI = 100


@dataclass(frozen=True)
class DependencyPanel:
    """One target's map: ``magnitude`` [H, W] (summed over colours), ``after`` bool [H, W] (pixels
    wholly after the target), ``target`` (colour, row, column) and a panel title."""

    magnitude: np.ndarray
    after: np.ndarray
    target: tuple[int, int, int]
    title: str


def save_png(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a (palette) PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    plt.close(figure)
    # A 256-colour palette: the figures hold a few colour maps and text, and the PNGs committed
    # under results/ stay about half the size.
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    palette.save(path, optimize=True)
    return path


def figure_to_uint8(figure: Figure) -> np.ndarray:
    """An RGB uint8 array [H, W, 3] of ``figure`` (W&B renders float images black); closes it."""
    figure.set_dpi(DPI)
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def hatch_region(ax, region: np.ndarray) -> None:
    """Grey and hatch the pixels of bool ``region`` [H, W], one rectangle per horizontal run
    (a lone pixel is too small for the hatching alone to show)."""
    for row in range(region.shape[0]):
        col = 0
        while col < region.shape[1]:
            if not region[row, col]:
                col += 1
                continue
            start = col
            while col < region.shape[1] and region[row, col]:
                col += 1
            ax.add_patch(
                Rectangle(
                    (start - 0.5, row - 0.5),
                    col - start,
                    1,
                    facecolor=AFTER_COLOUR,
                    hatch="////",
                    edgecolor=HATCH_COLOUR,
                    linewidth=0,
                )
            )


def mark_target(ax, row: int, col: int) -> None:
    """A red square around the target pixel."""
    ax.add_patch(
        Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=TARGET_COLOUR, linewidth=2)
    )


def heat_cmap() -> matplotlib.colors.Colormap:
    """Dark = strong dependency; exact zeros (masked) white; values under the scale near-white."""
    base = plt.get_cmap("magma_r")
    return base.with_extremes(bad="white", under=base(0.02))


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def log_norm(values: Sequence[np.ndarray], decades: float = 8.0) -> LogNorm:
    """A log colour scale over the non-zero values, at most ``decades`` decades deep."""
    nonzero = np.concatenate([v[v > 0].ravel() for v in values] + [np.array([1.0])])
    high = float(max(v.max() for v in values)) if any(v.max() > 0 for v in values) else 1.0
    low = max(float(nonzero.min()), high * 10.0**-decades)
    return LogNorm(vmin=min(low, high * 0.1), vmax=high)


def dependency_figure(panels: Sequence[DependencyPanel], title: str) -> Figure:
    """Heat maps of |d log p(x_t | x_<t) / d x_j| for each panel's target, on one log scale;
    exact zeros white, pixels after the target hatched, the target in a red square."""
    norm = log_norm([p.magnitude for p in panels])
    cmap = heat_cmap()
    n = len(panels)
    figure, axes = plt.subplots(
        1, n, figsize=(2.6 * n + 0.9, 3.4), squeeze=False, layout="constrained"
    )
    image = None
    for ax, panel in zip(axes[0], panels, strict=True):
        shown = np.ma.masked_where(panel.magnitude <= 0, panel.magnitude)
        image = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
        hatch_region(ax, panel.after)
        mark_target(ax, panel.target[1], panel.target[2])
        ax.set_title(panel.title, fontsize=9)
        _bare(ax)
    bar = figure.colorbar(image, ax=list(axes[0]), fraction=0.04, pad=0.02, extend="min")
    bar.set_label("|∂ log p(x_t | x_<t) / ∂ x_j|", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    figure.suptitle(
        f"{title}\nwhite: exactly 0 · grey, hatched: after the target · red: target", fontsize=9
    )
    return figure


def comparison_figure(panels: Sequence[DependencyPanel], title: str, columns: int = 4) -> Figure:
    """Several models' maps for one target each, on a common log scale (as ``dependency_figure``,
    in a grid)."""
    norm = log_norm([p.magnitude for p in panels])
    cmap = heat_cmap()
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.4 * columns + 0.9, 2.6 * rows + 0.7),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        shown = np.ma.masked_where(panel.magnitude <= 0, panel.magnitude)
        image = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
        hatch_region(ax, panel.after)
        mark_target(ax, panel.target[1], panel.target[2])
        ax.set_title(panel.title, fontsize=9)
        _bare(ax)
    bar = figure.colorbar(image, ax=list(axes.ravel()), fraction=0.03, pad=0.02, extend="min")
    bar.set_label("|∂ log p(x_t | x_<t) / ∂ x_j|", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    figure.suptitle(
        f"{title}\nwhite: exactly 0 · grey, hatched: after the target · red: target", fontsize=10
    )
    return figure


def field_growth_figure(
    entry: np.ndarray, names: Sequence[str], pixel: tuple[int, int], after: np.ndarray, title: str
) -> Figure:
    """Left: for each input pixel, the first layer whose features at the target see it (white:
    none). Right: the receptive field's size, in pixels, after each layer."""
    count = len(names)
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.92, count))
    cmap = ListedColormap(colours).with_extremes(bad="white")
    norm = BoundaryNorm(np.arange(-0.5, count + 0.5), count)
    figure, (ax, bars) = plt.subplots(
        1, 2, figsize=(7.4, 3.4), gridspec_kw={"width_ratios": [1.15, 1]}
    )
    image = ax.imshow(
        np.ma.masked_where(entry < 0, entry), cmap=cmap, norm=norm, interpolation="nearest"
    )
    hatch_region(ax, after)
    mark_target(ax, *pixel)
    _bare(ax)
    ax.set_title(f"first layer that sees each pixel\n(target {pixel}, red)", fontsize=9)
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, ticks=np.arange(count))
    step = max(1, -(-count // 12))
    bar.ax.set_yticks(np.arange(0, count, step), [names[i] for i in range(0, count, step)])
    bar.ax.tick_params(labelsize=7)
    sizes = [int(((entry >= 0) & (entry <= k)).sum()) for k in range(count)]
    bars.bar(np.arange(count), sizes, color=colours)
    bars.set_xticks(np.arange(0, count, step), [names[i] for i in range(0, count, step)])
    bars.tick_params(axis="x", labelrotation=60, labelsize=7)
    bars.tick_params(axis="y", labelsize=7)
    bars.set_ylabel("pixels in the receptive field", fontsize=8)
    bars.set_title("receptive field after each layer", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------------- MADE
def made_graph_figure(conn: MadeConnectivity, title: str) -> Figure:
    """The network as a graph (inputs at the bottom, each unit labelled with its integer; kept
    connections solid, cut ones dotted), beside every layer's mask matrix and the resulting
    input -> output connectivity."""
    layers = conn.degrees
    num_matrices = len(conn.masks) + 1
    figure = plt.figure(figsize=(4.2 + 1.9 * num_matrices, 4.4))
    grid = figure.add_gridspec(2, 1 + num_matrices, width_ratios=[3.2] + [1.3] * num_matrices)
    graph = figure.add_subplot(grid[:, 0])
    width = max(len(d) for d in layers)
    positions = []
    for level, degrees in enumerate(layers):
        xs = np.arange(len(degrees)) - (len(degrees) - 1) / 2
        positions.append([(float(x), float(level)) for x in xs])
    for level, mask in enumerate(conn.masks):
        for out_unit, row in enumerate(mask.tolist()):
            for in_unit, kept in enumerate(row):
                (x0, y0), (x1, y1) = positions[level][in_unit], positions[level + 1][out_unit]
                graph.plot(
                    [x0, x1],
                    [y0, y1],
                    color="0.15" if kept else "0.8",
                    linestyle="-" if kept else ":",
                    linewidth=1.1 if kept else 0.8,
                    zorder=1,
                )
    names = ["inputs"] + [f"hidden {i}" for i in range(1, len(layers) - 1)] + ["outputs"]
    num_inputs = len(layers[0])
    for level, degrees in enumerate(layers):
        for unit, degree in enumerate(degrees.tolist()):
            x, y = positions[level][unit]
            graph.scatter([x], [y], s=330, color="white", edgecolor="black", zorder=2)
            graph.text(x, y, str(degree), ha="center", va="center", fontsize=9, zorder=3)
            if level == 0:
                graph.text(x, y - 0.3, f"x{unit + 1}", ha="center", va="top", fontsize=9)
            if level == len(layers) - 1:
                given = [f"x{j + 1}" for j in range(num_inputs) if conn.reach[unit, j]]
                label = f"p(x{unit + 1}" + (f"|{','.join(given)})" if given else ")")
                graph.text(x, y + 0.3, label, ha="center", va="bottom", fontsize=8)
        graph.text(-width / 2 - 0.4, level, names[level], ha="right", va="center", fontsize=8)
    graph.set_xlim(-width / 2 - 1.9, width / 2 + 0.5)
    graph.set_ylim(-0.8, len(layers) - 0.2)
    graph.axis("off")
    order = ", ".join(f"x{i + 1}" for i in conn.order.tolist())
    graph.set_title(f"ordering {order}; numbers: unit integers m(k)", fontsize=9)

    matrices = [
        (m, f"M^W{i + 1}" if i < len(conn.masks) - 1 else "M^V") for i, m in enumerate(conn.masks)
    ]
    matrices.append((conn.reach, "output ← input\n(paths kept)"))

    def unit_labels(level: int) -> list[str]:
        """Tick labels of a layer's units: x_j and its integer for inputs and outputs."""
        degrees = layers[level].tolist()
        if level in (0, len(layers) - 1):
            return [f"x{j + 1}:{d}" for j, d in enumerate(degrees)]
        return [str(d) for d in degrees]

    count = len(conn.masks)
    for index, (matrix, name) in enumerate(matrices):
        ax = figure.add_subplot(grid[:, 1 + index])
        values = matrix.int().numpy()
        ax.imshow(values, cmap="Greys", vmin=-0.3, vmax=1.3, interpolation="nearest")
        for (r, c), v in np.ndenumerate(values):
            ax.text(
                c, r, str(v), ha="center", va="center", fontsize=8, color="white" if v else "black"
            )
        reach = index == count
        columns = unit_labels(0 if reach else index)
        rows = unit_labels(len(layers) - 1 if reach else index + 1)
        ax.set_xticks(range(values.shape[1]), columns, fontsize=7)
        ax.set_yticks(range(values.shape[0]), rows, fontsize=7)
        ax.set_xlabel("input j: m(j)" if reach or index == 0 else "in: m(j)", fontsize=7)
        ax.set_ylabel("output d: m(d)" if reach or index == count - 1 else "out: m(k)", fontsize=7)
        ax.set_title(name, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def made_reach_figure(counts: np.ndarray, positions: np.ndarray, title: str) -> Figure:
    """Left: how many inputs each output (pixel) may depend on, as an image. Right: that number
    against the output's position in the ordering (at most the inputs before it)."""
    figure, (ax, scatter) = plt.subplots(1, 2, figsize=(7.6, 3.3))
    image = ax.imshow(counts, cmap="viridis", interpolation="nearest")
    _bare(ax)
    ax.set_title("per output pixel", fontsize=9)
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("inputs", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    flat_pos, flat_count = positions.ravel(), counts.ravel()
    scatter.plot(
        [0, flat_pos.max()],
        [0, flat_pos.max()],
        color="0.6",
        linewidth=1,
        label="every earlier input",
    )
    scatter.scatter(flat_pos, flat_count, s=4, color="tab:blue", label="MADE's masks")
    scatter.set_xlabel("position of the output in the ordering", fontsize=8)
    scatter.set_ylabel("inputs it may depend on", fontsize=8)
    scatter.tick_params(labelsize=7)
    scatter.legend(fontsize=7, loc="upper left")
    scatter.set_title("connectivity against the ordering", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------------- text
def char_strip_figure(
    steps: Sequence[CharStep], total: float, title: str, width: int = 32
) -> Figure:
    """The string as a strip of cells, one per character, coloured by p(x_t | x_<t)."""
    width = min(width, len(steps))
    rows = -(-len(steps) // width)
    figure, ax = plt.subplots(
        figsize=(max(0.3 * width + 1.4, 6.5), 0.42 * rows + 0.9), layout="constrained"
    )
    cmap = plt.get_cmap("RdYlGn")
    values = np.full((rows, width), np.nan)
    for step in steps:
        values[step.position // width, step.position % width] = step.prob
    image = ax.imshow(
        np.ma.masked_invalid(values),
        cmap=cmap,
        vmin=0,
        vmax=1,
        aspect="auto",
        interpolation="nearest",
    )
    for step in steps:
        r, c = divmod(step.position, width)
        ax.text(
            c, r, show_char(step.char), ha="center", va="center", fontsize=9, family="monospace"
        )
    ax.set_xticks([])
    ax.set_yticks([])
    bar = figure.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("p(x_t | x_<t)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    bits = -total / np.log(2) / len(steps)
    ax.set_title(
        f"{title}\nlog p = {total:.2f} nats over {len(steps)} characters ({bits:.2f} bits/char)",
        fontsize=9,
    )
    return figure


# ----------------------------------------------------------------------------------- surprise
def surprise_figure(
    images: torch.Tensor, surprise: torch.Tensor, num_levels: int, title: str
) -> Figure:
    """Each image (top) above its per-sub-pixel NLL map (one row per colour), one colour scale."""
    images, surprise = images.cpu().float(), surprise.cpu().double()
    n, channels = images.shape[:2]
    rows = 1 + channels
    figure, axes = plt.subplots(
        rows, n, figsize=(1.9 * n + 1.0, 1.9 * rows + 0.7), squeeze=False, layout="constrained"
    )
    high = float(surprise.max()) or 1.0
    image = None
    for k in range(n):
        picture = (images[k] / (num_levels - 1)).permute(1, 2, 0).numpy()
        axes[0, k].imshow(
            picture.squeeze(-1) if channels == 1 else picture,
            cmap="gray" if channels == 1 else None,
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        axes[0, k].set_title(f"NLL {float(surprise[k].sum()):.1f} nats", fontsize=8)
        _bare(axes[0, k])
        for c in range(channels):
            ax = axes[1 + c, k]
            image = ax.imshow(
                surprise[k, c].numpy(), cmap="inferno", vmin=0, vmax=high, interpolation="nearest"
            )
            _bare(ax)
            if k == 0:
                ax.set_ylabel("surprise" if channels == 1 else "RGB"[c] + " surprise", fontsize=8)
    axes[0, 0].set_ylabel("image", fontsize=8)
    bar = figure.colorbar(image, ax=list(axes[1:].ravel()), fraction=0.025, pad=0.02)
    bar.set_label("-log p(x_d | x_<d)  [nats]", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    figure.suptitle(f"{title}\neach map sums to the image's NLL", fontsize=9)
    return figure
