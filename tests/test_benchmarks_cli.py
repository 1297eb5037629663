"""The benchmark scripts' own arithmetic: what they hand to train.py must be valid."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Timer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from likelihood import max_time  # noqa: E402


@pytest.mark.parametrize(
    ("minutes", "seconds"), [(0.5, 30), (29.5, 1770), (140, 8400), (60 * 25 + 1, 90060)]
)
def test_a_budget_in_minutes_is_a_duration_lightning_accepts(minutes, seconds):
    """Budgets of an hour or more were written as 140 minutes, which Lightning refuses."""
    assert Timer(duration=max_time(minutes))._duration == seconds
