"""A newcomer's first hour: config and file errors are one line before anything starts, no record
is overwritten, stops and failures are recorded as such, and a run's output is quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from argen.core.errors import ConfigError
from argen.training.checkpoint import CheckpointError, read_checkpoint
from argen.training.run_dir_guard import check_run_dir
from tests.conftest import DATA_DIR, ROOT, is_installed, needs_data, read_summaries, run_train

MADE_TINY = [
    "model=made",
    "model.module.net.hidden_sizes=[16]",
    "data.datamodule.max_examples=200",
    "data.datamodule.batch_size=50",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=4",
    "summary.num_samples=2",
]


def train_cli(tmp_path: Path, *overrides: str, env: dict | None = None):
    """``python train.py`` as a user runs it: no HYDRA_FULL_ERROR, W&B offline with no key."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_MODE")
    }
    environment.update(
        ARGEN_DATA_DIR=str(DATA_DIR),
        ARGEN_CACHE_DIR=str(tmp_path / "cache"),
        ARGEN_LOG_DIR=str(tmp_path / "logs"),
        WANDB_API_KEY="",
        NETRC=str(tmp_path / "no_netrc"),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    )
    environment.pop("WANDB_API_KEY")
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line_error(result) -> str:
    """The single ``error:`` line a refused command printed (and nothing traceback-like)."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def wandb_record(run_dir: Path) -> dict:
    out = subprocess.run(
        ["wandb", "leet", "inspect", "--summary", "--json", str(run_dir / "wandb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


# ------------------------------------------------------------------ 1. the README's test command
def test_missing_parent_package_reads_as_not_installed():
    # importlib.util.find_spec("a.b") raises when "a" is absent; the sweep tests must skip instead.
    assert not is_installed("argen_no_such_package.sub")
    assert is_installed("argen.models")


def test_ci_runs_readme_commands_before_the_sweep_extra():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    install, test = 'pip install -e ".[dev]"', "python -m pytest"
    assert f"\n{install}\n" in readme and f"\n{test}\n" in readme
    assert ci.index(install) < ci.index(f"\n{test}\n") < ci.index('pip install -e ".[sweep]"')


# ------------------------------------------------------------------ 3. config errors, early
def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from argen.training.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=["paths.output_dir=/tmp/unused", *overrides])
    return cfg


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.datamodule.batch_size=0"], "data.datamodule.batch_size=0 is invalid"),
        (["model.module.optimizer.lr=-1"], "model.module.optimizer.lr=-1 is invalid"),
        (["model=char_rnn", "data=binarized_mnist"], "model=char_rnn models text"),
        (["model=made", "data=tinyshakespeare"], "model=made models images"),
        (["model=made", "data=cifar10"], "MADE models binary data"),
        (["model=nade", "data=mnist"], "NADE models binary data"),
    ],
)
def test_bad_configs_are_refused_from_the_config_alone(overrides, expected):
    from argen.training.config_checks import check_config

    with pytest.raises(ConfigError, match=expected) as info:
        check_config(compose(*overrides))
    assert "\n" not in str(info.value)


def test_good_configs_pass_and_keep_the_random_state():
    from argen.training.config_checks import check_config

    state = torch.random.get_rng_state()
    for overrides in (
        ["model=made"],
        ["model=char_rnn", "data=tinyshakespeare"],
        ["model=pixelcnn", "data=cifar10"],
    ):
        check_config(compose(*overrides))
    assert torch.equal(state, torch.random.get_rng_state()), "building the net must not move RNG"


@pytest.mark.slow
def test_config_error_is_one_line_before_data_or_wandb(tmp_path):
    empty = tmp_path / "no_data"
    result = train_cli(tmp_path, "model=made", "data=cifar10", f"paths.data_dir={empty}")
    line = one_line_error(result)
    assert "model=made cannot model data=cifar10" in line and "num_levels=256" in line
    assert not empty.exists(), "no download may start"
    assert not list(tmp_path.rglob("wandb")), "no W&B run may start"


# ------------------------------------------------------------------ checkpoints
def test_unreadable_checkpoint_is_one_line_without_unsafe_advice(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil, truncated = tmp_path / "evil.ckpt", tmp_path / "truncated.ckpt"
    torch.save({"x": Payload()}, evil)
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    for path in (evil, truncated):
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message
        assert "weights_only=False" not in message and "weights_only" not in message


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_train_refuses_truncated_and_foreign_checkpoints_before_wandb(tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    line = one_line_error(train_cli(tmp_path, *MADE_TINY, f"ckpt_path={truncated}"))
    assert "cannot be read" in line and str(truncated) in line

    foreign = tmp_path / "made.ckpt"
    torch.save(
        {"argen_config": {"model": {"name": "made"}, "data": {"name": "binarized_mnist"}}}, foreign
    )
    line = one_line_error(train_cli(tmp_path, "model=nade", f"ckpt_path={foreign}"))
    assert "holds a model=made data=binarized_mnist run" in line and "model=nade" in line
    assert not list(tmp_path.rglob("wandb"))


# ------------------------------------------------------------------ 4. no record overwritten
def test_run_dir_guard_allows_only_resuming_the_same_run(tmp_path):
    run = tmp_path / "run"
    check_run_dir(run, "made", "binarized_mnist", None)  # new directory: fine
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"model": {"name": "made"}, "data": {"name": "binarized_mnist"}})
    )
    check_run_dir(run, "made", "binarized_mnist", "auto")  # resume: fine
    with pytest.raises(ConfigError, match="already holds a run"):
        check_run_dir(run, "made", "binarized_mnist", None)
    with pytest.raises(ConfigError, match="holds a model=made data=binarized_mnist run"):
        check_run_dir(run, "nade", "binarized_mnist", "auto")


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_finished_run_directory_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "logs" / "runs" / "made_run"
    first = train_cli(tmp_path, *MADE_TINY, "logger=csv", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    again = train_cli(tmp_path, *MADE_TINY, "logger=csv", f"hydra.run.dir={run_dir}")
    assert "already holds a run" in one_line_error(again)
    other = train_cli(
        tmp_path, "model=nade", "logger=csv", f"hydra.run.dir={run_dir}", "ckpt_path=auto"
    )
    assert "holds a model=made data=binarized_mnist run" in one_line_error(other)
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before, "a refused command must not change a file of the run"


# ------------------------------------------------------------------ 5. records tell the truth
@pytest.mark.slow
@needs_data("binarized_mnist")
@pytest.mark.parametrize(
    ("kind", "status", "code"), [("keyboard", "interrupted", 130), ("error", "failed", 1)]
)
def test_stopped_or_failed_runs_are_recorded_as_such_in_summary_and_wandb(
    tmp_path, kind, status, code
):
    run_dir = tmp_path / "logs" / "runs" / "the_run"
    result = train_cli(
        tmp_path,
        *MADE_TINY,
        f"hydra.run.dir={run_dir}",
        "+callbacks.stop._target_=tests.helpers.RaiseAtStep",
        "+callbacks.stop.step=2",
        f"+callbacks.stop.kind={kind}",
    )
    assert result.returncode == code, result.stderr[-3000:]
    (summary,) = read_summaries(tmp_path)
    assert summary["status"] == status
    record = wandb_record(run_dir)
    assert record["exit_code"] == code and record["state"] != "finished"


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_sigterm_during_validation_sampling_stops_at_the_next_row_and_keeps_last_ckpt(tmp_path):
    run_dir = tmp_path / "logs" / "runs" / "rnn_run"
    result = train_cli(
        tmp_path,
        "model=row_lstm",
        "model.module.net.hidden_channels=8",
        "model.module.net.num_layers=1",
        "data.datamodule.max_examples=64",
        "data.datamodule.batch_size=32",
        "trainer.max_epochs=3",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "callbacks.rich_progress_bar=null",
        "callbacks.image_logger.num_images=64",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        "+callbacks.sigterm._target_=tests.helpers.SigtermWhileSampling",
    )
    assert result.returncode == 143, result.stderr[-3000:]
    assert (run_dir / "rows_after_sigterm.txt").read_text() in ("0", "1")
    assert (run_dir / "checkpoints" / "last.ckpt").exists(), "a requeue resumes from last.ckpt"
    (summary,) = read_summaries(tmp_path)
    assert summary["status"] == "interrupted"
    assert "ckpt_path=auto" in result.stdout


# ------------------------------------------------------------------ 7. a quiet run, one last line
@pytest.mark.slow
@needs_data("binarized_mnist")
def test_run_output_is_each_line_once_and_ends_with_the_result(tmp_path):
    result = train_cli(tmp_path, *MADE_TINY, "trainer.max_epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for noise in ("Tip:", "LeafSpec", "anonymous setting", "Total FLOPs", "wandb: "):
        assert noise not in output, noise
    lines = [line for line in result.stdout.splitlines() if line.strip() and line.isascii()]
    once = [
        line for line in lines if "Seed" in line or "GPU available" in line or "parameters" in line
    ]
    assert len(once) == len(set(once)), once
    last = lines[-1]
    (summary,) = read_summaries(tmp_path)
    run_dir = Path(summary["output_dir"])
    assert last.startswith(f"Run {run_dir}") and "test NLL" in last and "bits/dim" in last
    assert "wandb sync" in last
    # README's way to read the offline run back
    assert wandb_record(run_dir)["summary"]["test/nll"] == pytest.approx(summary["test_nll"])


@pytest.mark.parametrize("bar", ["keep", "null"])
def test_the_progress_bar_is_the_configs_or_none(bar):
    """``callbacks.rich_progress_bar=null`` (the benchmarks' and tests' runs) leaves no bar: the
    one Lightning would add instead redraws every batch and its thread failed at every refresh."""
    from argen.training.callbacks.progress import ThrottledRichProgressBar
    from argen.training.run import build_trainer

    overrides = ["logger=csv", "trainer.accelerator=cpu"]
    cfg = compose(*overrides, *(["callbacks.rich_progress_bar=null"] if bar == "null" else []))
    trainer, _ = build_trainer(cfg, {})
    if bar == "null":
        assert trainer.progress_bar_callback is None
    else:
        assert isinstance(trainer.progress_bar_callback, ThrottledRichProgressBar)


# ------------------------------------------------------------------ 8. slow samplers show progress
def test_raster_sampling_reports_rows_and_can_be_abandoned(caplog):
    import logging

    from argen.models.pixelrnn import DiagonalBiLSTM
    from argen.models.sampling_progress import on_row
    from argen.training.callbacks.images import RowProgress, SamplingStopped

    torch.manual_seed(0)
    net = DiagonalBiLSTM(shape=(1, 4, 3), num_levels=2, hidden_channels=4, num_layers=1)
    with (
        caplog.at_level(logging.INFO, logger="argen"),
        on_row(RowProgress("grid", lambda: False, interval=0)),
    ):
        net.sample(2)
    rows = [r.getMessage() for r in caplog.records if "grid: row" in r.getMessage()]
    assert [r.split(" (")[0] for r in rows] == [f"grid: row {i}/4" for i in range(1, 5)]

    rows_seen = []
    with pytest.raises(SamplingStopped), on_row(lambda done, total: rows_seen.append(done)):
        with on_row(RowProgress("grid", lambda: len(rows_seen) >= 1, interval=0)):
            net.sample(2)
    assert rows_seen == [1], "sampling stops at the first row after the stop request"


def test_slow_samplers_draw_few_images_by_default():
    for model, images, samples in (("row_lstm", 8, 2), ("diagonal_bilstm", 8, 2), ("made", 64, 16)):
        cfg = compose(f"model={model}")
        assert cfg.callbacks.image_logger.num_images == images
        assert cfg.summary.num_samples == samples


def test_evaluate_reports_a_bad_checkpoint_in_one_line(tmp_path):
    truncated = tmp_path / "run.ckpt"
    truncated.write_bytes(b"PK\x03\x04 not really a checkpoint")
    result = subprocess.run(
        [sys.executable, "-m", "argen.evaluate", str(truncated)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    line = one_line_error(result)
    assert "cannot be read" in line and "weights_only" not in line


@pytest.mark.slow
def test_text_data_without_a_path_is_one_line(tmp_path):
    result = train_cli(tmp_path, "model=char_rnn", "data=text", "logger=csv")
    line = one_line_error(result)
    assert "data.datamodule.path=" in line
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


@pytest.mark.slow
def test_run_dir_guard_stops_the_job_with_hydra_full_error_too(tmp_path):
    """Hydra turns an exception from a callback into a warning and runs the job anyway: with
    HYDRA_FULL_ERROR=1 (run_train sets it) the guard must still stop before anything is written."""
    run_dir = tmp_path / "logs" / "runs" / "taken"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "summary.json").write_text('{"model": "made", "data": "binarized_mnist"}\n')
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = run_train(tmp_path, "model=made", f"hydra.run.dir={run_dir}", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "already holds a run" in result.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
