"""Every model trains end to end through the train.py path on a small slice of every dataset it
supports: fit, test on the best checkpoint, summary."""

from __future__ import annotations

import math

import pytest

from tests.conftest import DATA_DIR, train_in_process

pytestmark = pytest.mark.slow  # end-to-end runs of train.py

FAST = [
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.limit_train_batches=2",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger=null",  # image logging has its own end-to-end test
]
# Timing one sample is part of the summary; PixelRNN's samplers are too slow for a smoke test
# on a CPU (their sampling is tested in test_pixelrnn.py).
SLOW_SAMPLERS = {"row_lstm", "diagonal_bilstm"}

TINY_MODELS = {
    "made": ["model.module.net.hidden_sizes=[16]"],
    "fvsbn": [],
    "nade": ["model.module.net.hidden_size=16"],
    "autoencoder": ["model.module.net.hidden_size=16", "model.module.net.code_size=4"],
    "pixelcnn": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=1"],
    "gated_pixelcnn": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=2"],
    "row_lstm": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=1"],
    "diagonal_bilstm": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=1"],
}

IMAGE_DATA = {
    "binarized_mnist": (["data.datamodule.max_examples=40"], "binarized_mnist"),
    "mnist": (["data.datamodule.max_examples=40"], "MNIST/raw"),
    "image_npz": (["data.datamodule.max_examples=20"], "cifar10_subset"),
}

PAIRS = [
    ("made", "binarized_mnist"),
    ("fvsbn", "binarized_mnist"),
    ("nade", "binarized_mnist"),
    ("pixelcnn", "binarized_mnist"),
    ("pixelcnn", "mnist"),
    ("pixelcnn", "image_npz"),
    ("gated_pixelcnn", "binarized_mnist"),
    ("gated_pixelcnn", "image_npz"),
    ("row_lstm", "binarized_mnist"),
    ("row_lstm", "image_npz"),
    ("diagonal_bilstm", "binarized_mnist"),
    ("diagonal_bilstm", "mnist"),
]


@pytest.mark.parametrize(("model", "data"), PAIRS)
def test_image_model_trains_end_to_end(tmp_path, model, data):
    data_overrides, needed = IMAGE_DATA[data]
    if not (DATA_DIR / needed).exists():
        pytest.skip(f"{DATA_DIR / needed} not present")
    num_samples = 0 if model in SLOW_SAMPLERS or data == "image_npz" else 1
    summary = train_in_process(
        tmp_path,
        f"model={model}",
        f"data={data}",
        *TINY_MODELS[model],
        *data_overrides,
        *FAST,
        f"summary.num_samples={num_samples}",
    )
    assert summary["model"] == model and summary["data"] == data
    dims = {"binarized_mnist": 784, "mnist": 784, "image_npz": 3072}[data]
    assert math.isclose(
        summary["test_bits_per_dim"], summary["test_nll"] / (dims * math.log(2)), rel_tol=1e-5
    )
    if num_samples:
        assert summary["sample_seconds_per_example"] > 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


@pytest.mark.skipif(not (DATA_DIR / "binarized_mnist").exists(), reason="no binarized MNIST")
def test_autoencoder_reports_reconstruction_loss_and_never_an_nll(tmp_path):
    summary = train_in_process(
        tmp_path,
        "model=autoencoder",
        *TINY_MODELS["autoencoder"],
        "data.datamodule.max_examples=40",
        *[o for o in FAST if "image_logger" not in o],
        "callbacks.image_logger.num_images=4",
    )
    assert summary["test_recon_loss"] > 0
    for name in ("originals", "reconstructions"):
        assert list((tmp_path / "run" / "images").glob(f"{name}_*.png"))
    assert not any("nll" in key or "bits" in key for key in summary)
    assert "sample_seconds_per_example" not in summary
    assert list((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))


@pytest.mark.skipif(not (DATA_DIR / "MNIST" / "raw").exists(), reason="no MNIST")
def test_class_conditional_gated_pixelcnn_on_labelled_mnist(tmp_path):
    summary = train_in_process(
        tmp_path,
        "model=gated_pixelcnn",
        "model.conditional=true",
        "data=mnist",
        *TINY_MODELS["gated_pixelcnn"],
        "data.datamodule.max_examples=40",
        *FAST,
    )
    assert summary["test_nll"] > 0


def text_overrides(tmp_path) -> list[str]:
    return [
        "model=char_rnn",
        "model.module.net.hidden_size=16",
        "model.module.net.num_layers=1",
        "model.module.sample_length=20",
        "data.datamodule.seq_len=20",
        "data.datamodule.batch_size=8",
        "data.datamodule.eval_batch_size=2",
        *FAST,
    ]


@pytest.mark.skipif(not (DATA_DIR / "tinyshakespeare").exists(), reason="no Tiny Shakespeare")
def test_char_rnn_on_tinyshakespeare(tmp_path):
    summary = train_in_process(
        tmp_path,
        "data=tinyshakespeare",
        "data.datamodule.max_chars=4000",
        *text_overrides(tmp_path),
    )
    assert summary["model"] == "char_rnn" and summary["data"] == "tinyshakespeare"
    bits_per_char = summary["test_nll"] / math.log(2)  # text: a dimension is a character
    assert summary["data_kind"] == "text"
    assert math.isclose(summary["test_bits_per_dim"], bits_per_char, rel_tol=1e-5)


def test_char_rnn_on_any_text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 60)
    summary = train_in_process(
        tmp_path, "data=text", f"data.datamodule.path={path}", *text_overrides(tmp_path)
    )
    assert summary["data"] == "text" and summary["test_nll"] > 0
