"""Fetching and verifying dataset files: checksums, atomic downloads, errors that say what to do.

Every ``DataError`` message is one line (newlines in the wrapped reasons are folded), because the
command-line tools print it as the whole report. A failed download leaves nothing behind: no
partial file and no folder that it created.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from argen.core.errors import DataError, one_line

DATA_DIR_HINT = (
    "or point the data directory at a folder that has it (paths.data_dir=... or env ARGEN_DATA_DIR)"
)


class InvalidDataError(DataError, ValueError):
    """The data, or the settings that say where it is and how to read it, cannot be used as given.

    It is also a ``ValueError``, so code that expects bad settings to raise one still catches it.
    """


class ChecksumError(DataError):
    """A data file's content does not match its published checksum."""

    def __init__(
        self,
        path: Path,
        expected: str,
        actual: str,
        what: str = "",
        advice: str = "",
        algorithm: str = "sha256",
    ) -> None:
        self.path, self.expected, self.actual = Path(path), expected, actual
        super().__init__(
            f"Checksum mismatch for {path}{what}: expected {algorithm} {expected}, got {actual}. "
            + (
                advice
                or "The file is corrupt or not the expected dataset; it was left in place. "
                "Delete it to download it again, or replace it with a correct copy."
            )
        )


class DataMissingError(DataError):
    """A data file is absent and could not be downloaded (or, with ``url=None``, is a local file
    the user has to provide)."""

    def __init__(self, target: Path, url: str | None, reason: str, advice: str = "") -> None:
        self.target, self.url, self.reason = Path(target), url, one_line(reason)
        if url is None:
            message = f"Data file {target} does not exist ({self.reason}). " + (
                advice or f"Put the file there, {DATA_DIR_HINT}."
            )
        else:
            message = (
                f"Data file {target} is missing and could not be downloaded from {url} "
                f"({self.reason}). "
                + (
                    advice
                    or f"Download {url} (on a machine with internet if this one has none) and "
                    f"place it at {target}, {DATA_DIR_HINT}."
                )
            )
        super().__init__(message)


def file_digest(path: Path, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (datasets can be larger than memory allows twice)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    return file_digest(path, "sha256", chunk_size)


def make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the folders created, deepest first."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty_dirs(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty: undoes ``make_dirs`` on failure."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else wrote there) or already gone
            return


def download(
    url: str,
    target: Path,
    sha256: str | None = None,
    timeout: float = 60.0,
    md5: str | None = None,
) -> Path:
    """Download ``url`` to ``target`` atomically (temp file + rename), verifying ``sha256``/``md5``.

    Raises ``DataMissingError`` when the download fails and ``ChecksumError`` when the downloaded
    bytes are wrong. Either way the partial file is removed, nothing at ``target`` is touched, and
    the folders created for ``target`` are removed again if they are empty. The network error is
    named in the message, not chained: the message is the whole report the user needs.
    """
    target = Path(target)
    try:
        created = make_dirs(target.parent)
    except OSError as exc:
        raise DataMissingError(target, url, f"cannot create its folder: {exc}") from None
    try:
        return _fetch(url, target, sha256, md5, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    finally:
        if not target.exists():
            remove_empty_dirs(created)
    raise DataMissingError(target, url, reason) from None


def _fetch(url: str, target: Path, sha256: str | None, md5: str | None, timeout: float) -> Path:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        for algorithm, expected in (("sha256", sha256), ("md5", md5)):
            if expected is not None and (actual := file_digest(tmp, algorithm)) != expected:
                raise ChecksumError(
                    target,
                    expected,
                    actual,
                    what=f" (downloaded from {url})",
                    advice="The download was discarded; try again or place a correct copy there.",
                    algorithm=algorithm,
                )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
