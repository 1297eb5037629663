"""The config tree: every experiment composes to the model and data its name says (the dataset
presets ``pixel_<data>`` to any pixel model), a model with benchmark set-ups has one for every
benchmark dataset it can model, every model and dataset config builds, and the optimizer, callbacks
and debug groups do what they say. Which models there are and what each can model comes from the
registry (``argen.training.registry``: ``conf/model/*.yaml`` and their classes' declarations)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from argen.models.base import IMAGE, TEXT
from argen.training.registry import models_for, registered_models
from argen.training.resolvers import register_resolvers
from tests.conftest import ROOT

CONF = ROOT / "conf"
REGISTRY = registered_models(CONF)
IMAGE_MODELS = set(models_for(IMAGE, 2, density_only=False, conf_dir=CONF))  # autoencoder too
LEVEL_MODELS = set(models_for(IMAGE, 256, conf_dir=CONF))  # density models of 8-bit images
TEXT_MODELS = set(models_for(TEXT, conf_dir=CONF))
# The benchmark datasets, as (data kind, number of levels) a model must be able to model.
BENCHMARK_DATA = {
    "binarized_mnist": (IMAGE, 2),
    "mnist": (IMAGE, 256),
    "cifar10": (IMAGE, 256),
    "tinyshakespeare": (TEXT, None),
}


def names(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


# Dataset presets: a set-up for any pixel model (experiment=pixel_cifar10 model=row_lstm).
PRESETS = {p for p in names("experiment") if p.startswith("pixel_")}


def compose_train(*overrides: str, hydra: bool = False):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def resolved(*overrides: str) -> dict:
    """The job config of ``overrides`` with every interpolation resolved (as the run sees it),
    less the values that hold the time of day (the run directory, the W&B run name)."""
    cfg = compose_train(*overrides, hydra=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = "<run dir>"
        if cfg.get("logger") and "wandb" in cfg.logger:
            cfg.logger.wandb.name = "<run name>"
    return OmegaConf.to_container(cfg, resolve=True)


def test_the_registry_is_every_model_config_and_sorts_them_by_what_they_model():
    assert set(REGISTRY) == names("model") == IMAGE_MODELS | TEXT_MODELS
    assert not IMAGE_MODELS & TEXT_MODELS
    assert {"pixelcnn", "row_lstm", "pixelsnail", "image_transformer"} <= LEVEL_MODELS
    assert not LEVEL_MODELS & {"fvsbn", "nade", "made", "autoencoder"}  # binary only; no density
    assert {"char_rnn", "char_transformer"} <= TEXT_MODELS


def test_a_density_model_with_benchmark_setups_has_one_for_every_benchmark_dataset_it_models():
    """A model needs no experiment of its own (``model=<name>`` or a ``pixel_<data>`` preset
    runs it); one that has a ``<model>_<data>`` benchmark set-up has them all."""
    benchmarks = {f"{m}_{d}" for m in REGISTRY for d in BENCHMARK_DATA} & names("experiment")
    assert len(benchmarks) >= 20, "the benchmark set-ups are missing"
    for name, model in REGISTRY.items():
        modelled = {
            d for d, (kind, levels) in BENCHMARK_DATA.items() if model.can_model(kind, levels)
        }
        have = {d for d in BENCHMARK_DATA if f"{name}_{d}" in benchmarks}
        assert have <= modelled, f"{name} has set-ups for data it cannot model"
        if have and model.capabilities.density:
            assert have == modelled, f"{name} lacks set-ups for {sorted(modelled - have)}"


PAPER_SETUPS = {p for p in names("experiment") if p.startswith("made_paper")}


@pytest.mark.parametrize(
    "experiment",
    sorted(names("experiment") - {"compare_binarized_mnist"} - PAPER_SETUPS - PRESETS),
)
def test_experiment_composes_to_its_model_and_data(experiment):
    from argen.training.config_checks import check_model_matches_data

    cfg = compose_train(f"experiment={experiment}")
    assert experiment == f"{cfg.model.name}_{cfg.data.name}"
    assert experiment in cfg.tags
    check_model_matches_data(cfg)  # the model declares it can model the data


@pytest.mark.parametrize(
    "experiment", ["pixelsnail_mnist", "image_transformer_mnist", "image_transformer_cifar10"]
)
def test_attention_pairs_pass_the_checks_train_py_runs(experiment):
    """The attention models' MNIST and CIFAR-10 set-ups build their networks for the data's
    shape and levels (train.py's checks before any data is read)."""
    from argen.training.config_checks import check_config

    cfg = compose_train(f"experiment={experiment}", hydra=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    check_config(cfg)
    assert cfg.model.module.net.num_levels == 256 and cfg.trainer.gradient_clip_val == 1.0


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


def test_made_paper_32_masks_differs_only_in_connectivity_agnostic_training():
    """The paper's 86.64-nat figure: 2 x 8000, 32 masks, random orderings, the 32-mask mixture."""
    single, agnostic = (
        compose_train("experiment=made_paper"),
        compose_train("experiment=made_paper_32_masks"),
    )
    net = agnostic.model.module.net
    assert list(net.hidden_sizes) == [8000, 8000] and net.num_masks == 32
    assert net.ordering == "random" and net.num_eval_masks is None  # the mixture of all 32
    for config in (single, agnostic):
        del config.model.module.net.hidden_sizes, config.model.module.net.num_masks
        del config.model.module.net.ordering, config.tags
    assert single == agnostic


def test_compare_experiment_sweeps_every_density_model():
    """The sweep's model list is derived (``${argen_models:...}``): every registered model whose
    class declares a density of images, each of which passes train.py's check on the data."""
    from argen.training.config_checks import check_model_matches_data

    cfg = compose_train("experiment=compare_binarized_mnist", hydra=True)
    swept = set(cfg.hydra.sweeper.params.model.split(","))
    declared = {
        name
        for name, model in REGISTRY.items()
        if model.capabilities.density and model.capabilities.data == IMAGE
    }
    assert swept == declared
    assert {"fvsbn", "nade", "made", "pixelcnn", "pixelsnail", "image_transformer"} <= swept
    assert not swept & {"autoencoder", "char_rnn", "char_transformer"}
    for model in swept:
        check_model_matches_data(
            compose_train("experiment=compare_binarized_mnist", f"model={model}")
        )


def test_class_conditioning_needs_a_model_that_declares_labels_and_labelled_data():
    from argen.core.errors import ConfigError
    from argen.training.config_checks import check_model_matches_data

    labelled = sorted(name for name, model in REGISTRY.items() if model.capabilities.labels)
    assert {"gated_pixelcnn", "pixelsnail"} <= set(labelled)
    for model in labelled:
        check_model_matches_data(
            compose_train(f"model={model}", "model.conditional=true", "data=mnist")
        )
        with pytest.raises(ConfigError, match="needs labelled data, but data=binarized_mnist"):
            check_model_matches_data(compose_train(f"model={model}", "model.conditional=true"))
    with pytest.raises(ConfigError, match="model=pixelcnn cannot condition on class labels"):
        check_model_matches_data(compose_train("model=pixelcnn", "+model.conditional=true"))


@pytest.mark.parametrize("model", sorted(IMAGE_MODELS))
def test_model_configs_build_their_networks(model):
    from hydra.utils import instantiate

    cfg = compose_train(f"model={model}")
    net = instantiate(cfg.model.module.net)
    x = __import__("torch").zeros(2, 1, 28, 28)
    if REGISTRY[model].capabilities.density:
        assert net.log_prob(x).shape == (2,)


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ARGEN_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("ARGEN_LOG_DIR", str(tmp_path / "l"))
    cfg = compose_train()
    assert Path(cfg.paths.data_dir) == tmp_path / "d"
    assert Path(cfg.paths.log_dir) == tmp_path / "l"
    assert Path(cfg.data.datamodule.data_dir) == tmp_path / "d"


# (preset, model): the named experiment is the preset with that model (and nothing else).
SAME_AS_PRESET = [
    ("pixel_binarized_mnist", "pixelcnn"),
    ("pixel_binarized_mnist", "gated_pixelcnn"),
    ("pixel_mnist", "pixelcnn"),
    ("pixel_mnist", "gated_pixelcnn"),
    ("pixel_cifar10", "pixelcnn"),
    ("pixel_cifar10", "row_lstm"),
    ("pixel_cifar10", "diagonal_bilstm"),
]


@pytest.mark.parametrize(("preset", "model"), SAME_AS_PRESET)
def test_a_preset_with_a_model_is_that_models_experiment(preset, model):
    data = preset.removeprefix("pixel_")
    named = resolved(f"experiment={model}_{data}")
    assert resolved(f"experiment={preset}", f"model={model}") == named
    assert named["tags"] == [f"{model}_{data}"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", sorted(LEVEL_MODELS))
def test_presets_compose_with_every_pixel_model(preset, model):
    import inspect

    from hydra.utils import get_class

    preset_net = OmegaConf.load(CONF / "experiment" / f"{preset}.yaml")
    sizes = set(OmegaConf.select(preset_net, "model.module.net", default=None) or {})
    accepted = inspect.signature(get_class(REGISTRY[model].net_target)).parameters
    if not sizes <= set(accepted):
        pytest.skip(f"the preset sets {sorted(sizes - set(accepted))}, which {model} does not have")
    cfg = compose_train(f"experiment={preset}", f"model={model}")
    assert (cfg.model.name, cfg.data.name) == (model, preset.removeprefix("pixel_"))
    assert cfg.tags == [f"{model}_{cfg.data.name}"]


def test_every_model_takes_its_optimizer_from_the_optimizer_group():
    adam = OmegaConf.to_container(OmegaConf.load(CONF / "optimizer" / "adam.yaml"))
    for model in sorted(names("model")):
        data = "tinyshakespeare" if model in TEXT_MODELS else "binarized_mnist"
        optimizer = OmegaConf.to_container(compose_train(f"model={model}", f"data={data}"))
        expected = {**adam, "lr": 2.0e-3} if model == "char_rnn" else adam
        assert optimizer["model"]["module"]["optimizer"] == expected, model
    adagrad = compose_train("model=made", "optimizer=adagrad").model.module.optimizer
    assert adagrad._target_ == "torch.optim.Adagrad" and adagrad.lr == 0.01


def test_early_stopping_is_one_callbacks_choice():
    plain = resolved("model=made")
    assert "early_stopping" not in plain["callbacks"]
    stopping = resolved("model=made", "callbacks=early_stopping")
    assert stopping["callbacks"]["early_stopping"] == {
        "_target_": "lightning.pytorch.callbacks.EarlyStopping",
        "monitor": "val/nll",
        "patience": 10,
    }
    assert {k: v for k, v in stopping["callbacks"].items() if k != "early_stopping"} == plain[
        "callbacks"
    ]
    autoencoder = resolved("experiment=autoencoder_binarized_mnist")["callbacks"]
    assert autoencoder["early_stopping"]["monitor"] == "val/recon_loss"
    made = resolved("experiment=made_binarized_mnist")["callbacks"]["early_stopping"]
    assert (made["patience"], made["min_delta"], made["mode"]) == (12, 0.01, "min")


@pytest.mark.parametrize(
    "overrides",
    [[], ["experiment=row_lstm_cifar10"], ["experiment=char_rnn_tinyshakespeare"]],
)
def test_debug_quick_is_a_short_run_without_wandb(overrides):
    from argen.training.config_checks import check_model_matches_data, check_numbers, check_resolves

    cfg = compose_train(*overrides, "debug=quick", hydra=True)
    HydraConfig.instance().set_config(cfg)
    assert cfg.hydra.runtime.choices.logger == "none" and not cfg.logger
    with open_dict(cfg):
        del cfg["hydra"]
    check_model_matches_data(cfg)
    check_resolves(cfg)
    check_numbers(cfg)
    trainer = cfg.trainer
    assert trainer.max_epochs == 1 and trainer.limit_train_batches == 2
    assert trainer.limit_val_batches == trainer.limit_test_batches == 1
    assert trainer.val_check_interval is None  # char_rnn_tinyshakespeare validates every 100
    streams = 4 if "num_levels" in cfg.data else 32  # text evaluates the whole split regardless
    assert (cfg.data.datamodule.batch_size, cfg.data.datamodule.eval_batch_size) == (4, streams)
    assert cfg.summary.num_samples == 1
    base = compose_train(*overrides)
    assert cfg.model == base.model  # the set-up itself is unchanged
