"""Optimizer and scheduler set-up shared by every family's LightningModule.

Configs give factories (Hydra ``_partial_: true``): ``optimizer(params)`` and
``scheduler(optimizer)``. Plateau schedulers watch the family's validation metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def configure_optimizers(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None = None,
    interval: str = "epoch",
    monitor: str = "val/nll",
) -> torch.optim.Optimizer | dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns for these factories."""
    built = optimizer(parameters)
    if scheduler is None:
        return built
    return {
        "optimizer": built,
        "lr_scheduler": {"scheduler": scheduler(built), "interval": interval, "monitor": monitor},
    }
