"""Errors a user can fix, and how the command-line tools report them: one line, no traceback.

A wrong override, a missing file or an unusable checkpoint is the user's to fix, so the message
says what was wrong and what to do; a stack trace would only bury it. ``HYDRA_FULL_ERROR=1`` (the
switch Hydra users already know) shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn

from argen.core.atomic import DiskFullError, find_disk_full


class ConfigError(ValueError):
    """A config value or combination argen cannot run, found before anything expensive starts."""


def one_line(text: str) -> str:
    """``text`` with every line break (and the spaces around it) folded into one space."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()


class DataError(RuntimeError):
    """Base class of dataset errors (``argen.data.download`` has the kinds); the message is one
    line and always names the file involved."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the file named and the reason."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types reported as one line."""
    # FloatingPointError: the non-finite training loss (``argen.modules.amortized.GroupedSteps.
    # check_finite_losses``), whose message names the step and what to change; numpy raises it
    # only under ``seterr("raise")``, which argen never sets.
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


# The user's own HYDRA_FULL_ERROR while train.py has Hydra compose with it forced to "1"
# (``argen.training.compose_errors``); empty otherwise.
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


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single ``error: ...`` line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
