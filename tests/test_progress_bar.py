"""The throttled Rich progress bar skips per-batch work between updates and still ends complete."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar

from argen.data.in_memory import TensorBatches, batch_loader
from argen.models.fvsbn import FVSBN
from argen.modules.density import DensityModule
from argen.training.callbacks.progress import ThrottledRichProgressBar


def fit_with(bar: ThrottledRichProgressBar, monkeypatch) -> list[int]:
    """Two epochs of 7 batches; returns the batch indices at which the stock bar did its work."""
    updates: list[int] = []
    stock = RichProgressBar.on_train_batch_end

    def counting(self, trainer, pl_module, outputs, batch, batch_idx):
        updates.append(batch_idx)
        stock(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", counting)
    images = torch.bernoulli(torch.full((13, 1, 2, 2), 0.5))
    module = DensityModule(FVSBN((1, 2, 2)), optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[bar],
    )
    trainer.fit(module, train_dataloaders=batch_loader(TensorBatches(images), 2, True))
    task = bar.progress.tasks[bar.train_progress_bar_id]
    assert task.completed == task.total == 7, "the bar must end each epoch complete"
    return updates


def test_updates_only_first_and_last_batch_within_the_interval(monkeypatch):
    updates = fit_with(ThrottledRichProgressBar(min_interval=1e9), monkeypatch)
    assert updates == [0, 6, 0, 6]


def test_zero_interval_updates_every_batch(monkeypatch):
    updates = fit_with(ThrottledRichProgressBar(min_interval=0), monkeypatch)
    assert updates == list(range(7)) * 2


def test_negative_interval_is_refused():
    with pytest.raises(ValueError, match="min_interval"):
        ThrottledRichProgressBar(min_interval=-1)
