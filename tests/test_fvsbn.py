"""FVSBN: masked logistic regressions, autoregressive for any ordering, normalized, sampleable."""

from __future__ import annotations

import math

import pytest
import torch

from argen.models.fvsbn import FVSBN
from argen.models.ordering import resolve_ordering
from tests.ar_checks import all_binary, assert_autoregressive, assert_normalized

SHAPE = (1, 2, 3)
D = 6
ORDERINGS = ["natural", "random", [4, 2, 0, 5, 1, 3]]


def make(ordering, seed: int = 0) -> FVSBN:
    torch.manual_seed(seed)
    model = FVSBN(SHAPE, ordering=ordering, ordering_seed=seed + 11).double()
    with torch.no_grad():
        model.weight.normal_()
        model.bias.normal_()
    return model


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_autoregressive(ordering):
    model = make(ordering)
    x = torch.bernoulli(torch.full((4, D), 0.5, dtype=torch.double))
    assert_autoregressive(model, x, model.ordering)


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_normalized(ordering):
    model = make(ordering)
    assert_normalized(model.log_prob, all_binary(D).double().reshape(-1, *SHAPE), atol=1e-10)


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_log_prob_is_product_of_logistic_conditionals(ordering):
    """log p(x) = sum_k log Bernoulli(x_{o_k}; sigmoid(b + sum over earlier W x)), computed naively."""
    model = make(ordering)
    x = torch.bernoulli(torch.full((5, *SHAPE), 0.5, dtype=torch.double))
    flat = x.reshape(5, -1)
    order = model.ordering.tolist()
    expected = torch.zeros(5, dtype=torch.double)
    for k, i in enumerate(order):
        earlier = order[:k]
        p = torch.sigmoid(model.bias[i] + flat[:, earlier] @ model.weight[i, earlier])
        expected += torch.where(flat[:, i] == 1, p, 1 - p).log()
    torch.testing.assert_close(model.log_prob(x), expected)


def test_log_prob_is_stable_for_large_logits():
    model = make("natural")
    with torch.no_grad():
        model.bias.fill_(200.0)
    lp = model.log_prob(torch.zeros(2, *SHAPE, dtype=torch.double))
    assert torch.isfinite(lp).all() and (lp < -1000).all()


def test_mask_is_applied_in_forward_and_weights_are_untouched():
    model = make("random")
    before = model.weight.detach().clone()
    x = torch.bernoulli(torch.full((8, *SHAPE), 0.5, dtype=torch.double))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    (-model.log_prob(x).mean()).backward()
    forbidden = model.mask == 0
    assert torch.all(model.weight.grad[forbidden] == 0)
    optimizer.step()
    assert torch.equal(model.weight[forbidden], before[forbidden])  # dead weights stay as they were
    assert not torch.equal(model.weight[~forbidden], before[~forbidden])  # live ones train
    assert int(model.mask.sum()) == D * (D - 1) // 2  # strictly lower triangular in the order


@pytest.mark.parametrize("ordering", ["natural", "random"])
def test_sampling_matches_the_distribution(ordering):
    shape, d = (1, 1, 3), 3
    torch.manual_seed(4)
    model = FVSBN(shape, ordering=ordering, ordering_seed=2).double()
    with torch.no_grad():
        model.weight.normal_(std=2.0)
        model.bias.normal_()
    n = 40_000
    samples = model.sample(n)
    assert samples.shape == (n, *shape) and samples.dtype == torch.double
    assert ((samples == 0) | (samples == 1)).all()
    codes = (samples.reshape(n, d) * torch.tensor([4.0, 2.0, 1.0], dtype=torch.double)).sum(1)
    freq = torch.bincount(codes.long(), minlength=8).double() / n
    probs = model.log_prob(all_binary(d).double().reshape(-1, *shape)).exp()
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / n) + 1e-3


def test_sample_on_image_shape():
    model = FVSBN((1, 5, 5), ordering="random")
    s = model.sample(3)
    assert s.shape == (3, 1, 5, 5) and s.dtype == torch.float32
    assert ((s == 0) | (s == 1)).all()
    assert torch.isfinite(model.log_prob(s)).all()


def test_orderings():
    assert resolve_ordering("natural", 4).tolist() == [0, 1, 2, 3]
    r1, r2 = resolve_ordering("random", 50, seed=1), resolve_ordering("random", 50, seed=1)
    assert torch.equal(r1, r2) and sorted(r1.tolist()) == list(range(50))
    assert not torch.equal(r1, resolve_ordering("random", 50, seed=2))
    assert not torch.equal(r1, torch.arange(50))
    model = FVSBN(SHAPE, ordering=[5, 4, 3, 2, 1, 0])
    assert model.ordering.dtype == torch.long and model.ordering.tolist() == [5, 4, 3, 2, 1, 0]
    assert "ordering" in model.state_dict()
    for bad in ([0, 1, 2], [0, 0, 1, 2, 3, 4], "zigzag"):
        with pytest.raises(ValueError):
            FVSBN(SHAPE, ordering=bad)


def test_rejects_bad_input_and_non_binary_data():
    model = FVSBN(SHAPE)
    good = torch.zeros(2, *SHAPE)
    for bad in (good.long(), good + 0.5, good - 1, torch.zeros(2, 6)):
        with pytest.raises(ValueError):
            model.log_prob(bad)
    with pytest.raises(ValueError, match="binary"):
        FVSBN(SHAPE, num_levels=256)


# ------------------------------------------------------------------------------- temperature
def tempered_joint(logits: torch.Tensor, every: torch.Tensor, temperature: float) -> torch.Tensor:
    """p_T(x) for every x [2^D, D], the chain of tempered conditionals: each conditional's
    probabilities are raised to 1/T and renormalized, given ``logits`` [2^D, D] of p(x_i = 1 | x_<i)
    evaluated at every x (only the prefix matters, by the autoregressive property)."""
    p1, p0 = torch.sigmoid(logits) ** (1 / temperature), torch.sigmoid(-logits) ** (1 / temperature)
    return torch.where(every == 1, p1, p0).div(p1 + p0).prod(1)


def tiny_fvsbn() -> FVSBN:
    torch.manual_seed(4)
    model = FVSBN((1, 1, 3), ordering="random", ordering_seed=2).double()
    with torch.no_grad():
        model.weight.normal_(std=2.0)
        model.bias.normal_()
    return model


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_tempered_sampling_follows_the_chain_of_tempered_conditionals(temperature):
    model, n = tiny_fvsbn(), 40_000
    every = all_binary(3).double()
    expected = tempered_joint(model(every), every, temperature)
    assert expected.sum().item() == pytest.approx(1.0)
    # The tempered joint differs from the model's: the test would notice an ignored temperature.
    untempered = model.log_prob(every.reshape(-1, 1, 1, 3)).exp()
    assert (expected - untempered).abs().max() > 0.05
    samples = model.sample(n, temperature=temperature).reshape(n, 3)
    codes = (samples * torch.tensor([4.0, 2.0, 1.0], dtype=torch.double)).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / n
    assert (freq - expected).abs().max() < 4 * math.sqrt(0.25 / n) + 1e-3


def test_temperature_one_is_ancestral_sampling_draw_for_draw():
    """At T = 1 (given or default) the samples are exactly those of plain ancestral sampling from
    the model's conditionals with the same random numbers, i.e. unchanged by tempering."""
    model = make("random")
    torch.manual_seed(7)
    reference = torch.zeros(50, D, dtype=torch.double)
    for i in model.ordering.tolist():
        reference[:, i] = torch.bernoulli(torch.sigmoid(model(reference)[:, i]))
    for kwargs in ({}, {"temperature": 1.0}):
        torch.manual_seed(7)
        assert torch.equal(model.sample(50, **kwargs).reshape(50, D), reference)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_non_positive_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature must be positive"):
        make("natural").sample(2, temperature=temperature)
