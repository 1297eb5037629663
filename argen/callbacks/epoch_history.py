"""Keep every epoch's metrics in the checkpoints, so a W&B run resumed after a kill is complete.

A job killed with SIGKILL takes its W&B writer down with it: the last metrics it logged (often the
whole last epoch) never reach the offline run, and that part stays "running" for ever. Each
checkpoint therefore carries the epoch-level metrics logged so far; a run resumed from it logs them
again into its own part of the W&B run (so that part alone holds the full history) and marks the
parts that never finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from argen.atomic import atomic_write

HISTORY_KEY = "argen_epoch_history"
FINISHED_MARKER = "argen_exit_code"  # written beside a W&B run part that ended normally
DEAD_MARKER = "ARGEN_DEAD_PART.txt"
STEP_ONLY = ("train/loss",)  # per-step values: not part of an epoch's record


class EpochHistory(L.Callback):
    """Stores ``{epoch: {metric: value}}`` in every checkpoint; re-logs it to W&B on resume."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, float]] = {}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        row = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name not in STEP_ONLY and getattr(value, "numel", lambda: 1)() == 1
        }
        row["trainer/global_step"] = float(trainer.global_step)
        self.rows[int(trainer.current_epoch)] = row
        checkpoint[HISTORY_KEY] = {str(k): v for k, v in self.rows.items()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self.rows = {int(k): dict(v) for k, v in checkpoint.get(HISTORY_KEY, {}).items()}

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.ckpt_path and self.rows:
            self.relog(trainer)

    @rank_zero_only
    def relog(self, trainer: L.Trainer) -> None:
        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            run = logger.experiment
            for epoch in sorted(self.rows):
                run.log({**self.rows[epoch], "epoch": epoch})
            dead = mark_dead_parts(Path(run.dir).parent)
            if dead:
                run.summary["argen/resumed_after_dead_parts"] = ", ".join(p.name for p in dead)
                rank_zero_info(
                    f"W&B: {len(self.rows)} epochs of history logged again into this part; "
                    f"earlier part(s) that never finished are marked: {', '.join(map(str, dead))}"
                )


def mark_dead_parts(current: Path) -> list[Path]:
    """Earlier offline parts of the same W&B run (same id) that never finished: write a note into
    each saying where the complete history is. Returns them."""
    run_id = current.name.rsplit("-", 1)[-1]
    dead = []
    for part in sorted(current.parent.glob(f"*-{run_id}")):
        if part == current or part.is_symlink() or (part / FINISHED_MARKER).exists():
            continue
        if not (part / DEAD_MARKER).exists():
            atomic_write(
                part / DEAD_MARKER,
                f"This part of W&B run {run_id} ended without finishing (the process was killed). "
                f"The run was resumed in {current.name}, which logs the complete epoch history "
                "again.\n",
            )
        dead.append(part)
    return dead
