"""Fetching and verifying dataset files: checksums, atomic downloads, and errors that say what to do."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


class DataError(RuntimeError):
    """Base class of dataset errors; the message always names the file involved."""


class ChecksumError(DataError):
    """A data file's content does not match its published checksum."""

    def __init__(
        self, path: Path, expected: str, actual: str, what: str = "", advice: str = ""
    ) -> None:
        self.path, self.expected, self.actual = Path(path), expected, actual
        super().__init__(
            f"Checksum mismatch for {path}{what}: expected sha256 {expected}, got {actual}. "
            + (
                advice
                or "The file is corrupt or not the expected dataset; it was left in place. "
                "Delete it to download it again, or replace it with a correct copy."
            )
        )


class DataMissingError(DataError):
    """A data file is absent and could not be downloaded."""

    def __init__(self, target: Path, url: str, reason: str) -> None:
        self.target, self.url = Path(target), url
        super().__init__(
            f"Data file {target} is missing and could not be downloaded from {url} ({reason}). "
            f"On a machine without internet, download {url} elsewhere and place it at {target} "
            "(or point the data directory there: paths.data_dir=... or env ARGEN_DATA_DIR)."
        )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` atomically (temp file + rename), verifying ``sha256``.

    Raises ``DataMissingError`` when the download fails and ``ChecksumError`` when the downloaded
    bytes are wrong (the partial file is removed; nothing at ``target`` is touched).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        if sha256 is not None:
            actual = sha256_file(tmp)
            if actual != sha256:
                raise ChecksumError(
                    target,
                    sha256,
                    actual,
                    what=f" (downloaded from {url})",
                    advice="The download was discarded; try again or place a correct copy there.",
                )
        tmp.replace(target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataMissingError(target, url, f"{type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target
