"""MNIST's IDX files: where they live, how to fetch them a split at a time, and how to read them.

The layout is torchvision's, ``<data_dir>/MNIST/raw/``, holding each file uncompressed (as in
shared/data) or gzipped (as downloaded); a folder torchvision filled works too. Reading the files
here rather than through ``torchvision.datasets.MNIST`` lets the test split load without the
training files and turns every failure into a one-line ``DataError``.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import torch

from argen.data.download import DataMissingError, InvalidDataError, download

log = logging.getLogger(__name__)

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# (images, labels) file of each split.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Published md5 of the .gz files as served by the mirrors (the same values torchvision checks).
MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_TRAIN_SIZE = 60_000


def mnist_raw_dir(data_dir: str | Path) -> Path:
    return Path(data_dir).expanduser() / "MNIST" / "raw"


def mnist_file(data_dir: str | Path, name: str, allow_download: bool = True) -> Path:
    """The file ``name`` (uncompressed or ``.gz``) under ``MNIST/raw``, downloaded if absent."""
    folder = mnist_raw_dir(data_dir)
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    target = folder / f"{name}.gz"
    urls = [f"{mirror}{name}.gz" for mirror in MNIST_MIRRORS]
    if not allow_download:
        raise DataMissingError(target, urls[0], "download=false")
    failure: DataMissingError | None = None
    for url in urls:
        try:
            log.info("Downloading %s to %s", url, target)
            return download(url, target, md5=MNIST_GZ_MD5.get(name))
        except DataMissingError as exc:  # try the next mirror; report the first
            failure = failure or exc
    assert failure is not None
    raise failure


def fetch_mnist(data_dir: str | Path, split: str, allow_download: bool = True) -> None:
    """Make sure the two files of ``split`` ('train' or 'test') are on disk."""
    for name in MNIST_FILES[split]:
        mnist_file(data_dir, name, allow_download)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz`` or not) as uint8 of the shape in its header."""
    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise InvalidDataError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); delete it to download it "
            "again, or replace it with a correct copy"
        ) from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise InvalidDataError(
            f"{path} is not an IDX file of unsigned bytes (it does not start with 00 00 08); "
            "delete it to download it again, or replace it with a correct copy"
        )
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise InvalidDataError(
            f"{path} is truncated or padded: its header says {dims} bytes of data but it has "
            f"{len(data) - offset}; delete it to download it again, or replace it"
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(dims)


def load_mnist(
    data_dir: str | Path, split: str, allow_download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 [N, 28, 28] and labels long [N] of MNIST's 'train' or 'test' file pair."""
    image_file, label_file = (mnist_file(data_dir, n, allow_download) for n in MNIST_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InvalidDataError(
            f"{image_file} (shape {images.shape}) and {label_file} (shape {labels.shape}) are not "
            "a matching MNIST images/labels pair"
        )
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
