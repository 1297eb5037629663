"""End to end: train.py fits, tests and summarises MADE on a slice of real binarized MNIST, and the
offline W&B run read back holds the config and the test metrics."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import QUICK, needs_data, read_summaries, run_train

pytestmark = pytest.mark.slow  # end-to-end runs of train.py

SUMMARY_KEYS = {
    "model",
    "data",
    "params",
    "test_nll",
    "test_bits_per_dim",
    "train_seconds",
    "train_examples_per_sec",
    "sample_seconds_per_example",
    "wandb_run",
    "seed",
    "version",
}


@needs_data("binarized_mnist")
def test_made_fit_test_summary_and_offline_wandb(tmp_path):
    run_train(tmp_path, "model=made", "model.module.net.hidden_sizes=[64]", *QUICK)
    (summary,) = read_summaries(tmp_path)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["model"] == "made" and summary["data"] == "binarized_mnist"
    assert summary["params"] == 784 * 64 + 64 + 64 * 784 + 784
    assert 0 < summary["test_nll"] < 784 * math.log(2) + 1
    assert math.isclose(
        summary["test_bits_per_dim"], summary["test_nll"] / (784 * math.log(2)), rel_tol=1e-5
    )

    run_dir = tmp_path / "logs" / "runs"
    (output_dir,) = run_dir.iterdir()
    assert (output_dir / "checkpoints" / "last.ckpt").exists()
    assert list((output_dir / "images").glob("samples_*.png"))

    (wandb_run,) = (output_dir / "wandb").glob("offline-run-*")
    inspected = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(wandb_run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    record = json.loads(inspected.stdout)
    assert record["state"] == "finished" and record["project"] == "argen"
    assert set(record["tags"]) >= {"made", "binarized_mnist"}
    # The full resolved config is logged as nested config ...
    config = record["config"]
    assert config["model"]["module"]["net"]["hidden_sizes"] == [64]
    assert config["data"]["datamodule"]["variant"] == "fixed"
    # ... and the test metrics and sample images reach the run summary.
    assert math.isclose(record["summary"]["test/nll"], summary["test_nll"], rel_tol=1e-6)
    assert math.isclose(
        record["summary"]["test/bits_per_dim"], summary["test_bits_per_dim"], rel_tol=1e-6
    )
    assert record["summary"]["images/samples"]["_type"].startswith("images")


@needs_data("binarized_mnist")
def test_two_runs_in_the_same_second_get_their_own_directories(tmp_path):
    """Hydra's run dir includes a random id, so simultaneous starts never collide."""
    overrides = [
        "train=false",
        "test=false",
        "logger=none",
        "callbacks=none",
        "summary.num_samples=0",
        "data.datamodule.max_examples=10",
        "hydra.run.dir=${paths.log_dir}/runs/fixed_second_${argen_run_id:}",
    ]
    first = run_train(tmp_path, *overrides)
    second = run_train(tmp_path, *overrides)
    assert first.returncode == second.returncode == 0
    dirs = sorted(p.name for p in (tmp_path / "logs" / "runs").iterdir())
    assert len(dirs) == 2 and dirs[0] != dirs[1]


@needs_data("binarized_mnist")
def test_debug_quick_runs_a_pixel_rnn_end_to_end_without_wandb(tmp_path):
    """``debug=quick``: one short epoch, a sample grid and (every raster model completes images)
    a completion grid, a summary, no W&B."""
    net = ["model.module.net.hidden_channels=4", "model.module.net.num_layers=1"]
    run_train(tmp_path, "debug=quick", "model=row_lstm", *net)
    (summary,) = read_summaries(tmp_path)
    assert summary["status"] == "finished" and summary["epochs"] == 1
    assert summary["test_nll"] > 0 and summary["sample_seconds_per_example"] > 0
    (output_dir,) = (tmp_path / "logs" / "runs").iterdir()
    assert not (output_dir / "wandb").exists()
    grids = {p.name.split("_")[0] for p in (output_dir / "images").glob("*.png")}
    assert {"samples", "completions"} <= grids
