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


def test_publish_run_copies_the_runs_own_epochs_csv(tmp_path):
    """The run's epochs.csv holds the cumulative cost the learning curves need: it is copied whole,
    not rebuilt from the CSV log (which lacks those columns)."""
    import json
    import subprocess

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("model:\n  name: made\n")
    (run / "summary.json").write_text(json.dumps({"model": "made", "data": "binarized_mnist"}))
    own = "epoch,examples_seen,train_flops,cpu_seconds,val/nll\n0,100,1.0e9,2.5,120.0\n"
    (run / "epochs.csv").write_text(own)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "publish_run.py"), str(run)]
        + ["--experiment", "made_x", "--to", str(tmp_path / "results")],
        capture_output=True,
        text=True,
        check=True,
    )
    target = tmp_path / "results" / "binarized_mnist" / "made_x"
    assert str(target) in result.stdout
    assert (target / "epochs.csv").read_text() == own
    assert json.loads((target / "summary.json").read_text())["output_dir"] == "logs/.../run"
