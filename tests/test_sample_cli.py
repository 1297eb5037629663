"""``python -m argen.sample``: options refused per model family before any data is read or any
sample drawn, one-line errors with exit status 2, per-family defaults, and temperature reaching
every density model. Checkpoints are built from the composed config without training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from argen import sample
from argen.data.text import CharVocab
from argen.modules.text import VOCAB_KEY
from argen.training.callbacks.config_in_checkpoint import CONFIG_KEY
from argen.training.resolvers import register_resolvers
from tests.conftest import DATA_DIR, ROOT

VOCAB = CharVocab.from_text("ab c")  # no newline: "\n\n" in the output only separates samples
TINY = ["data.shape=[1,4,4]"]
MODELS: dict[str, list[str]] = {
    "fvsbn": TINY,
    "nade": [*TINY, "model.module.net.hidden_size=3"],
    "made": [*TINY, "model.module.net.hidden_sizes=[5]"],
    "pixelcnn": [*TINY, "model.module.net.hidden_channels=4", "model.module.net.num_layers=1"],
    "autoencoder": [*TINY, "model.module.net.hidden_size=4", "model.module.net.code_size=2"],
    "char_rnn": [
        "data=tinyshakespeare",
        f"model.module.net.vocab_size={len(VOCAB)}",
        "model.module.net.hidden_size=4",
        "model.module.net.num_layers=1",
    ],
}
# The parameter that holds each binary model's output biases (everything else is set to zero).
OUTPUT_BIAS = {"fvsbn": "net.bias", "nade": "net.b", "made": "net.output_layer.bias"}


def write_checkpoint(
    path: Path, model: str, overrides: list[str], bias: float | None = None
) -> Path:
    """A checkpoint as train.py writes it (weights + resolved config), without training. With
    ``bias``, a binary model has zero weights and every output logit equal to ``bias``."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"model={model}",
                f"paths.data_dir={DATA_DIR}",
                f"paths.cache_dir={path.parent / 'cache'}",
                f"paths.output_dir={path.parent}",
                *overrides,
            ],
        )
    module = instantiate(cfg.model.module)
    state = module.state_dict()
    if bias is not None:
        state = {  # zero weights; the masks stay (a packed MADE keeps its own)
            k: torch.zeros_like(v) if v.is_floating_point() and not k.endswith("mask") else v
            for k, v in state.items()
        }
        state[OUTPUT_BIAS[model]].fill_(bias)
    checkpoint = {"state_dict": state, CONFIG_KEY: OmegaConf.to_container(cfg, resolve=True)}
    if model == "char_rnn":
        checkpoint[VOCAB_KEY] = VOCAB.to_dict()
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {m: write_checkpoint(root / f"{m}.ckpt", m, o) for m, o in MODELS.items()}


@pytest.fixture
def no_sampling(monkeypatch):
    """Make reading data or drawing samples fail loudly: refusals must come before either."""

    def forbidden(*args, **kwargs):
        raise AssertionError("sampled or read data before refusing the options")

    for name in ("sample_images", "complete_images", "write_text"):
        monkeypatch.setattr(sample, name, forbidden)


def refusal(capsys, *argv: str) -> str:
    """Run the CLI expecting a usage error; return its single stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        sample.main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


IMAGE_ONLY_REFUSALS = [("--prime", "ab"), ("--length", "5"), ("--top-k", "2")]


@pytest.mark.parametrize("model", ["fvsbn", "nade", "made", "pixelcnn"])
@pytest.mark.parametrize("option", IMAGE_ONLY_REFUSALS, ids=lambda o: o[0])
def test_image_models_refuse_text_options(checkpoints, capsys, no_sampling, model, option):
    line = refusal(capsys, str(checkpoints[model]), *option)
    assert option[0] in line and "--temperature" in line  # names what it can use instead


@pytest.mark.parametrize("model", ["fvsbn", "nade", "made"])
def test_models_without_a_completion_sampler_refuse_complete(checkpoints, capsys, model):
    line = refusal(capsys, str(checkpoints[model]), "--complete")
    assert "cannot complete" in line


@pytest.mark.parametrize(
    "argv",
    [["--complete"], ["--nrow", "4"], ["--data-dir", "/tmp"]],
    ids=lambda a: a[0],
)
def test_text_models_refuse_image_options(checkpoints, capsys, no_sampling, argv):
    line = refusal(capsys, str(checkpoints["char_rnn"]), *argv)
    assert argv[0] in line


def test_data_dir_only_goes_with_complete(checkpoints, capsys, no_sampling):
    assert "--data-dir" in refusal(capsys, str(checkpoints["pixelcnn"]), "--data-dir", "/tmp")


@pytest.mark.parametrize("argv", [[], ["--temperature", "0.5"]])
def test_the_autoencoder_is_refused_as_not_a_density(checkpoints, capsys, no_sampling, argv):
    line = refusal(capsys, str(checkpoints["autoencoder"]), *argv)
    assert "no distribution" in line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--num", "0"], "--num must be at least 1"),
        (["--num", "-3"], "--num must be at least 1"),
        (["--temperature", "0"], "--temperature must be a positive"),
        (["--temperature", "-1"], "--temperature must be a positive"),
        (["--nrow", "0"], "--nrow must be at least 1"),
        (["--num", "two"], "invalid int value"),
    ],
)
def test_bad_values_are_one_line_errors(checkpoints, capsys, no_sampling, argv, needle):
    assert needle in refusal(capsys, str(checkpoints["fvsbn"]), *argv)


def test_text_bad_values_are_one_line_errors(checkpoints, capsys):
    ckpt = str(checkpoints["char_rnn"])
    assert "--length must be at least 1" in refusal(capsys, ckpt, "--length", "0")
    assert f"at most the vocabulary size {len(VOCAB)}" in refusal(capsys, ckpt, "--top-k", "99")


def text_samples(capsys, *argv: str) -> list[str]:
    sample.main(list(argv))
    return capsys.readouterr().out.rstrip("\n").split("\n\n")


def test_text_models_print_one_sample_by_default(checkpoints, capsys):
    ckpt = str(checkpoints["char_rnn"])
    (only,) = text_samples(capsys, ckpt, "--prime", "ab", "--length", "7")
    assert only.startswith("ab") and len(only) == 2 + 7
    several = text_samples(capsys, ckpt, "--prime", "ab", "--length", "7", "--num", "3")
    assert len(several) == 3 and all(s.startswith("ab") and len(s) == 9 for s in several)
    cool = text_samples(capsys, ckpt, "--prime", "ab", "--length", "7", "--temperature", "0.3")
    assert len(cool) == 1 and len(cool[0]) == 9


def test_image_models_default_to_a_grid_of_64(checkpoints, tmp_path):
    out = tmp_path / "grid.png"
    sample.main([str(checkpoints["fvsbn"]), "--out", str(out)])
    assert Image.open(out).size == (8 * 4 + 9 * 2, 8 * 4 + 9 * 2)  # 8 x 8 cells of 4 x 4


@pytest.mark.parametrize("model", ["fvsbn", "nade", "made"])
def test_temperature_reaches_binary_density_models(model, tmp_path):
    """Every logit is +3: p(black pixel) = sigmoid(-3 / T), so a colder sampler draws fewer black
    pixels, a hotter one more, and T = 1 is the untempered sampler."""
    ckpt = write_checkpoint(tmp_path / "biased.ckpt", model, MODELS[model], bias=3.0)

    def grid(*argv: str) -> np.ndarray:
        out = tmp_path / f"grid{'_'.join(argv)}.png"
        sample.main([str(ckpt), "--num", "64", "--seed", "3", "--out", str(out), *argv])
        return np.asarray(Image.open(out).convert("L"))

    default, one = grid(), grid("--temperature", "1")
    assert np.array_equal(default, one)
    black = {t: int((grid("--temperature", t) == 0).sum()) for t in ("0.1", "1", "3")}
    assert black["0.1"] == 0 < black["1"] < black["3"]
    # 1024 pixels: about 49 black at T = 1 (p = 0.047) and 276 at T = 3 (p = 0.27).
    assert 15 < black["1"] < 100 and 200 < black["3"] < 360


@pytest.mark.skipif(not (DATA_DIR / "binarized_mnist").exists(), reason="no binarized MNIST")
def test_completion_takes_a_temperature(tmp_path):
    ckpt = write_checkpoint(
        tmp_path / "pixelcnn28.ckpt",
        "pixelcnn",
        [*MODELS["pixelcnn"][1:], "data.datamodule.max_examples=5"],
    )
    out = tmp_path / "completions.png"
    sample.main([str(ckpt), "--complete", "--temperature", "0.5", "--out", str(out)])
    assert Image.open(out).size == (5 * 28 + 6 * 2, 3 * 28 + 4 * 2)  # default --num 8, 5 exist


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "argen.sample", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_unusable_checkpoints_are_one_line_errors(tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    for path, needle in ((tmp_path / "missing.ckpt", "does not exist"), (corrupt, "corrupt.ckpt")):
        result = cli(str(path))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
        assert "Traceback" not in result.stderr


@pytest.mark.skipif(not (DATA_DIR / "binarized_mnist").exists(), reason="no binarized MNIST")
@pytest.mark.parametrize("model", ["row_lstm", "diagonal_bilstm"])
def test_pixel_rnns_complete_images(tmp_path, model):
    """The PixelRNNs complete through the one raster sampler, like every raster image model."""
    ckpt = write_checkpoint(
        tmp_path / f"{model}.ckpt",
        model,
        [
            "model.module.net.hidden_channels=4",
            "model.module.net.num_layers=1",
            "data.datamodule.max_examples=2",
        ],
    )
    out = tmp_path / "completions.png"
    sample.main([str(ckpt), "--complete", "--num", "2", "--out", str(out)])
    assert Image.open(out).size == (2 * 28 + 3 * 2, 3 * 28 + 4 * 2)
