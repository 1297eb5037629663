"""Autoencoder baseline: a reconstruction model that is deliberately *not* a density model.

Encoder ``h = sigmoid(W2 (W1 x + b1) + b2)`` (W1 and W2 compose linearly, the only nonlinearity is
the sigmoid code), decoder ``x_hat = sigmoid(V h + c)``. It is here to contrast with the
autoregressive models: it can be trained and can reconstruct, but it defines no distribution over
x, so it has no likelihood to report and nothing to sample from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities

NOT_A_DENSITY_MESSAGE = (
    "The autoencoder defines no distribution over x, so it has no likelihood (log_prob) and "
    "cannot sample. Its reconstruction loss is not a negative log-likelihood (NLL) and must not be "
    "reported as nats or bits/dim. Use a density model (fvsbn, nade, made, ...) instead."
)


class NotADensityError(TypeError):
    """Raised when a likelihood or a sample is asked of a model that defines no distribution."""


class Autoencoder(nn.Module):
    """Autoencoder on images [B, C, H, W] with values in [0, num_levels - 1].

    Args:
        shape: (C, H, W); D = C*H*W inputs, flattened C-major.
        num_levels: K; inputs are scaled by 1/(K-1) into [0, 1], which is also the decoder's range.
        hidden_size: width of W1 (D -> hidden_size); 500, the hidden width used for NADE.
        code_size: width of the sigmoid code (W2: hidden_size -> code_size); 128 by default, a
            bottleneck well below D=784 so the model cannot learn the identity map.
        loss: "bce" (summed binary cross-entropy, for binary or [0, 1] data) or "l2" (summed
            squared error, for continuous data). Default: "bce" if num_levels == 2, else "l2".
    """

    capabilities = Capabilities(density=False)  # images of K levels; no likelihood

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_size: int = 500,
        code_size: int = 128,
        loss: str | None = None,
    ) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.num_levels = int(num_levels)
        if self.num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        loss = loss if loss is not None else ("bce" if self.num_levels == 2 else "l2")
        if loss not in ("bce", "l2"):
            raise ValueError(f"loss must be 'bce' or 'l2', got {loss!r}")
        self.loss = loss
        d = math.prod(self.shape)
        self.W1 = nn.Linear(d, hidden_size)
        self.W2 = nn.Linear(hidden_size, code_size)
        self.V = nn.Linear(code_size, d)

    @property
    def num_dims(self) -> int:
        """Number of input values D."""
        return math.prod(self.shape)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Check x and map it to [B, D] in [0, 1]. Continuous values are allowed (no density)."""
        if not torch.is_floating_point(x):
            raise ValueError(f"Autoencoder expects a floating tensor, got dtype {x.dtype}")
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"Autoencoder expects inputs of shape [B, {', '.join(map(str, self.shape))}], "
                f"got {list(x.shape)}"
            )
        if x.numel() and (x.min() < 0 or x.max() > self.num_levels - 1):
            raise ValueError(
                f"Autoencoder expects values in [0, {self.num_levels - 1}], "
                f"got [{x.min().item():g}, {x.max().item():g}]"
            )
        return x.reshape(x.shape[0], -1) / (self.num_levels - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code h = sigmoid(W2 (W1 x + b1) + b2), [B, code_size]."""
        return torch.sigmoid(self.W2(self.W1(self._scaled(x))))

    def decoder_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid decoder output V h + c, [B, D]."""
        return self.V(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction x_hat = sigmoid(V h + c) in [0, 1], shaped like x ([B, C, H, W])."""
        return torch.sigmoid(self.decoder_logits(self.encode(x))).reshape(x.shape)

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example summed BCE or summed squared error against x / (K-1), [B].

        This is a reconstruction error, not a negative log-likelihood.
        """
        target = self._scaled(x)
        logits = self.decoder_logits(self.encode(x))
        if self.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
        return (torch.sigmoid(logits) - target).pow(2).sum(1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Always raises: an autoencoder has no likelihood."""
        raise NotADensityError(NOT_A_DENSITY_MESSAGE)

    def sample(self, n: int, **kwargs) -> torch.Tensor:
        """Always raises: an autoencoder has no distribution to sample from."""
        raise NotADensityError(NOT_A_DENSITY_MESSAGE)
