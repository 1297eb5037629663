"""Row-by-row progress of the raster samplers, for whoever is waiting on them.

Sampling a PixelRNN takes seconds per image on a CPU; the samplers call ``report_row(done,
total)`` after each image row, and a caller that wants to show progress (or to stop early) wraps
the call in ``on_row(callback)``. Without a callback the report costs one attribute lookup. The
models stay free of any UI or training framework: the callback may raise to abandon sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

RowCallback = Callable[[int, int], None]
_callbacks: list[RowCallback] = []


def report_row(done: int, total: int) -> None:
    """Called by a sampler once ``done`` of its ``total`` rows are filled."""
    for callback in _callbacks:
        callback(done, total)


@contextmanager
def on_row(callback: RowCallback) -> Iterator[None]:
    """Call ``callback(done, total)`` after every sampled row inside the ``with`` block."""
    _callbacks.append(callback)
    try:
        yield
    finally:
        _callbacks.remove(callback)
