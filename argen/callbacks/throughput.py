"""Training throughput: examples per second over the time spent in training batches' epochs,
excluding validation, so models that validate more often are not penalised."""

from __future__ import annotations

import time

import lightning as L
import torch


def batch_size_of(batch) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0]) if isinstance(first, torch.Tensor) else 0


class Throughput(L.Callback):
    """Accumulates training examples and wall time; logs ``train/examples_per_sec`` each epoch."""

    def __init__(self) -> None:
        self.examples = 0
        self.seconds = 0.0
        self._epoch_start: float | None = None
        self._epoch_examples = 0
        self._val_start: float | None = None
        self._val_seconds = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_examples = 0
        self._val_seconds = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._epoch_examples += batch_size_of(batch) * trainer.world_size

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None and self._epoch_start is not None:
            self._val_seconds += time.perf_counter() - self._val_start
        self._val_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_start is None:
            return
        seconds = time.perf_counter() - self._epoch_start - self._val_seconds
        self.examples += self._epoch_examples
        self.seconds += seconds
        if seconds > 0:
            pl_module.log("train/examples_per_sec", self._epoch_examples / seconds)
        self._epoch_start = None

    @property
    def examples_per_sec(self) -> float | None:
        return self.examples / self.seconds if self.seconds > 0 else None

    def state_dict(self) -> dict:
        return {"examples": self.examples, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.examples = int(state_dict.get("examples", 0))
        self.seconds = float(state_dict.get("seconds", 0.0))
