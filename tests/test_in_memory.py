"""Batches sliced from in-memory tensors: every example once an epoch, labels kept with images."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from argen.data.in_memory import TensorBatches, batch_loader
from argen.models.fvsbn import FVSBN
from argen.modules.density import DensityModule


def test_shuffled_batches_cover_every_example_once_with_its_label():
    images = torch.arange(23, dtype=torch.uint8)[:, None, None, None].expand(23, 1, 2, 2).clone()
    labels = torch.arange(23) * 10
    loader = batch_loader(TensorBatches(images, labels), batch_size=5, shuffle=True)
    torch.manual_seed(0)
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [5, 5, 5, 5, 3]  # the partial last batch is kept
    x = torch.cat([x for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 2, 2)
    ids = x[:, 0, 0, 0].long()
    assert sorted(ids.tolist()) == list(range(23))
    assert ids.tolist() != list(range(23)), "shuffle=True must permute the examples"
    assert torch.equal(y, ids * 10), "each label must travel with its image"
    assert torch.equal(x, images[ids])


@pytest.mark.parametrize("batch_size", [4, 10])
def test_logged_training_nll_is_the_exact_mean_over_the_epoch(batch_size):
    """train/nll averages every example once, the partial last batch (10 = 4 + 4 + 2) included."""
    torch.manual_seed(0)
    images = torch.bernoulli(torch.full((10, 1, 2, 3), 0.4))
    net = FVSBN((1, 2, 3))
    with torch.no_grad():
        net.weight.normal_()
        net.bias.normal_()
    # lr = 0: the weights stay put, so an epoch's NLL is the NLL of the model it starts with;
    # the second epoch starts from shifted biases, so a sum carried over would show
    module = DensityModule(net, optimizer=functools.partial(torch.optim.SGD, lr=0.0))
    expected, logged = [], []

    class ShiftBiasesEachEpoch(L.Callback):
        # the module logs train/nll after the callbacks' epoch-end hooks: read it at the next start
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch:
                logged.append(trainer.callback_metrics["train/nll"].item())
            with torch.no_grad():
                net.bias.add_(trainer.current_epoch)
                expected.append(-net.log_prob(images).mean().item())

        def on_train_end(self, trainer, pl_module) -> None:
            logged.append(trainer.callback_metrics["train/nll"].item())

    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[ShiftBiasesEachEpoch()],
    )
    trainer.fit(module, train_dataloaders=batch_loader(TensorBatches(images), batch_size, True))
    assert len(expected) == 2 and expected[0] != pytest.approx(expected[1])
    assert logged == pytest.approx(expected, rel=1e-6)
