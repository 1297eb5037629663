"""Stop training once the process has spent a CPU-time budget on it (``budget.cpu_seconds``).

CPU seconds are those ``argen.training.callbacks.throughput.Throughput`` measures: ``time.process_time()``
of this process while training, validation excluded. Unlike a wall-clock limit they do not grow
when other jobs share the machine. The budget is checked after every Lightning batch (a group of
optimizer steps for PixelCNN and Gated PixelCNN), so training stops at the first batch boundary
past it; Lightning then runs the last validation and checkpoints as usual.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from argen.training.callbacks.throughput import Throughput


class CPUSecondsBudget(L.Callback):
    """Sets ``trainer.should_stop`` once ``meter`` has measured ``seconds`` of training CPU time
    (in any process, when there are several)."""

    def __init__(self, meter: Throughput, seconds: float) -> None:
        self.meter = meter
        self.seconds = float(seconds)
        self.reached = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        reached = self.meter.cpu_seconds_now() >= self.seconds
        reached = bool(trainer.strategy.reduce_boolean_decision(reached, all=False))
        if reached and not self.reached:
            rank_zero_info(
                f"budget.cpu_seconds={self.seconds:g} reached after {trainer.global_step} "
                "optimizer steps: stopping"
            )
        self.reached = self.reached or reached
        if reached:
            trainer.should_stop = True


class ValidateAtMaxSteps(L.Callback):
    """Ends a run that reaches ``trainer.max_steps`` inside an epoch the way an early stop ends:
    by ``trainer.should_stop``, for which Lightning validates once more (for ``max_steps`` alone
    it stops without validating), so a step, example or FLOPs budget ends with a validation of
    the final weights, a checkpoint and a row of epochs.csv."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if 0 <= trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
