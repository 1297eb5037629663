"""A benchmark's terminal output, also written to a file by the benchmark itself (``--out``).

Files under ``results/`` are written by commands, never pasted: a script run with ``--out PATH``
prints as usual and, when it finishes without an error, writes everything it printed to ``PATH``
after a header naming the command that made it and when. A failed run leaves ``PATH`` as it was.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from argen.core.atomic import atomic_write


class _Tee(io.TextIOBase):
    """Text written here goes to ``stream`` and is kept."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.kept.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def header(argv: Sequence[str], now: datetime.datetime | None = None) -> str:
    """``# <UTC time>`` and ``# $ python <argv>``: what made the file, to rerun it."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"# {now:%Y-%m-%d %H:%M} UTC\n# $ python {shlex.join(argv)}\n"


@contextlib.contextmanager
def recorded_output(out: str | Path | None, argv: Sequence[str] | None = None) -> Iterator[None]:
    """Print as usual; with ``out``, also write what was printed to ``out`` on a clean exit."""
    if out is None:
        yield
        return
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    atomic_write(out, header(list(sys.argv if argv is None else argv)) + tee.kept.getvalue())
