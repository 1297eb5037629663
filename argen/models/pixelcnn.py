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

from argen.models import cached_sampling
from argen.models.base import DensityModel
from argen.models.masked_conv import MaskedConv2d
from argen.models.pixel_heads import make_head


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
    ``sampler`` picks what ``sample`` runs: ``"cached"`` (fast, Ramachandran et al. 2017) or
    ``"naive"`` (a full pass per sub-pixel); both give identical samples for the same seed.
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
        sampler: str = "cached",
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = cached_sampling.check_sampler(sampler)
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

    def sample(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` images [n, C, H, W] of float levels, drawn by ``self.sampler``."""
        return cached_sampling.sample(
            self, n, device, temperature, generator=generator, sampler=self.sampler
        )

    def sample_cached(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cached sampler: one position per layer per sub-pixel (see ``cached_sampling``)."""
        return cached_sampling.sample(self, n, device, temperature, generator=generator)

    def sample_naive(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Reference sampler: a full forward pass per sub-pixel, H*W*C passes in raster order."""
        return cached_sampling.sample(
            self, n, device, temperature, generator=generator, sampler="naive"
        )

    def complete(
        self,
        x: torch.Tensor,
        observed_mask: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Sample the unobserved rest of ``x`` given a raster-order prefix (see ``complete``)."""
        return cached_sampling.complete(
            self, x, observed_mask, generator, temperature, sampler=self.sampler
        )
