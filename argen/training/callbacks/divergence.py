"""Flag a run whose loss exploded: validation or test NLL far above what a uniform model gets.

A model that predicts every one of the ``K`` values of each of the ``D`` dimensions with
probability ``1/K`` has an NLL of exactly ``D ln K`` nats per example; a freshly initialised
network sits near it, and training only goes down from there. An NLL several times higher is no
slow start but a diverged run (a learning rate far too high): it may stay finite (``lr=1e9``
gave a test NLL of 5.5e20 nats on binarized MNIST) and so pass the non-finite-loss check. Such a
run still finishes, but with a warning line in the log and ``diverged: true`` and the reason in
``summary.json`` (``argen.training.run.write_summary`` reads :func:`divergence_of`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

# How many times the uniform model's NLL counts as diverged: an untrained network's random logits
# cost at most a fraction more than uniform ones, so 3x is far outside any honest start.
FACTOR = 3.0
SPLITS = ("val", "test")


def uniform_nll(module: L.LightningModule) -> tuple[float, int, int] | None:
    """``(D ln K, D, K)`` for a density model with ``D`` dimensions of ``K`` values each (images:
    ``num_levels``; text: one character of a ``vocab_size`` vocabulary), else None."""
    levels = getattr(module, "num_levels", None)
    if levels is None:
        levels = getattr(getattr(module, "net", None), "vocab_size", None)
    dims = getattr(module, "num_dims", None)
    if not levels or not dims or int(levels) < 2:
        return None
    return int(dims) * math.log(int(levels)), int(dims), int(levels)


class DivergenceCheck(L.Callback):
    """Compares ``val/nll`` (after each validation) and ``test/nll`` with ``FACTOR`` times the
    uniform model's NLL; the first time a split is above it (or not finite) logs a warning and
    keeps the reason. A non-finite training loss (``FloatingPointError``) is recorded too."""

    def __init__(self, factor: float = FACTOR) -> None:
        if not factor > 1:
            raise ValueError(f"factor must be > 1 (times the uniform model's NLL), got {factor}")
        self.factor = float(factor)
        self.reasons: dict[str, str] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check("val", trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check("test", trainer, pl_module)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, FloatingPointError):
            self.reasons["train"] = " ".join(str(exception).split())

    def _check(self, split: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(f"{split}/nll")
        uniform = uniform_nll(pl_module)
        if value is None or uniform is None or split in self.reasons:
            return
        nll = float(value)
        bound, dims, levels = uniform
        if math.isfinite(nll) and nll <= self.factor * bound:
            return
        where = f"at epoch {trainer.current_epoch}" if split == "val" else "on the test split"
        self.reasons[split] = (
            f"{split}/nll {nll:.4g} nats {where} is above {self.factor:g} times the uniform "
            f"model's {bound:.4g} ({dims} x ln {levels}): training diverged; lower the learning "
            "rate or clip gradients (trainer.gradient_clip_val=1.0)"
        )
        warn(self.reasons[split])

    def summary_entries(self) -> dict[str, Any]:
        """``{"diverged": True, "diverged_reason": ...}`` (the test split's reason when it has
        one), or nothing."""
        if not self.reasons:
            return {}
        reason = self.reasons.get("test") or next(iter(self.reasons.values()))
        return {"diverged": True, "diverged_reason": reason}


@rank_zero_only
def warn(reason: str) -> None:
    log.warning(f"warning: {reason}")


def divergence_of(trainer: L.Trainer | None) -> dict[str, Any]:
    """The summary entries of the trainer's ``DivergenceCheck`` (nothing without one)."""
    for callback in trainer.callbacks if trainer is not None else []:
        if isinstance(callback, DivergenceCheck):
            return callback.summary_entries()
    return {}
