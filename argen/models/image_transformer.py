"""A causal Transformer over sub-pixels (Image GPT-style; Chen et al. 2020, "Generative
Pretraining from Pixels"; Parmar et al. 2018, "Image Transformer").

An image [C, H, W] is read as one sequence of ``D = H * W * C`` sub-pixels in raster order, R, G,
B within a pixel (the order of PixelCNN's channel masks). Each sub-pixel's level ``0 .. K-1`` is a
token; the input at position t is sub-pixel t-1, and a start token (id K) sits at position 0, so
position t outputs the parameters of p(sub-pixel t | sub-pixels < t) and the causal mask makes
the autoregressive property exact. A linear layer maps each position's hidden state to the head's
``P`` parameters of that one sub-pixel (``head``: bernoulli, categorical or logistic mixture, as
for the pixel CNNs), so ``forward`` returns [B, C, H, W, P] like every other pixel model.

Sampling (``sampler="cached"``, the default) feeds one token per step through a key/value cache;
``"naive"`` reruns the Transformer on the whole prefix for every sub-pixel. Both draw every
sub-pixel with ``cached_sampling.draw_levels`` (one multinomial over the batch per sub-pixel, in
the same order), so for the same generator they give the same samples. Cost: full attention over
D positions, O(D^2) per image in training: meant for small images (binarized MNIST: D = 784;
CIFAR-10: D = 3072 needs a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models import cached_sampling
from argen.models.attention import CausalTransformer
from argen.models.base import DensityModel
from argen.models.pixel_heads import make_head
from argen.models.sampling_progress import report_row


class ImageTransformer(DensityModel):
    """Decoder-only Transformer density model over [C, H, W] images with ``num_levels`` levels.

    Args:
        shape, num_levels: the data.
        dim, num_layers, num_heads, mlp_ratio, dropout: the Transformer (pre-norm blocks).
        positions: ``"learned"`` or ``"sinusoidal"`` absolute positions over the D sub-pixels.
        head, num_mixtures: the per-sub-pixel distribution (``"auto"``: bernoulli for binary
            data, categorical otherwise).
        sampler: ``"cached"`` (key/value cache) or ``"naive"``; identical samples.
    """

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        dim: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        positions: str = "learned",
        head: str = "auto",
        num_mixtures: int = 10,
        sampler: str = "cached",
    ) -> None:
        super().__init__(shape, num_levels)
        if len(self.shape) != 3:
            raise ValueError(f"shape must be [C, H, W], got {list(shape)}")
        self.sampler = cached_sampling.check_sampler(sampler)
        self.head = make_head(head, self.shape[0], num_levels, num_mixtures)
        self.start_token = self.num_levels  # input-only id
        self.transformer = CausalTransformer(
            self.num_levels + 1,
            self.num_dims,
            dim,
            num_layers,
            num_heads,
            mlp_ratio,
            dropout,
            positions,
        )
        self.out = nn.Linear(dim, self.head.params_per_channel)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    # ------------------------------------------------------------------ layout
    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W, ...] -> [B, D, ...] in raster order, channels fastest."""
        return x.movedim(1, 3).flatten(1, 3)

    def from_sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, D, ...] -> [B, C, H, W, ...] (inverse of ``to_sequence``)."""
        c, h, w = self.shape
        return seq.unflatten(1, (h, w, c)).movedim(3, 1)

    def _params(self, embedded: torch.Tensor) -> torch.Tensor:
        """Embedded input tokens [B, D, dim] -> parameters [B, C, H, W, P]."""
        return self.from_sequence(self.out(self.transformer(embedded)))

    # ------------------------------------------------------------------ model
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Levels [B, C, H, W] -> head parameters [B, C, H, W, P] of every conditional."""
        ids = self.to_sequence(x.long())
        start = ids.new_full((ids.shape[0], 1), self.start_token)
        inputs = torch.cat([start, ids[:, :-1]], dim=1)
        return self._params(self.transformer.embed(inputs))

    def forward_onehot(self, x_onehot: torch.Tensor) -> torch.Tensor:
        """``forward`` from float one-hot levels [B, C, H, W, K], differentiable in the input
        (for the gradient check of the autoregressive property)."""
        seq = self.to_sequence(x_onehot)  # [B, D, K]
        start = seq.new_zeros(seq.shape[0], 1, self.num_levels + 1)
        start[..., self.start_token] = 1.0
        inputs = torch.cat([start, F.pad(seq[:, :-1], (0, 1))], dim=1)
        return self._params(inputs @ self.transformer.tokens.weight)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats, [B]."""
        self.validate_levels(x)
        return self.head.log_prob(x, self(x))

    # ------------------------------------------------------------------ sampling
    def _weight(self) -> torch.Tensor:
        return self.out.weight

    @torch.no_grad()
    def _fill(
        self,
        x: torch.Tensor,
        observed: torch.Tensor,
        start: int,
        temperature: float,
        generator: torch.Generator | None,
        sampler: str,
    ) -> torch.Tensor:
        """Sample sub-pixels ``start ..`` of ``x`` in raster order, keeping observed ones;
        dropout is off while sampling."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        cached_sampling.check_sampler(sampler)
        was_training = self.training
        self.eval()
        try:
            return self._fill_in_eval(x, observed, start, temperature, generator, sampler)
        finally:
            self.train(was_training)

    def _fill_in_eval(
        self,
        x: torch.Tensor,
        observed: torch.Tensor,
        start: int,
        temperature: float,
        generator: torch.Generator | None,
        sampler: str,
    ) -> torch.Tensor:
        n, total = x.shape[0], self.num_dims
        if start >= total:
            return x
        row_length = self.shape[0] * self.shape[2]
        seq = self.to_sequence(x).clone()  # float levels [n, D]
        keep = self.to_sequence(observed)
        ids = seq.long()
        embed = self.transformer.embed
        first = ids.new_full((n, 1), self.start_token)
        cache = None
        if sampler == "cached":
            cache = self.transformer.new_cache(n, total, x.device, self._weight().dtype)
            prefix = torch.cat([first, ids[:, :start]], dim=1)
            hidden = self.transformer(embed(prefix), cache)[:, -1]
        for t in range(start, total):
            if sampler == "naive":
                prefix = torch.cat([first, ids[:, :t]], dim=1)
                hidden = self.transformer(embed(prefix))[:, -1]
            params = self.out(hidden)
            value = cached_sampling.draw_levels(self.head, params, temperature, generator)
            value = torch.where(keep[:, t], seq[:, t], value.to(seq.dtype))
            seq[:, t] = value
            ids[:, t] = value.long()
            if cache is not None and t + 1 < total:
                hidden = self.transformer(embed(ids[:, t : t + 1]), cache)[:, -1]
            if (t + 1) % row_length == 0:
                report_row((t + 1) // row_length, self.shape[1])
        return self.from_sequence(seq).contiguous()

    def _device_dtype(self, device: torch.device | str | None) -> tuple[torch.device, torch.dtype]:
        weight = self._weight()
        return (weight.device if device is None else torch.device(device)), weight.dtype

    def sample(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """``n`` images [n, C, H, W] of float levels, drawn by ``sampler`` (default
        ``self.sampler``)."""
        device, dtype = self._device_dtype(device)
        x = torch.zeros(n, *self.shape, device=device, dtype=dtype)
        observed = torch.zeros_like(x, dtype=torch.bool)
        return self._fill(x, observed, 0, temperature, generator, sampler or self.sampler)

    def sample_cached(self, n: int, **kwargs) -> torch.Tensor:
        """Key/value-cached sampler: one token through the network per sub-pixel."""
        return self.sample(n, sampler="cached", **kwargs)

    def sample_naive(self, n: int, **kwargs) -> torch.Tensor:
        """Reference sampler: the whole prefix through the network for every sub-pixel."""
        return self.sample(n, sampler="naive", **kwargs)

    def complete(
        self,
        x: torch.Tensor,
        observed_mask: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """Sample the unobserved rest of ``x`` [B, C, H, W] given a raster-order prefix.

        ``observed_mask`` broadcasts to ``x`` and must mark a prefix in raster order (R, G, B
        within a pixel) in every example, as for PixelCNN's ``complete``; observed values are
        returned unchanged and the rest is drawn from p(rest | observed).
        """
        _, dtype = self._device_dtype(None)
        self.validate_levels(x)
        lengths = cached_sampling.observed_prefix_lengths(observed_mask, tuple(x.shape))
        observed = observed_mask.to(device=x.device, dtype=torch.bool).expand(x.shape)
        filled = torch.where(observed, x, torch.zeros_like(x)).to(dtype)
        start = int(lengths.min()) if lengths.numel() else self.num_dims
        out = self._fill(filled, observed, start, temperature, generator, sampler or self.sampler)
        return out.to(x.dtype)
