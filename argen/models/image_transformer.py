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
``"naive"`` reruns the Transformer on the whole prefix for every sub-pixel. Both run in the one
raster loop of ``argen.models.cached_sampling`` (one multinomial over the batch per sub-pixel, in
the same order), so for the same generator they give the same samples. Cost: full attention over
D positions, O(D^2) per image in training: meant for small images (binarized MNIST: D = 784;
CIFAR-10: D = 3072 needs a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.attention import CausalTransformer
from argen.models.base import Capabilities
from argen.models.cached_sampling import RasterImageModel, check_sampler
from argen.models.pixel_heads import make_head


class ImageTransformer(RasterImageModel):
    """Decoder-only Transformer density model over [C, H, W] images with ``num_levels`` levels.

    Args:
        shape, num_levels: the data.
        dim, num_layers, num_heads, mlp_ratio, dropout: the Transformer (pre-norm blocks).
        positions: ``"learned"`` or ``"sinusoidal"`` absolute positions over the D sub-pixels.
        head, num_mixtures: the per-sub-pixel distribution (``"auto"``: bernoulli for binary
            data, categorical otherwise).
        sampler: ``"cached"`` (key/value cache) or ``"naive"``; identical samples.
    """

    capabilities = Capabilities()  # K levels, any channels

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
        self.sampler = check_sampler(sampler)
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

    # ------------------------------------------------------------------ sampling
    def sampling_weight(self) -> torch.Tensor:
        """The output layer's weight: samples take its device and dtype."""
        return self.out.weight

    def sampling_params(
        self, x: torch.Tensor, y: torch.Tensor | None, i: int, j: int, k: int
    ) -> torch.Tensor:
        """Naive sampler: [B, P] parameters of sub-pixel (k, i, j) from the start token and the
        sub-pixels before it (the prefix only: the rest could not change them)."""
        t = (i * self.shape[2] + j) * self.shape[0] + k
        ids = self.to_sequence(x).long()
        first = ids.new_full((ids.shape[0], 1), self.start_token)
        prefix = torch.cat([first, ids[:, :t]], dim=1)
        return self.out(self.transformer(self.transformer.embed(prefix))[:, -1])

    def start_cache(
        self, x: torch.Tensor, y: torch.Tensor | None, start: int
    ) -> ImageTransformerStepper:
        """Cached sampler (see ``ImageTransformerStepper``); ``y`` must be ``None``."""
        return ImageTransformerStepper(self, x, start)


class ImageTransformerStepper:
    """Key/value cache of one sampling call: one token through the network per sub-pixel.

    The prefix (start token and sub-pixels ``< start``) goes through at once; then every value
    the loop sets is fed as the next token, whose hidden state gives the next sub-pixel's
    parameters.
    """

    def __init__(self, model: ImageTransformer, x: torch.Tensor, start: int) -> None:
        self.model = model
        self.total = model.num_dims
        c, _, w = model.shape
        self.row_stride, self.colours = w * c, c
        ids = model.to_sequence(x).long()
        first = ids.new_full((ids.shape[0], 1), model.start_token)
        transformer = model.transformer
        self.cache = transformer.new_cache(
            ids.shape[0], self.total, x.device, model.sampling_weight().dtype
        )
        prefix = torch.cat([first, ids[:, :start]], dim=1)
        self.hidden = transformer(transformer.embed(prefix), self.cache)[:, -1]

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] parameters of the next sub-pixel, (k, i, j)."""
        return self.model.out(self.hidden)

    def set_level(self, i: int, j: int, k: int, value: torch.Tensor) -> None:
        """Feed ``value`` as the next token (unless it is the last sub-pixel)."""
        t = i * self.row_stride + j * self.colours + k
        if t + 1 < self.total:
            transformer = self.model.transformer
            token = transformer.embed(value.long()[:, None])
            self.hidden = transformer(token, self.cache)[:, -1]

    def row_done(self, i: int) -> None:
        """Nothing to do: the cache grows token by token."""
