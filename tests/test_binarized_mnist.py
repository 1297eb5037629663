"""Binarized MNIST loading: real .amat/.amat.gz formats, checksums, caching, clear errors."""

import gzip
import io
import shutil
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from argen.data import binarized_mnist as bm
from argen.data.download import ChecksumError, DataMissingError, sha256_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_DATA = Path(__import__("os").environ.get("ARGEN_DATA_DIR", SHARED))


def amat_text(images: np.ndarray) -> bytes:
    """The exact .amat text layout: 784 digits separated by spaces, one image per line."""
    return b"".join((" ".join(map(str, row)) + "\n").encode() for row in images)


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    """A data directory with tiny train/valid/test files in the real formats (.amat and .amat.gz)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "binarized_mnist"
    folder.mkdir(parents=True)
    arrays, checksums = {}, {}
    for i, split in enumerate(["train", "valid", "test"]):
        images = (rng.random((20 + i, 784)) < 0.2).astype(np.uint8)
        text = amat_text(images)
        arrays[split], checksums[split] = images, sha256_bytes(text)
        path = folder / f"binarized_mnist_{split}.amat"
        if split == "test":
            with gzip.open(f"{path}.gz", "wb") as handle:
                handle.write(text)
        else:
            path.write_bytes(text)
    monkeypatch.setattr(bm, "AMAT_SHA256", checksums)
    return tmp_path, arrays


def module(root: Path, **kwargs) -> bm.BinarizedMNISTDataModule:
    return bm.BinarizedMNISTDataModule(root / "data", cache_dir=root / "cache", **kwargs)


def test_reads_amat_and_amat_gz(fake_data):
    root, arrays = fake_data
    dm = module(root)
    dm.setup()
    for split, name in [("train", "train"), ("val", "valid"), ("test", "test")]:
        images = dm.splits[split].images
        assert images.shape == (len(arrays[name]), 1, 28, 28)
        assert np.array_equal(images.reshape(len(images), -1).numpy(), arrays[name])


def test_batches_are_float_binary_and_the_last_partial_batch_is_kept(fake_data):
    root, arrays = fake_data
    dm = module(root, batch_size=8, eval_batch_size=8)
    dm.setup()
    batches = [dm.on_after_batch_transfer(b, 0) for b in dm.test_dataloader()]
    assert [len(x) for x, _ in batches] == [8, 8, 6]
    x = torch.cat([x for x, _ in batches])
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert np.array_equal(x.reshape(len(x), -1).numpy(), arrays["test"])


def test_second_start_uses_the_cache(fake_data):
    root, _ = fake_data
    module(root).setup()
    assert len(list((root / "cache" / "binarized_mnist").glob("*.npy"))) == 3
    for path in (root / "data" / "binarized_mnist").iterdir():
        path.unlink()  # the cache alone must now be enough
    start = time.perf_counter()
    module(root).setup()
    assert time.perf_counter() - start < 1.0


def test_corrupted_file_is_rejected_naming_the_file_and_checksums(fake_data):
    root, _ = fake_data
    path = root / "data" / "binarized_mnist" / "binarized_mnist_train.amat"
    data = bytearray(path.read_bytes())
    data[0] = ord("1") if data[0] == ord("0") else ord("0")
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        module(root).setup()
    message = str(info.value)
    assert str(path) in message and bm.AMAT_SHA256["train"] in message
    assert sha256_bytes(bytes(data)) in message
    assert path.exists(), "the user's file must not be deleted"


def test_truncated_gzip_is_rejected_naming_the_file(fake_data):
    root, _ = fake_data
    path = root / "data" / "binarized_mnist" / "binarized_mnist_test.amat.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ChecksumError, match=str(path)):
        module(root).setup()


def no_network(*args, **kwargs):
    raise urllib.error.URLError("no network")


def test_missing_files_without_network_name_the_url_and_target(tmp_path, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(DataMissingError) as info:
        module(tmp_path).prepare_data()
    message = str(info.value)
    assert bm.AMAT_URL.format("train") in message
    assert str(tmp_path / "data" / "binarized_mnist" / "binarized_mnist_train.amat") in message
    assert "place it at" in message and "no network" in message and "\n" not in message
    # The message is the whole report: the URLError is not chained into the traceback.
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # Nothing is left behind: no partial file, no empty binarized_mnist/ (nor data/) folder.
    assert not (tmp_path / "data").exists()


def test_missing_files_with_download_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(DataMissingError) as info:
        module(tmp_path, download=False).setup("test")
    message = str(info.value)
    assert "download=false" in message and bm.AMAT_URL.format("test") in message
    assert str(tmp_path / "data" / "binarized_mnist" / "binarized_mnist_test.amat") in message
    assert not (tmp_path / "data").exists()


def test_test_split_alone_needs_only_the_test_file(fake_data, monkeypatch):
    """``evaluate``'s path: with only the test file on disk nothing is downloaded or read."""
    root, arrays = fake_data
    folder = root / "data" / "binarized_mnist"
    (folder / "binarized_mnist_train.amat").unlink()
    (folder / "binarized_mnist_valid.amat").unlink()
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    dm = module(root)
    dm.prepare_data(stage="test")
    dm.setup("test")
    assert set(dm.splits) == {"test"}
    assert np.array_equal(dm.splits["test"].images.reshape(-1, 784).numpy(), arrays["test"])
    with pytest.raises(DataMissingError, match="binarized_mnist_train.amat"):
        dm.prepare_data()  # all splits, as train.py asks before training


def test_test_stage_downloads_only_the_test_file(tmp_path, monkeypatch):
    text = amat_text(np.eye(3, 784, dtype=np.uint8))
    monkeypatch.setattr(bm, "AMAT_SHA256", {**bm.AMAT_SHA256, "test": sha256_bytes(text)})
    urls = []

    def serve(url, timeout=None):
        urls.append(url)
        return io.BytesIO(text)

    monkeypatch.setattr("urllib.request.urlopen", serve)
    dm = module(tmp_path)
    dm.prepare_data(stage="test")
    assert urls == [bm.AMAT_URL.format("test")]
    assert [p.name for p in (tmp_path / "data" / "binarized_mnist").iterdir()] == [
        "binarized_mnist_test.amat"
    ]
    dm.setup("test")
    assert urls == [bm.AMAT_URL.format("test")] and len(dm.splits["test"]) == 3


def test_download_verifies_the_checksum(tmp_path, monkeypatch):
    """A download whose bytes are wrong is refused and leaves nothing behind, not even folders."""
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: io.BytesIO(b"0 1\n"))
    (tmp_path / "data").mkdir()  # the user's folder stays; only the one created for the file goes
    with pytest.raises(ChecksumError, match="downloaded from"):
        module(tmp_path).prepare_data()
    assert (tmp_path / "data").is_dir() and not list((tmp_path / "data").iterdir())


@pytest.mark.skipif(not (SHARED_DATA / "binarized_mnist").exists(), reason="no shared data")
def test_real_fixed_binarization_has_the_standard_split(tmp_path):
    dm = bm.BinarizedMNISTDataModule(SHARED_DATA, cache_dir=tmp_path)
    dm.setup()
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    # Fraction of ones published for the test split (shared/data/README.md): 0.13251.
    assert abs(dm.splits["test"].images.float().mean().item() - 0.13251) < 5e-5


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(), reason="no shared MNIST")
def test_dynamic_binarization_redraws_training_images_but_not_evaluation(tmp_path):
    dm = bm.BinarizedMNISTDataModule(SHARED_DATA, variant="dynamic", cache_dir=tmp_path)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {
        "train": 50_000,
        "val": 10_000,
        "test": 10_000,
    }
    grey = dm.splits["train"].images[:64]
    first, second = dm.transform_train_images(grey), dm.transform_train_images(grey)
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert (first[grey == 0] == 0).all() and (first[grey == 255] == 1).all()
    again = bm.BinarizedMNISTDataModule(SHARED_DATA, variant="dynamic", cache_dir=tmp_path)
    again.setup()
    assert torch.equal(dm.splits["test"].images, again.splits["test"].images)
    # The test split alone (only MNIST's t10k files present) binarizes to the very same images.
    raw = tmp_path / "only_test" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(SHARED_DATA / "MNIST" / "raw" / name, raw / name)
    alone = bm.BinarizedMNISTDataModule(
        tmp_path / "only_test", variant="dynamic", download=False, cache_dir=tmp_path
    )
    alone.setup("test")
    assert set(alone.splits) == {"test"}
    assert torch.equal(dm.splits["test"].images, alone.splits["test"].images)
