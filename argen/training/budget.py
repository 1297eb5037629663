"""A run's training budget in units a busy machine cannot bend: examples, optimizer steps,
training FLOPs, or process CPU seconds (``budget:`` in conf/train.yaml; at most one is set).

* ``steps``: optimizer steps, set as the Trainer's ``max_steps`` (exact, also when PixelCNN and
  Gated PixelCNN group several steps per Lightning batch: ``argen.data.groups`` cuts a group
  where ``max_steps`` ends).
* ``examples``: the fewest optimizer steps after which at least that many training examples have
  been seen (the epoch's last batch may be partial; for text an example is a training window).
* ``flops``: training FLOPs as ``argen.training.flops`` counts them (per example, once, then multiplied by
  examples seen), turned into examples and then steps as above.
* ``cpu_seconds``: the process's CPU time in training (``time.process_time``, validation
  excluded), checked after every Lightning batch (``argen.training.callbacks.budget``).

``budget.validations`` (with a budget of steps, examples or FLOPs) spreads that many validations
evenly over the budget's optimizer steps, the last one at its end, so runs of different families
and sizes draw learning curves with the same number of points whatever their epoch length.

With a budget, ``trainer.max_epochs`` no longer bounds training (the budget does); a budget
together with ``trainer.max_steps`` or ``trainer.max_time`` is refused before the run starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from argen.core.errors import ConfigError

KINDS = ("examples", "steps", "flops", "cpu_seconds")
EPOCHS = "epochs"  # budget_kind of a run bounded by trainer.max_epochs alone
STEPS = "steps"
WALL_SECONDS = "wall_seconds"  # budget_kind of a run bounded by trainer.max_time (wall clock)


@dataclass(frozen=True)
class Budget:
    """What a run was given: ``kind`` (one of ``KINDS``, or ``EPOCHS``/``STEPS``/``WALL_SECONDS``
    for runs bounded by the Trainer's own settings) and ``value`` in that unit."""

    kind: str
    value: float


def given_budgets(cfg: DictConfig) -> dict[str, Any]:
    """The ``budget.*`` entries that are set (not null)."""
    section = OmegaConf.select(cfg, "budget", default=None) or {}
    return {kind: section.get(kind) for kind in KINDS if section.get(kind) is not None}


def budget_of(cfg: DictConfig) -> Budget | None:
    """The ``budget.*`` the run was given (``argen.training.config_checks`` has refused two)."""
    given = given_budgets(cfg)
    if not given:
        return None
    ((kind, value),) = given.items()
    return Budget(kind, value)


def run_budget(cfg: DictConfig) -> Budget | None:
    """What bounds the run, as its summary records it: the ``budget.*`` setting, else the
    Trainer's ``max_steps``, ``max_time`` (in seconds) or ``max_epochs``; ``None`` when nothing
    does."""
    budget = budget_of(cfg)
    if budget is not None:
        return budget
    trainer = cfg.get("trainer") or {}
    max_steps = trainer.get("max_steps")
    if max_steps is not None and int(max_steps) >= 0:
        return Budget(STEPS, int(max_steps))
    seconds = time_to_seconds(trainer.get("max_time"))
    if seconds is not None:
        return Budget(WALL_SECONDS, seconds)
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and int(max_epochs) >= 0:
        return Budget(EPOCHS, int(max_epochs))
    return None


def time_to_seconds(max_time: Any) -> float | None:
    """Lightning's ``max_time`` (``"DD:HH:MM:SS"`` or a mapping of days/hours/minutes/seconds)
    in seconds."""
    if not max_time:
        return None
    if isinstance(max_time, str):
        days, hours, minutes, seconds = (float(v) for v in max_time.split(":"))
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    parts = dict(max_time)
    return float(
        parts.get("days", 0) * 86400
        + parts.get("hours", 0) * 3600
        + parts.get("minutes", 0) * 60
        + parts.get("seconds", 0)
    )


def max_time_of_minutes(minutes: float) -> str:
    """Lightning's ``max_time`` (``"DD:HH:MM:SS"``) for a wall-clock budget in minutes, rounded to
    the second (its minutes field stops at 59: 140 minutes is ``00:02:20:00``)."""
    total = int(round(minutes * 60))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def steps_for_examples(
    examples: int, epoch_examples: int, epoch_steps: int, step_examples: int
) -> int:
    """The fewest optimizer steps after which at least ``examples`` training examples have been
    seen, for epochs of ``epoch_examples`` examples in ``epoch_steps`` steps of
    ``step_examples`` each, the last step of an epoch taking what is left."""
    if examples <= 0:
        return 0
    full, rest = divmod(int(examples), int(epoch_examples))
    return full * int(epoch_steps) + math.ceil(rest / int(step_examples))


def epoch_shape(trainer: L.Trainer, datamodule: L.LightningDataModule) -> tuple[int, int, int]:
    """(examples per epoch, optimizer steps per epoch, examples per full step) of this fit, from
    the training loader (whose last batch may be partial) and the Trainer's
    ``limit_train_batches``, gradient accumulation and number of processes."""
    loader = datamodule.train_dataloader()  # not iterated: no random numbers are drawn
    size, batch_size, batches = len(loader.dataset), int(loader.batch_size), len(loader)
    limit = trainer.limit_train_batches
    if isinstance(limit, int):
        batches = min(batches, limit)
    elif isinstance(limit, float) and limit < 1.0:
        batches = int(batches * limit)
    accumulate, world = int(trainer.accumulate_grad_batches), int(trainer.world_size)
    examples = min(size, batches * batch_size)
    if world > 1:  # each process takes every world-th example, padded to equal shares
        batches = math.ceil(math.ceil(examples / world) / batch_size)
    steps = math.ceil(batches / accumulate)
    return examples, max(steps, 1), batch_size * accumulate * world


def budget_steps(
    budget: Budget,
    trainer: L.Trainer,
    datamodule: L.LightningDataModule,
    flops_per_example: float | None,
) -> int | None:
    """The ``max_steps`` that realise ``budget`` (``None``: the budget is not a number of steps,
    i.e. ``cpu_seconds``). A FLOPs budget needs the counted FLOPs per example."""
    if budget.kind == STEPS:
        return int(budget.value)
    if budget.kind == "examples":
        examples = int(budget.value)
    elif budget.kind == "flops":
        if not flops_per_example:
            raise ConfigError(
                f"budget.flops={budget.value} cannot be met: no FLOPs of this model's training "
                "step could be counted (argen.training.flops); give budget.examples or budget.steps"
            )
        examples = math.ceil(float(budget.value) / flops_per_example)
    else:
        return None
    return steps_for_examples(examples, *epoch_shape(trainer, datamodule))


def apply_budget(trainer: L.Trainer, max_steps: int | None, validations: int | None = None) -> None:
    """Let the budget alone bound training: no epoch limit, and ``max_steps`` when it is a
    number of steps (else none: the CPU-seconds callback stops the run). ``validations``: validate
    every ``ceil(max_steps / validations)`` optimizer steps instead of once an epoch."""
    trainer.fit_loop.max_epochs = -1
    trainer.fit_loop.epoch_loop.max_steps = -1 if max_steps is None else int(max_steps)
    if validations and max_steps:
        trainer.val_check_interval = validation_interval(max_steps, validations)
        trainer.check_val_every_n_epoch = None  # the interval may span epochs


def validation_interval(max_steps: int, validations: int) -> int:
    """Optimizer steps between validations so that ``validations`` of them fall in
    ``max_steps`` steps (the last at the end: ``ValidateAtMaxSteps``)."""
    return max(1, math.ceil(int(max_steps) / int(validations)))
