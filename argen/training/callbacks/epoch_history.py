"""Keep every epoch's metrics in the checkpoints, so a W&B run resumed after a kill is complete.

A job killed with SIGKILL takes its W&B writer down with it: the last metrics it logged (often the
whole last epoch) never reach the offline run, and that part stays "running" for ever. Each
checkpoint therefore carries the epoch-level metrics logged so far; a run resumed from it logs them
again into its own part of the W&B run (so that part alone holds the full history) and marks the
parts that never finished.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from argen.core.atomic import atomic_write
from argen.training.callbacks.throughput import Throughput

HISTORY_KEY = "argen_epoch_history"
FINISHED_MARKER = "argen_exit_code"  # written beside a W&B run part that ended normally
DEAD_MARKER = "ARGEN_DEAD_PART.txt"
STEP_ONLY = ("train/loss",)  # per-step values: not part of an epoch's record
VALIDATIONS_KEY = "argen_validations"  # the rows of epochs.csv, in checkpoints
# epochs.csv: one row per validation of a fit, the cumulative measurements of training (argen's
# Throughput) before the validation metrics
CSV_COUNTS = (
    "epoch",
    "optimizer_steps",
    "examples_seen",
    "characters_seen",
    "train_flops",
    "cpu_seconds",
    "wall_seconds",
)


class EpochHistory(L.Callback):
    """Stores ``{epoch: {metric: value}}`` in every checkpoint; re-logs it to W&B on resume.
    With ``csv_path`` and ``meter`` it also writes ``epochs.csv`` there at every validation of a
    fit: the cumulative counts of ``meter`` (``CSV_COUNTS``) and the ``val/*`` metrics."""

    def __init__(self, csv_path: Path | None = None, meter: Throughput | None = None) -> None:
        self.rows: dict[int, dict[str, float]] = {}
        self.csv_path = csv_path
        self.meter = meter
        self.validations: list[dict[str, float | int]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if self.meter is None or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        row: dict[str, float | int] = {"epoch": int(trainer.current_epoch)}
        row.update(self.meter.counts(trainer))
        row.update(
            (name, float(value))
            for name, value in sorted(trainer.callback_metrics.items())
            if name.startswith("val/") and getattr(value, "numel", lambda: 1)() == 1
        )
        self.validations.append(row)
        self.write_csv()

    @rank_zero_only
    def write_csv(self) -> None:
        """Rewrite ``epochs.csv`` whole, atomically."""
        if self.csv_path is None or not self.validations:
            return
        names = {name for row in self.validations for name in row}
        columns = [c for c in CSV_COUNTS if c in names] + sorted(names - set(CSV_COUNTS))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.validations)
        atomic_write(self.csv_path, text.getvalue())

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        row = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name not in STEP_ONLY and getattr(value, "numel", lambda: 1)() == 1
        }
        row["trainer/global_step"] = float(trainer.global_step)
        self.rows[int(trainer.current_epoch)] = row
        checkpoint[HISTORY_KEY] = {str(k): v for k, v in self.rows.items()}
        checkpoint[VALIDATIONS_KEY] = [dict(row) for row in self.validations]

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self.rows = {int(k): dict(v) for k, v in checkpoint.get(HISTORY_KEY, {}).items()}
        self.validations = [dict(row) for row in checkpoint.get(VALIDATIONS_KEY, [])]

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
