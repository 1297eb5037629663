"""The one contract shared by every density model in argen.

A density model is a plain ``nn.Module`` (no Lightning, no Hydra) with

* ``log_prob(x) -> Tensor[B]``: the exact log-likelihood of each example, in nats;
* ``sample(n, ...) -> Tensor``: ``n`` fresh examples in the same format as the data.

Image models see float tensors ``[B, C, H, W]`` whose values are the integer levels
``0 .. num_levels - 1`` (``{0., 1.}`` for binary data). ``validate_levels`` rejects anything else
with a message that says what was wrong, so a bad input never yields a wrong number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class DensityModel(nn.Module):
    """Base class: stores the data shape and number of levels, and validates inputs."""

    def __init__(self, shape: Sequence[int], num_levels: int = 2) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.num_levels = int(num_levels)
        if self.num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")

    @property
    def num_dims(self) -> int:
        """Number of modelled variables D (used for bits/dim = nats / (D ln 2))."""
        return math.prod(self.shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, **kwargs) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def validate_levels(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a floating tensor [B, *shape] of integer levels."""
        validate_levels(x, self.shape, self.num_levels, type(self).__name__)

    def validate_form(self, x: torch.Tensor) -> None:
        """The free part of ``validate_levels``: type, dtype and shape, no pass over the values.

        ``training_loss`` (the training hot path) checks only this much; its caller checks the
        values once per batch or group of batches (``DensityModule``, ``argen.modules.amortized``), and
        ``log_prob`` always checks them.
        """
        validate_form(x, self.shape, type(self).__name__)


def validate_form(x: torch.Tensor, shape: Sequence[int], who: str) -> None:
    """Raise unless ``x`` is a floating tensor [B, *shape] (no pass over its values)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}.log_prob expects a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(
            f"{who}.log_prob expects a floating tensor of pixel levels, got dtype {x.dtype}; "
            "convert with x.float()"
        )
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{who}.log_prob expects inputs of shape [B, {', '.join(map(str, shape))}], "
            f"got {list(x.shape)}"
        )


def validate_levels(x: torch.Tensor, shape: Sequence[int], num_levels: int, who: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating tensor [B, *shape] of levels 0..K-1."""
    validate_form(x, shape, who)
    if x.numel() == 0:
        return
    # One pass for the range, one for the fractional parts, one host sync: this runs once per
    # batch in training (min, max and equal-to-round took 3x longer on a CPU).
    low_high = torch.aminmax(x.detach())
    stats = torch.stack([*low_high, torch.frac(x.detach()).abs_().sum()])
    low, high, fractional = stats.tolist()
    if not (low >= 0 and high <= num_levels - 1 and fractional == 0):
        raise ValueError(
            f"{who}.log_prob expects integer levels in [0, {num_levels - 1}] "
            f"(num_levels={num_levels}), got values in [{low:g}, {high:g}]"
            + ("" if fractional == 0 else " that are not whole numbers")
            + "; binarize or quantize the data first"
        )


def require_binary(num_levels: int, model: str) -> None:
    """Binary-only models (FVSBN, NADE, MADE) refuse non-binary data before training starts."""
    if num_levels != 2:
        raise ValueError(
            f"{model} models binary data (num_levels=2), but the data has num_levels={num_levels}. "
            "Use a binary dataset (data=binarized_mnist) or a model with a categorical pixel head "
            "(model=pixelcnn, model=gated_pixelcnn, model=row_lstm, model=diagonal_bilstm)."
        )
