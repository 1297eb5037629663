"""Image Transformer: exact autoregressive property over sub-pixels, normalization, sampled
frequencies, KV-cached sampling and completion identical to the naive sampler."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from argen.models import attention
from argen.models.attention import CausalTransformer, KVCache
from argen.models.image_transformer import ImageTransformer
from argen.models.sampling_progress import on_row
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized, raster_order
from tests.conftest import needs_data
from tests.helpers import record_draws
from tests.test_pixelsnail import train_then_resume

CONFIGS = [
    ((1, 2, 2), 2, "auto", "learned"),
    ((1, 2, 3), 2, "categorical", "sinusoidal"),
    ((3, 1, 2), 3, "categorical", "learned"),
    ((3, 1, 2), 4, "logistic_mixture", "sinusoidal"),
    ((3, 2, 2), 2, "auto", "learned"),
]


def tiny(shape, levels, head="auto", positions="learned", std=0.5, **kwargs) -> ImageTransformer:
    """A tiny double-precision model with large random weights (peaked, strongly coupled)."""
    torch.manual_seed(0)
    options = {"dim": 8, "num_layers": 2, "num_heads": 2, "mlp_ratio": 2, "num_mixtures": 2}
    model = ImageTransformer(shape, levels, head=head, positions=positions, **options, **kwargs)
    model = model.double()
    for param in model.parameters():
        torch.nn.init.normal_(param, std=std)
    return model


def onehot_params(model: ImageTransformer):
    """[B, D, K] one-hot sub-pixels (C-major) -> [B, D, P] parameters, differentiably."""

    def conditional_params(x: torch.Tensor) -> torch.Tensor:
        images = x.view(x.shape[0], *model.shape, model.num_levels)
        return model.forward_onehot(images).reshape(x.shape[0], model.num_dims, -1)

    return conditional_params


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(shape, levels, n=3) -> torch.Tensor:
    return torch.randint(levels, (n, *shape), generator=seeded(7)).double()


@pytest.mark.parametrize(("shape", "levels", "head", "positions"), CONFIGS)
def test_autoregressive_property(shape, levels, head, positions):
    model = tiny(shape, levels, head, positions)
    x = F.one_hot(random_images(shape, levels).long().flatten(1), levels).double()
    assert_autoregressive(onehot_params(model), x, raster_order(*shape))


@pytest.mark.parametrize(("shape", "levels", "head", "positions"), CONFIGS)
def test_onehot_path_is_the_forward_pass(shape, levels, head, positions):
    model = tiny(shape, levels, head, positions)
    x = random_images(shape, levels)
    onehot = F.one_hot(x.long(), levels).double()
    torch.testing.assert_close(model.forward_onehot(onehot), model(x))


def test_changing_a_sub_pixel_leaves_earlier_conditionals_unchanged():
    """The id path, without gradients: a change at sub-pixel t changes nothing at positions <= t."""
    shape, levels = (3, 2, 2), 4
    model = tiny(shape, levels, "categorical")
    x = random_images(shape, levels, n=1)
    base = model.to_sequence(model(x))
    for t in range(model.num_dims):
        changed = model.to_sequence(x.clone())
        changed[:, t] = (changed[:, t] + 1) % levels
        params = model.to_sequence(model(model.from_sequence(changed)))
        assert torch.equal(params[:, : t + 1], base[:, : t + 1])
        if t + 1 < model.num_dims:
            assert not torch.equal(params[:, t + 1], base[:, t + 1])


def test_check_catches_non_causal_attention(monkeypatch):
    model = tiny((1, 2, 2), 2)
    sdpa = F.scaled_dot_product_attention

    def bidirectional(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
        return sdpa(q, k, v, dropout_p=dropout_p)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", bidirectional)
    x = F.one_hot(torch.randint(2, (2, 4)), 2).double()
    with pytest.raises(AssertionError, match="depends on variables"):
        assert_autoregressive(onehot_params(model), x, raster_order(1, 2, 2))


@pytest.mark.parametrize(
    ("shape", "levels", "head", "positions"),
    [
        ((1, 2, 2), 2, "auto", "learned"),
        ((1, 2, 2), 2, "logistic_mixture", "sinusoidal"),
        ((3, 1, 2), 2, "auto", "sinusoidal"),
        ((3, 1, 2), 3, "categorical", "learned"),
        ((3, 1, 2), 3, "logistic_mixture", "learned"),
    ],
)
def test_normalized(shape, levels, head, positions):
    model = tiny(shape, levels, head, positions)
    every = all_discrete(math.prod(shape), levels).double().view(-1, *shape)
    assert_normalized(model.log_prob, every, atol=1e-9)


@pytest.mark.parametrize(("shape", "levels"), [((1, 2, 2), 2), ((3, 1, 2), 2)])
def test_sample_frequencies_match_log_prob(shape, levels):
    model = tiny(shape, levels, std=1.0)
    every = all_discrete(math.prod(shape), levels)
    exact = model.log_prob(every.double().view(-1, *shape)).exp().detach()
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.2, "the test distribution should be peaked"
    num = 20000
    draws = model.sample(num, generator=seeded(3)).view(num, -1).long()
    codes = (draws * levels ** torch.arange(draws.shape[1] - 1, -1, -1)).sum(1)
    empirical = torch.bincount(codes, minlength=every.shape[0]).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.05


@pytest.mark.parametrize(("shape", "levels", "head", "positions"), CONFIGS)
def test_cached_sampling_equals_naive(shape, levels, head, positions):
    model = tiny(shape, levels, head, positions)
    for temperature in (1.0, 0.6):
        cached = model.sample_cached(6, temperature=temperature, generator=seeded(1))
        naive = model.sample_naive(6, temperature=temperature, generator=seeded(1))
        assert torch.equal(cached, naive)
    assert cached.shape == (6, *shape) and cached.dtype == torch.float64
    assert torch.equal(cached, cached.round()) and 0 <= cached.min() and cached.max() < levels


def test_float32_samples_and_cache_agree_with_a_full_pass(monkeypatch):
    """Every cached draw uses the parameters a full forward pass gives on the final sample."""
    shape = (3, 3, 3)
    model = tiny(shape, 4, "categorical", std=0.2).float()
    seen = record_draws(monkeypatch)
    samples = model.sample_cached(4, generator=seeded(0))
    assert samples.dtype == torch.float32
    full = model.to_sequence(model(samples))
    assert len(seen) == model.num_dims
    for t, got in enumerate(seen):
        torch.testing.assert_close(got, full[:, t], rtol=1e-4, atol=1e-5)


def test_completion_keeps_the_prefix_and_matches_naive():
    shape = (3, 3, 2)
    model = tiny(shape, 4, "categorical")
    x = random_images(shape, 4, n=4)
    mask = torch.zeros(4, *shape, dtype=torch.bool)
    mask[:, :, 0] = True
    mask[:, :2, 1, 0] = True  # the prefix ends inside a pixel (red and green observed)
    mask[2, 2, 1, 0] = True  # example 2 observes one sub-pixel more
    cached = model.complete(x, mask, generator=seeded(5), temperature=0.8)
    naive = model.complete(x, mask, generator=seeded(5), temperature=0.8, sampler="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[mask], x[mask])
    assert not torch.equal(cached[~mask], x[~mask])
    everything = model.complete(x, torch.ones(shape[1:], dtype=torch.bool))
    assert torch.equal(everything, x)
    with pytest.raises(ValueError, match="prefix"):
        bad = torch.zeros(shape[1:], dtype=torch.bool)
        bad[1, 1] = True
        model.complete(x, bad)


def test_sampling_reports_every_row():
    model = tiny((3, 3, 2), 2)
    rows: list[tuple[int, int]] = []
    with on_row(lambda done, total: rows.append((done, total))):
        model.sample(2)
        model.sample_naive(2)
    assert rows == [(1, 3), (2, 3), (3, 3)] * 2


def test_kv_cache_forward_equals_the_full_pass():
    """Prefill, several tokens after a prefix, and single steps: the uncached hidden states."""
    torch.manual_seed(0)
    net = CausalTransformer(5, 12, dim=8, num_layers=2, num_heads=2).double()
    ids = torch.randint(5, (3, 12))
    full = net(net.embed(ids))
    cache = net.new_cache(3, None, ids.device, torch.float64)
    parts = [net(net.embed(ids[:, :4]), cache), net(net.embed(ids[:, 4:9]), cache)]
    parts += [net(net.embed(ids[:, t : t + 1]), cache) for t in range(9, 12)]
    torch.testing.assert_close(torch.cat(parts, 1), full)
    with pytest.raises(ValueError, match="max_len"):
        net(net.embed(ids[:, :1]), cache)
    small = KVCache(2, 3, 2, 4, 2, None, torch.float64)
    with pytest.raises(ValueError, match="holds 2"):
        small.write(0, torch.zeros(3, 2, 3, 4), torch.zeros(3, 2, 3, 4))


def test_log_prob_rejects_bad_input_and_bad_settings():
    model = tiny((3, 1, 2), 4, "categorical")
    good = torch.full((2, 3, 1, 2), 3.0, dtype=torch.float64)
    assert model.log_prob(good).shape == (2,)
    for bad in (good.long(), good[:, :2], good + 1.0, good - 0.5):
        with pytest.raises(ValueError):
            model.log_prob(bad)
    for kwargs in ({"positions": "rotary"}, {"dim": 6, "num_heads": 4}, {"sampler": "fast"}):
        with pytest.raises(ValueError):
            ImageTransformer((1, 2, 2), 2, **kwargs)


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_trains_with_bf16_compile_and_resumes_through_train_py(tmp_path, monkeypatch):
    first, second, _ = train_then_resume(
        tmp_path,
        monkeypatch,
        "model=image_transformer",
        "data=binarized_mnist",
        "data.datamodule.max_examples=40",
        "model.module.net.dim=16",
        "model.module.net.num_layers=1",
        "model.module.net.num_heads=2",
        "callbacks.image_logger.num_images=2",
        "callbacks.image_logger.every_n_epochs=2",  # images in the resumed epoch only
    )
    assert first["model"] == second["model"] == "image_transformer"
    assert second["test_nll"] != first["test_nll"]
    images = tmp_path / "resumed" / "run" / "images"
    assert list(images.glob("samples_*.png")) and list(images.glob("completions_*.png"))
