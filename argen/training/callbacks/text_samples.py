"""Text samples of a character model as a W&B table that grows by one row per validation.

``TextModule`` draws a sample after each validation (``last_sample``, at ``last_sample_step``);
this callback sends it to W&B, so that the module itself never calls W&B. The table
``samples/text`` (epoch, step, temperature, text) is logged whole at every validation, with the
epoch as its step metric: W&B shows a logged table as it was when logged, so the latest version
holds every epoch's sample, and the slider steps back through earlier ones. The rows travel in the
checkpoints, so a resumed run's table still starts at the first epoch.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

KEY = "samples/text"
COLUMNS = ["epoch", "step", "temperature", "text"]


class TextSamples(L.Callback):
    """Log each new validation sample of the module (rank zero; modules without samples are
    ignored) as the next row of the W&B table ``samples/text``."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the module's on_validation_epoch_end, which draws the sample.
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        text = getattr(pl_module, "last_sample", None)
        step = getattr(pl_module, "last_sample_step", None)
        if text is None or step is None or (self.rows and self.rows[-1][1] == step):
            return  # no sample, or none new since the last row (a second validation, a resume)
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        import wandb

        temperature = float(getattr(pl_module, "hparams", {}).get("temperature", 1.0))
        self.rows.append([int(trainer.current_epoch), int(step), temperature, text])

        table = wandb.Table(columns=COLUMNS, data=[list(row) for row in self.rows])
        for logger in loggers:
            logger.log_metrics({KEY: table, "epoch": trainer.current_epoch}, step=step)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [list(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [list(row) for row in state_dict.get("rows", [])]
