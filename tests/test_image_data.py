"""8-bit image DataModules: .npz arrays (NHWC/NCHW, labels), CIFAR-10 and MNIST via torchvision."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import types
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

from argen.data import cifar_files, mnist_files
from argen.data.download import ChecksumError, DataError, DataMissingError, sha256_file
from argen.data.image_npz import ImageNPZDataModule
from argen.data.torchvision_images import CIFAR10DataModule, MNISTDataModule
from tests.conftest import DATA_DIR, needs_data


def no_network(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


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


@pytest.mark.parametrize(
    ("bad", "shape", "said"),
    [
        ("test_images", (6, 8, 5, 3), "(C, H, W) = (3, 8, 5) vs (3, 6, 5)"),  # height
        ("test_images", (6, 6, 4, 3), "(C, H, W) = (3, 6, 4) vs (3, 6, 5)"),  # width
        ("test_images", (6, 6, 5, 1), "(C, H, W) = (1, 6, 5) vs (3, 6, 5)"),  # channels
        ("val_images", (4, 6, 5, 4), "(C, H, W) = (4, 6, 5) vs (3, 6, 5)"),
    ],
)
def test_npz_splits_of_different_image_shapes_fail_when_the_file_is_read(
    tmp_path, bad, shape, said
):
    arrays = write_npz(tmp_path / "ok.npz", "nhwc", with_val=True)
    arrays[bad] = np.zeros(shape, np.uint8)
    np.savez(tmp_path / "mixed.npz", **arrays)
    with pytest.raises(ValueError) as info:
        ImageNPZDataModule(tmp_path / "mixed.npz", layout="nhwc")  # the constructor reads it
    message = str(info.value)
    assert isinstance(info.value, DataError) and "\n" not in message
    assert f"{bad} has shape {shape} but train_images has shape (10, 6, 5, 3)" in message
    assert said in message and str(tmp_path / "mixed.npz") in message


def test_npz_labels_must_match_the_images_in_number(tmp_path):
    arrays = write_npz(tmp_path / "ok.npz", "nhwc")
    arrays["test_labels"] = np.zeros(5, np.int64)  # 6 test images
    np.savez(tmp_path / "labels.npz", **arrays)
    with pytest.raises(ValueError, match="test_labels has shape \\(5,\\) but test_images has 6"):
        ImageNPZDataModule(tmp_path / "labels.npz")
    ok = ImageNPZDataModule(tmp_path / "ok.npz").load_splits(("test",))  # consistent: loads
    assert len(ok["test"][0]) == len(ok["test"][1]) == 6


def test_missing_npz_says_to_pass_the_path(tmp_path):
    with pytest.raises(DataMissingError) as info:
        ImageNPZDataModule("nothere.npz", data_dir=tmp_path).prepare_data(stage="test")
    message = str(info.value)
    assert str(tmp_path / "nothere.npz") in message and "data.datamodule.path=" in message
    assert "could not be downloaded" not in message and "\n" not in message


def test_unreadable_npz_is_a_one_line_error(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.npz cannot be read as a .npz") as info:
        ImageNPZDataModule(tmp_path / "junk.npz")
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)


@needs_data("cifar10_subset")
def test_shared_cifar10_subset_loads_with_labels():
    dm = ImageNPZDataModule("cifar10_subset/cifar10_subset.npz", data_dir=DATA_DIR)
    dm.setup()
    assert dm.shape == (3, 32, 32) and dm.num_classes == 10
    assert len(dm.splits["test"]) == 1000
    assert dm.splits["test"].labels[:5].tolist() == [3, 8, 8, 0, 6]  # shared/data/README.md


def fake_cifar10(root, monkeypatch, splits=("train", "test")) -> dict[str, np.ndarray]:
    """CIFAR-10's python-pickle layout with random images; their md5s replace the published ones."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    checksums: dict[str, dict[str, str]] = {"train": {}, "test": {}}
    rows = {}
    for split, names in (
        ("train", [f"data_batch_{i}" for i in range(1, 6)]),
        ("test", ["test_batch"]),
    ):
        for name in names:
            batch = {
                "data": rng.integers(0, 256, (1200, 3072), dtype=np.uint8),
                "labels": rng.integers(0, 10, 1200).tolist(),
            }
            rows[name] = batch["data"]
            checksums[split][name] = hashlib.md5(pickle.dumps(batch)).hexdigest()
            if split in splits:
                (folder / name).write_bytes(pickle.dumps(batch))
    monkeypatch.setattr(cifar_files, "CIFAR10_BATCH_MD5", checksums)
    return rows


def test_cifar10_split_is_seeded_and_pixels_stay_integers(tmp_path, monkeypatch):
    fake_cifar10(tmp_path, monkeypatch)
    monkeypatch.setattr(CIFAR10DataModule, "num_val", 500)
    first = CIFAR10DataModule(tmp_path, download=False)
    first.setup()
    assert {k: len(v) for k, v in first.splits.items()} == {"train": 5500, "val": 500, "test": 1200}
    assert first.splits["train"].images.dtype == torch.uint8
    assert first.splits["train"].images.shape[1:] == (3, 32, 32)
    again = CIFAR10DataModule(tmp_path, download=False)
    again.setup()
    assert torch.equal(first.splits["val"].images, again.splits["val"].images)


def test_cifar10_missing_without_network_says_where_to_put_the_archive(tmp_path, monkeypatch):
    with pytest.raises(DataMissingError) as info:
        CIFAR10DataModule(tmp_path, download=False).prepare_data()
    assert "cifar-10-python.tar.gz" in str(info.value) and str(tmp_path) in str(info.value)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataMissingError) as info:
        CIFAR10DataModule(tmp_path / "empty").prepare_data()
    message = str(info.value)
    assert cifar_files.CIFAR10_URL in message and "network is unreachable" in message
    assert f"place it at {tmp_path / 'empty' / 'cifar-10-python.tar.gz'}" in message
    assert "\n" not in message and info.value.__cause__ is None
    assert not (tmp_path / "empty").exists()  # no folder left behind by the failed download


def test_cifar10_test_split_reads_only_the_test_batch(tmp_path, monkeypatch):
    rows = fake_cifar10(tmp_path, monkeypatch, splits=("test",))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    dm = CIFAR10DataModule(tmp_path)
    dm.prepare_data(stage="test")
    dm.setup("test")
    assert set(dm.splits) == {"test"}
    images = dm.splits["test"].images
    assert np.array_equal(images.reshape(len(images), -1).numpy(), rows["test_batch"])
    with pytest.raises(DataMissingError, match="cifar-10-python.tar.gz"):
        dm.setup("fit")  # the training batches really are absent


def test_cifar10_archive_is_downloaded_verified_and_extracted(tmp_path, monkeypatch):
    source = tmp_path / "source"
    rows = fake_cifar10(source, monkeypatch)
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    payload = archive.read_bytes()
    monkeypatch.setattr(cifar_files, "CIFAR10_ARCHIVE_MD5", hashlib.md5(payload).hexdigest())
    urls = []

    def serve(url, timeout=None):
        urls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    dm = CIFAR10DataModule(tmp_path / "data")
    dm.setup("test")
    assert urls == [cifar_files.CIFAR10_URL]
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").read_bytes() == payload
    images = dm.splits["test"].images
    assert np.array_equal(images.reshape(len(images), -1).numpy(), rows["test_batch"])
    dm.setup("fit")  # extracted once: the training batches are there now, no second download
    assert (
        urls == [cifar_files.CIFAR10_URL]
        and len(dm.splits["train"]) + len(dm.splits["val"]) == 6000
    )


def test_cifar10_corrupt_batch_is_rejected_by_its_md5(tmp_path, monkeypatch):
    fake_cifar10(tmp_path, monkeypatch, splits=("test",))
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-1] + b"x")
    with pytest.raises(ChecksumError, match="test_batch") as info:
        CIFAR10DataModule(tmp_path).setup("test")
    assert "md5" in str(info.value) and batch.exists()


# ------------------------------------------------------------------------------ MNIST
def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX layout of a uint8 array: 00 00 08 <ndim>, big-endian sizes, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def fake_mnist_files(rng) -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (12, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(rng.integers(0, 10, 12)),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (5, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(rng.integers(0, 10, 5)),
    }


def test_mnist_test_split_downloads_and_reads_only_the_test_files(tmp_path, monkeypatch):
    files = fake_mnist_files(np.random.default_rng(0))
    served = {name: gzip.compress(data) for name, data in files.items()}
    monkeypatch.setattr(
        mnist_files,
        "MNIST_GZ_MD5",
        {name: hashlib.md5(data).hexdigest() for name, data in served.items()},
    )
    urls = []

    def serve(url, timeout=None):
        urls.append(url)
        return io.BytesIO(served[url.rsplit("/", 1)[1].removesuffix(".gz")])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    dm = MNISTDataModule(tmp_path)
    dm.prepare_data(stage="test")
    mirror = mnist_files.MNIST_MIRRORS[0]
    assert urls == [f"{mirror}t10k-images-idx3-ubyte.gz", f"{mirror}t10k-labels-idx1-ubyte.gz"]
    dm.setup("test")
    assert len(urls) == 2 and set(dm.splits) == {"test"}
    assert dm.splits["test"].images.shape == (5, 1, 28, 28)
    assert dm.splits["test"].images[:, 0].numpy().tobytes() == files["t10k-images-idx3-ubyte"][16:]
    assert dm.splits["test"].labels.tolist() == list(files["t10k-labels-idx1-ubyte"][8:])
    # The checkpoint-evaluation path: a trainer running `test` makes prepare_data() (called by
    # Lightning without arguments) fetch the test files only.
    dm.trainer = types.SimpleNamespace(state=types.SimpleNamespace(fn=TrainerFn.TESTING))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    dm.prepare_data()
    dm.trainer = None
    with pytest.raises(DataMissingError, match="train-images-idx3-ubyte.gz"):
        dm.prepare_data()


def test_mnist_missing_without_network_names_each_file_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataMissingError) as info:
        MNISTDataModule(tmp_path / "data").setup("test")
    message = str(info.value)
    target = tmp_path / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    assert f"{mnist_files.MNIST_MIRRORS[0]}t10k-images-idx3-ubyte.gz" in message
    assert f"place it at {target}" in message and "ARGEN_DATA_DIR" in message
    assert "\n" not in message and info.value.__cause__ is None
    assert not (tmp_path / "data").exists()


def test_mnist_truncated_file_is_a_one_line_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in fake_mnist_files(np.random.default_rng(0)).items():
        (raw / name).write_bytes(data[:-3] if name.startswith("t10k-images") else data)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte is truncated") as info:
        MNISTDataModule(tmp_path, download=False).setup("test")
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)


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
