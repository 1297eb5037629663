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
from torch import nn

from argen.models.base import DensityModel
from argen.models.masked_conv import MaskedConv2d
from argen.models.pixel_heads import make_head, sample_raster_naive


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


class PixelCNN(DensityModel):
    """Masked-convolution density model over [C, H, W] images with ``num_levels`` levels.

    ``forward(x)`` returns per-sub-pixel parameters [B, C, H, W, P] for the chosen head
    (``"auto"``: bernoulli for binary data, categorical otherwise; or ``"logistic_mixture"``).
    """

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
    ) -> None:
        super().__init__(shape, num_levels)
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

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Levels 0..K-1 -> [-1, 1]."""
        return x / (self.num_levels - 1) * 2.0 - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Levels [B, C, H, W] -> head parameters [B, C, H, W, P] of every conditional."""
        features = self.output(self.blocks(self.input_conv(self.normalize(x))))
        return self.head.params(features)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats, [B]."""
        self.validate_levels(x)
        return self.head.log_prob(x, self(x))

    @torch.no_grad()
    def sample(
        self, n: int, device: torch.device | str | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """``n`` images [n, C, H, W] of float levels (naive sampler, see ``sample_naive``)."""
        return self.sample_naive(n, device=device, temperature=temperature)

    @torch.no_grad()
    def sample_naive(
        self, n: int, device: torch.device | str | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Reference sampler: a full forward pass per sub-pixel, H*W*C passes in raster order."""
        weight = self.input_conv.weight
        return sample_raster_naive(
            self, self.head, n, self.shape, device or weight.device, weight.dtype, temperature
        )
