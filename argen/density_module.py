"""LightningModule for density models of images (binary or K-level): training, exact evaluation,
metrics and sampling glue around any network that honours the ``log_prob``/``sample`` contract."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from argen.completion import complete_top_half
from argen.optim import OptimizerFactory, SchedulerFactory, configure_optimizers
from argen.step_logging import is_logging_step


class DensityModule(L.LightningModule):
    """Trains ``net`` by maximum likelihood and reports exact NLL in nats/example and bits/dim.

    Args:
        net: a density model (``log_prob(x) -> [B]`` nats, ``sample(n)``); if it defines
            ``training_loss(x) -> [B]`` (order-agnostic MADE/NADE) that is the training objective.
        optimizer: factory called with the parameters, e.g. ``partial(torch.optim.Adam, lr=1e-3)``.
        scheduler: optional factory called with the optimizer.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        conditional: pass labels ``y`` to ``log_prob``/``sample`` (class-conditional models).
        channels_last: keep convolutional networks and their inputs in channels-last memory
            format (faster convolutions on recent GPUs and some CPUs; same results).
    """

    data_kind = "image"  # what train.py may pair it with (argen.config_checks)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        conditional: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.conditional = conditional
        self.num_dims = int(net.num_dims)
        self.nll = nn.ModuleDict({s: MeanMetric() for s in ("train_", "val_", "test_")})
        self._val_examples: tuple[torch.Tensor, dict] | None = None
        # The epoch's training NLL as a running (sum, count): a torchmetrics update every step
        # cost ~60 us, 1-2 % of a MADE step on a CPU; the metric gets the total once an epoch.
        self._train_nll_sum: torch.Tensor | None = None
        self._train_count = 0

    # ----------------------------------------------------------------- steps
    def _inputs(self, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch if isinstance(batch, list | tuple) else (batch, None)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.conditional:
            if y is None:
                raise ValueError(
                    "conditional=true needs labelled data, but the batch has no labels"
                )
            return x, {"y": y}
        return x, {}

    def log_prob(self, batch) -> torch.Tensor:
        x, kwargs = self._inputs(batch)
        return self.net.log_prob(x, **kwargs)

    def bits_per_dim(self, nll_nats: torch.Tensor) -> torch.Tensor:
        return nll_nats / (self.num_dims * math.log(2))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, kwargs = self._inputs(batch)
        if hasattr(self.net, "training_loss"):
            loss_per_example = self.net.training_loss(x, **kwargs)
        else:
            loss_per_example = -self.net.log_prob(x, **kwargs)
        loss = loss_per_example.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Non-finite training loss ({loss.item()}) at global step {self.global_step}, "
                f"epoch {self.current_epoch}, batch {batch_idx}. Training stopped; the last saved "
                "checkpoint is unchanged. Lower the learning rate or enable gradient clipping "
                "(trainer.gradient_clip_val=1.0)."
            )
        batch_sum = loss_per_example.detach().sum()
        self._train_nll_sum = (
            batch_sum if self._train_nll_sum is None else self._train_nll_sum + batch_sum
        )
        self._train_count += loss_per_example.numel()
        if is_logging_step(self):
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        if batch_idx == 0:  # a few images kept for completions in the image logger
            x, kwargs = self._inputs(batch)
            self._val_examples = (x[:64], {k: v[:64] for k, v in kwargs.items()})
        self.nll["val_"].update(-self.log_prob(batch))

    def test_step(self, batch, batch_idx: int) -> None:
        self.nll["test_"].update(-self.log_prob(batch))

    def _log_epoch_metrics(self, stage: str) -> None:
        """Log the exact mean NLL of the epoch and its bits/dim, then reset.

        ``MeanMetric`` keeps (sum, count) and syncs both across processes, so every example counts
        exactly once, a partial last batch included.
        """
        metric = self.nll[f"{stage}_"]
        if not metric.update_called:
            return
        nll = metric.compute()
        metric.reset()
        self.log(f"{stage}/nll", nll, prog_bar=True)
        self.log(f"{stage}/bits_per_dim", self.bits_per_dim(nll), prog_bar=stage != "train")

    def on_train_epoch_end(self) -> None:
        if self._train_count:
            # a weighted update keeps (sum, count), so the DDP sync still averages every example
            mean = self._train_nll_sum / self._train_count
            self.nll["train_"].update(mean, weight=self._train_count)
            self._train_nll_sum, self._train_count = None, 0
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # -------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, **kwargs) -> torch.Tensor:
        """Draw ``n`` samples in eval mode (restoring the previous mode)."""
        was_training = self.net.training
        self.net.eval()
        try:
            if self.conditional and "y" not in kwargs:
                num_classes = int(self.net.num_classes)
                kwargs["y"] = torch.arange(n, device=self.device) % num_classes
            return self.net.sample(n, device=self.device, **kwargs)
        finally:
            self.net.train(was_training)

    def timed_sample(self, n: int) -> tuple[torch.Tensor, float]:
        """Samples and the wall time per sample in seconds."""
        start = time.perf_counter()
        samples = self.sample(n)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return samples, (time.perf_counter() - start) / n

    def configure_optimizers(self):
        return configure_optimizers(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.scheduler_interval,
        )

    # ----------------------------------------------------------- visuals
    @property
    def num_levels(self) -> int:
        return int(self.net.num_levels)

    def visuals(self, n: int) -> dict[str, torch.Tensor]:
        """Images for the image-logging callback: fresh samples, and completions of the top half
        of validation images for models that can complete (PixelCNN, Gated PixelCNN)."""
        images = {"samples": self.sample(n)}
        examples = self._val_examples
        if examples is not None and hasattr(self.net, "complete"):
            x, kwargs = examples
            was_training = self.net.training
            self.net.eval()
            try:
                images.update(
                    complete_top_half(self.net, x[:n], **{k: v[:n] for k, v in kwargs.items()})
                )
            finally:
                self.net.train(was_training)
        return images
