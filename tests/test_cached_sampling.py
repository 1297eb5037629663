"""Cached sampling and completion for PixelCNN / Gated PixelCNN: exact agreement with the naive
sampler, the right conditional distribution for completions, prefix checks, no leftover state."""

from __future__ import annotations

import gc
import math

import pytest
import torch

from argen.models import cached_sampling
from argen.models.cached_sampling import complete, observed_prefix_lengths
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.pixelcnn import PixelCNN
from tests.ar_checks import all_discrete
from tests.helpers import record_draws


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: thread hand-offs cost far more than they save on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# (shape, num_levels, head): binary grey 5x5 with every head, RGB 4x4 with K=4 and binary RGB.
CONFIGS = [
    ((1, 5, 5), 2, "bernoulli"),
    ((1, 5, 5), 2, "categorical"),
    ((1, 5, 5), 2, "logistic_mixture"),
    ((3, 4, 4), 4, "categorical"),
    ((3, 4, 4), 4, "logistic_mixture"),
    ((3, 4, 4), 2, "bernoulli"),
]


def randomize(model, std: float):
    """Larger weights and non-zero biases: peaked conditionals with strong dependencies."""
    for param in model.parameters():
        torch.nn.init.normal_(param, std=std)
    return model


def tiny_pixelcnn(shape, levels, head="auto", **kwargs) -> PixelCNN:
    torch.manual_seed(0)
    options = {"hidden_channels": 12, "num_layers": 2, "num_mixtures": 2, **kwargs}
    return randomize(PixelCNN(shape, levels, head=head, **options).double(), 0.4)


def tiny_gated(shape, levels, head="auto", **kwargs) -> GatedPixelCNN:
    torch.manual_seed(0)
    options = {
        "hidden_channels": 8,
        "num_layers": 3,
        "kernel_size": 3,
        "num_mixtures": 2,
        "output_channels": 16,
        **kwargs,
    }
    return randomize(GatedPixelCNN(shape, levels, head=head, **options).double(), 0.5)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def params_in_raster_order(model, x: torch.Tensor, y=None) -> torch.Tensor:
    """What each sub-pixel's conditional should be given the final images: [D, B, P]."""
    params = model(x) if y is None else model(x, y)  # [B, C, H, W, P]
    return params.permute(2, 3, 1, 0, 4).reshape(-1, x.shape[0], params.shape[-1])


# ----------------------------------------------------------------------------- exact agreement
@pytest.mark.parametrize(("shape", "levels", "head"), CONFIGS)
@pytest.mark.parametrize("batch", [1, 3])
def test_pixelcnn_cached_equals_naive(shape, levels, head, batch):
    model = tiny_pixelcnn(shape, levels, head)
    naive = model.sample_naive(batch, generator=seeded(1))
    cached = model.sample_cached(batch, generator=seeded(1))
    assert cached.shape == (batch, *shape) and cached.dtype == torch.float64
    assert torch.equal(cached, naive)
    assert not torch.equal(cached, model.sample_cached(batch, generator=seeded(2)))


@pytest.mark.parametrize(("shape", "levels", "head"), CONFIGS)
@pytest.mark.parametrize("batch", [1, 3])
def test_gated_cached_equals_naive(shape, levels, head, batch):
    model = tiny_gated(shape, levels, head)
    naive = model.sample_naive(batch, generator=seeded(1))
    cached = model.sample_cached(batch, generator=seeded(1))
    assert cached.shape == (batch, *shape)
    assert torch.equal(cached, naive)


@pytest.mark.parametrize(
    ("shape", "levels", "kernel_size"), [((1, 5, 5), 2, 3), ((3, 4, 4), 4, 5), ((1, 6, 4), 2, 5)]
)
def test_conditional_gated_cached_equals_naive(shape, levels, kernel_size):
    model = tiny_gated(shape, levels, num_classes=3, kernel_size=kernel_size)
    labels = torch.tensor([2, 0, 1])
    naive = model.sample_naive(3, y=labels, generator=seeded(4))
    assert torch.equal(model.sample_cached(3, y=labels, generator=seeded(4)), naive)
    # Labels drawn at random come from the same generator in both samplers.
    assert torch.equal(
        model.sample_cached(3, generator=seeded(5)), model.sample_naive(3, generator=seeded(5))
    )


@pytest.mark.parametrize("family", ["pixelcnn", "gated", "gated_conditional"])
def test_cached_params_match_a_full_forward_pass(family, monkeypatch):
    """Every conditional the cached sampler draws from equals the full network's output on the
    final image (float64 rounding only), sub-pixel by sub-pixel in raster order."""
    shape, y = (3, 3, 4), None
    if family == "pixelcnn":
        model = tiny_pixelcnn(shape, 4)
    else:
        model = tiny_gated(shape, 4, num_classes=None if family == "gated" else 2, kernel_size=5)
        y = None if family == "gated" else torch.tensor([1, 0])
    seen = record_draws(monkeypatch)
    labels = {} if y is None else {"y": y}
    x = model.sample_cached(2, generator=seeded(3), **labels)
    assert len(seen) == math.prod(shape)
    expected = params_in_raster_order(model, x, y)
    torch.testing.assert_close(torch.stack(seen), expected, rtol=0, atol=1e-12)


def test_temperature_and_global_seed_give_the_same_samples():
    model = tiny_gated((3, 4, 4), 4, head="logistic_mixture")
    torch.manual_seed(11)
    naive = model.sample_naive(3, temperature=0.7)
    torch.manual_seed(11)
    cached = model.sample_cached(3, temperature=0.7)
    assert torch.equal(cached, naive)
    with pytest.raises(ValueError, match="temperature"):
        model.sample_cached(1, temperature=0.0)


def test_float32_agrees_on_a_larger_model():
    """Float32 rounding differs between the samplers, yet the draws agree on a 12x12 image."""
    torch.manual_seed(0)
    model = GatedPixelCNN((1, 12, 12), 2, hidden_channels=16, num_layers=4).float()
    assert torch.equal(
        model.sample_cached(4, generator=seeded(7)), model.sample_naive(4, generator=seeded(7))
    )
    torch.manual_seed(0)
    plain = PixelCNN((3, 6, 6), 8, hidden_channels=12, num_layers=3).float()
    assert torch.equal(
        plain.sample_cached(2, generator=seeded(7)), plain.sample_naive(2, generator=seeded(7))
    )


def test_stop_row_gives_the_first_rows_of_a_full_sample():
    model = tiny_gated((1, 5, 4), 2, kernel_size=5)
    full = cached_sampling.sample(model, 3, generator=seeded(8))
    for sampler in ("cached", "naive"):
        part = cached_sampling.sample(model, 3, generator=seeded(8), sampler=sampler, stop_row=2)
        assert torch.equal(part[:, :, :2], full[:, :, :2])
        assert torch.all(part[:, :, 2:] == 0)


# ----------------------------------------------------------------------------- model dispatch
@pytest.mark.parametrize("build", [tiny_pixelcnn, tiny_gated])
def test_constructor_selects_the_sampler(build):
    """``sampler="naive"`` runs the network's forward once per sub-pixel; the default
    ``"cached"`` never calls it; both return the same images."""
    shape = (3, 2, 3)
    samples, calls = {}, {}
    for sampler in ("cached", "naive"):
        model = build(shape, 4, sampler=sampler)
        count = [0]
        model.register_forward_hook(lambda *_, count=count: count.__setitem__(0, count[0] + 1))
        samples[sampler] = model.sample(2, generator=seeded(6))
        calls[sampler] = count[0]
    assert build(shape, 4).sampler == "cached"
    assert calls == {"cached": 0, "naive": math.prod(shape)}
    assert torch.equal(samples["cached"], samples["naive"])
    with pytest.raises(ValueError, match="sampler"):
        build(shape, 4, sampler="fast")


def test_model_forward_and_log_prob_unchanged_by_the_sampler_choice():
    cached = tiny_gated((1, 3, 3), 2)
    naive = tiny_gated((1, 3, 3), 2, sampler="naive")
    x = torch.randint(2, (4, 1, 3, 3)).double()
    assert torch.equal(cached(x), naive(x))
    assert torch.equal(cached.log_prob(x), naive.log_prob(x))


# ----------------------------------------------------------------------------- completion
def top_rows_mask(shape, rows: int) -> torch.Tensor:
    mask = torch.zeros(shape[1:], dtype=torch.bool)
    mask[:rows] = True
    return mask


@pytest.mark.parametrize("build", [tiny_pixelcnn, tiny_gated])
@pytest.mark.parametrize(("shape", "levels"), [((1, 5, 5), 2), ((3, 4, 4), 4)])
def test_completion_keeps_observed_pixels_and_matches_naive(build, shape, levels):
    model = build(shape, levels)
    torch.manual_seed(2)
    x = torch.randint(levels, (3, *shape)).double()
    mask = top_rows_mask(shape, 2)  # [H, W]: the top two rows of every channel
    cached = complete(model, x, mask, generator=seeded(9))
    naive = complete(model, x, mask, generator=seeded(9), sampler="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[:, :, :2], x[:, :, :2])
    assert torch.equal(cached, cached.round()) and cached.min() >= 0 and cached.max() < levels
    assert torch.equal(model.complete(x, mask, generator=seeded(9)), cached)
    # Unobserved input values are ignored.
    scrambled = x.clone()
    scrambled[:, :, 2:] = (levels - 1) - scrambled[:, :, 2:]
    assert torch.equal(complete(model, scrambled, mask, generator=seeded(9)), cached)


def test_completion_with_per_example_prefixes_and_partial_pixels():
    """Different prefix lengths per example, cut inside a pixel (R observed, G and B not)."""
    shape = (3, 3, 3)
    model = tiny_gated(shape, 4, num_classes=2, kernel_size=5)
    torch.manual_seed(3)
    x = torch.randint(4, (3, *shape)).double()
    lengths = torch.tensor([0, 13, 27])  # nothing, 4 pixels + R of the fifth, everything
    raster = torch.arange(27)[None, :] < lengths[:, None]  # [B, H*W*C] with C fastest
    mask = raster.view(3, 3, 3, 3).permute(0, 3, 1, 2)  # -> [B, C, H, W]
    assert torch.equal(observed_prefix_lengths(mask, x.shape), lengths)
    y = torch.tensor([1, 0, 1])
    cached = model.complete(x, mask, generator=seeded(1), y=y)
    naive = complete(model, x, mask, generator=seeded(1), y=y, sampler="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[mask], x[mask])
    assert torch.equal(cached[2], x[2])


def test_completion_samples_the_models_conditional():
    """Completions of a fixed top half follow p(rest | observed), computed by enumeration."""
    shape = (3, 1, 2)
    for model in (tiny_pixelcnn(shape, 2), tiny_gated(shape, 2)):
        observed = torch.tensor([1.0, 0, 1, 0, 0, 0], dtype=torch.float64).view(1, 3, 1, 2)
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[:, 0, 0] = True  # pixel (0, 0) observed: a prefix of 3 sub-pixels
        rest = all_discrete(3, 2).double()  # every value of the 3 unobserved sub-pixels
        every = observed.repeat(8, 1, 1, 1)
        every[:, :, 0, 1] = rest
        exact = torch.softmax(model.log_prob(every), dim=0)
        uniform = torch.full_like(exact, 1 / 8)
        assert 0.5 * (exact - uniform).abs().sum() > 0.15, "the conditional should be peaked"
        num = 20000
        draws = complete(model, observed.expand(num, -1, -1, -1), mask, generator=seeded(0))
        assert torch.all(draws[:, :, 0, 0] == observed[:, :, 0, 0])
        codes = (draws[:, :, 0, 1].long() * torch.tensor([4, 2, 1])).sum(1)
        empirical = torch.bincount(codes, minlength=8).double() / num
        assert 0.5 * (empirical - exact).abs().sum() < 0.03


def test_non_prefix_masks_are_rejected():
    shape = (1, 4, 4)
    model = tiny_gated(shape, 2)
    x = torch.zeros(2, *shape, dtype=torch.float64)
    bottom = ~top_rows_mask(shape, 2)  # the bottom half does not precede the rest
    with pytest.raises(ValueError, match="prefix in raster order"):
        complete(model, x, bottom)
    hole = top_rows_mask(shape, 2)
    hole[0, 1] = False
    with pytest.raises(ValueError, match=r"row 0, column 1"):
        model.complete(x, hole)
    rgb = tiny_pixelcnn((3, 2, 2), 2)
    green_only = torch.zeros(3, 2, 2, dtype=torch.bool)
    green_only[1, 0, 0] = True  # G of the first pixel without its R
    with pytest.raises(ValueError, match="channel 0, row 0, column 0"):
        rgb.complete(torch.zeros(1, 3, 2, 2, dtype=torch.float64), green_only)
    with pytest.raises(ValueError, match="broadcast"):
        complete(model, x, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        complete(model, x, torch.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="levels"):
        complete(model, x + 0.5, top_rows_mask(shape, 2))


def test_fully_observed_and_unobserved_masks():
    shape = (1, 3, 3)
    model = tiny_pixelcnn(shape, 2)
    x = torch.randint(2, (2, *shape)).double()
    assert torch.equal(complete(model, x, torch.ones(3, 3)), x)
    nothing = complete(model, x, torch.zeros(3, 3, dtype=torch.bool), generator=seeded(5))
    assert torch.equal(nothing, model.sample_cached(2, generator=seeded(5)))


# ----------------------------------------------------------------------------- no state
def live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


@pytest.mark.parametrize("build", [tiny_pixelcnn, tiny_gated])
def test_repeated_calls_keep_no_state(build):
    shape = (3, 4, 4)
    model = build(shape, 4)
    attributes = set(vars(model))
    buffers = {name for name, _ in model.named_buffers()}
    x = torch.randint(4, (2, *shape)).double()
    mask = top_rows_mask(shape, 1)
    model.sample(2, generator=seeded(0))  # warm-up: lazily created objects
    model.complete(x, mask, generator=seeded(0))
    before = live_tensors()
    for seed in range(4):
        model.sample(3, generator=seeded(seed))
        model.complete(x, mask, generator=seeded(seed))
    assert live_tensors() <= before
    assert set(vars(model)) == attributes
    assert {name for name, _ in model.named_buffers()} == buffers
    assert all(p.grad is None for p in model.parameters())


def test_labels_are_validated_by_both_samplers():
    conditional = tiny_gated((1, 2, 2), 2, num_classes=2)
    for sampler in ("cached", "naive"):
        with pytest.raises(ValueError, match="labels"):
            cached_sampling.sample(conditional, 2, y=torch.tensor([0, 2]), sampler=sampler)
        with pytest.raises(ValueError, match="unconditional"):
            cached_sampling.sample(tiny_pixelcnn((1, 2, 2), 2), 2, y=1, sampler=sampler)
    with pytest.raises(TypeError, match="no cached sampler"):
        cached_sampling.sample(torch.nn.Linear(2, 2), 1)
