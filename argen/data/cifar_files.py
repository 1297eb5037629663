"""CIFAR-10's python batches: download of the archive, extraction, md5 checks, and reading.

The layout is torchvision's: ``<data_dir>/cifar-10-python.tar.gz`` extracted to
``<data_dir>/cifar-10-batches-py/``. Reading the batches here rather than through
``torchvision.datasets.CIFAR10`` lets the test split load without the five training batches being
read or checked, and turns every failure into a one-line ``DataError``.
"""

from __future__ import annotations

import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from argen.data.download import (
    ChecksumError,
    DataMissingError,
    InvalidDataError,
    download,
    file_digest,
)

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
# Published md5 of every batch file (the same values torchvision checks), by split.
CIFAR10_BATCH_MD5: dict[str, dict[str, str]] = {
    "train": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    },
    "test": {"test_batch": "40351d587109b95175f43aff81a1287e"},
}


def cifar10_batches(data_dir: str | Path, split: str, allow_download: bool = True) -> list[Path]:
    """The batch files of ``split``, extracting (and first downloading) the archive if needed."""
    data_dir = Path(data_dir).expanduser()
    paths = [data_dir / CIFAR10_FOLDER / name for name in CIFAR10_BATCH_MD5[split]]
    if all(path.is_file() for path in paths):
        return paths
    archive = data_dir / CIFAR10_ARCHIVE
    if not archive.is_file():
        if not allow_download:
            raise DataMissingError(archive, CIFAR10_URL, "download=false")
        log.info("Downloading %s to %s", CIFAR10_URL, archive)
        download(CIFAR10_URL, archive, md5=CIFAR10_ARCHIVE_MD5)
    extract_batches(archive, data_dir)
    absent = [path.name for path in paths if not path.is_file()]
    if absent:
        raise InvalidDataError(
            f"{archive} has no {CIFAR10_FOLDER}/{absent[0]}: it is not the CIFAR-10 python "
            f"archive; delete it to download it again, or replace it with {CIFAR10_URL}"
        )
    return paths


def extract_batches(archive: Path, data_dir: Path) -> None:
    """Extract the ``cifar-10-batches-py/`` members of ``archive`` into ``data_dir``."""
    log.info("Extracting %s", archive)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith(f"{CIFAR10_FOLDER}/")
                and ".." not in Path(m.name).parts
                and (m.isfile() or m.isdir())
            ]
            # The "data" filter (Python >= 3.10.12) also refuses odd permissions and devices.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(data_dir, members=members, **safe)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidDataError(
            f"{archive} cannot be extracted ({type(exc).__name__}: {exc}); delete it to download "
            f"it again, or replace it with a correct copy of {CIFAR10_URL}"
        ) from None


def read_batch(path: Path, md5: str | None) -> tuple[np.ndarray, list[int]]:
    """Rows of 3072 bytes (R, G, B planes of 32x32) and labels of one pickled batch, md5-checked."""
    if md5 is not None and (actual := file_digest(path, "md5")) != md5:
        raise ChecksumError(path, md5, actual, algorithm="md5")
    try:
        with open(path, "rb") as handle:
            # The official batches are Python 2 pickles of numpy arrays and lists.
            entry = pickle.load(handle, encoding="latin1")
        return np.asarray(entry["data"], dtype=np.uint8), list(entry["labels"])
    except (pickle.UnpicklingError, OSError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise InvalidDataError(
            f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc}); delete "
            f"{path.parent} to extract it again"
        ) from None


def load_cifar10(
    data_dir: str | Path, split: str, allow_download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 [N, 3, 32, 32] and labels long [N] of CIFAR-10's 'train' or 'test' split."""
    checksums = CIFAR10_BATCH_MD5[split]
    rows, labels = [], []
    for path in cifar10_batches(data_dir, split, allow_download):
        data, batch_labels = read_batch(path, checksums.get(path.name))
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(batch_labels):
            raise InvalidDataError(
                f"{path} holds data of shape {data.shape} with {len(batch_labels)} labels, not "
                "CIFAR-10 rows of 3072 bytes with one label each"
            )
        rows.append(data)
        labels.extend(batch_labels)
    images = np.concatenate(rows).reshape(-1, 3, 32, 32)
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.long)
