"""Write a file so that its final name only ever holds a complete file: old or new, never part.

Every record of a run (``summary.json``, checkpoints, small marker files) is written to a temporary
file in the same directory, flushed to disk, and renamed over the final name with ``os.replace``,
which is atomic on POSIX and Windows within one file system. A crash, a kill or a full disk in the
middle of writing leaves the previous file (if any) untouched and no temporary file behind.

A full disk (``ENOSPC``, or a quota: ``EDQUOT``) is raised as :class:`DiskFullError`
naming the file, which the command-line tools print as one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


class DiskFullError(OSError):
    """The disk (or quota) filled up while writing ``path``; the files written before are intact
    (``argen.core.atomic`` never leaves a partial file under a final name)."""

    def __init__(self, path: object | None = None) -> None:
        self.path = path
        where = str(path) if path is not None else "the run's files"
        super().__init__(
            f"no space left on device while writing {where}: free some space (or write runs to "
            "another disk with paths.log_dir=DIR) and run again; ckpt_path=auto with "
            "hydra.run.dir=<run dir> resumes from the last checkpoint"
        )


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the operating system saying the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def find_disk_full(exc: BaseException) -> OSError | None:
    """The first "no space left on device" (or quota) ``OSError`` among ``exc``, its causes and the
    exceptions it was raised while handling."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if is_disk_full(current):
            return current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


TEMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; a record gets the mode open() would give it.
FILE_MODE = 0o666 & ~_read_umask()


@contextlib.contextmanager
def atomic_file(
    path: str | Path, mode: str = "wb", before_replace: Callable[[], None] | None = None
) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit, flush it to disk and
    rename it to ``path``. ``before_replace`` runs just before the rename (e.g. to move an
    earlier file aside), so it only happens once the new content is safely on disk.

    On any exception the temporary file is removed and ``path`` is left as it was; a full disk is
    re-raised as ``DiskFullError(path)`` (also when the writer, like ``torch.save``, reports it as
    another error raised while handling the ``OSError``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes a whole file: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
        )
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path) from exc
        raise
    temp = Path(temp_name)
    try:
        os.chmod(temp, FILE_MODE)
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        # torch.save reports a failed write as a RuntimeError raised while handling the OSError
        if not isinstance(exc, DiskFullError) and find_disk_full(exc) is not None:
            raise DiskFullError(path) from exc
        raise


def atomic_write(
    path: str | Path, data: str | bytes, before_replace: Callable[[], None] | None = None
) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, "w" if isinstance(data, str) else "wb", before_replace) as handle:
        handle.write(data)
