"""Binarized MNIST, in its two standard forms.

* ``variant="fixed"`` (default): the fixed stochastic binarization of Salakhutdinov & Murray (2008)
  as published by Larochelle & Murray (2011), split 50k/10k/10k. This is the benchmark on which
  NADE, MADE, PixelCNN and PixelRNN report test NLL in nats.
* ``variant="dynamic"``: MNIST (torchvision's file layout, ``<data_dir>/MNIST/raw``), with a fresh
  Bernoulli draw of every training image in every epoch (done on the device) and validation/test
  binarized once with a fixed seed; train/val are a seeded 50k/10k split of the 60k training
  images.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from argen.data.download import (
    ChecksumError,
    DataMissingError,
    InvalidDataError,
    download,
    sha256_bytes,
)
from argen.data.image import SPLITS, ImageDataModule
from argen.data.mnist_files import MNIST_TRAIN_SIZE, fetch_mnist, load_mnist

log = logging.getLogger(__name__)

AMAT_URL = (
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{}.amat"
)
# sha256 of the decompressed .amat files; they match TensorFlow Datasets' url_checksums for these
# URLs (tensorflow/datasets, url_checksums/binarized_mnist.txt), as recorded in shared/data/README.md.
AMAT_SHA256 = {
    "train": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "valid": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "test": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
}
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}  # split -> file name part
NUM_PIXELS = 784


def parse_amat(data: bytes, source: Path) -> np.ndarray:
    """Parse the ``.amat`` text format ("0 1 0 ... 0\\n", 784 digits a line) into uint8 [N, 784]."""
    line_bytes = 2 * NUM_PIXELS
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0 or raw.size % line_bytes:
        raise ValueError(
            f"{source} is not a binarized MNIST .amat file: {raw.size} bytes is not a whole number "
            f"of {NUM_PIXELS}-pixel lines"
        )
    rows = raw.reshape(-1, line_bytes)
    digits, separators = rows[:, 0::2] - ord("0"), rows[:, 1::2]
    if digits.max() > 1 or not np.all((separators == ord(" ")) | (separators == ord("\n"))):
        raise ValueError(f"{source} is not a binarized MNIST .amat file: unexpected characters")
    return np.ascontiguousarray(digits)


def read_amat(path: Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read ``.amat`` or ``.amat.gz``, verifying the sha256 of the decompressed text."""
    path = Path(path)
    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise ChecksumError(path, expected_sha256 or "?", f"unreadable ({exc})") from exc
    if expected_sha256 is not None:
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            raise ChecksumError(path, expected_sha256, actual, what=" (decompressed content)")
    return parse_amat(data, path)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ARGEN_CACHE_DIR", Path.home() / ".cache" / "argen"))


class BinarizedMNISTDataModule(ImageDataModule):
    """Binarized MNIST as float {0,1} batches ``(B, 1, 28, 28)``; see the module docstring."""

    name = "binarized_mnist"
    shape = (1, 28, 28)
    num_levels = 2

    def __init__(
        self,
        data_dir: str | Path,
        variant: Literal["fixed", "dynamic"] = "fixed",
        download: bool = True,
        cache_dir: str | Path | None = None,
        split_seed: int = 0,
        batch_size: int = 100,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_device: bool | Literal["auto"] = "auto",
        max_examples: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, on_device, max_examples)
        if variant not in ("fixed", "dynamic"):
            raise InvalidDataError(
                f"data.datamodule.variant must be 'fixed' or 'dynamic', got {variant!r}"
            )
        self.data_dir = Path(data_dir).expanduser()
        self.variant = variant
        self.download = download
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.split_seed = split_seed

    # ------------------------------------------------------------------ fixed
    def amat_path(self, split: str) -> Path:
        """The file for ``split`` under ``<data_dir>/binarized_mnist/`` (``.amat`` or ``.amat.gz``)."""
        folder = self.data_dir / "binarized_mnist"
        name = f"binarized_mnist_{SPLIT_FILES[split]}.amat"
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.exists():
                return candidate
        return folder / name

    def _cache_path(self, split: str) -> Path:
        checksum = AMAT_SHA256[SPLIT_FILES[split]]
        return self.cache_dir / "binarized_mnist" / f"{SPLIT_FILES[split]}-{checksum[:16]}.npy"

    def _fetch_fixed(self, split: str) -> Path:
        """The ``.amat`` file of ``split``, downloaded first if absent (and allowed)."""
        path = self.amat_path(split)
        if path.exists():
            return path
        url = AMAT_URL.format(SPLIT_FILES[split])
        if not self.download:
            raise DataMissingError(path, url, "download=false")
        log.info("Downloading %s to %s", url, path)
        return download(url, path, AMAT_SHA256[SPLIT_FILES[split]])

    def fetch(self, splits: Collection[str]) -> None:
        """Download the files ``splits`` need: the fixed split's ``.amat`` (unless cached), or
        the MNIST file pairs behind the dynamic variant."""
        if self.variant == "fixed":
            for split in splits:
                if not self._cache_path(split).exists():
                    self._fetch_fixed(split)
        else:
            for source in sorted({"test" if split == "test" else "train" for split in splits}):
                fetch_mnist(self.data_dir, source, self.download)

    def _load_fixed(self, split: str) -> np.ndarray:
        cache = self._cache_path(split)
        if cache.exists():
            try:
                return np.load(cache)
            except (OSError, ValueError):
                log.warning("Ignoring unreadable cache file %s", cache)
        path = self._fetch_fixed(split)
        array = read_amat(path, AMAT_SHA256[SPLIT_FILES[split]])
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, array)
            tmp.replace(cache)
        except OSError as exc:  # a read-only cache only costs speed
            log.warning("Could not cache %s at %s: %s", path, cache, exc)
        return array

    # ---------------------------------------------------------------- dynamic
    def _load_dynamic(self, splits: Collection[str]) -> dict[str, tuple[torch.Tensor, None]]:
        """Train/val: a seeded 50k/10k split of MNIST's training images; val and test binarized
        once from one seeded generator, in that order.

        Without val, the generator is advanced by a draw of val's shape instead (one uniform per
        pixel whatever the probabilities), so the test split alone binarizes exactly as it does
        next to val, without reading the training files.
        """
        generator = torch.Generator().manual_seed(self.split_seed)
        train = None
        if "train" in splits or "val" in splits:
            train = load_mnist(self.data_dir, "train", self.download)[0]
        perm = torch.randperm(
            MNIST_TRAIN_SIZE if train is None else len(train), generator=generator
        )

        def binarize_once(images: torch.Tensor) -> torch.Tensor:
            return torch.bernoulli(images.float() / 255, generator=generator).to(torch.uint8)

        out: dict[str, tuple[torch.Tensor, None]] = {}
        if train is not None:
            # grey levels for train: binarized per batch on the device
            out["train"] = (train[perm[:50_000]][:, None], None)
            out["val"] = (binarize_once(train[perm[50_000:]])[:, None], None)
        elif "test" in splits:
            torch.bernoulli(torch.zeros(len(perm) - 50_000, 28, 28), generator=generator)
        if "test" in splits:
            test = load_mnist(self.data_dir, "test", self.download)[0]
            out["test"] = (binarize_once(test)[:, None], None)
        return {split: out[split] for split in splits}

    def load_splits(
        self, splits: Collection[str] = SPLITS
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        if self.variant == "dynamic":
            return self._load_dynamic(splits)
        return {
            split: (torch.from_numpy(self._load_fixed(split)).reshape(-1, *self.shape), None)
            for split in splits
        }

    def transform_train_images(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "dynamic":
            return torch.bernoulli(x.float() / 255)
        return x.float()
