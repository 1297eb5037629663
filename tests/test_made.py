"""MADE: autoregressive property, normalization, sampling, mask handling, input validation."""

import pytest
import torch

from argen.models.made import MADE
from tests.ar_checks import all_binary, assert_autoregressive, assert_normalized

SHAPE = (1, 2, 3)  # D = 6: 64 binary inputs


def made(**kwargs) -> MADE:
    torch.manual_seed(0)
    model = MADE(SHAPE, hidden_sizes=kwargs.pop("hidden_sizes", [16, 16]), **kwargs).double()
    # Non-zero biases and larger weights make every allowed dependency visible in the gradient.
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return model


CONFIGS = [
    dict(ordering="natural"),
    dict(ordering="random", ordering_seed=3),
    dict(ordering="random", num_masks=4, ordering_seed=1),
    dict(ordering="natural", num_masks=3, direct_connection=True),
    dict(hidden_sizes=[32], ordering="random", direct_connection=True, ordering_seed=7),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_autoregressive_for_every_mask(config):
    model = made(**config)
    x = all_binary(model.num_dims)[:16]
    for k in range(model.num_masks):
        model.use_mask(k)
        assert_autoregressive(model, x, model.ordering)


@pytest.mark.parametrize("config", CONFIGS)
def test_normalized_for_every_mask_and_the_mixture(config):
    model = made(**config)
    every_input = all_binary(model.num_dims).double().reshape(-1, *SHAPE)
    for k in range(model.num_masks):
        model.use_mask(k)
        assert_normalized(lambda x: model.log_prob(x, num_masks=1), every_input)
    assert_normalized(model.log_prob, every_input)


def test_mixture_is_log_mean_exp_of_the_masks_not_averaged_logits():
    model = made(ordering="random", num_masks=3)
    x = all_binary(model.num_dims).double().reshape(-1, *SHAPE)
    per_mask = []
    for k in range(3):
        model.use_mask(k)
        per_mask.append(model.log_prob(x, num_masks=1))
    expected = torch.logsumexp(torch.stack(per_mask), 0) - torch.log(torch.tensor(3.0)).double()
    torch.testing.assert_close(model.log_prob(x), expected)


def test_masks_differ_across_seeds_and_cycle_during_training():
    model = made(ordering="random", num_masks=3)
    orders = []
    for _ in range(3):
        orders.append(model.ordering.clone())
        model.training_loss(torch.zeros(2, *SHAPE, dtype=torch.double))
    assert model.mask_index == 0  # three steps cycled through all three masks
    assert len({tuple(o.tolist()) for o in orders}) == 3


def test_masks_are_applied_in_forward_not_written_into_weights():
    model = made(ordering="random", num_masks=2)
    before = model.hidden_layers[0].weight.detach().clone()
    model.use_mask(1)
    assert torch.equal(model.hidden_layers[0].weight, before)
    assert (before * (1 - model.hidden_layers[0].mask)).abs().sum() > 0


@pytest.mark.parametrize("config", CONFIGS[:3])
def test_sampling_returns_binary_images_of_the_right_shape(config):
    model = made(**config).float()
    samples = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (50, *SHAPE)
    assert samples.dtype == torch.float32
    assert set(samples.unique().tolist()) <= {0.0, 1.0}


def test_sampling_follows_the_model_distribution():
    """Empirical frequencies of 4000 samples match the exact probabilities (D=3, 8 outcomes)."""
    torch.manual_seed(0)
    model = MADE((1, 1, 3), hidden_sizes=[8])
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.0)
    samples = model.sample(4000, generator=torch.Generator().manual_seed(1)).reshape(4000, 3)
    every = all_binary(3)
    probs = model.log_prob(every.reshape(-1, 1, 1, 3)).exp()
    counts = (samples[:, None, :] == every[None]).all(-1).float().mean(0)
    assert torch.allclose(counts, probs, atol=0.03)


def test_log_prob_rejects_bad_input():
    model = made()
    with pytest.raises(ValueError, match="integer levels"):
        model.log_prob(torch.full((2, *SHAPE), 0.5, dtype=torch.double))
    with pytest.raises(ValueError, match="dtype"):
        model.log_prob(torch.zeros(2, *SHAPE, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 7, dtype=torch.double))


def test_binary_only():
    with pytest.raises(ValueError, match="num_levels=256"):
        MADE((3, 8, 8), num_levels=256)


@pytest.mark.parametrize("config", [dict(), dict(ordering="random", ordering_seed=2)])
def test_single_mask_connects_every_input_but_the_last(config):
    """With fewer hidden units than inputs, degrees must still span 1..D-1: an input that feeds no
    hidden unit is invisible to every later conditional."""
    model = MADE((1, 28, 28), hidden_sizes=[500, 500], **config)
    last = model.ordering[-1]
    feeds = model.hidden_layers[0].mask.sum(dim=0) > 0
    assert feeds.sum() == 783 and not feeds[last]
    for layer in list(model.hidden_layers[1:]) + [model.output_layer]:
        assert (layer.mask.sum(dim=1) > 0).float().mean() > 0.99  # nearly all units are used


# ------------------------------------------------------------------------------- temperature
def tempered_joint(logits: torch.Tensor, every: torch.Tensor, temperature: float) -> torch.Tensor:
    """p_T(x) for every x [2^D, D], the chain of tempered conditionals: each conditional's
    probabilities are raised to 1/T and renormalized (``logits`` [2^D, D] at every x)."""
    p1, p0 = torch.sigmoid(logits) ** (1 / temperature), torch.sigmoid(-logits) ** (1 / temperature)
    return torch.where(every == 1, p1, p0).div(p1 + p0).prod(1)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_tempered_sampling_follows_the_chain_of_tempered_conditionals(temperature):
    """Frequencies of 20k samples at T match the tempered chain over the 8 outcomes of D = 3."""
    torch.manual_seed(0)
    model = MADE((1, 1, 3), hidden_sizes=[8], ordering="random", ordering_seed=2).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.7)
    every, n = all_binary(3).double(), 20_000
    expected = tempered_joint(model(every), every, temperature)
    assert expected.sum().item() == pytest.approx(1.0)
    untempered = model.log_prob(every.reshape(-1, 1, 1, 3)).exp()
    assert (expected - untempered).abs().max() > 0.05  # an ignored temperature would fail
    gen = torch.Generator().manual_seed(1)
    samples = model.sample(n, generator=gen, temperature=temperature).reshape(n, 3)
    freq = (samples[:, None, :] == every[None]).all(-1).double().mean(0)
    assert (freq - expected).abs().max() < 4 * (0.25 / n) ** 0.5 + 1e-3


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[4]])
def test_temperature_one_is_ancestral_sampling_draw_for_draw(config):
    """At T = 1 (given or default) the samples are exactly those of plain ancestral sampling from
    the model's conditionals with the same random numbers, i.e. unchanged by tempering."""
    model = made(**config)
    gen = torch.Generator().manual_seed(5)
    reference = torch.zeros(40, 6, dtype=torch.double)
    for d in model.ordering.tolist():
        u = torch.rand(40, generator=gen)
        reference[:, d] = (u < torch.sigmoid(model(reference)[:, d])).double()
    for kwargs in ({}, {"temperature": 1.0}):
        samples = model.sample(40, generator=torch.Generator().manual_seed(5), **kwargs)
        assert torch.equal(samples.reshape(40, 6), reference)


@pytest.mark.parametrize("temperature", [0.0, -2.0, float("nan")])
def test_non_positive_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature must be positive"):
        made().sample(2, temperature=temperature)


def test_seed_is_a_deprecated_alias_of_ordering_seed():
    """Configs and checkpoints written before the rename (``model.module.net.seed``) still build
    the same masks."""
    from hydra.utils import instantiate

    new = MADE((1, 3, 3), hidden_sizes=[6], ordering="random", num_masks=3, ordering_seed=4)
    old_config = {"_target_": "argen.models.made.MADE", "shape": [1, 3, 3], "seed": 4}
    with pytest.warns(DeprecationWarning, match="ordering_seed"):
        old = instantiate({**old_config, "hidden_sizes": [6], "ordering": "random", "num_masks": 3})
    assert old.ordering_seed == 4
    for k in range(3):
        new.use_mask(k)
        old.use_mask(k)
        assert torch.equal(new.ordering, old.ordering)
        for a, b in zip(new.hidden_layers, old.hidden_layers, strict=True):
            assert torch.equal(a.mask, b.mask)
    with pytest.raises(ValueError, match="ordering_seed only"):
        MADE((1, 3, 3), ordering_seed=1, seed=2)


def test_orderings_come_from_one_place():
    """FVSBN and NADE draw ``randperm(D)`` from a generator seeded with ``ordering_seed``; MADE
    seeds mask k's generator with ``ordering_seed * 1_000_003 + k`` (argen.models.ordering)."""
    from argen.models.fvsbn import FVSBN
    from argen.models.nade import NADE
    from argen.models.ordering import draw_ordering, resolve_ordering

    shape, seed = (1, 4, 4), 9
    expected = resolve_ordering("random", 16, seed)
    assert sorted(expected.tolist()) == list(range(16))
    assert not torch.equal(expected, torch.arange(16))
    assert torch.equal(FVSBN(shape, ordering="random", ordering_seed=seed).ordering, expected)
    assert torch.equal(
        NADE(shape, hidden_size=3, ordering="random", ordering_seed=seed).ordering, expected
    )
    model = MADE(shape, hidden_sizes=[4], ordering="random", num_masks=2, ordering_seed=seed)
    for k in range(2):
        model.use_mask(k)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + k)
        assert torch.equal(model.ordering, draw_ordering("random", 16, generator))
    zero = MADE(shape, hidden_sizes=[4], ordering="random")
    assert torch.equal(zero.ordering, resolve_ordering("random", 16, 0))
    assert torch.equal(MADE(shape, hidden_sizes=[4]).ordering, resolve_ordering("natural", 16))
