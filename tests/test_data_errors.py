"""A newcomer's first contact without the data: every dataset fails with one line that names the
file, the URL and where to put it, leaves no folder behind, and evaluation fetches only the split it
scores (through Lightning's own ``prepare_data()``/``setup(stage)`` calls)."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from argen.data import binarized_mnist as bm
from argen.data.binarized_mnist import BinarizedMNISTDataModule
from argen.data.cifar_files import CIFAR10_URL
from argen.data.download import DataError, DataMissingError, sha256_bytes
from argen.data.mnist_files import MNIST_MIRRORS
from argen.data.text import TINY_SHAKESPEARE_URL, TextDataModule
from argen.data.torchvision_images import CIFAR10DataModule, MNISTDataModule


def refuse_network(calls: list[str]):
    def urlopen(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    return urlopen


# (factory, URL that must be named, file that must be named, relative to the data dir)
DATASETS = {
    "binarized_mnist": (
        lambda d, c: BinarizedMNISTDataModule(d, cache_dir=c),
        bm.AMAT_URL.format("train"),
        "binarized_mnist/binarized_mnist_train.amat",
    ),
    "binarized_mnist_dynamic": (
        lambda d, c: BinarizedMNISTDataModule(d, variant="dynamic", cache_dir=c),
        f"{MNIST_MIRRORS[0]}t10k-images-idx3-ubyte.gz",
        "MNIST/raw/t10k-images-idx3-ubyte.gz",
    ),
    "mnist": (
        lambda d, c: MNISTDataModule(d),
        f"{MNIST_MIRRORS[0]}t10k-images-idx3-ubyte.gz",
        "MNIST/raw/t10k-images-idx3-ubyte.gz",
    ),
    "cifar10": (lambda d, c: CIFAR10DataModule(d), CIFAR10_URL, "cifar-10-python.tar.gz"),
    "tinyshakespeare": (
        lambda d, c: TextDataModule(str(d)),
        TINY_SHAKESPEARE_URL,
        "tinyshakespeare/input.txt",
    ),
}


@pytest.mark.parametrize("name", DATASETS)
def test_offline_first_run_is_one_clear_line_and_leaves_no_folder(tmp_path, monkeypatch, name):
    factory, url, relpath = DATASETS[name]
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", refuse_network(calls))
    data_dir = tmp_path / "empty"  # does not exist, as in paths.data_dir=/tmp/empty
    with pytest.raises(DataMissingError) as info:
        factory(data_dir, tmp_path / "cache").prepare_data()
    message = str(info.value)
    assert isinstance(info.value, DataError) and "\n" not in message
    assert url in message and f"place it at {data_dir / relpath}" in message
    assert "Temporary failure in name resolution" in message  # why, in the same line
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert calls and not data_dir.exists()  # it tried, and took its folders back
    assert not (tmp_path / "cache").exists()


class MeanPixel(L.LightningModule):
    """The smallest module ``Trainer.test``/``validate`` can run: it logs the mean pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def test_step(self, batch, batch_idx):
        self.log("mean", batch[0].mean() + self.anchor, batch_size=len(batch[0]))

    def validation_step(self, batch, batch_idx):
        self.log("mean", batch[0].mean() + self.anchor, batch_size=len(batch[0]))


def amat(images: np.ndarray) -> bytes:
    return b"".join((" ".join(map(str, row)) + "\n").encode() for row in images)


def test_trainer_test_fetches_and_reads_only_the_test_file(tmp_path, monkeypatch):
    """``argen.evaluate``'s path, unchanged: ``trainer.test(module, datamodule=dm)`` makes
    Lightning call ``dm.prepare_data()`` and ``dm.setup("test")``; with only the test file on
    disk, nothing is downloaded and the training file is never asked for."""
    present, absent = "test", "valid"
    images = (np.random.default_rng(0).random((7, 784)) < 0.3).astype(np.uint8)
    text = amat(images)
    folder = tmp_path / "data" / "binarized_mnist"
    folder.mkdir(parents=True)
    with gzip.open(folder / f"binarized_mnist_{present}.amat.gz", "wb") as handle:
        handle.write(text)
    checksums = {
        "train": "0" * 64,
        "valid": "0" * 64,
        "test": "0" * 64,
        present: sha256_bytes(text),
    }
    monkeypatch.setattr(bm, "AMAT_SHA256", checksums)
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", refuse_network(calls))
    dm = BinarizedMNISTDataModule(tmp_path / "data", cache_dir=tmp_path / "cache", batch_size=4)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    results = trainer.test(MeanPixel(), datamodule=dm, verbose=False)
    assert calls == [] and set(dm.splits) == {"test"}
    assert results[0]["mean"] == pytest.approx(images.mean(), abs=1e-6)
    assert sorted(p.name for p in folder.iterdir()) == [f"binarized_mnist_{present}.amat.gz"]
    # `validate` needs the validation file, which is absent: the error names it, not the train file.
    with pytest.raises(DataMissingError, match=f"binarized_mnist_{absent}.amat") as info:
        trainer.validate(MeanPixel(), datamodule=dm, verbose=False)
    assert "binarized_mnist_train" not in str(info.value)


def test_stage_names_map_to_the_splits_they_read():
    from argen.data.image import splits_for

    assert splits_for("fit") == ("train", "val")
    assert splits_for("validate") == ("val",) and splits_for("test") == ("test",)
    assert splits_for(None) == ("train", "val", "test")
    with pytest.raises(ValueError, match="unknown stage 'tset'"):
        splits_for("tset")


def test_a_failed_download_keeps_folders_that_existed_or_were_filled(tmp_path, monkeypatch):
    """Only empty folders the download created go; the user's data dir and anything in it stay."""
    from argen.data.download import download

    monkeypatch.setattr(urllib.request, "urlopen", refuse_network([]))
    (tmp_path / "data").mkdir()
    with pytest.raises(DataMissingError):
        download("https://example.invalid/f.bin", tmp_path / "data" / "a" / "b" / "f.bin")
    assert (tmp_path / "data").is_dir() and list((tmp_path / "data").iterdir()) == []
    keep = tmp_path / "data" / "a" / "other.txt"
    keep.parent.mkdir()
    keep.write_text("user file")
    with pytest.raises(DataMissingError):
        download("https://example.invalid/f.bin", tmp_path / "data" / "a" / "b" / "f.bin")
    assert keep.read_text() == "user file" and sorted(Path(keep.parent).iterdir()) == [keep]
