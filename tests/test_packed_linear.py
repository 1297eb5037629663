"""``PackedMaskedLinear``: a single-mask MADE stores and multiplies only the blocks its masks keep,
computing the dense masked network's function, gradients and training steps, with the dense
layer's state dict and parameter count."""

from __future__ import annotations

import pytest
import torch

from argen.models.base import count_parameters
from argen.models.made import MADE
from argen.models.packed_linear import PackedMaskedLinear
from tests.ar_checks import assert_cached_equals_naive

SHAPE = (1, 4, 5)
CONFIGS = [
    dict(),
    dict(ordering="random"),
    dict(ordering="random", hidden_sizes=[30, 24], direct_connection=True),
    dict(hidden_sizes=[7], direct_connection=True, ordering_seed=3),
]


def twins(**kwargs) -> tuple[MADE, MADE]:
    """The same single-mask MADE, dense and packed, with the same weights."""
    torch.manual_seed(0)
    dense = MADE(SHAPE, linear_impl="dense", **kwargs).double()
    packed = MADE(SHAPE, linear_impl="packed", **kwargs).double()
    packed.load_state_dict(dense.state_dict())
    return dense, packed


def batch(n: int = 16) -> torch.Tensor:
    return torch.randint(2, (n, *SHAPE), generator=torch.Generator().manual_seed(1)).double()


def layers(model: MADE) -> list:
    return [*model.hidden_layers, model.output_layer] + ([model.direct] if model.direct else [])


@pytest.mark.parametrize("config", CONFIGS)
def test_single_mask_made_is_packed_and_computes_the_dense_function(config):
    dense, packed = twins(**config)
    assert all(isinstance(layer, PackedMaskedLinear) for layer in layers(packed))
    stored = sum(p.numel() for p in packed.parameters())
    assert stored < 0.75 * sum(p.numel() for p in dense.parameters())
    assert count_parameters(packed) == count_parameters(dense)  # reported as papers count
    x = batch()
    torch.testing.assert_close(packed.log_prob(x), dense.log_prob(x), rtol=0, atol=1e-10)
    # The gradient of every weight the mask keeps is the dense layer's
    dense.log_prob(x).sum().backward()
    packed.log_prob(x).sum().backward()
    for layer, ref in zip(layers(packed), layers(dense), strict=True):
        grad = layer.to_dense(layer.packed.grad)
        torch.testing.assert_close(grad, ref.weight.grad * ref.mask, rtol=0, atol=1e-10)
        torch.testing.assert_close(layer.weight, ref.weight * ref.mask, rtol=0, atol=0)
        if layer.bias is not None:
            torch.testing.assert_close(layer.bias.grad, ref.bias.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("config", CONFIGS[1:3])
def test_adam_steps_keep_the_two_forms_equal(config):
    dense, packed = twins(**config)
    x = batch()
    for model in (dense, packed):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            optimizer.zero_grad()
            model.training_loss(x).mean().backward()
            optimizer.step()
    torch.testing.assert_close(packed.log_prob(x), dense.log_prob(x), rtol=0, atol=1e-8)


def test_state_dicts_load_across_the_two_forms_and_a_foreign_mask_is_refused():
    dense, packed = twins(ordering="random", direct_connection=True)
    assert set(packed.state_dict()) == set(dense.state_dict())
    back = MADE(SHAPE, linear_impl="dense", ordering="random", direct_connection=True).double()
    back.load_state_dict(packed.state_dict())
    x = batch()
    torch.testing.assert_close(back.log_prob(x), dense.log_prob(x), rtol=0, atol=1e-10)
    other = MADE(SHAPE, linear_impl="dense", ordering="random", ordering_seed=9).double()
    with pytest.raises(RuntimeError, match="mask differs"):
        packed.load_state_dict(other.state_dict(), strict=False)


def test_a_mask_that_is_not_nested_is_refused_and_packing_needs_one_mask():
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two rows keep disjoint columns
    with pytest.raises(ValueError, match="nested"):
        PackedMaskedLinear(torch.ones(2, 2), None, mask)
    with pytest.raises(ValueError, match="num_masks=1"):
        MADE(SHAPE, num_masks=2, linear_impl="packed")
    assert not any(
        isinstance(layer, PackedMaskedLinear) for layer in layers(MADE(SHAPE, num_masks=2))
    )


def test_auto_packs_the_layers_big_enough_to_gain():
    """Below ``PACK_MIN_WEIGHTS`` the bands' extra calls cost more than they save."""
    kinds = [type(layer) for layer in layers(MADE((1, 28, 28), hidden_sizes=[500, 100]))]
    assert [k.__name__ for k in kinds] == [
        "PackedMaskedLinear",  # 784 -> 500
        "MaskedLinear",  # 500 -> 100: 50,000 weights
        "MaskedLinear",  # 100 -> 784: 78,400 weights
    ]


def test_under_autocast_the_packed_layers_take_its_low_precision_matmul():
    dense, packed = twins(ordering="random")
    dense, packed = dense.float(), packed.float()
    x = batch().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = packed.training_loss(x)
        reference = dense.training_loss(x)
    low.sum().backward()
    torch.testing.assert_close(low, reference)  # the same bf16 products
    assert all(layer.packed.grad.abs().sum() > 0 for layer in layers(packed))


@pytest.mark.parametrize("config", CONFIGS[1:3])
def test_packed_made_samples_as_the_dense_one_cached_and_naive(config):
    dense, packed = twins(**config)
    assert_cached_equals_naive(packed, 200, 1.0, seed=3)
    drawn = [m.sample(50, generator=torch.Generator().manual_seed(3)) for m in (dense, packed)]
    assert torch.equal(drawn[0], drawn[1])
