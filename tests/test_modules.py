"""The shared base LightningModule (``argen.modules.base``): every family logs the same metric
names, and a split's metric is the exact mean over its examples, a short last batch included."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from argen.data.in_memory import TensorBatches, batch_loader
from argen.data.text import TextDataModule
from argen.models.autoencoder import Autoencoder
from argen.models.char_rnn import CharRNN
from argen.models.fvsbn import FVSBN
from argen.modules import ARModule, SplitMean
from argen.modules.autoencoder import AutoencoderModule
from argen.modules.density import DensityModule
from argen.modules.text import TextModule

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (1, 2, 3)
SGD = functools.partial(torch.optim.SGD, lr=0.1)

LIKELIHOOD = {"train/loss", "train/nll", "train/bits_per_dim", "val/nll", "val/bits_per_dim"}
EXPECTED = {  # family -> (names after fit, names of test)
    "density": (LIKELIHOOD, {"test/nll", "test/bits_per_dim"}),
    "text": (
        LIKELIHOOD | {"val/unknown_chars"},
        {"test/nll", "test/bits_per_dim", "test/unknown_chars"},
    ),
    "autoencoder": (
        {"train/loss", "train/recon_loss", "val/recon_loss"},
        {"test/recon_loss"},
    ),
}


def trainer(**kwargs) -> L.Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "log_every_n_steps": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(**{**defaults, **kwargs})


def images(n: int = 10) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, *SHAPE), 0.4))


def image_loaders(n: int = 10, batch_size: int = 4):
    data = images(n)
    return batch_loader(TensorBatches(data), batch_size, False)


def family(name: str, tmp_path: Path) -> tuple[ARModule, dict]:
    """A tiny module of the family and the data to fit and test it on."""
    torch.manual_seed(0)
    if name == "density":
        loader = image_loaders()
        return DensityModule(FVSBN(SHAPE), optimizer=SGD), {
            "train_dataloaders": loader,
            "val_dataloaders": loader,
        }
    if name == "autoencoder":
        loader = image_loaders()
        net = Autoencoder(SHAPE, hidden_size=4, code_size=2)
        return AutoencoderModule(net, optimizer=SGD), {
            "train_dataloaders": loader,
            "val_dataloaders": loader,
        }
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the king shall speak and we hear him now, good lord. " * 8)
    dm = TextDataModule(str(tmp_path), path=str(corpus), seq_len=16, batch_size=8)
    dm.setup()
    net = CharRNN(dm.vocab_size, hidden_size=8, num_layers=1)
    return TextModule(net, optimizer=SGD, sample_length=0), {"datamodule": dm}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_family_logs_the_shared_metric_names(tmp_path, name):
    """The same names in every family (text adds unknown_chars); the autoencoder has no
    likelihood, so recon_loss stands in for nll and bits_per_dim."""
    module, data = family(name, tmp_path)
    fit = trainer(limit_train_batches=2, limit_val_batches=2)
    fit.fit(module, **data)
    after_fit, after_test = EXPECTED[name]
    assert set(fit.callback_metrics) == after_fit
    assert module.monitor in after_fit  # what checkpoints and plateau schedulers watch
    test_data = data.get("datamodule") or data["val_dataloaders"]
    tested = trainer(limit_test_batches=2).test(module, test_data, verbose=False)[0]
    assert set(tested) == after_test


@pytest.mark.parametrize(
    "name, kind", [("density", "image"), ("autoencoder", "image"), ("text", "text")]
)
def test_a_module_reports_the_kind_of_data_its_network_declares(tmp_path, name, kind):
    """run.py's units (per image or per character) follow the network's ``capabilities``."""
    module, _ = family(name, tmp_path)
    assert module.data_kind == kind


def test_the_autoencoder_config_monitors_what_its_module_logs():
    config = yaml.safe_load((ROOT / "conf" / "model" / "autoencoder.yaml").read_text())
    assert config["monitor"] == AutoencoderModule.monitor == "val/recon_loss"
    assert DensityModule.monitor == TextModule.monitor == "val/nll"


def test_split_nll_is_the_exact_mean_over_a_short_last_batch():
    """10 validation examples in batches of 4, 4 and 2: the mean over examples, not batches."""
    torch.manual_seed(0)
    data = images(10)
    net = FVSBN(SHAPE)
    with torch.no_grad():
        net.weight.normal_()
        net.bias.normal_()
    module = DensityModule(net, optimizer=SGD)
    metrics = trainer().validate(module, batch_loader(TensorBatches(data), 4, False), verbose=False)
    with torch.no_grad():
        nll = -net.log_prob(data)
    batch_means = torch.stack([part.mean() for part in nll.split(4)]).mean()
    assert metrics[0]["val/nll"] == pytest.approx(nll.mean().item(), rel=1e-6)
    assert metrics[0]["val/nll"] != pytest.approx(batch_means.item(), rel=1e-4)
    bits = nll.mean().item() / (math.prod(SHAPE) * math.log(2))
    assert metrics[0]["val/bits_per_dim"] == pytest.approx(bits, rel=1e-6)


def test_split_mean_merges_processes_by_summing_sums_and_counts():
    """DDP reduces each process's SumMetric states by summing them (``merge_state`` applies the
    same reduction): 7 examples on one process and 2 on another average as 9 examples."""
    values = torch.arange(9, dtype=torch.float32) ** 2
    first, second = SplitMean(), SplitMean()
    assert not first.updated
    first.update(values[:4].sum(), 4)
    first.update(values[4:7].sum(), 3)
    second.update(values[7:].sum(), 2)
    first.total.merge_state(second.total)
    first.count.merge_state(second.count)
    assert first.updated
    torch.testing.assert_close(first.compute(), values.mean())
    first.reset()
    assert not first.updated
    first.update(torch.tensor(0.0), 0)  # a process that saw no example: no mean, not 0/0
    assert first.compute() is None
