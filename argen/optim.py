"""Optimizer and scheduler set-up shared by every family's LightningModule.

Configs give factories (Hydra ``_partial_: true``): ``optimizer(params)`` and
``scheduler(optimizer)``. Plateau schedulers watch the family's validation metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from argen.amortized import Schedule

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
MONITOR = "val/nll"


def configure_optimizers(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None = None,
    interval: str = "epoch",
    monitor: str = MONITOR,
    manual: bool = False,
) -> torch.optim.Optimizer | dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns for these factories.

    With ``manual=True`` (the module steps its schedulers itself, ``argen.amortized``) the
    scheduler's entry has no ``monitor``: Lightning ignores it then, with a warning, and
    ``schedules_of`` keeps it for the module.
    """
    built = optimizer(parameters)
    if scheduler is None:
        return built
    entry: dict[str, Any] = {"scheduler": scheduler(built), "interval": interval}
    if not manual:
        entry["monitor"] = monitor
    return {"optimizer": built, "lr_scheduler": entry}


def schedules_of(
    config: torch.optim.Optimizer | dict[str, Any], monitor: str = MONITOR
) -> list[Schedule]:
    """The schedulers of a ``configure_optimizers`` result, with Lightning's stepping rules."""
    if not isinstance(config, dict) or "lr_scheduler" not in config:
        return []
    entry = config["lr_scheduler"]
    scheduler = entry["scheduler"]
    return [
        Schedule(
            scheduler,
            interval=entry.get("interval", "epoch"),
            frequency=int(entry.get("frequency", 1)),
            plateau=isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau),
            monitor=entry.get("monitor", monitor),
        )
    ]
