"""The PixelRNNs' incremental ("cached") samplers: the naive sampler's samples, every conditional
equal to the full network's, completions from any prefix, and work per row that does not grow
with the row index (unlike ``RowsAbove``, the previous rows-so-far sampler)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from argen.models import cached_sampling
from argen.models.pixelrnn import (
    DiagonalBiLSTM,
    DiagonalBiLSTMStepper,
    RowLSTM,
    RowLSTMStepper,
    RowsAbove,
)
from argen.models.sampling_progress import on_row
from tests.helpers import record_draws

MODELS = [RowLSTM, DiagonalBiLSTM]

# (shape, num_levels, head, options): binary grey, K-level grey, RGB with every head, deeper
# networks, and a Row LSTM with k = 5 (two cached columns to the left per layer).
CONFIGS = [
    ((1, 5, 5), 2, "auto", {}),
    ((1, 4, 6), 5, "categorical", {"num_layers": 3}),
    ((3, 4, 4), 4, "categorical", {}),
    ((3, 4, 3), 4, "logistic_mixture", {}),
    ((3, 3, 4), 2, "bernoulli", {"num_layers": 3}),
    ((1, 6, 4), 2, "auto", {"kernel_size": 5, "first_kernel_size": 5}),
]


def tiny(cls, shape, levels, head="auto", **kwargs):
    if cls is DiagonalBiLSTM:
        kwargs.pop("kernel_size", None)
    torch.manual_seed(0)
    options = {"hidden_channels": 12, "num_layers": 2, "num_mixtures": 2, **kwargs}
    model = cls(shape, levels, head=head, **options).double()
    for param in model.parameters():  # peaked conditionals with strong dependencies
        torch.nn.init.normal_(param, std=0.4)
    return model


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rows_above(model):
    """Make ``model``'s cached sampler the previous one (``RowsAbove``)."""
    model.start_cache = lambda x, y, start: RowsAbove(model, x)
    return model


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("shape", "levels", "head", "options"), CONFIGS)
@pytest.mark.parametrize("batch", [1, 3])
def test_incremental_sampler_draws_the_naive_samplers_samples(
    cls, shape, levels, head, options, batch
):
    model = tiny(cls, shape, levels, head, **options)
    stepper = model.start_cache(torch.zeros(1, *shape, dtype=torch.float64), None, 0)
    assert isinstance(stepper, RowLSTMStepper if cls is RowLSTM else DiagonalBiLSTMStepper)
    naive = model.sample_naive(batch, generator=seeded(1))
    cached = model.sample_cached(batch, generator=seeded(1))
    assert cached.shape == (batch, *shape) and cached.dtype == torch.float64
    assert torch.equal(cached, naive)
    assert not torch.equal(cached, model.sample_cached(batch, generator=seeded(2)))
    assert torch.equal(rows_above(model).sample_cached(batch, generator=seeded(1)), naive)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("shape", [(1, 4, 5), (3, 3, 4)])
def test_every_conditional_equals_the_full_networks(cls, shape, monkeypatch):
    """Each conditional the incremental sampler draws from equals the full forward pass on the
    final images (float64 rounding only), sub-pixel by sub-pixel in raster order."""
    model = tiny(cls, shape, 4, num_layers=3)
    seen = record_draws(monkeypatch)
    x = model.sample_cached(2, generator=seeded(3), temperature=0.9)
    assert len(seen) == math.prod(shape)
    params = model(x)  # [B, C, H, W, P]
    expected = params.permute(2, 3, 1, 0, 4).reshape(-1, 2, params.shape[-1])
    torch.testing.assert_close(torch.stack(seen), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("shape", "lengths"), [((1, 5, 4), [7, 13, 20]), ((3, 4, 3), [22, 9, 36])])
def test_completion_from_a_prefix_several_rows_long(cls, shape, lengths):
    """The sampler starts after the shortest prefix (mid-row, mid-pixel for RGB): it must first
    compute the states of every observed row and pixel before it."""
    model = tiny(cls, shape, 3, num_layers=3)
    size = math.prod(shape)
    raster = torch.arange(size)[None, :] < torch.tensor(lengths)[:, None]  # [B, H*W*C]
    c, h, w = shape
    mask = raster.view(3, h, w, c).permute(0, 3, 1, 2)
    x = torch.randint(3, (3, *shape), generator=seeded(4)).double()
    cached = model.complete(x, mask, generator=seeded(5))
    naive = model.complete(x, mask, generator=seeded(5), sampler="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[mask], x[mask])
    assert not torch.equal(cached, x)


@pytest.mark.parametrize("cls", MODELS)
def test_float32_default_sizes_agree_with_the_naive_sampler(cls):
    """Default depth and width (7 layers, 2h = 64) in float32: reordered sums round differently,
    yet the draws agree, for binary and 256-level RGB images."""
    for shape, levels in (((1, 7, 7), 2), ((3, 3, 4), 256)):
        torch.manual_seed(0)
        model = cls(shape, levels).float()
        naive = model.sample_naive(3, generator=seeded(6))
        assert torch.equal(model.sample_cached(3, generator=seeded(6)), naive)


class CountCalls(TorchFunctionMode):
    """Counts every torch function and tensor method called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def work_per_row(model, height: int) -> tuple[list[int], list[int]]:
    """FLOPs (matrix products and convolutions) and torch calls spent on each row of one sample
    (read from the counters after each row)."""
    counter, counted = FlopCounterMode(display=False), CountCalls()
    totals = [(0, 0)]
    record = lambda done, total: totals.append((counter.get_total_flops(), counted.calls))  # noqa: E731
    with on_row(record), counter, counted:
        cached_sampling.sample(model, 2, generator=seeded(0))
    assert len(totals) == height + 1
    flops = [after[0] - before[0] for before, after in pairwise(totals)]
    calls = [after[1] - before[1] for before, after in pairwise(totals)]
    return flops, calls


@pytest.mark.parametrize("cls", MODELS)
def test_work_per_pixel_does_not_grow_with_the_row(cls):
    """Every row but the first (the set-up) and the last (no next row to prepare) costs exactly
    the same FLOPs and torch calls; the previous sampler's rows cost more and more (so the measure
    can tell). The network's forward is never called."""
    height = 6
    model = tiny(cls, (1, height, 4), 2)
    forwards = []
    hook = model.register_forward_hook(lambda *_: forwards.append(1))
    flops, calls = work_per_row(model, height)
    assert not forwards
    hook.remove()
    assert flops[1] > 0 and len(set(flops[1:-1])) == 1, flops
    assert len(set(calls[1:-1])) == 1, calls
    old_flops, _ = work_per_row(rows_above(model), height)
    assert all(b > a for a, b in pairwise(old_flops)), old_flops


@pytest.mark.parametrize("cls", MODELS)
def test_sampling_leaves_the_model_unchanged(cls):
    model = tiny(cls, (3, 3, 3), 4)
    attributes, state = set(vars(model)), {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    model.sample(2, generator=seeded(0))
    assert model.training and set(vars(model)) == attributes
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
