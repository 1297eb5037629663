"""Speed options change speed, not results: bf16-mixed precision, torch.compile and channels-last
give the fp32/eager test NLL (within each one's tolerance) through the train.py path."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import needs_data, train_in_process

pytestmark = pytest.mark.slow  # end-to-end runs of train.py

EVAL_ONLY = [
    "train=false",
    "trainer.accelerator=cpu",
    "logger=none",
    "callbacks=none",
    "summary.num_samples=0",
    "data.datamodule.max_examples=64",
]


def test_nll(tmp_path, *overrides: str) -> float:
    return train_in_process(tmp_path, *EVAL_ONLY, *overrides)["test_nll"]


test_nll.__test__ = False  # a helper, not a test


@needs_data("binarized_mnist")
def test_bf16_mixed_precision_gives_the_fp32_nll(tmp_path):
    made = ["model=made", "model.module.net.hidden_sizes=[64]"]
    fp32 = test_nll(tmp_path / "fp32", *made)
    bf16 = test_nll(tmp_path / "bf16", *made, "trainer.precision=bf16-mixed")
    assert bf16 == pytest.approx(fp32, rel=1e-2)
    assert bf16 != fp32  # bf16 really was used


@needs_data("binarized_mnist")
def test_compiled_network_gives_the_eager_nll(tmp_path):
    made = ["model=made", "model.module.net.hidden_sizes=[64]"]
    eager = test_nll(tmp_path / "eager", *made)
    compiled = test_nll(tmp_path / "compiled", *made, "compile=true")
    assert compiled == pytest.approx(eager, rel=1e-5)


@needs_data("binarized_mnist")
def test_channels_last_gives_the_same_nll(tmp_path):
    pixelcnn = [
        "model=pixelcnn",
        "model.module.net.hidden_channels=16",
        "model.module.net.num_layers=2",
    ]
    default = test_nll(tmp_path / "default", *pixelcnn)
    channels_last = test_nll(tmp_path / "cl", *pixelcnn, "model.module.channels_last=true")
    assert channels_last == pytest.approx(default, rel=1e-5)


@needs_data("binarized_mnist")
def test_training_flushes_denormals_to_zero(tmp_path):
    """Denormal weights and Adam moments (from weight decay pulling masked weights to zero) made
    CPU training steps 5x slower; train.py flushes them unless flush_denormal=false."""
    smallest_normal = torch.finfo(torch.float32).tiny
    try:
        torch.set_flush_denormal(False)
        test_nll(tmp_path / "kept", "model=made", "flush_denormal=false")
        assert (torch.tensor([smallest_normal]) / 4).item() > 0
        test_nll(tmp_path / "flushed", "model=made")
        assert (torch.tensor([smallest_normal]) / 4).item() == 0
    finally:
        torch.set_flush_denormal(False)
