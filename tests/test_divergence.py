"""A diverged run says so: a non-finite loss ends train.py with one line naming the step (exit 2);
a finite but exploding NLL (far above the uniform model's D ln K) is a warning and
``diverged: true`` in summary.json."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from argen.models.made import MADE
from argen.modules.density import DensityModule
from argen.training.callbacks.divergence import FACTOR, DivergenceCheck, divergence_of, uniform_nll
from tests.conftest import DATA_DIR, ROOT, needs_data

SHAPE = (1, 4, 4)


def made_module() -> DensityModule:
    return DensityModule(MADE(SHAPE, hidden_sizes=[8]), optimizer=torch.optim.Adam)


def fake_trainer(metrics: dict[str, float], epoch: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        current_epoch=epoch,
        sanity_checking=False,
    )


def test_uniform_nll_is_dimensions_times_log_levels():
    bound, dims, levels = uniform_nll(made_module())
    assert (dims, levels) == (16, 2) and bound == pytest.approx(16 * math.log(2))
    text = SimpleNamespace(num_dims=1, net=SimpleNamespace(vocab_size=65))
    assert uniform_nll(text)[0] == pytest.approx(math.log(65))
    assert uniform_nll(SimpleNamespace(num_dims=784)) is None  # no levels: not a density model


def test_nll_near_uniform_is_no_divergence_but_far_above_is(caplog):
    module, check = made_module(), DivergenceCheck()
    bound = 16 * math.log(2)
    check.on_validation_end(fake_trainer({"val/nll": bound * 1.2}), module)  # an untrained start
    assert check.summary_entries() == {}
    with caplog.at_level(logging.WARNING, logger="argen.training.callbacks.divergence"):
        check.on_validation_end(fake_trainer({"val/nll": bound * FACTOR * 1.01}, epoch=3), module)
        check.on_validation_end(fake_trainer({"val/nll": 1e20}, epoch=4), module)  # said once
    assert [r.getMessage().split(" nats")[0] for r in caplog.records] == [
        f"warning: val/nll {bound * FACTOR * 1.01:.4g}"
    ]
    assert "at epoch 3" in caplog.records[0].getMessage()
    check.on_test_end(fake_trainer({"test/nll": float("nan")}), module)
    entries = check.summary_entries()
    assert entries["diverged"] is True
    assert entries["diverged_reason"].startswith("test/nll nan nats on the test split")
    assert divergence_of(SimpleNamespace(callbacks=[check])) == entries
    assert divergence_of(None) == {}


def test_non_finite_training_loss_is_recorded():
    check = DivergenceCheck()
    check.on_exception(None, None, FloatingPointError("Non-finite training loss (nan) at step 3"))
    check.on_exception(None, None, KeyboardInterrupt())
    assert check.summary_entries()["diverged_reason"].startswith("Non-finite training loss")


def test_factor_must_exceed_one():
    with pytest.raises(ValueError, match="factor"):
        DivergenceCheck(factor=1)


# ------------------------------------------------------------------------------- end to end
TINY = [
    "model=made",
    "model.module.net.hidden_sizes=[32]",
    "debug=quick",
    "trainer.limit_train_batches=5",  # a learning rate of 1e9 needs a few steps to explode
    "data.datamodule.batch_size=16",
    "trainer.accelerator=cpu",
    "callbacks.rich_progress_bar=null",
    "summary.num_samples=0",
]


def train_cli(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``python train.py`` as a user runs it (no HYDRA_FULL_ERROR); its summary.json."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(
        ARGEN_DATA_DIR=str(DATA_DIR),
        ARGEN_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    run_dir = tmp_path / "run"
    tmp_path.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *TINY, f"hydra.run.dir={run_dir}", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_non_finite_loss_ends_in_one_line_naming_the_step(tmp_path):
    result, summary = train_cli(tmp_path, "model.module.optimizer.lr=1e30")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0])
    assert errors[0].startswith("error: Non-finite training loss (nan) at global step ")
    assert summary["status"] == "failed" and summary["diverged"] is True


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_finite_exploding_loss_is_flagged_in_log_and_summary(tmp_path):
    result, summary = train_cli(tmp_path, "model.module.optimizer.lr=1e9")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert summary["status"] == "finished"
    assert summary["test_nll"] > FACTOR * 784 * math.log(2)
    assert summary["diverged"] is True
    assert summary["diverged_reason"].startswith("test/nll ")
    assert "warning: test/nll " in output and "training diverged" in output
    sane, healthy = train_cli(tmp_path / "sane")  # the default learning rate: no flag
    assert sane.returncode == 0 and "diverged" not in healthy and "warning:" not in sane.stdout
