"""Per-dimension conditionals of argen's image density models, behind one interface.

Every image model factorizes ``log p(x) = sum_d log p(x_d | x_before_d)``, but exposes the terms
differently: raster models (PixelCNN, Gated PixelCNN, the PixelRNNs, PixelSNAIL, the image
Transformer) return head parameters ``[B, C, H, W, P]``; FVSBN, NADE and MADE return one logit per
dimension. ``dimension_log_probs`` returns the terms themselves, ``[B, C, H, W]``, as a function of
a differentiable input (``model_input``), so that their gradients say which inputs each
conditional depends on. The observed level inside the head is always detached: the gradient of
``log p(x_d | ...)`` must come from the conditioning variables only, never from ``x_d`` itself.

Mixtures (MADE with several evaluation masks, order-agnostic NADE with several evaluation
orderings) have no such factorization; their terms are those of the first component (mask 0,
ordering 0), which ``mixture_size`` reports so that pictures can say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from argen.models.base import DensityModel
from argen.models.cached_sampling import RasterImageModel
from argen.models.fvsbn import FVSBN
from argen.models.image_transformer import ImageTransformer
from argen.models.made import MADE
from argen.models.nade import NADE
from argen.models.ordered_sampling import OrderedModel
from argen.models.ordering import rank_of

FULLY_CONNECTED = (FVSBN, NADE, MADE)


class InspectError(ValueError):
    """A model or an input the inspection cannot handle, with what to do instead."""


def check_image_model(model: torch.nn.Module) -> DensityModel:
    """``model`` if it is an image density model whose conditionals argen can expose."""
    if isinstance(model, (RasterImageModel, *FULLY_CONNECTED)):
        return model
    raise InspectError(
        f"{type(model).__name__} has no per-pixel conditionals to inspect; use an image density "
        "model (fvsbn, nade, made, pixelcnn, gated_pixelcnn, row_lstm, diagonal_bilstm, "
        "pixelsnail, image_transformer)"
    )


def mixture_size(model: DensityModel) -> int:
    """How many components ``log_prob`` mixes (1 for every model with a single ordering)."""
    return model.mixture_size if isinstance(model, OrderedModel) else 1


@contextmanager
def first_component(model: DensityModel) -> Iterator[None]:
    """Within the block, a MADE uses mask 0 (restored afterwards); other models are unchanged."""
    if not isinstance(model, MADE):
        yield
        return
    current = model.mask_index
    model.use_mask(0)
    try:
        yield
    finally:
        model.use_mask(current)


def ordering_rank(model: DensityModel) -> torch.Tensor:
    """Position of every dimension in the model's (first) ordering, LongTensor [C, H, W].

    Raster models: pixel by pixel in raster order, colours R, G, B within a pixel.
    """
    c, h, w = model.shape
    if isinstance(model, RasterImageModel):
        index = torch.arange(c * h * w).reshape(h, w, c)
        return index.permute(2, 0, 1).contiguous()
    return rank_of(model.ordering_at(0).cpu()).reshape(c, h, w)


def labels_for(model: DensityModel, batch: int, y: torch.Tensor | None) -> dict:
    """``{"y": labels}`` for a class-conditional model (label 0 unless given), else ``{}``."""
    if getattr(model, "num_classes", None) is None:
        return {}
    device = next(model.parameters()).device
    if y is None:
        y = torch.zeros(batch, dtype=torch.long, device=device)
    return {"y": y.to(device)}


def model_input(model: DensityModel, x: torch.Tensor) -> torch.Tensor:
    """The differentiable input whose gradients the dependency maps show: the levels [B, C, H, W]
    as floats, or for the image Transformer (which embeds tokens) one-hot levels [B, C, H, W, K]."""
    dtype = next(model.parameters()).dtype
    if isinstance(model, ImageTransformer):
        return F.one_hot(x.long(), model.num_levels).to(dtype)
    return x.to(dtype)


def dimension_log_probs(
    model: DensityModel,
    x: torch.Tensor,
    inputs: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log p(x_d | x_before_d)`` for every dimension d, [B, C, H, W], in nats.

    ``x`` holds the levels; ``inputs`` (default ``model_input(model, x)``) is what the network
    reads, so a caller may pass a tensor that requires grad. Their sum over dimensions is
    ``model.log_prob(x)`` (for mixtures: the first component's).
    """
    check_image_model(model)
    if inputs is None:
        inputs = model_input(model, x)
    target = x.detach().to(next(model.parameters()).dtype)
    if isinstance(model, RasterImageModel):
        kwargs = labels_for(model, x.shape[0], y)
        if isinstance(model, ImageTransformer):
            params = model.forward_onehot(inputs)
        else:
            params = model(inputs, **kwargs)
        return model.head.log_prob_elements(target, params)
    with first_component(model):
        logits = model(inputs)
    flat = target.reshape(target.shape[0], -1)
    log_probs = -F.binary_cross_entropy_with_logits(logits, flat, reduction="none")
    return log_probs.reshape(x.shape)
