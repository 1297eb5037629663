"""Errors a user can fix, and how the command-line tools report them: one line, no traceback.

A wrong override, a missing file or an unusable checkpoint is the user's to fix, so the message
says what was wrong and what to do; a stack trace would only bury it. ``HYDRA_FULL_ERROR=1`` (the
switch Hydra users already know) shows the full traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import NoReturn


class ConfigError(ValueError):
    """A config value or combination argen cannot run, found before anything expensive starts."""


class DiskFullError(OSError):
    """The disk (or quota) filled up while writing ``path``; the files written before are intact
    (``argen.atomic`` never leaves a partial file under a final name)."""

    def __init__(self, path: object | None = None) -> None:
        self.path = path
        where = str(path) if path is not None else "the run's files"
        super().__init__(
            f"no space left on device while writing {where}: free some space (or write runs to "
            "another disk with paths.log_dir=DIR) and run again; ckpt_path=auto with "
            "hydra.run.dir=<run dir> resumes from the last checkpoint"
        )


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types reported as one line (imported lazily: data and checkpoint modules
    pull in torch)."""
    from argen.checkpoint import CheckpointError
    from argen.data.download import DataError

    # FloatingPointError: the non-finite training loss (``DensityModule._check_finite``), whose
    # message names the step and what to change; numpy raises it only under ``seterr("raise")``,
    # which argen never sets.
    return ConfigError, DataError, CheckpointError, DiskFullError, FloatingPointError


def find_user_error(exc: BaseException) -> BaseException | None:
    """``exc`` or the user error it wraps (Hydra's ``instantiate`` wraps a constructor's error in an
    ``InstantiationException``), else None. A full disk anywhere in the chain, also while handling
    another error, is one: as a ``DiskFullError`` naming the file when the system said which."""
    kinds = user_errors()
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__
    full = find_disk_full(exc)
    if full is not None:
        return DiskFullError(full.filename2 or full.filename)
    return None


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
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


# The user's own HYDRA_FULL_ERROR while train.py has Hydra compose with it forced to "1"
# (``argen.compose_errors``); empty otherwise.
USER_FULL_ERROR: list[str | None] = []


def full_traceback_requested() -> bool:
    value = USER_FULL_ERROR[0] if USER_FULL_ERROR else os.environ.get("HYDRA_FULL_ERROR")
    return value == "1"


def exit_with_error(exc: BaseException, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` on one line to stderr and exit with ``code`` (or re-raise when
    ``HYDRA_FULL_ERROR=1``)."""
    if full_traceback_requested():
        raise exc
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code) from None
