"""The benchmark scripts' own arithmetic: what they hand to train.py must be valid."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Timer

from argen.report.terminal_record import recorded_output
from argen.training.budget import max_time_of_minutes
from argen.training.summary import SUMMARY_VERSION

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_a_script_imports_only_argen_never_another_script_or_sys_path(script):
    """Code two scripts share lives in argen; a script neither imports another nor edits sys.path."""
    tree = ast.parse(script.read_text())
    siblings = {p.stem for p in BENCHMARKS.glob("*.py")} | {"benchmarks"}
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert not imported & siblings, f"{script.name} imports {sorted(imported & siblings)}"
    assert "sys.path" not in script.read_text()


def test_recorded_output_writes_what_was_printed_after_the_command(tmp_path, capsys):
    out = tmp_path / "speed" / "table.txt"
    with recorded_output(out, ["benchmarks/x.py", "--steps", "2"]):
        print("model  ex/s")
    assert capsys.readouterr().out == "model  ex/s\n"  # still printed
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith(" UTC")
    assert lines[1:] == ["# $ python benchmarks/x.py --steps 2", "model  ex/s"]


def test_a_failed_recorded_run_leaves_the_file_as_it_was(tmp_path):
    out = tmp_path / "table.txt"
    out.write_text("earlier\n")
    with pytest.raises(RuntimeError), recorded_output(out, ["x.py"]):
        print("half a table")
        raise RuntimeError("measurement failed")
    assert out.read_text() == "earlier\n"


@pytest.mark.parametrize(
    ("minutes", "seconds"), [(0.5, 30), (29.5, 1770), (140, 8400), (60 * 25 + 1, 90060)]
)
def test_a_budget_in_minutes_is_a_duration_lightning_accepts(minutes, seconds):
    """Budgets of an hour or more were written as 140 minutes, which Lightning refuses."""
    assert Timer(duration=max_time_of_minutes(minutes))._duration == seconds


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
    published = json.loads((target / "summary.json").read_text())
    assert published["output_dir"] == "logs/.../run"
    assert published["version"] == SUMMARY_VERSION  # an older summary is published as current
