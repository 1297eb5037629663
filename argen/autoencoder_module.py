"""LightningModule for the autoencoder baseline: reconstruction loss and reconstruction images.

The autoencoder defines no distribution over x, so this module logs ``*/recon_loss`` and never an
NLL or bits/dim; asking it for samples raises the model's ``NotADensityError``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from argen.optim import OptimizerFactory, SchedulerFactory, configure_optimizers
from argen.step_logging import is_logging_step

MONITOR = "val/recon_loss"


class AutoencoderModule(L.LightningModule):
    """Trains ``net`` (an ``Autoencoder``) on its per-example reconstruction loss."""

    data_kind = "image"  # what train.py may pair it with (argen.config_checks)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.loss = nn.ModuleDict({s: MeanMetric() for s in ("train_", "val_", "test_")})
        self._examples: torch.Tensor | None = None

    @property
    def num_levels(self) -> int:
        return int(self.net.num_levels)

    def _images(self, batch) -> torch.Tensor:
        return batch[0] if isinstance(batch, list | tuple) else batch

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.net.reconstruction_loss(self._images(batch))
        self.loss["train_"].update(loss.detach())
        if is_logging_step(self):
            self.log("train/loss", loss.mean(), on_step=True, on_epoch=False, prog_bar=True)
        return loss.mean()

    def _evaluate(self, batch, stage: str, batch_idx: int) -> None:
        x = self._images(batch)
        if stage == "val" and batch_idx == 0:
            self._examples = x[:64].detach()
        self.loss[f"{stage}_"].update(self.net.reconstruction_loss(x))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", batch_idx)

    def _log_epoch(self, stage: str) -> None:
        metric = self.loss[f"{stage}_"]
        if metric.update_called:
            self.log(f"{stage}/recon_loss", metric.compute(), prog_bar=True)
            metric.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def sample(self, n: int, **kwargs) -> torch.Tensor:
        return self.net.sample(n, **kwargs)  # raises NotADensityError, with the reason

    @torch.no_grad()
    def visuals(self, n: int) -> dict[str, torch.Tensor]:
        """Validation images and their reconstructions (in the same level scale)."""
        if self._examples is None:
            return {}
        x = self._examples[:n]
        return {"originals": x, "reconstructions": self.net(x) * (self.num_levels - 1)}

    def configure_optimizers(self):
        return configure_optimizers(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.scheduler_interval,
            monitor=MONITOR,
        )
