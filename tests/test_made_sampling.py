"""MADE's cached sampler (each hidden unit computed once, when it becomes final) against the naive
one (a full forward pass per variable), and the training hot path's input checks."""

from __future__ import annotations

import functools

import pytest
import torch

from argen.models.made import MADE
from argen.modules.density import DensityModule
from tests.ar_checks import all_binary, assert_cached_equals_naive

CONFIGS = {
    "one layer": dict(hidden_sizes=[9]),
    "narrow": dict(hidden_sizes=[3]),  # fewer units than variables: most degrees have none
    "deep, random order": dict(hidden_sizes=[16, 7, 12], ordering="random"),
    "direct": dict(hidden_sizes=[8], direct_connection=True, ordering="random"),
    "mask mixture": dict(hidden_sizes=[10, 10], num_masks=4, ordering="random"),
}


def peaked(shape=(1, 3, 4), **kwargs) -> MADE:
    torch.manual_seed(0)
    model = MADE(shape, **kwargs).double()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 1.5)
    return model


@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_cached_samples_equal_naive_samples(config, temperature):
    assert_cached_equals_naive(peaked(**CONFIGS[config]), 300, temperature, seed=5)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 2)])
def test_one_and_two_variables(shape):
    model = peaked(shape, hidden_sizes=[4, 4], direct_connection=True)
    naive = model.sample(200, generator=torch.Generator().manual_seed(2), sampler="naive")
    cached = model.sample(200, generator=torch.Generator().manual_seed(2), sampler="cached")
    assert torch.equal(cached, naive)


def test_a_fixed_mask_and_the_model_default_sampler():
    model = peaked(hidden_sizes=[12], num_masks=3, ordering="random")
    naive = model.sample(
        100, generator=torch.Generator().manual_seed(1), ordering_index=2, sampler="naive"
    )
    assert model.sampler == "cached"
    cached = model.sample(100, generator=torch.Generator().manual_seed(1), ordering_index=2)
    assert torch.equal(cached, naive)
    assert model.mask_index == 0  # the active mask is restored


def test_cached_sampler_never_runs_the_whole_network(monkeypatch):
    model = peaked(hidden_sizes=[6, 6])

    def forbidden(*args, **kwargs):
        raise AssertionError("the cached sampler ran a full forward pass")

    monkeypatch.setattr(model, "forward", forbidden)
    assert model.sample(5, sampler="cached").shape == (5, 1, 3, 4)
    with pytest.raises(AssertionError, match="full forward pass"):
        model.sample(5, sampler="naive")


def test_cached_samples_follow_the_density():
    """Frequencies of every outcome of a 3-variable MADE match exp(log_prob)."""
    model = peaked((1, 1, 3), hidden_sizes=[8], ordering="random")
    samples = model.sample(6000, generator=torch.Generator().manual_seed(1)).reshape(6000, 3)
    every = all_binary(3).double()
    probs = model.log_prob(every.reshape(-1, 1, 1, 3)).exp()
    frequency = (samples[:, None, :] == every[None]).all(-1).double().mean(0)
    assert torch.allclose(frequency, probs, atol=0.025)


def test_bad_sampler_names_are_refused():
    with pytest.raises(ValueError, match="sampler must be"):
        MADE((1, 2, 2), sampler="fast")
    with pytest.raises(ValueError, match="sampler must be"):
        MADE((1, 2, 2)).sample(2, sampler="fast")


# ------------------------------------------------------------------ input checks off the hot path
def test_training_loss_checks_the_form_and_log_prob_everything():
    model = MADE((1, 2, 2), hidden_sizes=[4])
    with pytest.raises(ValueError, match="dtype"):
        model.training_loss(torch.zeros(2, 1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        model.training_loss(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="integer levels"):
        model.log_prob(torch.full((2, 1, 2, 2), 0.5))
    x = torch.randint(2, (3, 1, 2, 2)).float()
    torch.testing.assert_close(model.training_loss(x), -model.log_prob(x))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")  # no Trainer attached
@pytest.mark.parametrize("value", [0.5, 2.0, -1.0])
def test_a_training_batch_of_bad_values_is_still_refused(value):
    """The values check moved from ``training_loss`` to the module: once per batch."""
    module = DensityModule(
        MADE((1, 2, 2), hidden_sizes=[4]), optimizer=functools.partial(torch.optim.SGD, lr=0.1)
    )
    batch = torch.zeros(3, 1, 2, 2)
    batch[1, 0, 1, 0] = value
    with pytest.raises(ValueError, match="integer levels"):
        module.training_step(batch, 0)
    loss = module._step_loss(torch.ones(3, 1, 2, 2), check_values=True)
    assert torch.isfinite(loss)


def test_fused_masked_layers_match_the_reference_bit_for_bit():
    """``MaskedLinear``'s one-node form gives F.linear(x, weight * mask, bias)'s values and
    gradients exactly (inputs included: the autoregressive checks differentiate them)."""
    from argen.models.made import MaskedLinear

    kwargs = dict(hidden_sizes=[12, 9], direct_connection=True, num_masks=2, ordering="random")
    torch.manual_seed(0)
    fused, reference = MADE((1, 3, 4), **kwargs), MADE((1, 3, 4), **kwargs)
    reference.load_state_dict(fused.state_dict())
    for layer in reference.modules():
        if isinstance(layer, MaskedLinear):
            layer.fused = False
    x = torch.randint(2, (5, 12)).float()
    inputs = []
    for model in (fused, reference):
        flat = x.clone().requires_grad_(True)
        loss = model.training_loss(flat.view(5, 1, 3, 4))
        (loss.sum() + model(flat).square().sum()).backward()
        inputs.append((loss.detach(), flat.grad, [p.grad for p in model.parameters()]))
    (loss_a, grad_a, params_a), (loss_b, grad_b, params_b) = inputs
    assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
