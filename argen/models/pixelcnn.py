"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks").

Architecture (residual blocks as in Figure 5 of the paper):

* a 7x7 mask-A convolution from the image to ``hidden_channels`` (the paper's 2h) feature maps;
* ``num_layers`` residual blocks: ReLU, 1x1 conv 2h->h, ReLU, 3x3 mask-B conv h->h, ReLU,
  1x1 conv h->2h, added to the block input (all convolutions mask B, so colour groups stay causal);
* ReLU, 1x1 mask-B conv, ReLU, 1x1 mask-B conv to the head's parameters.

Defaults: 12 residual blocks, so 1 + 12 + 2 = 15 layers (the paper's "fifteen layers"), with
2h = 128 feature maps (h = 64 in the blocks; the paper used h = 128 on CIFAR-10, ``hidden_channels
=256`` reproduces it). The stacked 3x3 masks have the well-known blind spot: a pixel never sees
part of the region above and to its right (see Gated PixelCNN for the fix).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities
from argen.models.cached_sampling import RasterImageModel, check_sampler
from argen.models.masked_conv import MaskedConv2d, set_conv_impl
from argen.models.pixel_heads import make_head
from argen.models.pixel_ops import (
    ConvAt,
    apply_relu_stack,
    linear,
    pixel_params,
    pointwise,
    relu_output_stack,
)


class ResidualBlock(nn.Module):
    """PixelCNN residual block: 1x1 down to h, 3x3 mask-B, 1x1 up to 2h, with ReLUs."""

    def __init__(self, channels: int, kernel_size: int, num_groups: int) -> None:
        super().__init__()
        inner = channels // 2
        self.net = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(channels, inner, 1, "B", num_groups),
            nn.ReLU(),
            MaskedConv2d(inner, inner, kernel_size, "B", num_groups),
            nn.ReLU(),
            MaskedConv2d(inner, channels, 1, "B", num_groups),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class PixelCNN(RasterImageModel):
    """Masked-convolution density model over [C, H, W] images with ``num_levels`` levels.

    ``forward(x)`` returns per-sub-pixel parameters [B, C, H, W, P] for the chosen head
    (``"auto"``: bernoulli for binary data, categorical otherwise; or ``"logistic_mixture"``).
    ``sampler`` picks what ``sample`` and ``complete`` run: ``"cached"`` (fast, Ramachandran et
    al. 2017; ``PixelCNNStepper``) or ``"naive"`` (a full pass per sub-pixel); both give identical
    samples for the same seed (``argen.models.cached_sampling``). ``conv_impl`` picks how the
    masked convolutions compute (``MaskedConv2d``: ``"auto"``, or ``"dense"``, the reference).
    """

    capabilities = Capabilities()  # K levels, any channels

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_channels: int = 128,
        num_layers: int = 12,
        head: str = "auto",
        num_mixtures: int = 10,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        output_channels: int | None = None,
        sampler: str = "cached",
        conv_impl: str = "auto",
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = check_sampler(sampler)
        channels = self.shape[0]
        if hidden_channels < 2 * channels:
            raise ValueError(
                f"hidden_channels must be at least {2 * channels} (two per colour), "
                f"got {hidden_channels}"
            )
        output_channels = output_channels or hidden_channels
        self.head = make_head(head, channels, num_levels, num_mixtures)
        self.input_conv = MaskedConv2d(channels, hidden_channels, first_kernel_size, "A", channels)
        self.blocks = nn.Sequential(
            *[ResidualBlock(hidden_channels, kernel_size, channels) for _ in range(num_layers)]
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(hidden_channels, output_channels, 1, "B", channels),
            nn.ReLU(),
            MaskedConv2d(output_channels, self.head.out_channels, 1, "B", channels),
        )
        set_conv_impl(self, conv_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Levels [B, C, H, W] -> head parameters [B, C, H, W, P] of every conditional."""
        features = self.output(self.blocks(self.input_conv(self.normalize(x))))
        return self.head.params(features)

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example NLL, the training hot path: only ``x``'s form is checked here, its values
        once per batch by the caller (``DensityModel.validate_form``)."""
        self.validate_form(x)
        return -self.head.log_prob(x, self(x))

    def start_cache(self, x: torch.Tensor, y: torch.Tensor | None, start: int) -> PixelCNNStepper:
        """Cached sampler (see ``PixelCNNStepper``); ``y`` must be ``None``."""
        return PixelCNNStepper(self, x, start // (x.shape[1] * x.shape[3]))


class PixelCNNStepper:
    """Caches of one PixelCNN sampling call: every layer computed at a single pixel.

    Caches the normalized image (the input of the first kxk convolution) and each residual block's
    input to its kxk convolution, padded and channel-last (about a forward pass' activations).
    ``argen.models.pixel_ops`` explains why one position per layer suffices.
    """

    def __init__(self, model: PixelCNN, x: torch.Tensor, row: int) -> None:
        self.model = model
        self.first = ConvAt(model.input_conv)
        self.blocks = []
        for block in model.blocks:
            net = block.net
            if len(net) != 6 or not isinstance(net[3], MaskedConv2d):
                raise TypeError("cached sampling expects PixelCNN residual blocks")
            self.blocks.append((pointwise(net[1]), ConvAt(net[3]), pointwise(net[5])))
        self.output = relu_output_stack(model.output)
        # Prefill: a full pass over rows 0..row records every cached map, exact at the pixels
        # before the start (outputs at row r never depend on rows below r).
        height = x.shape[2]
        image = model.normalize(x)
        self.image = self.first.cache(image)
        self.inner = []
        h = model.input_conv(image[:, :, : row + 1])
        for block, (_, window, _) in zip(model.blocks, self.blocks, strict=True):
            inner = block.net[:3](h)
            self.inner.append(window.cache(F.pad(inner, (0, 0, 0, height - row - 1))))
            h = h + block.net[3:](inner)

    def set_level(self, i: int, j: int, k: int, level: torch.Tensor) -> None:
        value = self.model.normalize(level)
        self.image[:, i + self.first.top, j + self.first.left, k] = value

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] parameters of sub-pixel (k, i, j), writing its activations into the caches."""
        h = self.first.at(self.image, i, j)
        for (down, window, up), cache in zip(self.blocks, self.inner, strict=True):
            inner = torch.relu(linear(torch.relu(h), *down))
            window.write(cache, i, j, inner)
            h = h + linear(torch.relu(window.at(cache, i, j)), *up)
        return pixel_params(self.model.head, apply_relu_stack(self.output, h))[:, k]

    def row_done(self, i: int) -> None:
        """Nothing to do: PixelCNN has no row-level state."""
