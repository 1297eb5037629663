"""The quality bar, applied to every registered model: a model is registered by its config file,
``conf/model/<name>.yaml`` (``argen.training.registry``), and is checked here by being registered,
with no test of its own needed; what data it is checked on follows from what its class declares it
can model (``capabilities``, ``argen.models.base``).

Each density model is built from its own config (default sizes) on a tiny dataset shape, with
peaked random weights, and must pass the shared checks of ``tests/ar_checks.py``:

1. the autoregressive property by exact gradients: every conditional's parameters have zero
   gradient with respect to each variable at or after it in the model's ordering;
2. normalization: the probabilities of every input of the tiny instance sum to one;
3. samples have the data's shape and dtype and follow ``log_prob`` (total variation from the exact
   distribution within sampling noise); a model with a cached sampler draws exactly the naive
   sampler's samples.

What a new model needs for these checks to run (README, "Adding a model"): ``log_prob`` and
``sample(n, ...)``; ``forward(x)`` returning every conditional's parameters (images: ``x`` an
image batch of levels as floats; or ``forward_onehot`` of one-hot inputs for models that embed
their inputs); and, if it generates in an order other than raster order, that order as the
LongTensor attribute ``ordering`` (or ``order``, as MADE's current mask has it).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from argen.models.base import IMAGE, TEXT
from argen.training.registry import registered_models
from argen.training.resolvers import register_resolvers
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized, raster_order

pytestmark = pytest.mark.slow  # ~2 minutes alone on 2 cores: every model at its default width

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = registered_models(ROOT / "conf")
REGISTERED = sorted(REGISTRY)

# Tiny instances: (data config, overrides). Every input of each is enumerated (at most 3^6).
BINARY_IMAGES = ("binarized_mnist", ["data.shape=[1,2,2]"])
LEVEL_IMAGES = ("cifar10", ["data.shape=[3,1,2]", "data.num_levels=3", "data.num_classes=null"])
VOCAB, LENGTH = 3, 4
TEXT_DATA = ("tinyshakespeare", [f"model.module.net.vocab_size={VOCAB}"])
NUM_SAMPLES = 6000


@functools.cache
def cases() -> list:
    """(model, data) pairs: every registered density model on each kind of data it declares it
    can model (text; binary images; and 3-level RGB images unless it is binary-only)."""
    params = []
    for name, model in REGISTRY.items():
        if not model.capabilities.density:
            continue
        if model.can_model(TEXT):
            params.append(pytest.param(name, TEXT_DATA, id=f"{name}-text"))
        if model.can_model(IMAGE, 2):
            params.append(pytest.param(name, BINARY_IMAGES, id=f"{name}-binary"))
        if model.can_model(IMAGE, 3):
            params.append(pytest.param(name, LEVEL_IMAGES, id=f"{name}-3levels"))
    return params


def build(name: str, data: tuple[str, list[str]]) -> tuple[torch.nn.Module, dict]:
    """The model's net from its config on the tiny data, with peaked random weights; and the data
    config (shape and levels, or nothing for text)."""
    register_resolvers()
    data_name, overrides = data
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", f"data={data_name}", *overrides])
    torch.manual_seed(0)
    net = instantiate(cfg.model.module.net)
    with torch.no_grad():  # default inits give near-uniform tiny models: sampling tests need peaks
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    return net.double().eval(), OmegaConf.to_container(cfg.data, resolve=True)


def every_input(data: dict) -> torch.Tensor:
    if "num_levels" not in data:
        return all_discrete(LENGTH, VOCAB)
    every = all_discrete(math.prod(data["shape"]), data["num_levels"])
    return every.double().view(-1, *data["shape"])


def generation_order(net: torch.nn.Module, data: dict) -> torch.Tensor:
    """The order a model generates in: its ``ordering`` tensor (FVSBN, NADE, MADE), else raster
    order (or left to right for text)."""
    order = getattr(net, "ordering", None)
    if isinstance(order, torch.Tensor):
        return order
    if "num_levels" not in data:
        return torch.arange(LENGTH)
    return raster_order(*data["shape"])


def conditional_params(net: torch.nn.Module, data: dict):
    """[B, D] levels (or [B, D, K] one-hot) -> [B, D, P] parameters, for assert_autoregressive."""
    if "num_levels" not in data:
        return net.forward_onehot
    shape = data["shape"]
    if hasattr(net, "forward_onehot"):
        return lambda x: net.forward_onehot(x.view(x.shape[0], *shape, -1)).reshape(
            x.shape[0], x.shape[1], -1
        )
    return lambda x: net(x.view(-1, *shape)).reshape(x.shape[0], math.prod(shape), -1)


def draw(net: torch.nn.Module, data: dict, n: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # FVSBN, NADE and MADE draw from the global generator
    if "num_levels" not in data:
        return net.sample(n, LENGTH)
    return net.sample(n)


@pytest.mark.parametrize(("name", "data"), cases())
def test_conditionals_see_only_earlier_variables(name, data):
    net, data_cfg = build(name, data)
    generator = torch.Generator().manual_seed(1)
    if "num_levels" in data_cfg:
        levels, num_dims = data_cfg["num_levels"], math.prod(data_cfg["shape"])
        x = torch.randint(levels, (3, num_dims), generator=generator).double()
        if hasattr(net, "forward_onehot"):
            x = F.one_hot(x.long(), levels).double()
    else:
        x = F.one_hot(torch.randint(VOCAB, (3, LENGTH), generator=generator), VOCAB).double()
    assert_autoregressive(conditional_params(net, data_cfg), x, generation_order(net, data_cfg))


@pytest.mark.parametrize(("name", "data"), cases())
def test_probabilities_of_every_input_sum_to_one(name, data):
    net, data_cfg = build(name, data)
    assert_normalized(net.log_prob, every_input(data_cfg), atol=1e-9)


@pytest.mark.parametrize(("name", "data"), cases())
def test_samples_have_the_datas_form_and_follow_the_density(name, data):
    net, data_cfg = build(name, data)
    inputs = every_input(data_cfg)
    with torch.no_grad():
        exact = net.log_prob(inputs).exp()
    uniform = torch.full_like(exact, 1 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.1, "the tiny model should be far from uniform"

    sampler = getattr(net, "sampler", None)
    if sampler in ("cached", "naive"):  # in float64, where reordered sums round alike
        first = draw(net, data_cfg, 64, seed=3)
        net.sampler = "naive" if sampler == "cached" else "cached"
        assert torch.equal(draw(net, data_cfg, 64, seed=3), first), "cached != naive samples"
        net.sampler = sampler

    net = net.float()
    samples = draw(net, data_cfg, NUM_SAMPLES, seed=2)
    if "num_levels" in data_cfg:
        assert samples.shape == (NUM_SAMPLES, *data_cfg["shape"])
        assert samples.dtype == torch.float32, "images are float levels, as the data loaders give"
        flat_inputs, flat_samples = inputs.flatten(1).float(), samples.flatten(1)
    else:
        assert samples.shape == (NUM_SAMPLES, LENGTH) and samples.dtype == torch.long
        flat_inputs, flat_samples = inputs, samples
    assert_frequencies_match(flat_samples, flat_inputs, exact)


def assert_frequencies_match(samples: torch.Tensor, inputs: torch.Tensor, exact: torch.Tensor):
    """Samples [N, D] are inputs [M, D] with frequencies within sampling noise of ``exact`` [M]."""
    matches = (samples[:, None, :] == inputs[None]).all(-1)
    assert bool(matches.any(1).all()), "every sample must be one of the model's inputs"
    frequency = matches.double().mean(0)
    distance = 0.5 * (frequency - exact).abs().sum().item()
    # Sampling noise: E[TV] <= 0.5 * sum(sqrt(p (1 - p) / n)); a wrong sampler misses by far more.
    noise = 0.5 * (exact * (1 - exact) / samples.shape[0]).sqrt().sum().item()
    assert distance < 3 * noise + 0.01, f"total variation {distance:.4f}, noise {noise:.4f}"


def test_the_frequency_check_catches_a_sampler_of_another_distribution():
    """MADE's samples at temperature 0.7 come from a sharper distribution than its log_prob."""
    net, data_cfg = build("made", BINARY_IMAGES)
    inputs = every_input(data_cfg)
    with torch.no_grad():
        exact = net.log_prob(inputs).exp()
    torch.manual_seed(2)
    tempered = net.float().sample(NUM_SAMPLES, temperature=0.7).flatten(1)
    with pytest.raises(AssertionError, match="total variation"):
        assert_frequencies_match(tempered, inputs.flatten(1).float(), exact)


def test_every_registered_model_is_checked_or_declares_no_density():
    checked = {param.values[0] for param in cases()}
    no_density = {name for name, model in REGISTRY.items() if not model.capabilities.density}
    assert checked | no_density == set(REGISTERED) and not checked & no_density
    assert "autoencoder" in no_density  # the non-generative baseline: no likelihood, no sampler
    binary_only = {name for name, model in REGISTRY.items() if model.capabilities.binary_only}
    assert {"fvsbn", "nade", "made"} <= binary_only  # Bernoulli conditionals by definition
    assert not binary_only & {"pixelcnn", "row_lstm", "image_transformer"}
    assert {"made", "pixelcnn", "char_rnn", "char_transformer"} <= checked


@pytest.mark.parametrize("name", REGISTERED)
def test_the_declaration_matches_the_config(name):
    """The network class's declared capabilities agree with its config: the LightningModule
    trains the same kind of data, a binary-only model refuses 3 levels, and a model that declares
    labels has the ``conditional`` switch (and builds with ``num_classes``), others have none."""
    from hydra.errors import InstantiationException

    from argen.core.errors import ConfigError
    from argen.training.config_checks import check_model_matches_data

    capabilities = REGISTRY[name].capabilities
    data = "tinyshakespeare" if capabilities.data == TEXT else "cifar10"
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", f"data={data}"])
    if capabilities.binary_only:
        with pytest.raises(ConfigError, match="models binary data"):
            check_model_matches_data(cfg)
        with pytest.raises(InstantiationException, match="models binary data"):
            build(name, LEVEL_IMAGES)
    else:
        check_model_matches_data(cfg)
    assert ("conditional" in cfg.model) == capabilities.labels
    if capabilities.labels:
        overrides = ["data.shape=[3,1,2]", "data.num_levels=3", "data.num_classes=4"]
        net, _ = build(name, ("cifar10", [*overrides, "model.conditional=true"]))
        assert net.num_classes == 4
