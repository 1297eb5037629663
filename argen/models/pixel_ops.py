"""Layers evaluated at one pixel: the building blocks of the cached raster samplers.

After Ramachandran et al. (2017), "Fast Generation for Convolutional Autoregressive Models": a
naive raster sampler reruns the whole network for every sub-pixel although a new pixel changes
only a few activations. In a raster-order network the activation of every layer at pixel
``(i, j)`` depends only on image pixels at or before ``(i, j)``, so once a pixel is final, so are
all of its activations, and a layer's output at ``(i, j)`` needs its input only at positions that
are already final or at ``(i, j)`` itself. A cached sampler therefore keeps each masked kxk
convolution's (zero-padded, channel-last) input map and computes one masked-kernel dot product per
layer at ``(i, j)``: ``ConvAt`` below. 1x1 convolutions become one matrix product (``pointwise``).

The helpers use the same weights as the layers (the masks multiplied in) and plain tensor ops, so
they run on any device; a model's own stepper (its file's ``start_cache``) combines them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.masked_conv import MaskedConv2d
from argen.models.pixel_heads import PixelHead

Pointwise = tuple[torch.Tensor, torch.Tensor | None]  # (weight [in, out], bias [out] or None)


def masked_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The weight a convolution applies: times its mask for a ``MaskedConv2d``."""
    return conv.weight * conv.mask if isinstance(conv, MaskedConv2d) else conv.weight


def pointwise(conv: nn.Conv2d) -> Pointwise:
    """A 1x1 convolution as (transposed weight [in, out], bias) for ``linear``."""
    weight = masked_weight(conv)
    return weight.reshape(weight.shape[0], -1).t().contiguous(), conv.bias


def linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight_t + bias`` for [B, in] features (one ``addmm`` with a bias)."""
    return x @ weight_t if bias is None else torch.addmm(bias, x, weight_t)


class ConvAt:
    """A masked kxk convolution evaluated at one pixel of a channel-last zero-padded cache.

    Only kernel rows up to the centre row are kept: the mask cuts every row below it.
    """

    def __init__(self, conv: MaskedConv2d) -> None:
        rows = conv.centre[0] + 1
        weight = masked_weight(conv)[:, :, :rows, :]  # [out, in, rows, kw]
        # [rows * kw * in, out], matching a [rows, cols, in] window of the cache
        self.weight_t = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous()
        self.bias = conv.bias
        self.rows, self.cols = rows, weight.shape[3]
        self.pad = conv.pad  # F.pad order: left, right, top, bottom
        self.left, self.top = self.pad[0], self.pad[2]

    def cache(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> zero-padded channel-last cache [B, H + pad, W + pad, C]."""
        return F.pad(features, self.pad).permute(0, 2, 3, 1).contiguous()

    def write(self, cache: torch.Tensor, i: int, j: int, value: torch.Tensor) -> None:
        """Store the input [B, C] at pixel (i, j)."""
        cache[:, i + self.top, j + self.left] = value

    def at(self, cache: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Output [B, out] at pixel (i, j); padded rows i..i+cr hold input rows i-cr..i."""
        window = cache[:, i : i + self.rows, j : j + self.cols].reshape(cache.shape[0], -1)
        return linear(window, self.weight_t, self.bias)


def relu_output_stack(output: nn.Sequential) -> list[Pointwise]:
    """PixelCNN's (ReLU, 1x1, ReLU, 1x1) output layers as pointwise maps."""
    convs = [m for m in output if isinstance(m, nn.Conv2d)]
    if len(convs) != 2 or len(output) != 4:
        raise TypeError("cached sampling expects an output stack (ReLU, 1x1, ReLU, 1x1)")
    return [pointwise(conv) for conv in convs]


def apply_relu_stack(stack: Sequence[Pointwise], h: torch.Tensor) -> torch.Tensor:
    """``relu`` then each pointwise map in turn, on [B, C] features."""
    for weight_t, bias in stack:
        h = linear(torch.relu(h), weight_t, bias)
    return h


def pixel_params(head: PixelHead, features: torch.Tensor) -> torch.Tensor:
    """Output-layer features [B, C*P] at one pixel -> head parameters [B, C, P]."""
    return head.params(features[:, :, None, None])[:, :, 0, 0]
