"""NADE: fast O(DH) pass against a from-scratch reference, the hand-written backward, the
autoregressive property, normalization, sampling, and the order-agnostic (DeepNADE) objective."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from argen.models.nade import NADE, _OrderedConditionals
from tests.ar_checks import all_binary, assert_autoregressive, assert_normalized

SHAPE = (1, 2, 3)  # D = 6: 64 binary inputs to enumerate
D = 6


def make(seed: int = 0, **kwargs) -> NADE:
    torch.manual_seed(seed)
    model = NADE(SHAPE, hidden_size=kwargs.pop("hidden_size", 5), **kwargs).double()
    with torch.no_grad():  # non-zero biases so that no term vanishes by accident
        model.c.normal_()
        model.b.normal_()
        model.W.mul_(3)
    return model


def reference_logits(model: NADE, x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Each conditional from scratch: h = sigmoid(c + W_in [x * m, m]) with m = {o_<d}."""
    flat = x.reshape(x.shape[0], -1).double()
    logits = torch.empty_like(flat)
    for d in range(D):
        mask = torch.zeros(D, dtype=torch.double)
        mask[order[:d]] = 1
        pre = model.c + (flat * mask) @ model.W.t()
        if model.order_agnostic:
            w_in = torch.cat([model.W, model.W_mask], dim=1)  # the 2D-wide input layer
            pre = model.c + torch.cat([flat * mask, mask.expand_as(flat)], dim=1) @ w_in.t()
        i = order[d]
        logits[:, i] = model.b[i] + torch.sigmoid(pre) @ model.V[i]
    return logits


CONFIGS = [
    {},
    {"ordering": "random", "ordering_seed": 3},
    {"ordering": [5, 0, 3, 1, 4, 2]},
    {"order_agnostic": True},
    {"order_agnostic": True, "num_eval_orderings": 3, "ordering_seed": 7},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_fast_pass_matches_reference(config):
    model = make(**config)
    x = torch.bernoulli(torch.full((7, *SHAPE), 0.5, dtype=torch.double))
    for order in model.orderings:
        expected = reference_logits(model, x, order)
        torch.testing.assert_close(model.conditional_logits(x, order), expected)
    torch.testing.assert_close(model(x), reference_logits(model, x, model.ordering))
    target = x.reshape(7, -1)
    ref_lp = -F.binary_cross_entropy_with_logits(
        reference_logits(model, x, model.ordering), target, reduction="none"
    ).sum(1)
    torch.testing.assert_close(model.log_prob_ordering(x), ref_lp)


def test_custom_backward_gradcheck():
    torch.manual_seed(0)
    b, d, h = 5, 4, 3
    xo = torch.bernoulli(torch.full((b, d), 0.5, dtype=torch.double)).requires_grad_()
    params = [torch.randn(d, h, dtype=torch.double, requires_grad=True) for _ in range(3)]
    bo = torch.randn(d, dtype=torch.double, requires_grad=True)
    for chunk in (1, 2, 5):  # uneven chunks included
        assert torch.autograd.gradcheck(
            lambda *a, chunk=chunk: _OrderedConditionals.apply(*a, chunk), (xo, *params, bo)
        )


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[4]])
def test_parameter_gradients_match_reference(config):
    model = make(**config)
    x = torch.bernoulli(torch.full((9, *SHAPE), 0.5, dtype=torch.double))
    params = [p for p in model.parameters()]
    order = model.orderings[-1]
    fast = torch.autograd.grad(model.conditional_logits(x, order).sin().sum(), params)
    slow = torch.autograd.grad(reference_logits(model, x, order).sin().sum(), params)
    for g_fast, g_slow in zip(fast, slow, strict=True):
        torch.testing.assert_close(g_fast, g_slow)


@pytest.mark.parametrize("config", CONFIGS)
def test_autoregressive_for_every_ordering(config):
    model = make(**config)
    x = torch.bernoulli(torch.full((4, D), 0.5, dtype=torch.double))
    for order in model.orderings:
        assert_autoregressive(lambda v, o=order: model.conditional_logits(v, o), x, order)
    assert_autoregressive(model, x, model.ordering)


@pytest.mark.parametrize("config", CONFIGS)
def test_normalized(config):
    model = make(**config)
    inputs = all_binary(D).double().reshape(-1, *SHAPE)
    assert_normalized(model.log_prob, inputs, atol=1e-10)
    for order in model.orderings:  # each mixture component, too
        assert_normalized(lambda v, o=order: model.log_prob_ordering(v, o), inputs, atol=1e-10)


def test_mixture_is_logmeanexp_of_orderings():
    model = make(order_agnostic=True, num_eval_orderings=3)
    assert model.orderings.shape == (3, D)
    assert len({tuple(o.tolist()) for o in model.orderings}) == 3
    assert model.ordering.tolist() == list(range(D))  # K=1 component is the natural ordering
    x = torch.bernoulli(torch.full((5, *SHAPE), 0.5, dtype=torch.double))
    per = torch.stack([model.log_prob_ordering(x, o) for o in model.orderings])
    torch.testing.assert_close(model.log_prob(x), per.exp().mean(0).log())


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[4]])
def test_sampling_matches_the_distribution(config):
    """Empirical frequencies of 40k samples match exp(log_prob) (mixture included)."""
    shape, d = (1, 1, 3), 3
    torch.manual_seed(1)
    model = NADE(shape, hidden_size=4, **{**config, "ordering": "random"}).double()
    with torch.no_grad():
        model.W.mul_(4)
        model.V.mul_(4)
        model.b.normal_()
        if model.W_mask is not None:
            model.W_mask.mul_(5)
    n = 40_000
    samples = model.sample(n)
    assert samples.shape == (n, *shape) and samples.dtype == torch.double
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    codes = (samples.reshape(n, d) * torch.tensor([4.0, 2.0, 1.0], dtype=torch.double)).sum(1)
    freq = torch.bincount(codes.long(), minlength=8).double() / n
    probs = model.log_prob(all_binary(d).double().reshape(-1, *shape)).exp()
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / n) + 1e-3


def test_sample_shapes_and_ordering_index():
    model = NADE((1, 4, 4), hidden_size=8, order_agnostic=True, num_eval_orderings=2)
    for kwargs in ({}, {"ordering_index": 1}):
        s = model.sample(5, **kwargs)
        assert s.shape == (5, 1, 4, 4) and s.dtype == torch.float32
        assert ((s == 0) | (s == 1)).all()
        assert torch.isfinite(model.log_prob(s)).all()
    with pytest.raises(ValueError):
        model.sample(2, ordering_index=2)


def test_training_loss_plain_is_exact_nll():
    model = make(ordering="random", ordering_seed=1)
    x = torch.bernoulli(torch.full((6, *SHAPE), 0.5, dtype=torch.double))
    torch.testing.assert_close(model.training_loss(x), -model.log_prob(x))


def test_order_agnostic_loss_is_unbiased_by_enumeration():
    """E_{o, d}[D/(D-d) sum_{k>=d} -log p(x_{o_k} | x_{o_<d})] = E_o[-log p_o(x)].

    For a fixed prefix o_<d, o_d is uniform over the D-d remaining variables, so the inner sum
    divided by D-d is E[-log p(x_{o_d} | x_{o_<d})]; summing over d gives the NLL under o.
    """
    shape, d_total = (1, 1, 3), 3
    torch.manual_seed(2)
    model = NADE(shape, hidden_size=4, order_agnostic=True).double()
    with torch.no_grad():
        model.b.normal_()
        model.W_mask.mul_(5)
    x = torch.bernoulli(torch.full((4, *shape), 0.5, dtype=torch.double))
    losses, exact = [], []
    for perm in itertools.permutations(range(d_total)):
        order = torch.tensor(perm)
        exact.append(-model.log_prob_ordering(x, order))
        for d in range(d_total):
            observed = torch.zeros(4, d_total, dtype=torch.bool)
            observed[:, order[:d]] = True
            losses.append(model.order_agnostic_loss(x, observed))
    torch.testing.assert_close(torch.stack(losses).mean(0), torch.stack(exact).mean(0))
    # Not a tautology: a single ordering's NLL differs from the average over orderings.
    assert (torch.stack(exact) - torch.stack(exact).mean(0)).abs().max() > 1e-3


def test_order_agnostic_training_loss_is_a_noisy_unbiased_estimate():
    shape, d_total = (1, 1, 3), 3
    torch.manual_seed(3)
    model = NADE(shape, hidden_size=4, order_agnostic=True).double()
    with torch.no_grad():
        model.W_mask.mul_(5)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.double).reshape(1, *shape)
    draws = model.training_loss(x.expand(50_000, *shape))
    assert torch.isfinite(draws).all() and (draws > 0).all()
    assert draws.std() > 1e-3  # random orderings and d really are drawn
    exact = torch.stack(
        [-model.log_prob_ordering(x, list(p)) for p in itertools.permutations(range(d_total))]
    ).mean()
    assert abs(draws.mean().item() - exact.item()) < 5 * draws.std().item() / math.sqrt(50_000)


def test_order_agnostic_loss_gradients_flow_and_plain_model_refuses():
    model = make(order_agnostic=True)
    x = torch.bernoulli(torch.full((8, *SHAPE), 0.5, dtype=torch.double))
    model.training_loss(x).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ValueError, match="order_agnostic"):
        make().order_agnostic_loss(x, torch.zeros(8, D, dtype=torch.bool))
    with pytest.raises(ValueError, match="unobserved"):
        model.order_agnostic_loss(x, torch.ones(8, D, dtype=torch.bool))


def test_rejects_bad_input_and_bad_config():
    model = NADE(SHAPE, hidden_size=4)
    good = torch.zeros(2, *SHAPE)
    for bad in (good.long(), good + 0.5, good + 2, torch.zeros(2, 1, 3, 2)):
        with pytest.raises(ValueError):
            model.log_prob(bad)
        with pytest.raises(ValueError):
            model.training_loss(bad)
    with pytest.raises(ValueError, match="binary"):
        NADE(SHAPE, num_levels=4)
    with pytest.raises(ValueError, match="order_agnostic"):
        NADE(SHAPE, num_eval_orderings=2)
    with pytest.raises(ValueError, match="permutation"):
        NADE(SHAPE, ordering=[0, 1, 2, 3, 4, 4])
    with pytest.raises(ValueError):
        NADE(SHAPE, ordering="diagonal")


def test_orderings_are_seeded_and_saved():
    a = NADE(SHAPE, hidden_size=4, ordering="random", ordering_seed=5)
    b = NADE(SHAPE, hidden_size=4, ordering="random", ordering_seed=5)
    c = NADE(SHAPE, hidden_size=4, ordering="random", ordering_seed=6)
    assert torch.equal(a.ordering, b.ordering) and not torch.equal(a.ordering, c.ordering)
    assert "orderings" in a.state_dict()


# ------------------------------------------------------------------------------- temperature
def tempered_joint(logits: torch.Tensor, every: torch.Tensor, temperature: float) -> torch.Tensor:
    """p_T(x) for every x [2^D, D], the chain of tempered conditionals: each conditional's
    probabilities are raised to 1/T and renormalized (``logits`` [2^D, D] at every x)."""
    p1, p0 = torch.sigmoid(logits) ** (1 / temperature), torch.sigmoid(-logits) ** (1 / temperature)
    return torch.where(every == 1, p1, p0).div(p1 + p0).prod(1)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[4]])
def test_tempered_sampling_follows_the_chain_of_tempered_conditionals(config, temperature):
    """Frequencies of 40k samples at T match the tempered chain; with several orderings, the
    uniform mixture of each ordering's tempered chain (each sample picks an ordering)."""
    shape, d, n = (1, 1, 3), 3, 40_000
    torch.manual_seed(1)
    model = NADE(shape, hidden_size=4, **{**config, "ordering": "random"}).double()
    with torch.no_grad():
        model.W.mul_(4)
        model.V.mul_(4)
        model.b.normal_()
        if model.W_mask is not None:
            model.W_mask.mul_(5)
    every = all_binary(d).double()
    expected = torch.stack(
        [
            tempered_joint(model.conditional_logits(every, o), every, temperature)
            for o in model.orderings
        ]
    ).mean(0)
    assert expected.sum().item() == pytest.approx(1.0)
    untempered = model.log_prob(every.reshape(-1, *shape)).exp()
    assert (expected - untempered).abs().max() > 0.05  # an ignored temperature would fail
    samples = model.sample(n, temperature=temperature).reshape(n, d)
    codes = (samples * torch.tensor([4.0, 2.0, 1.0], dtype=torch.double)).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / n
    assert (freq - expected).abs().max() < 4 * math.sqrt(0.25 / n) + 1e-3


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[3]])
def test_temperature_one_is_ancestral_sampling_draw_for_draw(config):
    """At T = 1 (given or default) the samples are exactly those of plain ancestral sampling from
    the model's conditionals with the same random numbers, i.e. unchanged by tempering."""
    model = make(**config)
    torch.manual_seed(3)
    reference = torch.zeros(50, D, dtype=torch.double)
    for i in model.ordering.tolist():
        logits = reference_logits(model, reference, model.ordering)
        reference[:, i] = torch.bernoulli(torch.sigmoid(logits[:, i]))
    for kwargs in ({}, {"temperature": 1.0}):
        torch.manual_seed(3)
        samples = model.sample(50, ordering_index=0, **kwargs).reshape(50, D)
        assert torch.equal(samples, reference)


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan")])
def test_non_positive_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature must be positive"):
        make().sample(2, temperature=temperature)
