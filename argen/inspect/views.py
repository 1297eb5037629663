"""The inspection views: which apply to a model, and each one computed and drawn.

Used by ``python -m argen.inspect`` (PNG files) and ``argen.inspect.callback`` (W&B images); both
get a list of ``Drawn`` figures with the numbers behind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.table import Table

from argen.data.text import CharVocab
from argen.inspect import plots
from argen.inspect.conditionals import (
    FULLY_CONNECTED,
    InspectError,
    check_image_model,
    mixture_size,
    ordering_rank,
)
from argen.inspect.dependency import (
    LAYERED,
    after_target,
    default_targets,
    dependency_maps,
    field_growth,
    layer_names,
)
from argen.inspect.masks import lecture_made, made_connectivity
from argen.inspect.surprise import pixel_surprise
from argen.inspect.text import CharStep, char_probabilities, check_text_model, show_char
from argen.models.base import DensityModel
from argen.models.cached_sampling import RasterImageModel
from argen.models.made import MADE

# One line of help per view (the CLI's --help and README list them).
VIEWS: dict[str, str] = {
    "dependency": "dependency maps: |d log p(x_t | x_<t) / d x_j| for chosen target pixels "
    "(image models)",
    "growth": "receptive-field growth, layer by layer, around the first target (pixelcnn, "
    "gated_pixelcnn, row_lstm, diagonal_bilstm, pixelsnail)",
    "masks": "MADE's masks: the n = 3 lecture example, and the inputs each output of the "
    "checkpoint's MADE may depend on (made)",
    "text": "per-character probabilities p(x_t | x_<t) of a string with the top alternatives, as "
    "a table and a heat strip (char_rnn, char_transformer)",
    "surprise": "per-pixel (per-sub-pixel) negative log-likelihood of test images beside them "
    "(image models)",
}


@dataclass
class Drawn:
    """One figure of a view: ``key`` names its file (``<key>.png``) and W&B panel."""

    view: str
    key: str
    figure: Figure
    caption: str
    numbers: dict[str, Any] = field(default_factory=dict)


def pick_images(dataset: torch.utils.data.Dataset, count: int) -> torch.Tensor:
    """``count`` images (levels [N, C, H, W], float) spread evenly over a map-style ``dataset``
    whose items are images or (image, label) pairs (the first images of a split can all be one
    digit)."""
    count = max(1, min(int(count), len(dataset)))
    picks = torch.linspace(0, len(dataset) - 1, count).round().long().tolist()
    items = [dataset[i] for i in picks]
    images = [item[0] if isinstance(item, list | tuple) else item for item in items]
    return torch.stack([torch.as_tensor(image) for image in images]).float().cpu()


def is_text_model(net: torch.nn.Module) -> bool:
    try:
        check_text_model(net)
    except InspectError:
        return False
    return True


def applicable_views(net: torch.nn.Module) -> list[str]:
    """The views that make sense for ``net``, in ``VIEWS`` order."""
    if is_text_model(net):
        return ["text"]
    if not isinstance(net, (RasterImageModel, *FULLY_CONNECTED)):
        return []
    views = ["dependency", "surprise"]
    if isinstance(net, LAYERED):
        views.append("growth")
    if isinstance(net, MADE):
        views.append("masks")
    return [v for v in VIEWS if v in views]


def check_views(net: torch.nn.Module, views: Sequence[str]) -> list[str]:
    """``views`` if all apply to ``net`` (``InspectError`` naming the first that does not)."""
    usable = applicable_views(net)
    for view in views:
        if view not in VIEWS:
            raise InspectError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
        if view not in usable:
            raise InspectError(
                f"the {view} view does not apply to {type(net).__name__}; it can draw: "
                f"{', '.join(usable) or 'nothing'}"
            )
    return list(views)


def mixture_note(net: DensityModel) -> str:
    size = mixture_size(net)
    if size == 1:
        return ""
    part = "mask" if isinstance(net, MADE) else "ordering"
    return f" ({part} 0 of the {size}-component mixture)"


# ----------------------------------------------------------------------------------- views
def draw_dependency(
    net: DensityModel, images: torch.Tensor, targets: Sequence[tuple[int, int, int]], label: str
) -> Drawn:
    maps = dependency_maps(net, images, targets)
    panels = []
    for target, magnitude in zip(targets, maps, strict=True):
        after = after_target(net, target).all(dim=0).numpy()
        colour = f", colour {'RGB'[target[0]]}" if net.shape[0] == 3 else ""
        panels.append(
            plots.DependencyPanel(
                magnitude.sum(0).numpy(),
                after,
                target,
                f"target ({target[1]}, {target[2]}){colour}",
            )
        )
    title = f"{label}: what p(x_t | x_<t) depends on{mixture_note(net)}"
    figure = plots.dependency_figure(panels, title)
    numbers = {
        "targets": [list(t) for t in targets],
        "inputs_seen": [int((m > 0).sum()) for m in maps],
        "inputs_before": [int((~after_target(net, t)).sum()) for t in targets],
    }
    return Drawn("dependency", "dependency", figure, title, numbers)


def centre_panel(net: DensityModel, images: torch.Tensor, title: str) -> plots.DependencyPanel:
    """The dependency map of the centre target (for comparisons across models)."""
    target = default_targets(net.shape)[0]
    magnitude = dependency_maps(net, images, [target])[0]
    after = after_target(net, target).all(dim=0).numpy()
    return plots.DependencyPanel(magnitude.sum(0).numpy(), after, target, title)


def draw_growth(
    net: DensityModel, images: torch.Tensor, target: tuple[int, int, int], label: str
) -> Drawn:
    pixel = (target[1], target[2])
    entry = field_growth(net, images, pixel)
    names = layer_names(net)
    after = after_target(net, target).all(dim=0).numpy()
    title = f"{label}: receptive field of pixel {pixel}, layer by layer"
    figure = plots.field_growth_figure(entry.numpy(), names, pixel, after, title)
    sizes = [int(((entry >= 0) & (entry <= k)).sum()) for k in range(len(names))]
    return Drawn("growth", "growth", figure, title, {"layers": names, "field_sizes": sizes})


def draw_masks(net: MADE | None, label: str) -> list[Drawn]:
    example = lecture_made()
    conn = made_connectivity(example)
    title = "MADE with n = 3 inputs, hidden layers of 4 (as argen builds it)"
    drawn = [
        Drawn(
            "masks",
            "masks_lecture",
            plots.made_graph_figure(conn, title),
            title,
            {"order": conn.order.tolist(), "degrees": [d.tolist() for d in conn.degrees]},
        )
    ]
    if net is not None:
        trained = made_connectivity(net, 0)
        counts = trained.inputs_per_output.reshape(net.shape).sum(0).numpy()
        positions = ordering_rank(net).sum(0).numpy()
        title = f"{label}: inputs each output may depend on{mixture_note(net)}"
        figure = plots.made_reach_figure(counts, positions, title)
        numbers = {
            "mean_inputs_per_output": float(np.mean(counts)),
            "mean_inputs_before": float(np.mean(positions)),
        }
        drawn.append(Drawn("masks", "masks_reach", figure, title, numbers))
    return drawn


def draw_text(net: torch.nn.Module, vocab: CharVocab, text: str, label: str) -> Drawn:
    steps, total = char_probabilities(net, vocab, text)
    title = f"{label}: p(x_1) p(x_2 | x_1) ... of {text[:24]!r}{'...' if len(text) > 24 else ''}"
    figure = plots.char_strip_figure(steps, total, title)
    with torch.no_grad():
        model_total = float(
            net.log_prob(vocab.encode(text)[None].to(next(net.parameters()).device))[0]
        )
    numbers = {
        "text": text,
        "log_prob": total,
        "model_log_prob": model_total,
        "steps": [(s.char, s.prob) for s in steps],
    }
    return Drawn("text", "text", figure, title, numbers)


def char_table(steps: Sequence[CharStep], total: float, title: str) -> Table:
    """The factorization as a Rich table: each character, its conditional, the top alternatives."""
    table = Table(title=title)
    table.add_column("t", justify="right")
    table.add_column("x_t")
    table.add_column("p(x_t | x_<t)", justify="right")
    table.add_column("-log2 p", justify="right")
    table.add_column("top alternatives")
    for s in steps:
        top = "  ".join(f"{show_char(c)!s} {p:.2f}" for c, p in s.top)
        table.add_row(
            str(s.position + 1),
            show_char(s.char),
            f"{s.prob:.3f}",
            f"{-s.log_prob / np.log(2):.2f}",
            top,
        )
    table.caption = f"log p = {total:.3f} nats ({-total / np.log(2):.2f} bits)"
    return table


def draw_surprise(net: DensityModel, images: torch.Tensor, label: str) -> Drawn:
    surprise = pixel_surprise(net, images)
    with torch.no_grad():
        nll = (-net.log_prob(images)).double().cpu()
    title = f"{label}: per-pixel surprise -log p(x_d | x_<d){mixture_note(net)}"
    figure = plots.surprise_figure(images, surprise, net.num_levels, title)
    numbers = {
        "sum_of_maps": surprise.sum(dim=(1, 2, 3)).tolist(),
        "model_nll": nll.tolist(),
    }
    return Drawn("surprise", "surprise", figure, title, numbers)


def draw_views(
    net: torch.nn.Module,
    views: Sequence[str],
    label: str,
    images: torch.Tensor | None = None,
    targets: Sequence[tuple[int, int, int]] | None = None,
    vocab: CharVocab | None = None,
    text: str | None = None,
) -> list[Drawn]:
    """Compute and draw ``views`` of ``net``. Image views need ``images`` (levels [B, C, H, W]);
    the text view needs ``vocab`` and ``text``."""
    check_views(net, views)
    drawn: list[Drawn] = []
    for view in views:
        if view == "text":
            if vocab is None or text is None:
                raise InspectError("the text view needs the model's vocabulary and a string")
            drawn.append(draw_text(net, vocab, text, label))
            continue
        if view == "masks" and images is None:
            drawn += draw_masks(net, label)
            continue
        check_image_model(net)
        if images is None:
            raise InspectError(f"the {view} view needs images to evaluate the model on")
        chosen = list(targets or default_targets(net.shape))
        if view == "dependency":
            drawn.append(draw_dependency(net, images, chosen, label))
        elif view == "growth":
            drawn.append(draw_growth(net, images, chosen[0], label))
        elif view == "masks":
            drawn += draw_masks(net, label)
        elif view == "surprise":
            drawn.append(draw_surprise(net, images, label))
    return drawn
