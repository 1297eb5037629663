"""Lightning's Rich progress bar, updated at most a few times a second instead of every batch."""

from __future__ import annotations

import math
import time

from lightning.pytorch.callbacks import RichProgressBar


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
