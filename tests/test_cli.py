"""Evaluate and sample CLIs on checkpoints written by train.py; weights-only loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from argen.training.checkpoint import CheckpointError, load_checkpoint
from tests.conftest import DATA_DIR, ROOT, needs_data, train_in_process

QUICK = [
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.limit_train_batches=2",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=3",
    "summary.num_samples=1",
]


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARGEN_DATA_DIR": str(DATA_DIR)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory) -> tuple[dict, Path]:
    if not (DATA_DIR / "binarized_mnist").exists():
        pytest.skip("no binarized MNIST")
    tmp_path = tmp_path_factory.mktemp("gated")
    summary = train_in_process(
        tmp_path,
        "model=gated_pixelcnn",
        "model.module.net.hidden_channels=8",
        "model.module.net.num_layers=2",
        "data.datamodule.max_examples=30",
        *QUICK,
    )
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    return summary, best


@pytest.mark.slow
def test_evaluate_cli_reproduces_the_runs_test_nll(gated_run):
    summary, best = gated_run
    metrics = json.loads(cli("argen.evaluate", str(best), "--json").stdout.strip().splitlines()[-1])
    assert metrics["test/nll"] == pytest.approx(summary["test_nll"], rel=1e-6)
    assert metrics["test/bits_per_dim"] == pytest.approx(summary["test_bits_per_dim"], rel=1e-6)


@pytest.mark.slow
def test_sample_cli_writes_a_png_grid(gated_run, tmp_path):
    _, best = gated_run
    out = tmp_path / "grid.png"
    cli("argen.sample", str(best), "--num", "6", "--nrow", "3", "--seed", "1", "--out", str(out))
    width, height = Image.open(out).size
    assert (width, height) == (3 * 28 + 4 * 2, 2 * 28 + 3 * 2)  # make_grid with padding 2


@pytest.mark.slow
def test_completions_are_logged_and_available_from_the_cli(gated_run, tmp_path):
    _, best = gated_run
    images = best.parents[1] / "images"
    for name in ("samples", "originals", "masked", "completions"):
        assert list(images.glob(f"{name}_*.png")), name
    out = tmp_path / "completions.png"
    cli("argen.sample", str(best), "--complete", "--num", "4", "--out", str(out))
    assert Image.open(out).size == (4 * 28 + 5 * 2, 3 * 28 + 4 * 2)  # 3 rows of 4


@pytest.mark.slow
@needs_data("tinyshakespeare")
def test_sample_cli_writes_text_for_a_char_rnn(tmp_path):
    train_in_process(
        tmp_path,
        "model=char_rnn",
        "data=tinyshakespeare",
        "data.datamodule.max_chars=3000",
        "model.module.net.hidden_size=16",
        "model.module.net.num_layers=1",
        "data.datamodule.seq_len=20",
        "data.datamodule.batch_size=8",
        "data.datamodule.eval_batch_size=2",
        "model.module.sample_length=10",
        *[o for o in QUICK if "image_logger" not in o],
        "callbacks.image_logger=null",
    )
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    out = tmp_path / "sample.txt"
    cli(
        "argen.sample",
        str(best),
        "--num",
        "1",
        "--length",
        "50",
        "--prime",
        "ROMEO:",
        "--out",
        str(out),
    )
    text = out.read_text()
    assert len(text) >= 50


def test_checkpoints_load_weights_only_and_refuse_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "argen_config": {}, "x": Payload()}, evil)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(evil)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="argen_config"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
