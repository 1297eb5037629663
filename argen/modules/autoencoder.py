"""LightningModule for the autoencoder baseline: reconstruction loss and reconstruction images.

The autoencoder defines no distribution over x, so this module logs ``train/loss`` and
``{split}/recon_loss`` (the exact per-example mean, ``argen.modules.base``) and never an NLL or
bits/dim; asking it for samples raises the model's ``NotADensityError``.
"""

from __future__ import annotations

import torch
from torch import nn

from argen.modules.base import ARModule
from argen.modules.optim import OptimizerFactory, SchedulerFactory

MONITOR = "val/recon_loss"


class AutoencoderModule(ARModule):
    """Trains ``net`` (an ``Autoencoder``) on its per-example reconstruction loss."""

    monitor = MONITOR  # conf/model/autoencoder.yaml's monitor, for checkpoints

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        self.net = net
        self._examples: torch.Tensor | None = None

    @property
    def num_levels(self) -> int:
        return int(self.net.num_levels)

    def _images(self, batch) -> torch.Tensor:
        return batch[0] if isinstance(batch, list | tuple) else batch

    def split_metrics(self, split: str, mean: torch.Tensor) -> dict[str, torch.Tensor]:
        """The mean reconstruction loss per example: no likelihood, so no nll or bits/dim."""
        return {"recon_loss": mean}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.net.reconstruction_loss(self._images(batch))
        self._add_train(loss.sum(), loss.numel())
        self._log_step_loss(loss.mean())
        return loss.mean()

    def _evaluate(self, batch, stage: str, batch_idx: int) -> None:
        x = self._images(batch)
        if stage == "val" and batch_idx == 0:
            self._examples = x[:64].detach()
        loss = self.net.reconstruction_loss(x)
        self._add(stage, loss.sum(), loss.numel())

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", batch_idx)

    def sample(self, n: int, **kwargs) -> torch.Tensor:
        return self.net.sample(n, **kwargs)  # raises NotADensityError, with the reason

    @torch.no_grad()
    def visuals(self, n: int) -> dict[str, torch.Tensor]:
        """Validation images and their reconstructions (in the same level scale)."""
        if self._examples is None:
            return {}
        x = self._examples[:n]
        return {"originals": x, "reconstructions": self.net(x) * (self.num_levels - 1)}
