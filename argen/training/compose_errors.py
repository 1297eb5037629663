"""Hydra's composition errors (a misspelt group choice, an unknown key, an override that does not
parse) as one ``error: ...`` line with exit code 2, like every other error the user can fix.

Hydra composes the config before ``train.py``'s task function runs and, unless
``HYDRA_FULL_ERROR=1``, prints such an error itself (20 lines, the config search path included)
and exits with 1. ``composition_errors_in_one_line`` asks Hydra to raise instead, only while it
composes: the task function calls ``restore_full_error_setting`` first thing, so errors inside a
run, and the processes a run starts (DDP), see the user's own setting again. Until then
``argen.core.errors.full_traceback_requested`` reads the user's setting, so that a Hydra callback's
one-line error (``argen.training.run_dir_guard``) stays one line.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
    SearchPathException,
)

from argen.core.errors import (
    USER_FULL_ERROR,
    ConfigError,
    exit_with_error,
    find_user_error,
    full_traceback_requested,
)

FULL_ERROR = "HYDRA_FULL_ERROR"
COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException, SearchPathException)
# How a missing choice of a group is named: "model=madee is not a model".
GROUP_NOUNS = {"model": "a model", "data": "a dataset", "experiment": "an experiment"}
GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def restore_full_error_setting() -> None:
    """Put ``HYDRA_FULL_ERROR`` back as the user set it (idempotent; a no-op outside the CLI)."""
    if not USER_FULL_ERROR:
        return
    previous = USER_FULL_ERROR.pop()
    if previous is None:
        os.environ.pop(FULL_ERROR, None)
    else:
        os.environ[FULL_ERROR] = previous


@contextmanager
def composition_errors_in_one_line() -> Iterator[None]:
    """Run a ``@hydra.main`` function so that a composition error ends the command with one line
    and exit code 2 (or its full traceback when the user set ``HYDRA_FULL_ERROR=1``)."""
    USER_FULL_ERROR[:] = [os.environ.get(FULL_ERROR)]
    os.environ[FULL_ERROR] = "1"  # Hydra raises instead of printing; see restore_full_error_setting
    try:
        yield
    except Exception as exc:
        # Raised before the task function restored the setting: by composition, or by a Hydra
        # callback (argen.training.run_dir_guard), whose one-line report the forced setting turned into
        # a raise. Anything else keeps its traceback.
        restore_full_error_setting()
        user_error = find_user_error(exc)
        if full_traceback_requested() or not (
            isinstance(exc, COMPOSITION_ERRORS) or user_error is not None
        ):
            raise
        exit_with_error(user_error or ConfigError(describe_composition_error(exc)))
    finally:
        restore_full_error_setting()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def missing_choice(exc: MissingConfigException) -> str | None:
    """``model=madee is not a model (did you mean made?); choose one of: ...``, when Hydra says
    which group lacks the option and what the group holds; else None."""
    group_match = re.search(r"Available options in '([^']+)'", str(exc))
    if not exc.options or not exc.missing_cfg_file or group_match is None:
        return None
    group = group_match.group(1)
    name = exc.missing_cfg_file.removeprefix(group + "/")
    noun = GROUP_NOUNS.get(group, f"a {group} choice")
    close = difflib.get_close_matches(name, exc.options, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{group}={name} is not {noun}{hint}; choose one of: {', '.join(exc.options)}"


def describe_composition_error(exc: BaseException) -> str:
    """One line saying what in the command line was wrong and what to do."""
    if isinstance(exc, MissingConfigException):
        choice = missing_choice(exc)
        if choice is not None:
            return choice
    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse the override {exc.override!r}: {_first_line(exc.message)} "
            f"(quote values with special characters; see {GRAMMAR_URL})"
        )
    head, _, rest = str(exc).partition("\n")
    cause = _first_line(str(exc.__cause__)) if exc.__cause__ is not None else ""
    parts = [head.rstrip(".") + (f": {cause}" if cause else ""), *rest.splitlines()]
    return ". ".join(part.strip().rstrip(".") for part in parts if part.strip())
