"""8-bit image DataModules: .npz arrays (NHWC/NCHW, labels), CIFAR-10 and MNIST via torchvision."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from argen.data.download import ChecksumError, DataMissingError, sha256_file
from argen.data.image_npz import ImageNPZDataModule
from argen.data.torchvision_images import CIFAR10DataModule, MNISTDataModule
from tests.conftest import DATA_DIR, needs_data


def write_npz(path, layout: str, with_val: bool = False, labels: bool = True):
    rng = np.random.default_rng(0)
    shape = (10, 6, 5, 3) if layout == "nhwc" else (10, 3, 6, 5)
    arrays = {
        "train_images": rng.integers(0, 256, shape, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (6, *shape[1:]), dtype=np.uint8),
    }
    if labels:
        arrays["train_labels"] = rng.integers(0, 7, 10)
        arrays["test_labels"] = rng.integers(0, 7, 6)
    if with_val:
        arrays["val_images"] = rng.integers(0, 256, (4, *shape[1:]), dtype=np.uint8)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_npz_images_in_either_layout_become_nchw_integer_levels(tmp_path, layout):
    arrays = write_npz(tmp_path / "images.npz", layout)
    dm = ImageNPZDataModule("images.npz", data_dir=tmp_path, val_fraction=0.2, batch_size=4)
    dm.setup()
    assert dm.shape == (3, 6, 5) and dm.net_overrides() == {"shape": [3, 6, 5]}
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 8, "val": 2, "test": 6}
    test = np.asarray(arrays["test_images"])
    expected = test.transpose(0, 3, 1, 2) if layout == "nhwc" else test
    assert np.array_equal(dm.splits["test"].images.numpy(), expected)
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.dtype == torch.float32 and x.shape == (4, 3, 6, 5) and y.dtype == torch.long
    assert torch.equal(x, x.round()) and x.max() <= 255
    # train + val together are exactly the training images (no overlap, nothing lost)
    joined = torch.cat([dm.splits["train"].images, dm.splits["val"].images]).numpy()
    train = arrays["train_images"]
    train = train.transpose(0, 3, 1, 2) if layout == "nhwc" else train
    assert sorted(map(bytes, joined)) == sorted(map(bytes, train))


def test_npz_with_an_ambiguous_layout_asks_for_it(tmp_path):
    np.savez(
        tmp_path / "a.npz",
        train_images=np.zeros((4, 3, 4, 3), np.uint8),
        test_images=np.zeros((2, 3, 4, 3), np.uint8),
    )
    with pytest.raises(ValueError, match="layout"):
        ImageNPZDataModule(tmp_path / "a.npz").setup()
    dm = ImageNPZDataModule(tmp_path / "a.npz", layout="nhwc")
    dm.setup()
    assert dm.shape == (3, 3, 4)


def test_npz_without_labels_and_with_its_own_validation_split(tmp_path):
    write_npz(tmp_path / "images.npz", "nhwc", with_val=True, labels=False)
    dm = ImageNPZDataModule(tmp_path / "images.npz")
    dm.setup()
    assert len(dm.splits["val"]) == 4 and dm.splits["train"].labels is None
    assert dm.num_classes is None


def test_npz_errors_name_the_file(tmp_path):
    with pytest.raises(DataMissingError, match="missing.npz"):
        ImageNPZDataModule(tmp_path / "missing.npz").setup()
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="train_images"):
        ImageNPZDataModule(tmp_path / "bad.npz").setup()
    write_npz(tmp_path / "ok.npz", "nhwc")
    with pytest.raises(ChecksumError, match="ok.npz"):
        ImageNPZDataModule(tmp_path / "ok.npz", sha256="0" * 64).setup()
    assert ImageNPZDataModule(tmp_path / "ok.npz", sha256=sha256_file(tmp_path / "ok.npz"))
    with pytest.raises(ValueError, match="num_levels"):
        ImageNPZDataModule(tmp_path / "ok.npz", num_levels=16).setup()


@needs_data("cifar10_subset")
def test_shared_cifar10_subset_loads_with_labels():
    dm = ImageNPZDataModule("cifar10_subset/cifar10_subset.npz", data_dir=DATA_DIR)
    dm.setup()
    assert dm.shape == (3, 32, 32) and dm.num_classes == 10
    assert len(dm.splits["test"]) == 1000
    assert dm.splits["test"].labels[:5].tolist() == [3, 8, 8, 0, 6]  # shared/data/README.md


def fake_cifar10(root):
    """CIFAR-10's python-pickle layout with random images (integrity check patched out)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (1200, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, 1200).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [str(i) for i in range(10)]})
    )


def test_cifar10_split_is_seeded_and_pixels_stay_integers(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    fake_cifar10(tmp_path)
    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(CIFAR10DataModule, "num_val", 500)
    first = CIFAR10DataModule(tmp_path, download=False)
    first.setup()
    assert {k: len(v) for k, v in first.splits.items()} == {"train": 5500, "val": 500, "test": 1200}
    assert first.splits["train"].images.dtype == torch.uint8
    assert first.splits["train"].images.shape[1:] == (3, 32, 32)
    again = CIFAR10DataModule(tmp_path, download=False)
    again.setup()
    assert torch.equal(first.splits["val"].images, again.splits["val"].images)


def test_cifar10_missing_without_network_says_where_to_put_the_archive(tmp_path):
    with pytest.raises(DataMissingError) as info:
        CIFAR10DataModule(tmp_path, download=False).prepare_data()
    assert "cifar-10-python.tar.gz" in str(info.value) and str(tmp_path) in str(info.value)


@needs_data("MNIST", "raw")
def test_mnist_has_256_levels_and_labels():
    dm = MNISTDataModule(DATA_DIR, download=False)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {
        "train": 50_000,
        "val": 10_000,
        "test": 10_000,
    }
    assert dm.splits["test"].images.max() == 255 and dm.splits["test"].labels[:3].tolist() == [
        7,
        2,
        1,
    ]
