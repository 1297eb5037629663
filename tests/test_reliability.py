"""Reliability: determinism, resume after SIGKILL, NaN losses, bad names and incompatible pairs."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from argen.training.checkpoint import load_checkpoint
from tests.conftest import needs_data, read_summaries, run_train

pytestmark = pytest.mark.slow  # end-to-end runs of train.py

TINY = [
    "model=made",
    "model.module.net.hidden_sizes=[32]",
    "model.module.net.ordering=random",
    "model.module.net.num_masks=3",  # mask cycling must resume exactly too
    "data.datamodule.max_examples=300",
    "data.datamodule.batch_size=50",  # 6 steps per epoch
    "trainer.max_epochs=3",
    "trainer.accelerator=cpu",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=4",
    "summary.num_samples=0",
    # one optimizer step per training_step, so the test callbacks act at an exact global step
    # (tests/test_amortized_steps.py kills and resumes runs with several steps per call)
    "model.module.steps_per_call=1",
]


@needs_data("binarized_mnist")
def test_same_seed_same_numbers_and_resume_after_sigkill_matches(tmp_path):
    first = tmp_path / "first"
    second = tmp_path / "second"
    killed = tmp_path / "killed"
    for folder in (first, second, killed):
        folder.mkdir()
    run_train(first, *TINY)
    run_train(second, *TINY)
    (a,), (b,) = read_summaries(first), read_summaries(second)
    assert a["test_nll"] == b["test_nll"], "same config and seed must give the same numbers"

    # Killed at step 9: in the middle of the second epoch (steps 6..11); logged to W&B offline.
    with_wandb = [o for o in TINY if o != "logger=csv"] + ["logger=wandb"]
    run_dir = killed / "logs" / "runs" / "the_run"
    result = run_train(
        killed,
        *with_wandb,
        f"hydra.run.dir={run_dir}",
        "+callbacks.killer._target_=tests.helpers.KillAtStep",
        "+callbacks.killer.step=9",
        check=False,
    )
    assert result.returncode == -signal.SIGKILL
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert not read_summaries(killed)
    wandb_id = (run_dir / "wandb_run_id").read_text().strip()
    # The killed job's W&B service can outlive it for a moment and still hold the run id ("run ID
    # ... is in use"); a requeued job that meets this simply runs again.
    for _ in range(4):
        result = run_train(
            killed, *with_wandb, f"hydra.run.dir={run_dir}", "ckpt_path=auto", check=False
        )
        if result.returncode == 0 or "is in use" not in result.stderr:
            break
        time.sleep(10)
    assert result.returncode == 0, result.stderr[-3000:]
    (resumed,) = read_summaries(killed)
    assert abs(resumed["test_nll"] - a["test_nll"]) < 1e-4, (resumed["test_nll"], a["test_nll"])
    assert resumed["wandb_run"].endswith(wandb_id), "the resumed run continues the same W&B run"

    # The killed part never finished and lost its last records: it is marked, and the resumed part
    # alone holds every epoch's validation NLL (epochs 0, 1 and 2).
    parts = sorted((run_dir / "wandb").glob(f"offline-run-*-{wandb_id}"))
    alive = parts[-1]
    assert len(parts) >= 2 and (alive / "argen_exit_code").read_text().strip() == "0"
    assert not (alive / "ARGEN_DEAD_PART.txt").exists()
    assert (parts[0] / "ARGEN_DEAD_PART.txt").exists(), "the killed part is marked"
    records = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(alive)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    epochs = {
        item["epoch"]
        for item in (json.loads(r).get("history", {}).get("item", {}) for r in records)
        if "val/nll" in item and "epoch" in item
    }
    assert epochs == {0, 1, 2}, epochs


@needs_data("binarized_mnist")
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "logs" / "runs" / "nan_run"
    result = run_train(
        tmp_path,
        *TINY,
        f"hydra.run.dir={run_dir}",
        "+callbacks.poison._target_=tests.helpers.PoisonWeightsAtStep",
        "+callbacks.poison.step=8",
        check=False,
    )
    assert result.returncode != 0
    assert "Non-finite training loss" in result.stderr and "global step 8" in result.stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    module, _ = load_checkpoint(last)
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_unknown_model_name_lists_the_valid_ones(tmp_path):
    result = run_train(tmp_path, "model=not_a_model", check=False)
    assert result.returncode != 0
    assert "not_a_model" in result.stderr and "made" in result.stderr
    assert "Available options" in result.stderr


@needs_data("MNIST", "raw")
def test_binary_model_on_8bit_data_fails_before_training(tmp_path):
    result = run_train(tmp_path, "model=made", "data=mnist", "logger=csv", check=False)
    assert result.returncode != 0
    assert "MADE models binary data" in result.stderr and "num_levels=256" in result.stderr
    assert not list((tmp_path / "logs").rglob("*.ckpt"))
