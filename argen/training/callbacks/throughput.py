"""What a run's training cost, measured as it happens: examples (and, for text, characters) seen,
training FLOPs, process CPU seconds and wall seconds, validation excluded, so that models which
validate more often are not penalised.

Training time runs from the start of each training epoch to its end, paused from the start of
every validation until the next training batch starts (so the checkpoint written after a
validation is not counted either). CPU seconds are ``time.process_time()``: every thread of this
process, not DataLoader worker processes. Examples are counted at the end of each Lightning batch
(a group of several optimizer steps counts all its examples, ``argen.modules.amortized``), summed over
processes. FLOPs are examples times the FLOPs per example counted at the start (``argen.training.flops``).
At every validation of a fit the cumulative counts are logged as ``trainer/examples_seen``,
``trainer/train_flops``, ``trainer/cpu_seconds``, ``trainer/wall_seconds`` (and
``trainer/characters_seen`` for text), in the same row as the validation metrics, so W&B can draw
those against them (``argen.training.loggers``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

STEP_AXES = ("examples_seen", "train_flops", "cpu_seconds", "wall_seconds", "characters_seen")


def batch_size_of(batch) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0]) if isinstance(first, torch.Tensor) else 0


def characters_of(batch) -> int:
    """Characters in a text batch: every token of its windows."""
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.numel()) if isinstance(first, torch.Tensor) else 0


class Throughput(L.Callback):
    """Accumulates the training cost (module docstring); logs ``train/examples_per_sec`` each
    epoch and the cumulative counts at each validation. Its counts are kept in checkpoints, so a
    resumed run continues them."""

    def __init__(self, flops_per_example: float | None = None, text: bool = False) -> None:
        self.examples = 0
        self.characters = 0
        self.seconds = 0.0  # wall seconds of training
        self.cpu_seconds = 0.0  # process CPU seconds of training
        self.flops_per_example = flops_per_example
        self.text = text
        self._since: tuple[float, float] | None = None  # (wall, cpu) when training last resumed
        self._epoch_mark: tuple[int, float] | None = None  # (examples, seconds) at epoch start

    # ------------------------------------------------------------------ the clock
    def _resume(self) -> None:
        if self._since is None:
            self._since = (time.perf_counter(), time.process_time())

    def _pause(self) -> None:
        if self._since is not None:
            wall, cpu = self._since
            self.seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu
            self._since = None

    def wall_seconds_now(self) -> float:
        """Wall seconds of training so far, the running stretch included."""
        running = time.perf_counter() - self._since[0] if self._since is not None else 0.0
        return self.seconds + running

    def cpu_seconds_now(self) -> float:
        """Process CPU seconds of training so far, the running stretch included."""
        running = time.process_time() - self._since[1] if self._since is not None else 0.0
        return self.cpu_seconds + running

    @property
    def train_flops(self) -> float | None:
        """Training FLOPs so far (``None`` when none were counted per example)."""
        if self.flops_per_example is None:
            return None
        return self.examples * self.flops_per_example

    @property
    def examples_per_sec(self) -> float | None:
        """Examples seen over measured training wall seconds (not a mean of epoch rates)."""
        return self.examples / self.seconds if self.seconds > 0 else None

    def counts(self, trainer: L.Trainer) -> dict[str, float | int]:
        """The cumulative measurements now, under their summary.json / epochs.csv names."""
        counts: dict[str, float | int] = {
            "examples_seen": self.examples,
            "optimizer_steps": int(trainer.global_step),
        }
        if self.train_flops is not None:
            counts["train_flops"] = self.train_flops
        counts["cpu_seconds"] = self.cpu_seconds_now()
        counts["wall_seconds"] = self.wall_seconds_now()
        if self.text:
            counts["characters_seen"] = self.characters
        return counts

    # ------------------------------------------------------------------ hooks
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_mark = (self.examples, self.wall_seconds_now())
        self._resume()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._resume()  # after a validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.examples += batch_size_of(batch) * trainer.world_size
        if self.text:
            self.characters += characters_of(batch) * trainer.world_size

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        # float64: float32 would round example counts above 2**24
        dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
        for name, value in self.counts(trainer).items():
            if name in STEP_AXES:
                pl_module.log(
                    f"trainer/{name}",
                    torch.tensor(float(value), dtype=dtype, device=pl_module.device),
                    reduce_fx="max",
                )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()
        if self._epoch_mark is None:
            return
        examples, seconds = self.examples - self._epoch_mark[0], self.seconds - self._epoch_mark[1]
        if seconds > 0:
            pl_module.log("train/examples_per_sec", examples / seconds)
        self._epoch_mark = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._pause()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            "examples": self.examples,
            "characters": self.characters,
            "seconds": self.wall_seconds_now(),
            "cpu_seconds": self.cpu_seconds_now(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.examples = int(state_dict.get("examples", 0))
        self.characters = int(state_dict.get("characters", 0))
        self.seconds = float(state_dict.get("seconds", 0.0))
        self.cpu_seconds = float(state_dict.get("cpu_seconds", 0.0))


def measured_training(run_dir: Path) -> dict[str, Any]:
    """The training cost recorded in ``last.ckpt`` by argen's ``Throughput`` callback (its
    cumulative counts when the checkpoint was written) and the optimizer steps taken."""
    from argen.training.checkpoint import read_checkpoint

    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return {}
    checkpoint = read_checkpoint(last)
    states = checkpoint.get("callbacks", {})
    state = next((v for k, v in states.items() if str(k).startswith("Throughput")), None)
    facts: dict[str, Any] = {}
    if "global_step" in checkpoint:
        facts["optimizer_steps"] = int(checkpoint["global_step"])
    if not state:
        return facts
    facts["examples_seen"] = int(state["examples"])
    if "cpu_seconds" in state:  # checkpoints written before argen measured CPU time have none
        facts["cpu_seconds"] = round(float(state["cpu_seconds"]), 3)
    seconds = float(state.get("seconds", 0.0))
    if seconds > 0:
        facts["wall_seconds"] = round(seconds, 3)
        facts["train_examples_per_sec"] = state["examples"] / seconds
    return facts
