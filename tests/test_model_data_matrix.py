"""Every registered model trains end to end through the train.py path on a small slice of each
kind of data its class declares it can model (binary images; RGB images of 256 levels; labels;
text): fit, test on the best checkpoint, summary. The pairs come from the registry
(``argen.training.registry``), so a new model is in the matrix by being registered."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from argen.models.base import IMAGE, TEXT
from argen.training.registry import registered_models
from tests.conftest import DATA_DIR, ROOT, train_in_process

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
REGISTRY = registered_models(ROOT / "conf")


def slow_sampler(model: str) -> bool:
    """A model config that sets its own ``num_samples`` says its sampler is slow (the PixelRNNs):
    timing one sample is part of the summary, too slow for a smoke test on a CPU (their sampling
    is tested in their own tests)."""
    return "num_samples" in OmegaConf.load(ROOT / "conf" / "model" / f"{model}.yaml")


# Sizes that keep a CPU smoke run short; a model not named here trains at its config's sizes.
TINY_MODELS = {
    "made": ["model.module.net.hidden_sizes=[16]"],
    "fvsbn": [],
    "nade": ["model.module.net.hidden_size=16"],
    "autoencoder": ["model.module.net.hidden_size=16", "model.module.net.code_size=4"],
    "pixelcnn": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=1"],
    "gated_pixelcnn": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=2"],
    "row_lstm": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=1"],
    "diagonal_bilstm": ["model.module.net.hidden_channels=8", "model.module.net.num_layers=1"],
    "pixelsnail": [
        "model.module.net.hidden_channels=8",
        "model.module.net.num_blocks=1",
        "model.module.net.num_res_blocks=1",
        "model.module.net.key_channels=4",
        "model.module.net.value_channels=4",
    ],
    "image_transformer": [
        "model.module.net.dim=16",
        "model.module.net.num_layers=1",
        "model.module.net.num_heads=1",
    ],
    "char_rnn": ["model.module.net.hidden_size=16", "model.module.net.num_layers=1"],
    "char_transformer": ["model.module.net.dim=16", "model.module.net.num_layers=1"],
}

IMAGE_DATA = {
    "binarized_mnist": (["data.datamodule.max_examples=40"], "binarized_mnist"),
    "mnist": (["data.datamodule.max_examples=40"], "MNIST/raw"),
    "image_npz": (["data.datamodule.max_examples=20"], "cifar10_subset"),
}

# Each kind of image data once: binary (binarized MNIST), and RGB of 256 levels (the CIFAR-10
# subset); 8-bit grey MNIST is the labelled data of the class-conditional runs below.
PAIRS = [
    (name, data)
    for name, model in REGISTRY.items()
    if model.capabilities.density
    for data, levels in (("binarized_mnist", 2), ("image_npz", 256))
    if model.can_model(IMAGE, levels)
]
LABELLED = [name for name, model in REGISTRY.items() if model.capabilities.labels]
TEXT_MODELS = [name for name, model in REGISTRY.items() if model.can_model(TEXT)]


def test_the_matrix_covers_every_registered_model():
    covered = {m for m, _ in PAIRS} | set(TEXT_MODELS) | {"autoencoder"}
    assert covered == set(REGISTRY)
    assert ("made", "binarized_mnist") in PAIRS and ("made", "image_npz") not in PAIRS
    assert ("pixelsnail", "image_npz") in PAIRS and {"gated_pixelcnn", "pixelsnail"} <= set(
        LABELLED
    )


@pytest.mark.parametrize(("model", "data"), PAIRS)
def test_image_model_trains_end_to_end(tmp_path, model, data):
    data_overrides, needed = IMAGE_DATA[data]
    if not (DATA_DIR / needed).exists():
        pytest.skip(f"{DATA_DIR / needed} not present")
    num_samples = 0 if slow_sampler(model) or data == "image_npz" else 1
    summary = train_in_process(
        tmp_path,
        f"model={model}",
        f"data={data}",
        *TINY_MODELS.get(model, []),
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
@pytest.mark.parametrize("model", LABELLED)
def test_class_conditional_model_on_labelled_mnist(tmp_path, model):
    summary = train_in_process(
        tmp_path,
        f"model={model}",
        "model.conditional=true",
        "data=mnist",
        *TINY_MODELS.get(model, []),
        "data.datamodule.max_examples=40",
        *FAST,
        f"summary.num_samples={0 if slow_sampler(model) else 1}",
    )
    assert summary["test_nll"] > 0


def text_overrides(tmp_path, model: str = "char_rnn") -> list[str]:
    return [
        f"model={model}",
        *TINY_MODELS.get(model, []),
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


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_text_model_on_any_text_file(tmp_path, model):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 60)
    summary = train_in_process(
        tmp_path, "data=text", f"data.datamodule.path={path}", *text_overrides(tmp_path, model)
    )
    assert summary["model"] == model and summary["data"] == "text" and summary["test_nll"] > 0
