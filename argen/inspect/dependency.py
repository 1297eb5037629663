"""Dependency maps: which inputs a conditional actually depends on, from exact gradients.

For a target dimension t, ``dependency_map`` is ``mean_b |d log p(x_t | x_before_t) / d input|``
over a batch of images, one number per input dimension (summed over the one-hot axis for models
that embed levels). It is exactly zero wherever the network has no path from an input to the
target's conditional: after the target in the model's ordering (the autoregressive property) and,
for convolutional models, outside the receptive field (PixelCNN's blind spot above-right of the
target, the Row LSTM's triangle). The computation runs in float64, so that small but real
dependencies far from the target do not underflow to zero.

``field_growth`` follows the receptive field of a target pixel layer by layer through the
convolutional (and recurrent) models: for every input pixel, the first layer whose features at
the target depend on it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from argen.inspect.conditionals import (
    InspectError,
    check_image_model,
    dimension_log_probs,
    labels_for,
    model_input,
    ordering_rank,
)
from argen.models.base import DensityModel
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelrnn import DiagonalBiLSTM, RowLSTM
from argen.models.pixelsnail import PixelSNAIL

Target = tuple[int, int, int]  # (colour, row, column)
LAYERED = (PixelCNN, GatedPixelCNN, RowLSTM, DiagonalBiLSTM, PixelSNAIL)


def precise_copy(model: DensityModel) -> DensityModel:
    """A float64 copy of ``model`` in eval mode (the original is left untouched)."""
    return copy.deepcopy(model).double().eval()


def default_targets(shape: Sequence[int]) -> list[Target]:
    """Three targets spread over the image, first colour: the centre, upper right, lower left."""
    _, h, w = shape
    return [(0, h // 2, w // 2), (0, h // 4, (3 * w) // 4), (0, (3 * h) // 4, w // 4)]


def check_target(shape: Sequence[int], target: Target) -> Target:
    """``target`` as ints if it lies inside ``shape`` [C, H, W]; ``InspectError`` otherwise."""
    c, h, w = shape
    k, i, j = (int(v) for v in target)
    if not (0 <= k < c and 0 <= i < h and 0 <= j < w):
        raise InspectError(
            f"target (colour {k}, row {i}, column {j}) lies outside the {c}x{h}x{w} image; "
            f"give rows 0..{h - 1}, columns 0..{w - 1}, colours 0..{c - 1}"
        )
    return k, i, j


def after_target(model: DensityModel, target: Target) -> torch.Tensor:
    """Bool [C, H, W]: the dimensions not before ``target`` in the model's ordering (itself too);
    the autoregressive property says the target's conditional cannot depend on any of them."""
    rank = ordering_rank(model)
    return rank >= rank[target]


def dependency_maps(
    model: DensityModel,
    x: torch.Tensor,
    targets: Sequence[Target],
    y: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """One dependency map per target, float64 [C, H, W] each (see the module docstring).

    ``x``: levels [B, C, H, W], the images the gradients are taken at (averaged over B).
    """
    check_image_model(model)
    targets = [check_target(model.shape, t) for t in targets]
    precise = precise_copy(model)
    x = x.detach().to(next(precise.parameters()).device)
    maps = []
    for target in targets:
        inputs = model_input(precise, x).requires_grad_(True)
        log_probs = dimension_log_probs(precise, x, inputs, y)
        (grad,) = torch.autograd.grad(log_probs[(slice(None), *target)].sum(), inputs)
        magnitude = grad.abs()
        if magnitude.dim() == 5:  # one-hot levels: any level's entry counts
            magnitude = magnitude.sum(-1)
        maps.append(magnitude.mean(0).cpu())
    return maps


# ------------------------------------------------------------------------ receptive field growth
def layer_names(model: DensityModel) -> list[str]:
    """Names of the stages ``layer_features`` returns, bottom to top."""
    if isinstance(model, GatedPixelCNN):
        return [f"gated {i + 1}" for i in range(len(model.layers))]
    first = f"{model.input_conv.kernel_size[0]}x{model.input_conv.kernel_size[1]} mask A"
    if isinstance(model, PixelCNN):
        return [first, *(f"block {i + 1}" for i in range(len(model.blocks)))]
    if isinstance(model, PixelSNAIL):
        return [first, *(f"block {i + 1}" for i in range(len(model.blocks)))]
    return [first, *(f"LSTM {i + 1}" for i in range(len(model.layers)))]


def layer_features(
    model: DensityModel, x: torch.Tensor, y: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """The feature maps [B, channels, H, W] after every stage of a layered model, bottom to top
    (the 1x1 output layers that follow do not change the receptive field)."""
    if not isinstance(model, LAYERED):
        raise InspectError(
            f"receptive-field growth is drawn for the convolutional and recurrent models "
            f"(pixelcnn, gated_pixelcnn, row_lstm, diagonal_bilstm, pixelsnail), not "
            f"{type(model).__name__}"
        )
    pixels = model.normalize(x)
    y = labels_for(model, x.shape[0], y).get("y")
    features: list[torch.Tensor] = []
    if isinstance(model, GatedPixelCNN):
        v = h = pixels
        for layer in model.layers:
            v, h = layer(v, h, y)
            features.append(h)
        return features
    h = model.input_conv(pixels)
    features.append(h)
    if isinstance(model, PixelCNN):
        for block in model.blocks:
            h = block(h)
            features.append(h)
    elif isinstance(model, PixelSNAIL):
        for block in model.blocks:
            h = block(h, pixels, y)
            features.append(h)
    else:
        for layer in model.layers:
            h = layer(h, pixels)
            features.append(h)
    return features


def field_growth(
    model: DensityModel, x: torch.Tensor, pixel: tuple[int, int], y: torch.Tensor | None = None
) -> torch.Tensor:
    """LongTensor [H, W]: for each input pixel, the first stage (0-based, as ``layer_names``)
    whose features at ``pixel`` depend on it; -1 where no stage does."""
    _, h, w = model.shape
    i, j = check_target(model.shape, (0, *pixel))[1:]
    precise = precise_copy(model)
    x = x.detach().to(next(precise.parameters()).device, torch.float64)
    inputs = x.clone().requires_grad_(True)
    stages = layer_features(precise, inputs, y)
    entry = torch.full((h, w), -1, dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    for index, features in enumerate(stages):
        at = features[:, :, i, j]
        # random weights: no dependency can cancel out in the sum over channels
        weights = torch.randn(at.shape, generator=generator, dtype=at.dtype).to(at.device)
        (grad,) = torch.autograd.grad((at * weights).sum(), inputs, retain_graph=True)
        seen = grad.abs().sum(dim=(0, 1)).cpu() > 0
        entry[seen & (entry < 0)] = index
    return entry
