"""FVSBN, NADE and MADE sample through one function with one signature and one set of options,
and ``ordering`` means the same thing in all three (argen.models.ordered_sampling)."""

from __future__ import annotations

import inspect

import pytest
import torch

from argen.models.fvsbn import FVSBN
from argen.models.made import MADE
from argen.models.nade import NADE
from argen.models.ordered_sampling import OrderedModel
from tests.ar_checks import assert_cached_equals_naive

SHAPE = (1, 3, 3)
BUILDERS = {
    "fvsbn": lambda: FVSBN(SHAPE, ordering="random", ordering_seed=2),
    "nade": lambda: NADE(SHAPE, hidden_size=5, ordering="random"),
    "nade mixture": lambda: NADE(SHAPE, hidden_size=5, order_agnostic=True, num_eval_orderings=3),
    "made": lambda: MADE(SHAPE, hidden_sizes=[7, 6], ordering="random", direct_connection=True),
    "made mixture": lambda: MADE(SHAPE, hidden_sizes=[8], ordering="random", num_masks=3),
}


def peaked(name: str) -> OrderedModel:
    """A model with large random weights (confident conditionals), in float64."""
    torch.manual_seed(0)
    model = BUILDERS[name]().double()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 1.5)
    return model


def test_the_three_models_share_one_sample_with_one_signature(monkeypatch):
    signature = inspect.signature(OrderedModel.sample)
    for cls in (FVSBN, NADE, MADE):
        assert cls.sample is OrderedModel.sample, f"{cls.__name__} has its own sample"
        assert inspect.signature(cls.sample) == signature
    calls = []
    real = OrderedModel.sample

    def spy(model, *args, **kwargs):
        calls.append(type(model).__name__)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(OrderedModel, "sample", spy)
    for name in BUILDERS:
        assert peaked(name).sample(3).shape == (3, *SHAPE)
    assert calls == ["FVSBN", "NADE", "NADE", "MADE", "MADE"]


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_cached_samples_equal_naive_samples(name, temperature):
    """The running sums (FVSBN, NADE) and MADE's cached units draw what full passes draw."""
    assert_cached_equals_naive(peaked(name), 200, temperature, seed=7)


@pytest.mark.parametrize("name", BUILDERS)
def test_a_generator_fixes_the_samples_and_spares_the_global_stream(name):
    model = peaked(name)
    torch.manual_seed(11)
    first = model.sample(20, generator=torch.Generator().manual_seed(3))
    after = torch.rand(1)
    torch.manual_seed(11)
    again = model.sample(20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert torch.equal(torch.rand(1), after), "the global random stream was not touched"


@pytest.mark.parametrize("name", BUILDERS)
def test_options_are_refused_alike(name):
    model = peaked(name)
    with pytest.raises(ValueError, match="temperature must be positive, got 0"):
        model.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="fast")
    k = model.num_orderings
    with pytest.raises(ValueError, match=rf"ordering_index must be in \[0, {k}\), got {k}"):
        model.sample(2, ordering_index=k)


@pytest.mark.parametrize("name", BUILDERS)
def test_ordering_is_the_permutation_the_sampler_follows(name, monkeypatch):
    """``ordering`` and ``ordering_at(k)`` are LongTensor permutations, and ``sample`` draws the
    variables in exactly that order (for MADE: the ordering its mask k installs)."""
    model = peaked(name)
    assert model.ordering.dtype == torch.long
    assert sorted(model.ordering.tolist()) == list(range(model.num_dims))
    drawn: list[int] = []
    make_stepper = model.stepper

    def recording_stepper(*args, **kwargs):
        stepper = make_stepper(*args, **kwargs)
        record = stepper.record

        def logged(t, i, value):
            drawn.append(i)
            record(t, i, value)

        stepper.record = logged
        return stepper

    monkeypatch.setattr(model, "stepper", recording_stepper)
    orders = []
    for k in range(model.num_orderings):
        drawn.clear()
        order = model.ordering_at(k).tolist()
        model.sample(2, ordering_index=k)
        assert drawn == order
        orders.append(order)
        if isinstance(model, MADE):
            model.use_mask(k)
            assert model.ordering.tolist() == order
    assert orders[0] == model.ordering_at(0).tolist()
    if len(orders) > 1:
        assert orders[0] != orders[1], "a mixture's orderings differ"


def test_made_checkpoints_with_the_old_order_buffer_still_load():
    """Before the rename MADE's ordering buffer was ``order``; such state dicts load (strictly),
    directly and under a LightningModule's ``net.`` prefix."""
    source = peaked("made mixture")
    source.use_mask(2)
    state = source.state_dict()
    old = {("order" if key == "ordering" else key): value for key, value in state.items()}
    assert "order" in old and "ordering" not in old
    fresh = MADE(SHAPE, hidden_sizes=[8], ordering="random", num_masks=3).double()
    fresh.load_state_dict(old)  # strict: no missing or unexpected key
    assert torch.equal(fresh.ordering, source.ordering) and fresh.mask_index == 2
    generator = torch.Generator().manual_seed(1)
    x = source.sample(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fresh.sample(10, generator=generator), x)

    wrapper = torch.nn.Module()
    wrapper.net = MADE(SHAPE, hidden_sizes=[8], ordering="random", num_masks=3).double()
    wrapper.load_state_dict({f"net.{key}": value for key, value in old.items()})
    assert torch.equal(wrapper.net.ordering, source.ordering)
