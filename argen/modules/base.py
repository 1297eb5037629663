"""The LightningModule every family builds on: one place for what they all share.

* optimizer and scheduler construction (``argen.modules.optim``), with the plateau scheduler watching
  the module's ``monitor`` (what the best checkpoint is chosen on);
* exact per-split means: each split keeps a (sum, count) pair of torchmetrics ``SumMetric``s,
  which DDP reduces by summing, so every example counts exactly once, a short last batch
  included, however the examples are spread over processes;
* the same metric names in every family: ``train/loss`` on the logger's steps, and at the end of
  each epoch ``{split}/nll`` (nats per example; per character for text) and
  ``{split}/bits_per_dim`` (``nll / (D ln 2)`` with ``D`` the dimensions of an example: pixels
  times channels for images, 1 for a character of text). A family without a likelihood (the
  autoencoder) names its split mean otherwise (``split_metrics``).

Samples and images are not logged here: a module exposes them (``visuals``, ``last_sample``) and
the callbacks in ``argen.training.callbacks`` log them.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import SumMetric

from argen.models.base import capabilities_of
from argen.modules.optim import (
    MONITOR,
    OptimizerFactory,
    SchedulerFactory,
    check_interval,
    configure_optimizers,
)
from argen.modules.step_logging import is_logging_step

SPLITS = ("train", "val", "test")


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _key(split: str) -> str:
    # nn.Module attributes named "train" already exist: the metric containers use "train_".
    return f"{split}_"


class SplitMean(nn.Module):
    """A split's total and example count as two ``SumMetric``s: their ratio is the exact mean over
    every example seen since the last reset, reduced over DDP processes by summing both."""

    def __init__(self) -> None:
        super().__init__()
        # "disable": no per-update NaN scan (a host sync); a NaN loss shows as a NaN mean rather
        # than being dropped from the sum while still counted.
        self.total = SumMetric(nan_strategy="disable")
        self.count = SumMetric(nan_strategy="disable")

    def update(self, total: torch.Tensor | float, count: torch.Tensor | int) -> None:
        """Add ``count`` examples whose values sum to ``total``."""
        self.total.update(total)
        self.count.update(count)

    @property
    def updated(self) -> bool:
        """Whether anything was added since the last reset."""
        return bool(self.count.update_called)

    def compute(self) -> torch.Tensor | None:
        """The mean over every example added on all processes since the last reset, None when
        there was none. Under DDP it is collective: every process must call it."""
        count = self.count.compute()
        if not count.item():  # the same on every process: the count is already reduced
            return None
        return self.total.compute() / count

    def reset(self) -> None:
        self.total.reset()
        self.count.reset()


class ARModule(L.LightningModule):
    """Base of argen's LightningModules: optimizers, ``monitor``, exact per-split means and the
    metric names shared by every family.

    A subclass feeds the split means with ``_add_train`` (each training step, cheap: a running
    sum, handed to the metric once an epoch) and ``_add`` (validation and test batches); the
    base logs them at the end of each epoch under ``split_metrics``' names.

    Args:
        optimizer: factory called with the parameters, e.g. ``partial(torch.optim.Adam, lr=1e-3)``.
        scheduler: optional factory called with the optimizer.
        scheduler_interval: ``"epoch"`` or ``"step"`` (after every optimizer step: what
            ``argen.modules.optim.warmup_cosine`` expects), for every family alike.
        num_dims: dimensions of one example, the ``D`` of bits/dim (1 for a character).
    """

    monitor = MONITOR  # the validation metric checkpoints and plateau schedulers watch

    @property
    def data_kind(self) -> str:
        """What the network models (``image`` or ``text``: the units run.py reports in), as its
        class declares in ``capabilities``; never a second declaration to keep in step."""
        return capabilities_of(self.net).data

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        num_dims: int = 1,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = check_interval(scheduler_interval)  # refused before training
        self.num_dims = int(num_dims)
        self.split_means = nn.ModuleDict({_key(s): SplitMean() for s in SPLITS})
        # The epoch's training total as a running (sum, count): a torchmetrics update every step
        # costs ~60 us, 1-2 % of a MADE step on a CPU; the metric gets the total once an epoch.
        self._train_total: torch.Tensor | None = None
        self._train_count = 0

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook it calls (some 40 times a batch in its
        # automatic loop); torch's Module.__setattr__ first checks the value against Parameter,
        # Module and Buffer, about 3 us a time on a CPU. It is a plain string attribute.
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    # ----------------------------------------------------------------- metrics
    def bits_per_dim(self, nll_nats: torch.Tensor) -> torch.Tensor:
        """Nats per example -> bits per dimension (bits per character for text)."""
        return nll_nats / (self.num_dims * math.log(2))

    def split_metrics(self, split: str, mean: torch.Tensor) -> dict[str, torch.Tensor]:
        """What to log as ``{split}/<name>`` from the split's exact mean (the first entry, and
        bits/dim outside training, on the progress bar): the NLL in nats per example and its
        bits/dim. Called once per split and
        epoch, so a subclass may read (and reset) metrics of its own here."""
        return {"nll": mean, "bits_per_dim": self.bits_per_dim(mean)}

    def _add(self, split: str, total: torch.Tensor, count: torch.Tensor | int) -> None:
        """Add ``count`` examples of ``split`` whose values (nats) sum to ``total``."""
        self.split_means[_key(split)].update(total, count)

    def _add_train(self, total: torch.Tensor, count: int) -> None:
        """Add a training step's (sum, count) to the epoch's running total."""
        total = total.detach()
        self._train_total = total if self._train_total is None else self._train_total + total
        self._train_count += int(count)

    def _log_step_loss(self, loss: torch.Tensor) -> None:
        """``train/loss`` (the step's mean loss) on the steps the logger writes."""
        if is_logging_step(self):
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)

    def _log_split(self, split: str) -> None:
        """Log the split's metrics for the epoch (nothing when it saw no example), then reset."""
        if split == "train" and self._train_count:
            self._add("train", self._train_total, self._train_count)
            self._train_total, self._train_count = None, 0
        metric = self.split_means[_key(split)]
        if not (metric.updated or _is_distributed()):
            return  # under DDP a process that saw no batch still joins the others' reduction
        mean = metric.compute()
        metric.reset()
        if mean is None:
            return
        for index, (name, value) in enumerate(self.split_metrics(split, mean).items()):
            # The value is already reduced over processes (the SumMetrics); sync_dist only keeps
            # Lightning from warning under DDP, and "max" of equal values returns them unchanged.
            self.log(
                f"{split}/{name}",
                value.float(),
                sync_dist=True,
                reduce_fx="max",
                prog_bar=index == 0 or (name == "bits_per_dim" and split != "train"),
            )

    def on_train_epoch_end(self) -> None:
        self._log_split("train")

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    # ------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        return configure_optimizers(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.scheduler_interval,
            monitor=self.monitor,
            manual=not self.automatic_optimization,
            max_steps=self._trainer.max_steps if self._trainer is not None else None,
        )
