"""The config tree: every experiment composes to the model and data its name says, every model x
dataset pair has an experiment, and every model and dataset config builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from argen.resolvers import register_resolvers
from tests.conftest import ROOT

CONF = ROOT / "conf"
BINARY_ONLY = {"made", "fvsbn", "nade", "autoencoder"}
PIXEL_MODELS = {"pixelcnn", "gated_pixelcnn", "row_lstm", "diagonal_bilstm"}
ATTENTION_MODELS = {"pixelsnail", "image_transformer"}
TEXT_MODELS = {"char_rnn", "char_transformer"}
BENCHMARK_DATA = {
    "binarized_mnist": BINARY_ONLY | PIXEL_MODELS | ATTENTION_MODELS,
    "mnist": PIXEL_MODELS,
    "cifar10": PIXEL_MODELS | {"pixelsnail"},
    "tinyshakespeare": TEXT_MODELS,
}


def names(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


def compose_train(*overrides: str, hydra: bool = False):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def test_every_model_and_dataset_pair_has_an_experiment():
    assert names("model") == BINARY_ONLY | PIXEL_MODELS | ATTENTION_MODELS | TEXT_MODELS
    expected = {f"{m}_{d}" for d, models in BENCHMARK_DATA.items() for m in models}
    assert expected <= names("experiment")


PAPER_SETUPS = {p for p in names("experiment") if p.endswith("_paper")}


@pytest.mark.parametrize(
    "experiment", sorted(names("experiment") - {"compare_binarized_mnist"} - PAPER_SETUPS)
)
def test_experiment_composes_to_its_model_and_data(experiment):
    cfg = compose_train(f"experiment={experiment}")
    assert experiment == f"{cfg.model.name}_{cfg.data.name}"
    assert experiment in cfg.tags


def test_made_paper_is_the_released_single_mask_setup():
    cfg = compose_train("experiment=made_paper")
    net, optimizer = cfg.model.module.net, cfg.model.module.optimizer
    assert (cfg.model.name, cfg.data.name, cfg.data.datamodule.variant) == (
        "made",
        "binarized_mnist",
        "fixed",
    )
    assert list(net.hidden_sizes) == [8000] and net.num_masks == 1 and net.direct_connection
    assert optimizer._target_ == "torch.optim.Adagrad" and optimizer.lr == 0.01
    assert cfg.data.datamodule.batch_size == 100
    assert cfg.callbacks.early_stopping.patience == 30


def test_compare_experiment_sweeps_every_density_model():
    cfg = compose_train("experiment=compare_binarized_mnist", hydra=True)
    assert (
        set(cfg.hydra.sweeper.params.model.split(","))
        == (BINARY_ONLY - {"autoencoder"}) | PIXEL_MODELS | ATTENTION_MODELS
    )


@pytest.mark.parametrize("model", sorted(BINARY_ONLY | PIXEL_MODELS | ATTENTION_MODELS))
def test_model_configs_build_their_networks(model):
    from hydra.utils import instantiate

    cfg = compose_train(f"model={model}")
    net = instantiate(cfg.model.module.net)
    x = __import__("torch").zeros(2, 1, 28, 28)
    if model != "autoencoder":
        assert net.log_prob(x).shape == (2,)


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ARGEN_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("ARGEN_LOG_DIR", str(tmp_path / "l"))
    cfg = compose_train()
    assert Path(cfg.paths.data_dir) == tmp_path / "d"
    assert Path(cfg.paths.log_dir) == tmp_path / "l"
    assert Path(cfg.data.datamodule.data_dir) == tmp_path / "d"
