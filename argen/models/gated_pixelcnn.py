"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

Two stacks remove PixelCNN's blind spot:

* the vertical stack convolves with a (k//2+1) x k kernel that covers the rows above and the
  current row, so its output at row i sees all input rows <= i within a widening cone;
* the horizontal stack convolves with a 1 x (k//2+1) kernel over the current row up to the
  current pixel (channel-masked: mask A in the first layer, B afterwards) and receives the
  vertical stack's pre-activations shifted down by one row, i.e. only information from rows < i.

Each stack applies the gated unit tanh(a) * sigmoid(b); the horizontal stack adds a 1x1
convolution of its gated output to a residual connection (from the second layer on). With
``num_classes`` set, a learned per-layer label embedding is added as a bias to both stacks' gate
pre-activations (the paper's class-conditional model). The vertical stack only ever reaches the
horizontal one through the down shift, so it needs no colour mask.

Defaults: 20 layers with 5x5 filters as in the paper's ImageNet model, but 128 rather than 384
feature maps so that MNIST/CIFAR-sized runs stay affordable; ``hidden_channels=384`` restores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities
from argen.models.cached_sampling import RasterImageModel, check_sampler
from argen.models.masked_conv import MaskedConv2d, cpu_channels_last, set_conv_impl
from argen.models.pixel_heads import make_head
from argen.models.pixel_ops import (
    apply_relu_stack,
    linear,
    masked_weight,
    pixel_params,
    pointwise,
    relu_output_stack,
)


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Move a feature map one row down (zeros enter at the top), so row i holds row i-1."""
    return F.pad(x, (0, 0, 1, -1))  # one copy: pad the top, crop the bottom


def gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(first half) * sigmoid(second half) along channels."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer acting on the (vertical, horizontal) pair of feature maps."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        num_groups: int,
        first: bool,
        num_classes: int | None,
    ) -> None:
        super().__init__()
        half = kernel_size // 2
        self.residual = not first
        self.v_pad = (half, half, half, 0)  # left, right, top, bottom
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (half + 1, kernel_size))
        self.h_conv = MaskedConv2d(
            in_channels,
            2 * channels,
            (1, half + 1),
            "A" if first else "B",
            num_groups,
            centre=(0, half),
            out_chunks=2,
        )
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = MaskedConv2d(channels, channels, 1, "B", num_groups)
        self.label_bias = None
        if num_classes is not None:
            self.label_bias = nn.Embedding(num_classes, 4 * channels)
            nn.init.normal_(self.label_bias.weight, std=0.1)

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.v_conv(F.pad(v, self.v_pad))
        if self.h_conv.impl != "dense":  # the format the masked convolutions run in on a CPU
            v_pre = cpu_channels_last(v_pre, v)
        h_pre = self.h_conv(h) + self.v_to_h(shift_down(v_pre))
        if self.label_bias is not None:
            v_bias, h_bias = self.label_bias(y)[:, :, None, None].chunk(2, dim=1)
            v_pre = v_pre + v_bias
            h_pre = h_pre + h_bias
        h_new = self.h_out(gate(h_pre))
        if self.residual:
            h_new = h + h_new
        return gate(v_pre), h_new


class GatedPixelCNN(RasterImageModel):
    """Blind-spot-free gated PixelCNN, optionally class-conditional.

    ``forward(x, y=None)`` returns head parameters [B, C, H, W, P]; ``log_prob(x, y)`` and
    ``sample(n, y=...)`` take integer labels [B] when ``num_classes`` is set. ``sampler`` picks
    what ``sample`` and ``complete`` run: ``"cached"`` (fast, Ramachandran et al. 2017;
    ``GatedPixelCNNStepper``) or ``"naive"`` (a full pass per sub-pixel); both give identical
    samples for the same seed (``argen.models.cached_sampling``). ``conv_impl``: how the masked
    convolutions compute (``MaskedConv2d``; ``"dense"`` is the reference).
    """

    capabilities = Capabilities(labels=True)  # K levels, any channels, labels

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_channels: int = 128,
        num_layers: int = 20,
        kernel_size: int = 5,
        head: str = "auto",
        num_mixtures: int = 10,
        num_classes: int | None = None,
        output_channels: int | None = None,
        sampler: str = "cached",
        conv_impl: str = "auto",
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = check_sampler(sampler)
        channels = self.shape[0]
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        if hidden_channels < channels:
            raise ValueError(f"hidden_channels must be at least {channels}, got {hidden_channels}")
        self.num_classes = num_classes
        output_channels = output_channels or hidden_channels
        self.head = make_head(head, channels, num_levels, num_mixtures)
        self.layers = nn.ModuleList(
            GatedLayer(
                channels if i == 0 else hidden_channels,
                hidden_channels,
                kernel_size,
                channels,
                first=i == 0,
                num_classes=num_classes,
            )
            for i in range(num_layers)
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(hidden_channels, output_channels, 1, "B", channels),
            nn.ReLU(),
            MaskedConv2d(output_channels, self.head.out_channels, 1, "B", channels),
        )
        set_conv_impl(self, conv_impl)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Levels [B, C, H, W] (and labels [B]) -> head parameters [B, C, H, W, P]."""
        y = self._check_labels(y, x.shape[0])
        v = h = self.normalize(x)
        for layer in self.layers:
            v, h = layer(v, h, y)
        return self.head.params(self.output(h))

    def start_cache(
        self, x: torch.Tensor, y: torch.Tensor | None, start: int
    ) -> GatedPixelCNNStepper:
        """Cached sampler (see ``GatedPixelCNNStepper``)."""
        return GatedPixelCNNStepper(self, x, y, start // (x.shape[1] * x.shape[3]))


class GatedPixelCNNStepper:
    """Caches of one Gated PixelCNN sampling call.

    The vertical stack at row ``i`` sees all of row ``i`` and reaches the horizontal stack only
    shifted one row down, so it is computed one whole row at a time once the row is complete
    (keeping the ``k//2`` rows its kernel needs); the horizontal stack is computed at one position
    per layer from a cache of the current row (``argen.models.pixel_ops``). Per layer ``l``:
    ``vrows[l]``, the last ``k//2`` rows of the vertical stack's input (padded, channel-first for
    ``conv2d``); ``hrow[l]``, the horizontal stack's input on the current row (channel-last,
    ``k//2`` zero columns on the left); ``hbias[l]`` [W, B, 2c], everything added to the
    horizontal pre-activation that does not depend on the current row (h_conv bias, the vertical
    stack's contribution from the row above, the label bias). Memory: k//2 + 1 rows per layer.
    """

    def __init__(
        self, model: GatedPixelCNN, x: torch.Tensor, y: torch.Tensor | None, row: int
    ) -> None:
        self.model = model
        self.layers = list(model.layers)
        self.half = self.layers[0].h_conv.centre[1]
        self.h_weights, self.out_weights, self.label_biases = [], [], []
        for layer in self.layers:
            weight = masked_weight(layer.h_conv)[:, :, 0, :]  # [2c, in, half+1]
            self.h_weights.append(weight.permute(2, 1, 0).reshape(-1, weight.shape[0]).contiguous())
            self.out_weights.append(pointwise(layer.h_out))
            if layer.label_bias is None:
                self.label_biases.append((None, None))
            else:
                v_bias, h_bias = layer.label_bias(y).chunk(2, dim=1)  # [B, 2c] each
                self.label_biases.append((v_bias[:, :, None, None], h_bias))
        self.output = relu_output_stack(model.output)
        self.x = x
        # Prefill: a full pass over rows 0..row records the maps that rows before ``row`` leave
        # behind (outputs at row r never depend on rows below r).
        v = h = model.normalize(x[:, :, : row + 1])
        self.vrows, self.hrow, self.hbias = [], [], []
        for index, layer in enumerate(self.layers):
            padded = F.pad(v, layer.v_pad)  # row r sits at padded row r + half
            self.vrows.append(padded[:, :, row : row + self.half])
            self.hrow.append(self._row_cache(h[:, :, row]))
            v_pre = layer.v_conv(padded)
            above = v_pre[:, :, row - 1 : row] if row > 0 else torch.zeros_like(v_pre[:, :, :1])
            self.hbias.append(self._h_bias(index, above))
            v, h = layer(v, h, y)

    def _row_cache(self, row: torch.Tensor) -> torch.Tensor:
        """[B, C, W] -> [B, half + W, C], zeros on the left (the h_conv padding)."""
        return F.pad(row, (self.half, 0)).permute(0, 2, 1).contiguous()

    def _h_bias(self, index: int, v_pre_above: torch.Tensor) -> torch.Tensor:
        """[B, 2c, 1, W] vertical pre-activation of the row above -> [W, B, 2c] additive term."""
        layer = self.layers[index]
        bias = layer.v_to_h(v_pre_above)[:, :, 0]  # [B, 2c, W]
        if layer.h_conv.bias is not None:
            bias = bias + layer.h_conv.bias[None, :, None]
        label = self.label_biases[index][1]
        if label is not None:
            bias = bias + label[:, :, None]
        return bias.permute(2, 0, 1).contiguous()

    def set_level(self, i: int, j: int, k: int, level: torch.Tensor) -> None:
        self.hrow[0][:, j + self.half, k] = self.model.normalize(level)

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] parameters of sub-pixel (k, i, j), writing the horizontal stack into the
        caches."""
        h = None
        for index, layer in enumerate(self.layers):
            cache = self.hrow[index]
            window = cache[:, j : j + self.half + 1].reshape(cache.shape[0], -1)
            pre = torch.addmm(self.hbias[index][j], window, self.h_weights[index])
            h = linear(gate(pre), *self.out_weights[index])
            if layer.residual:
                h = cache[:, j + self.half] + h
            if index + 1 < len(self.layers):
                self.hrow[index + 1][:, j + self.half] = h
        return pixel_params(self.model.head, apply_relu_stack(self.output, h))[:, k]

    def row_done(self, i: int) -> None:
        """Row ``i`` is complete: run the vertical stack on it and reset the row caches."""
        if i + 1 >= self.x.shape[2]:
            return
        v = self.hrow[0][:, self.half :].permute(0, 2, 1)[:, :, None]  # normalized image row i
        for index, layer in enumerate(self.layers):
            rows = torch.cat([self.vrows[index], F.pad(v, layer.v_pad[:2])], dim=2)
            self.vrows[index] = rows[:, :, 1:]
            v_pre = layer.v_conv(rows)  # [B, 2c, 1, W]
            self.hbias[index] = self._h_bias(index, v_pre)
            v_bias = self.label_biases[index][0]
            v = gate(v_pre if v_bias is None else v_pre + v_bias)
        next_row = self.model.normalize(self.x[:, :, i + 1])
        self.hrow = [self._row_cache(next_row)] + [torch.zeros_like(c) for c in self.hrow[1:]]
