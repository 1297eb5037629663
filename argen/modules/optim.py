"""Optimizer and scheduler set-up shared by every family's LightningModule.

Configs give factories (Hydra ``_partial_: true``): ``optimizer(params)`` and
``scheduler(optimizer)``. Plateau schedulers watch the family's validation metric.

Two building blocks for Transformer-style set-ups, usable by every family:

* ``warmup_cosine``: linear warm-up then cosine decay of the learning rate, meant to be stepped
  once per optimizer step (the module's ``scheduler_interval: step``);
* ``decay_matrices``: an optimizer whose weight decay applies only to tensors of two or more
  dimensions (linear and convolution weights, and embeddings, as nanoGPT does), never to biases
  or normalisation gains.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
MONITOR = "val/nll"
INTERVALS = ("epoch", "step")


def check_interval(interval: str) -> str:
    """``interval`` if Lightning knows it (``epoch`` or ``step``), else a ValueError saying so."""
    if interval not in INTERVALS:
        raise ValueError(
            f"scheduler_interval must be one of {INTERVALS}, got {interval!r} "
            "(step: the scheduler steps after every optimizer step)"
        )
    return interval


# ------------------------------------------------------------------------------ weight decay


def matrix_groups(
    parameters: Iterable[torch.nn.Parameter], weight_decay: float
) -> list[dict[str, Any]]:
    """Two parameter groups: tensors with ``dim() >= 2`` (matrices, convolution kernels and
    embedding tables) with ``weight_decay``, and the rest (biases, LayerNorm gains and other
    vectors) with none. A group with no parameter is left out."""
    decayed, kept = [], []
    for parameter in parameters:
        if parameter.requires_grad:
            (decayed if parameter.dim() >= 2 else kept).append(parameter)
    groups = [
        {"params": decayed, "weight_decay": float(weight_decay)},
        {"params": kept, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def _optimizer_class(name: str | type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``torch.optim.AdamW`` from its dotted name (or the class itself)."""
    if not isinstance(name, str):
        return name
    module, _, attr = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr) if module else None
    except ImportError:
        found = None
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise ValueError(f"optimizer {name!r} is not an optimizer class (e.g. torch.optim.AdamW)")
    return found


def decay_matrices(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: str | type[torch.optim.Optimizer] = "torch.optim.AdamW",
    weight_decay: float = 0.1,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """``optimizer`` over ``matrix_groups(parameters, weight_decay)``: weight decay on matrices
    only (see the module docstring); ``kwargs`` (lr, betas, ...) go to the optimizer."""
    return _optimizer_class(optimizer)(matrix_groups(parameters, weight_decay), **kwargs)


# --------------------------------------------------------------------------------- schedules


class WarmupCosine:
    """Learning-rate factor of step ``t``: ``(t + 1) / warmup_steps`` while ``t < warmup_steps``,
    then a cosine from 1 down to ``min_ratio`` at ``total_steps``, and ``min_ratio`` after it.

    A class rather than a closure so that ``LambdaLR`` keeps it in its ``state_dict``."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> None:
        if warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(
                f"warmup_cosine needs 0 <= warmup_steps < total_steps, got warmup_steps="
                f"{warmup_steps}, total_steps={total_steps} (set total_steps to trainer.max_steps)"
            )
        if not 0.0 <= min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_ratio + (1.0 - self.min_ratio) * cosine


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int | None,
    min_ratio: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` then cosine decay to ``min_ratio`` times the
    optimizer's learning rate at ``total_steps`` (``WarmupCosine``). Step it per optimizer step:
    set the module's ``scheduler_interval: step``. ``total_steps: null`` in a config means the
    run's own ``max_steps`` (``configure_optimizers`` fills it in): the decay then ends where a
    ``budget.*`` of examples, steps or FLOPs ends, whatever that is in steps for this model."""
    if total_steps is None:
        raise ValueError(
            "warmup_cosine needs total_steps: give it, or leave it null in a run bounded by "
            "budget.examples/steps/flops or trainer.max_steps"
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio)
    )


def configure_optimizers(
    parameters: Iterable[torch.nn.Parameter],
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None = None,
    interval: str = "epoch",
    monitor: str = MONITOR,
    manual: bool = False,
    max_steps: int | None = None,
) -> torch.optim.Optimizer | dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns for these factories.

    A scheduler factory given ``total_steps=None`` (``warmup_cosine`` with ``total_steps: null``)
    gets the run's ``max_steps`` (positive: the Trainer's, or a budget's) as its ``total_steps``.

    With ``manual=True`` (the module steps its schedulers itself, ``argen.modules.amortized``) the
    scheduler's entry has no ``monitor``: Lightning ignores it then, with a warning; plateau
    schedulers watch the module's ``monitor`` there.
    """
    check_interval(interval)
    built = optimizer(parameters)
    if scheduler is None:
        return built
    if getattr(scheduler, "keywords", {}).get("total_steps", 0) is None:
        if max_steps is not None and max_steps > 0:
            scheduler = functools.partial(scheduler, total_steps=int(max_steps))
    entry: dict[str, Any] = {"scheduler": scheduler(built), "interval": interval}
    if not manual:
        entry["monitor"] = monitor
    return {"optimizer": built, "lr_scheduler": entry}
