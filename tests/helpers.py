"""Test-only callbacks, added to a train.py run with ``+callbacks.<name>._target_=tests.helpers...``."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch


class KillAtStep(L.Callback):
    """SIGKILL this process when training reaches ``step`` (a job killed mid-epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonWeightsAtStep(L.Callback):
    """Set one weight to NaN at ``step`` so that the loss becomes non-finite."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")
