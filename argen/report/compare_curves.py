"""Learning curves for ``argen.compare``: validation NLL against a cumulative count (training
FLOPs, process CPU seconds, ...) for one row's runs, as the mean over seeds and a min-max band.

Each run's points are those of its ``epochs.csv`` (one per validation). Seeds that validated at
the same x (FLOPs and examples are the same for every seed of a set-up) are averaged point by
point. Where the x values differ (CPU seconds), every seed's curve is interpolated linearly in
log x at the union of the seeds' x values, inside the range that every seed covers: the band and
mean are drawn only where all seeds have measured points on both sides (nowhere when the seeds'
ranges do not overlap). Every seed's measured points are kept too (``seed_points``), so a figure
can show all of them. A run without the column contributes nothing: no x value is ever
reconstructed from a setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from argen.report.compare_rows import ModelRow
from argen.report.compare_runs import RunRecord

# The x axes drawn, with their titles: FLOPs show the architecture, CPU seconds its
# implementation on the machine that ran it.
CURVE_AXES = {
    "train_flops": "training FLOPs",
    "cpu_seconds": "process CPU seconds",
}


@dataclass
class SeedCurve:
    """One row's curve on one x axis: the mean over ``seeds`` runs and the min and max (empty
    arrays when the seeds' x ranges do not overlap), and each seed's measured points."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: int
    aligned: bool  # every seed validated at the same x values (no interpolation)
    seed_points: list[tuple[np.ndarray, np.ndarray]]


def run_points(run: RunRecord, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A run's (x, y) points with both values present and x > 0, sorted by x; None if none."""
    if run.curve is None or x_key not in run.curve or y_key not in run.curve:
        return None
    pairs = [
        (x, y)
        for x, y in zip(run.curve[x_key], run.curve[y_key], strict=True)
        if x is not None and y is not None and x > 0
    ]
    if not pairs:
        return None
    pairs.sort()
    xs, ys = zip(*pairs, strict=True)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _same_x(points: Sequence[tuple[np.ndarray, np.ndarray]]) -> bool:
    first = points[0][0]
    return all(len(x) == len(first) and np.allclose(x, first, rtol=1e-9) for x, _ in points)


def seed_curve(rows_runs: Sequence[RunRecord], x_key: str, y_key: str) -> SeedCurve | None:
    """Mean and min-max band over the runs that have the curve; None when none has it."""
    points = [p for p in (run_points(r, x_key, y_key) for r in rows_runs) if p is not None]
    if not points:
        return None
    if _same_x(points):
        x = points[0][0]
        ys = np.stack([y for _, y in points])
        aligned = True
    else:
        lo = max(float(x[0]) for x, _ in points)
        hi = min(float(x[-1]) for x, _ in points)
        x = np.unique(np.concatenate([x for x, _ in points]))
        x = x[(x >= lo) & (x <= hi)]  # empty when the ranges do not overlap
        ys = np.stack([np.interp(np.log(x), np.log(px), py) for px, py in points])
        aligned = False
    if not len(x):
        empty = np.empty(0)
        return SeedCurve(empty, empty, empty, empty, len(points), aligned, points)
    mean, low, high = ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)
    return SeedCurve(x, mean, low, high, len(points), aligned, points)


def y_key(metric: str) -> str:
    """The epochs.csv column of the compared metric."""
    return "val/nll" if metric == "nll" else "val/bits_per_dim"


def row_curves(row: ModelRow, metric: str) -> dict[str, SeedCurve]:
    """{x axis: curve} for the axes of ``CURVE_AXES`` on which the row has one."""
    curves = {}
    for x_key in CURVE_AXES:
        curve = seed_curve(row.runs, x_key, y_key(metric))
        if curve is not None:
            curves[x_key] = curve
    return curves


def without_curves(rows: Sequence[ModelRow], metric: str) -> list[ModelRow]:
    """The rows with the metric but no learning curve on any axis (runs written before
    epochs.csv recorded cumulative FLOPs and CPU seconds)."""
    return [
        row for row in rows if row.metric(metric).mean is not None and not row_curves(row, metric)
    ]
