"""Per-pixel surprise: the negative log-likelihood of every sub-pixel of an image.

``-log p(x) = sum_d -log p(x_d | x_before_d)``, so the map of the terms shows where in an image a
model spends its nats (the edges of a digit, an unexpected stroke); the maps of an image sum to
its NLL (for mixtures, to the first component's).
"""

from __future__ import annotations

import torch

from argen.inspect.conditionals import dimension_log_probs
from argen.models.base import DensityModel


def pixel_surprise(
    model: DensityModel, x: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """``-log p(x_d | x_before_d)`` in nats for every sub-pixel, [B, C, H, W] (float64)."""
    model.validate_levels(x)
    with torch.no_grad():
        return -dimension_log_probs(model, x, y=y).double().cpu()
