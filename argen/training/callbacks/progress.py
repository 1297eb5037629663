"""Lightning's Rich progress bar, updated at most a few times a second instead of every batch."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

UNLIMITED = "∞"  # the epoch count shown for trainer.max_epochs=-1 (Lightning's "no limit")


class TrainerSeenByBar:
    """The Trainer as the bar's metrics column reads it, with ``progress_bar_callback`` always this
    bar.

    Rich redraws the bar from a thread of its own, whose metrics column asserts that
    ``trainer.progress_bar_callback`` (the first ``ProgressBar`` in ``trainer.callbacks``) is a
    ``RichProgressBar``. ``argen.modules.amortized`` lists only the callbacks with per-step hooks in
    ``trainer.callbacks`` while it runs a group of steps, so a redraw that fell inside a group
    failed that assertion, now and then, with an ``Exception in thread`` traceback in the middle
    of a run. Every other attribute is the Trainer's own.
    """

    def __init__(self, trainer: L.Trainer, bar: RichProgressBar) -> None:
        self._trainer = trainer
        self._bar = bar

    @property
    def progress_bar_callback(self) -> RichProgressBar:
        return self._bar

    def __getattr__(self, name: str) -> Any:
        trainer = self.__dict__.get("_trainer")  # absent while copying or unpickling
        if trainer is None:
            raise AttributeError(name)
        return getattr(trainer, name)


class ThrottledRichProgressBar(RichProgressBar):
    """``RichProgressBar`` whose per-batch work runs only every ``min_interval`` seconds.

    The stock bar updates its task, collects the progress-bar metrics and re-renders after every
    training batch: about 0.3 ms a step on a CPU (``benchmarks/loop_overhead.py``), 7 % of a MADE
    step. A person cannot read more than a few updates a second, so batches in between only check
    the clock; the last batch of an epoch always updates, so the bar ends complete.
    """

    def __init__(self, min_interval: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.min_interval = float(min_interval)
        self._last_update = -math.inf

    def _init_progress(self, trainer: L.Trainer) -> None:
        # Lightning's hook for building the Rich display; its metrics column keeps the trainer it
        # is given for the redraw thread (see TrainerSeenByBar).
        super()._init_progress(TrainerSeenByBar(trainer, self))

    def _get_train_description(self, current_epoch: int) -> str:
        """``Epoch 6/9``, or ``Epoch 6/∞`` when ``trainer.max_epochs=-1`` (Lightning would show
        ``Epoch 6/-2``)."""
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}/{UNLIMITED}':<{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._last_update = -math.inf

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        last_batch = batch_idx + 1 >= self.total_train_batches
        if now - self._last_update < self.min_interval and not last_batch:
            return
        self._last_update = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
