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


class RaiseAtStep(L.Callback):
    """Raise at ``step``: ``KeyboardInterrupt`` (a user's Ctrl-C) or a ``RuntimeError`` (a bug)."""

    def __init__(self, step: int, kind: str = "error") -> None:
        self.step, self.kind = step, kind

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # ">=": with amortized steps one training_step call advances global_step by several
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt if self.kind == "keyboard" else RuntimeError("boom at step")


class SigtermWhileSampling(L.Callback):
    """Send this process SIGTERM after the first sampled row of the first validation grid, and
    count the rows sampled after it (in ``<run dir>/rows_after_sigterm.txt``)."""

    def __init__(self) -> None:
        self.sent = False
        self.rows_after = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        from argen.models.sampling_progress import _callbacks

        _callbacks.append(self._on_row)
        self.out = os.path.join(trainer.default_root_dir, "rows_after_sigterm.txt")

    def _on_row(self, done: int, total: int) -> None:
        if self.sent:
            self.rows_after += 1
            with open(self.out, "w") as f:
                f.write(str(self.rows_after))
        else:
            self.sent = True
            with open(self.out, "w") as f:
                f.write("0")
            os.kill(os.getpid(), signal.SIGTERM)


def record_draws(monkeypatch) -> list[torch.Tensor]:
    """The parameters of every draw the raster sampling loop makes, in order: it draws through
    ``argen.models.cached_sampling.draw_levels`` only, for cached and naive sampling alike."""
    from argen.models import cached_sampling

    seen: list[torch.Tensor] = []
    original = cached_sampling.draw_levels

    def recording(head, params, temperature=1.0, generator=None):
        seen.append(params.clone())
        return original(head, params, temperature, generator)

    monkeypatch.setattr(cached_sampling, "draw_levels", recording)
    return seen
