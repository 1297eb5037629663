"""An interrupted run's ``summary.json`` holds the command that resumes it (key ``resume``), as
README says: the run's own overrides, its directory, ``ckpt_path=auto``; and that command does
resume it."""

from __future__ import annotations

import json
import shlex

import pytest

from argen.training.resume_command import resume_command
from tests.conftest import needs_data, train_in_process
from tests.test_first_hour import MADE_TINY, train_cli


def test_the_command_repeats_the_overrides_and_points_at_the_run():
    command = resume_command(
        "/runs/a b",
        ["model=made", "ckpt_path=/old/last.ckpt", "trainer.max_epochs=3", "+x=my file.txt"],
    )
    assert command == (
        "python train.py model=made trainer.max_epochs=3 '+x=my file.txt' "
        "'hydra.run.dir=/runs/a b' ckpt_path=auto"
    )
    assert shlex.split(command)[-2:] == ["hydra.run.dir=/runs/a b", "ckpt_path=auto"]


def test_without_hydra_the_command_still_names_the_run_dir():
    assert resume_command("/runs/r", []) == "python train.py hydra.run.dir=/runs/r ckpt_path=auto"


@needs_data("binarized_mnist")
def test_an_interrupted_summary_holds_the_resume_command(tmp_path):
    overrides = [
        *MADE_TINY,
        "logger=csv",
        "+callbacks.stop._target_=tests.helpers.RaiseAtStep",
        "+callbacks.stop.step=0",
        "+callbacks.stop.kind=keyboard",
    ]
    with pytest.raises(SystemExit) as info:
        train_in_process(tmp_path, *overrides)
    assert info.value.code == 130
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    words = shlex.split(summary["resume"])
    assert words[:2] == ["python", "train.py"]
    assert words[-2:] == [f"hydra.run.dir={tmp_path / 'run'}", "ckpt_path=auto"]
    assert "model=made" in words and "model.module.net.hidden_sizes=[16]" in words


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_the_resume_command_of_a_stopped_run_finishes_it(tmp_path):
    run_dir = tmp_path / "logs" / "runs" / "stopped"
    first = train_cli(
        tmp_path,
        *MADE_TINY,
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        "+callbacks.stop._target_=tests.helpers.RaiseAtStep",
        "+callbacks.stop.step=2",
        "+callbacks.stop.kind=keyboard",
    )
    assert first.returncode == 130, first.stderr[-3000:]
    stopped = json.loads((run_dir / "summary.json").read_text())
    command = shlex.split(stopped["resume"])
    assert command[:2] == ["python", "train.py"] and command[-1] == "ckpt_path=auto"
    assert f"Run stopped; resume it with: {stopped['resume']}" in first.stdout + first.stderr
    # As the user would run it, less the callback that stopped the first run.
    args = [a for a in command[2:] if not a.startswith("+callbacks.stop")]
    second = train_cli(tmp_path, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    finished = json.loads((run_dir / "summary.json").read_text())
    assert finished["status"] == "finished" and finished["epochs"] == 2
    assert "Resuming from" in second.stdout + second.stderr
