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

from argen.models import cached_sampling
from argen.models.base import DensityModel
from argen.models.masked_conv import MaskedConv2d
from argen.models.pixel_heads import make_head


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Move a feature map one row down (zeros enter at the top), so row i holds row i-1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


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
        self._v_pad = (half, half, half, 0)  # left, right, top, bottom
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
        v_pre = self.v_conv(F.pad(v, self._v_pad))
        h_pre = self.h_conv(h) + self.v_to_h(shift_down(v_pre))
        if self.label_bias is not None:
            v_bias, h_bias = self.label_bias(y)[:, :, None, None].chunk(2, dim=1)
            v_pre = v_pre + v_bias
            h_pre = h_pre + h_bias
        h_new = self.h_out(gate(h_pre))
        if self.residual:
            h_new = h + h_new
        return gate(v_pre), h_new


class GatedPixelCNN(DensityModel):
    """Blind-spot-free gated PixelCNN, optionally class-conditional.

    ``forward(x, y=None)`` returns head parameters [B, C, H, W, P]; ``log_prob(x, y)`` and
    ``sample(n, y=...)`` take integer labels [B] when ``num_classes`` is set. ``sampler`` picks
    what ``sample`` runs: ``"cached"`` (fast, Ramachandran et al. 2017) or ``"naive"`` (a full
    pass per sub-pixel); both give identical samples for the same seed.
    """

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
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = cached_sampling.check_sampler(sampler)
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

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Levels 0..K-1 -> [-1, 1]."""
        return x / (self.num_levels - 1) * 2.0 - 1.0

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.num_classes is None:
            if y is not None:
                raise ValueError(
                    "this GatedPixelCNN is unconditional (num_classes=None); pass y=None"
                )
            return None
        if y is None:
            raise ValueError(
                f"this GatedPixelCNN is class-conditional: pass labels y of shape [{batch}]"
            )
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.long, torch.int, torch.int16):
            raise ValueError("labels y must be an integer tensor")
        if y.shape != (batch,):
            raise ValueError(f"labels y must have shape [{batch}], got {list(y.shape)}")
        if y.numel() and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes - 1}]")
        return y.long()

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Levels [B, C, H, W] (and labels [B]) -> head parameters [B, C, H, W, P]."""
        y = self._check_labels(y, x.shape[0])
        v = h = self.normalize(x)
        for layer in self.layers:
            v, h = layer(v, h, y)
        return self.head.params(self.output(h))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log-likelihood log p(x) (or log p(x | y)) in nats, [B]."""
        self.validate_levels(x)
        return self.head.log_prob(x, self(x, y))

    def sample(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        y: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` images [n, C, H, W] of float levels, drawn by ``self.sampler``.

        For a class-conditional model ``y`` is a label, a tensor of ``n`` labels, or ``None`` to
        draw labels uniformly at random.
        """
        return cached_sampling.sample(
            self, n, device, temperature, y, generator=generator, sampler=self.sampler
        )

    def sample_cached(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        y: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cached sampler: one position per layer per sub-pixel (see ``cached_sampling``)."""
        return cached_sampling.sample(self, n, device, temperature, y, generator=generator)

    def sample_naive(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        y: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Reference sampler: a full forward pass per sub-pixel, H*W*C passes in raster order."""
        return cached_sampling.sample(
            self, n, device, temperature, y, generator=generator, sampler="naive"
        )

    def complete(
        self,
        x: torch.Tensor,
        observed_mask: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        y: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Sample the unobserved rest of ``x`` given a raster-order prefix (see ``complete``)."""
        return cached_sampling.complete(
            self, x, observed_mask, generator, temperature, y, sampler=self.sampler
        )
