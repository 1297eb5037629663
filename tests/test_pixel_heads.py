"""Pixel heads: exact normalization over the K levels, agreement between scoring and sampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from argen.models.pixel_heads import (
    BernoulliHead,
    CategoricalHead,
    LogisticMixtureHead,
    make_head,
)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: thread hand-offs cost far more than they save on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_params(head, *lead: int, spread: float = 3.0) -> torch.Tensor:
    return torch.randn(*lead, head.params_per_channel, dtype=torch.float64) * spread


HEAD_CASES = [
    (BernoulliHead, 2, {}),
    (CategoricalHead, 2, {}),
    (CategoricalHead, 5, {}),
    (CategoricalHead, 256, {}),
    (LogisticMixtureHead, 2, {"num_mixtures": 3}),
    (LogisticMixtureHead, 3, {"num_mixtures": 1}),
    (LogisticMixtureHead, 256, {"num_mixtures": 10}),
]


@pytest.mark.parametrize(("cls", "levels", "kwargs"), HEAD_CASES)
def test_level_probabilities_sum_to_one(cls, levels, kwargs):
    torch.manual_seed(0)
    head = cls(3, levels, **kwargs)
    params = random_params(head, 50)
    log_probs = head.level_log_probs(params)
    assert log_probs.shape == (50, levels)
    assert torch.isfinite(log_probs).all()
    assert torch.allclose(log_probs.logsumexp(-1), torch.zeros(50, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize(("cls", "levels", "kwargs"), HEAD_CASES)
def test_log_prob_elements_agrees_with_level_table(cls, levels, kwargs):
    torch.manual_seed(1)
    head = cls(3, levels, **kwargs)
    params = random_params(head, 4, 3, 2, 2)
    x = torch.randint(levels, (4, 3, 2, 2)).double()
    table = head.level_log_probs(params)
    expected = table.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(head.log_prob_elements(x, params), expected, atol=1e-12)
    assert torch.allclose(head.log_prob(x, params), expected.sum((1, 2, 3)), atol=1e-10)


def test_logistic_mixture_matches_direct_sigmoid_differences():
    """One component: p(k) = sigmoid(upper_k) - sigmoid(lower_k), edges at -inf and +inf."""
    torch.manual_seed(2)
    levels, mean, log_scale = 6, 0.13, -1.3
    head = LogisticMixtureHead(1, levels, num_mixtures=1)
    params = torch.tensor([0.7, mean, log_scale], dtype=torch.float64)
    centres = torch.linspace(-1, 1, levels, dtype=torch.float64)
    half = 1.0 / (levels - 1)
    cdf = lambda v: torch.sigmoid((v - mean) / torch.exp(torch.tensor(log_scale)))  # noqa: E731
    upper = torch.where(centres >= 1, torch.ones(levels, dtype=torch.float64), cdf(centres + half))
    lower = torch.where(
        centres <= -1, torch.zeros(levels, dtype=torch.float64), cdf(centres - half)
    )
    assert torch.allclose(head.level_log_probs(params).exp(), upper - lower, atol=1e-12)


def test_logistic_mixture_is_stable_in_the_tails():
    """Sharp components far from a bin give finite log-probs and finite gradients."""
    head = LogisticMixtureHead(1, 256, num_mixtures=2)
    params = torch.tensor(
        [[0.0, 0.0, 0.99, -0.99, -7.0, -7.0], [0.0, 5.0, 0.0, 0.5, -7.0, 4.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    x = torch.tensor([[128.0], [0.0]], dtype=torch.float64)
    log_probs = head.log_prob_elements(x, params.unsqueeze(1))
    assert torch.isfinite(log_probs).all()
    assert (log_probs < -20).any(), "far-away sharp components should give a tiny probability"
    log_probs.sum().backward()
    assert torch.isfinite(params.grad).all()
    total = head.level_log_probs(params.detach()).logsumexp(-1)
    assert torch.allclose(total, torch.zeros(2, dtype=torch.float64), atol=1e-12)


def test_bernoulli_matches_binary_cross_entropy():
    torch.manual_seed(3)
    head = BernoulliHead(1)
    params = torch.randn(10, 1, 1)
    x = torch.randint(2, (10, 1)).float()
    expected = -F.binary_cross_entropy_with_logits(params[..., 0], x, reduction="none")
    assert torch.allclose(head.log_prob_elements(x, params), expected, atol=1e-6)


@pytest.mark.parametrize(("cls", "levels", "kwargs"), HEAD_CASES[:3] + HEAD_CASES[4:6])
def test_samples_follow_the_level_probabilities(cls, levels, kwargs):
    torch.manual_seed(4)
    head = cls(1, levels, **kwargs)
    params = random_params(head, spread=1.5)
    draws = head.sample(params.expand(20000, -1))
    assert draws.dtype == torch.float64 and draws.shape == (20000,)
    assert torch.equal(draws, draws.round()) and draws.min() >= 0 and draws.max() <= levels - 1
    empirical = torch.bincount(draws.long(), minlength=levels).double() / draws.numel()
    exact = head.level_log_probs(params).exp()
    assert 0.5 * (empirical - exact).abs().sum() < 0.02


def test_low_temperature_sampling_is_greedy_and_temperature_must_be_positive():
    head = CategoricalHead(1, 4)
    params = torch.tensor([[0.0, 1.0, 3.0, 2.0]]).expand(100, -1)
    assert torch.all(head.sample(params, temperature=1e-4) == 2)
    with pytest.raises(ValueError):
        head.sample(params, temperature=0.0)


def test_params_unpack_colour_groups():
    """Feature channel c*P + p becomes params[:, c, i, j, p] (the colour-grouped layout)."""
    head = LogisticMixtureHead(3, 8, num_mixtures=2)
    features = torch.arange(2 * 18 * 2 * 3, dtype=torch.float32).view(2, 18, 2, 3)
    params = head.params(features)
    assert params.shape == (2, 3, 2, 3, 6)
    for c in range(3):
        for p in range(6):
            assert torch.equal(params[:, c, :, :, p], features[:, c * 6 + p])


def test_make_head_choices_and_errors():
    assert isinstance(make_head("auto", 1, 2), BernoulliHead)
    assert isinstance(make_head("auto", 3, 256), CategoricalHead)
    mixture = make_head("logistic_mixture", 3, 256, num_mixtures=5)
    assert isinstance(mixture, LogisticMixtureHead) and mixture.out_channels == 3 * 15
    with pytest.raises(ValueError, match="num_levels=2"):
        make_head("bernoulli", 1, 3)
    with pytest.raises(ValueError, match="unknown head"):
        make_head("gaussian", 1, 2)
