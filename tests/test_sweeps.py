"""Hydra multiruns: one run (and one W&B run) per job, compared afterwards; the Optuna sweeper."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import needs_data, needs_sweep_extra, read_summaries, run_train

pytestmark = pytest.mark.slow  # end-to-end runs of train.py

TINY = [
    "model.module.net.hidden_sizes=[8]",
    "data.datamodule.max_examples=60",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=1",
    "summary.num_samples=1",
]


@needs_data("binarized_mnist")
def test_multirun_of_two_models_and_two_seeds_gives_four_runs_and_a_table(tmp_path):
    run_train(
        tmp_path,
        "--multirun",
        "model=made,fvsbn",
        "seed=1,2",
        "tags=[sweep_test]",
        *[o for o in TINY if "hidden_sizes" not in o],
    )
    summaries = read_summaries(tmp_path)
    assert sorted((s["model"], s["seed"]) for s in summaries) == [
        ("fvsbn", 1),
        ("fvsbn", 2),
        ("made", 1),
        ("made", 2),
    ]
    # One W&B run per job, grouped under the sweep.
    wandb_runs = sorted((tmp_path / "logs" / "multiruns").rglob("offline-run-*"))
    assert len(wandb_runs) == 4
    groups = set()
    for run in wandb_runs:
        record = json.loads(
            subprocess.run(
                [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run)],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
        )
        assert record["state"] == "finished"
        groups.add(record["config"]["logger"]["wandb"]["group"])
    assert len(groups) == 1 and None not in groups

    out = tmp_path / "report"
    subprocess.run(
        [sys.executable, "-m", "argen.compare", str(tmp_path / "logs"), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    with open(out / "runs.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    with open(out / "comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["model"] for r in rows) == ["fvsbn", "made"]
    assert all(r["runs"] == "2" for r in rows)
    assert (out / "tradeoff_binarized_mnist.png").exists()


@needs_data("binarized_mnist")
@needs_sweep_extra("hydra_plugins.hydra_optuna_sweeper")
def test_optuna_search_minimises_validation_nll(tmp_path):
    run_train(
        tmp_path,
        "--multirun",
        "hparams_search=made_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "logger=csv",
        "model.module.net.hidden_sizes=[8]",
        *TINY[1:],
    )
    summaries = read_summaries(tmp_path)
    assert len(summaries) == 2
    (result,) = (tmp_path / "logs" / "multiruns").rglob("optimization_results.yaml")
    best = yaml.safe_load(result.read_text())["best_value"]
    assert best == pytest.approx(min(s["val_nll"] for s in summaries))
