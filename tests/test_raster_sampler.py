"""The one raster sampler (``argen.models.cached_sampling``) behind every raster image model: the
same loop, draws and progress reports for all six families, completion for the PixelRNNs too, and
each model's cache honouring the ``RasterStepper`` interface."""

from __future__ import annotations

import pytest
import torch

from argen.models import cached_sampling
from argen.models.cached_sampling import RasterImageModel, RasterStepper
from argen.models.completion import complete_top_half
from argen.models.pixelrnn import DiagonalBiLSTM, RowLSTM
from argen.models.sampling_progress import on_row
from tests.ar_checks import all_discrete
from tests.helpers import record_draws
from tests.test_raster_samples import MODELS, _build


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def labels_for(model: RasterImageModel, n: int) -> dict[str, torch.Tensor]:
    if model.num_classes is None:
        return {}
    return {"y": torch.arange(n) % model.num_classes}


@pytest.mark.parametrize("name", MODELS)
def test_every_model_is_a_raster_model_with_a_stepper(name):
    model = _build(name)
    assert isinstance(model, RasterImageModel)
    x = torch.zeros(2, *model.shape)
    y = labels_for(model, 2).get("y")
    stepper = model.start_cache(x, y, 0)
    assert isinstance(stepper, RasterStepper)
    with torch.no_grad():
        assert stepper.params(0, 0, 0).shape == (2, model.head.params_per_channel)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("sampler", ["cached", "naive"])
def test_one_draw_per_unobserved_sub_pixel_and_a_report_per_row(name, sampler, monkeypatch):
    """Sampling draws D sub-pixels and reports rows 1..H; completing the top half draws the bottom
    half's sub-pixels only and reports the rows it fills."""
    model = _build(name, sampler)
    c, h, w = model.shape
    seen = record_draws(monkeypatch)
    rows: list[tuple[int, int]] = []
    kwargs = labels_for(model, 2)
    with on_row(lambda done, total: rows.append((done, total))):
        model.sample(2, generator=seeded(0), sampler=sampler, **kwargs)
    assert len(seen) == c * h * w and rows == [(r, h) for r in range(1, h + 1)]
    seen.clear()
    rows.clear()
    x = torch.randint(model.num_levels, (2, c, h, w), generator=seeded(1)).float()
    with on_row(lambda done, total: rows.append((done, total))):
        panels = complete_top_half(model, x, generator=seeded(2), sampler=sampler, **kwargs)
    assert len(seen) == c * (h - h // 2) * w
    assert rows == [(r, h) for r in range(h // 2 + 1, h + 1)]
    assert torch.equal(panels["completions"][:, :, : h // 2], x[:, :, : h // 2])


@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM])
def test_pixel_rnns_complete_any_prefix_like_the_naive_sampler(cls):
    torch.manual_seed(0)
    model = cls((3, 3, 3), 4, hidden_channels=12, num_layers=2).double()
    lengths = torch.tensor([0, 13, 27])  # nothing, 4 pixels + R of the fifth, everything
    mask = (torch.arange(27)[None, :] < lengths[:, None]).view(3, 3, 3, 3).permute(0, 3, 1, 2)
    x = torch.randint(4, (3, 3, 3, 3), generator=seeded(3)).double()
    cached = model.complete(x, mask, generator=seeded(1), temperature=0.8)
    naive = model.complete(x, mask, generator=seeded(1), temperature=0.8, sampler="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[mask], x[mask]) and torch.equal(cached[2], x[2])
    assert torch.equal(cached, cached.round()) and cached.min() >= 0 and cached.max() <= 3
    with pytest.raises(ValueError, match="prefix in raster order"):
        model.complete(x, ~mask)


@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM])
def test_pixel_rnn_completions_follow_the_models_conditional(cls):
    """Completions of a fixed first pixel follow p(rest | observed), computed by enumeration."""
    torch.manual_seed(0)
    model = cls((3, 1, 2), 2, hidden_channels=12, num_layers=2).double()
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.5)
    observed = torch.tensor([1.0, 0, 1, 0, 0, 0], dtype=torch.float64).view(1, 3, 1, 2)
    mask = torch.zeros(3, 1, 2, dtype=torch.bool)
    mask[:, 0, 0] = True
    every = observed.repeat(8, 1, 1, 1)
    every[:, :, 0, 1] = all_discrete(3, 2).double()
    exact = torch.softmax(model.log_prob(every), dim=0)
    assert 0.5 * (exact - 1 / 8).abs().sum() > 0.15, "the conditional should be peaked"
    num = 20000
    draws = model.complete(observed.expand(num, -1, -1, -1), mask, generator=seeded(0))
    assert torch.all(draws[:, :, 0, 0] == observed[:, :, 0, 0])
    codes = (draws[:, :, 0, 1].long() * torch.tensor([4, 2, 1])).sum(1)
    empirical = torch.bincount(codes, minlength=8).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.03


@pytest.mark.parametrize("name", ["row_lstm_rgb", "pixelsnail_grey", "transformer_rgb"])
def test_sampling_leaves_no_state_and_restores_the_training_mode(name):
    model = _build(name).train()
    attributes = set(vars(model))
    model.sample(2, generator=seeded(0))
    model.complete(torch.zeros(2, *model.shape), torch.zeros(model.shape, dtype=torch.bool))
    assert model.training and set(vars(model)) == attributes
    assert all(p.grad is None for p in model.parameters())


def test_the_loop_refuses_what_it_cannot_sample():
    model = _build("row_lstm_grey")
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, temperature=0.0)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(1, sampler="fast")
    with pytest.raises(ValueError, match="sampler"):
        RowLSTM((1, 2, 2), 2, hidden_channels=4, num_layers=1, sampler="fast")
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(1, y=0)
    with pytest.raises(ValueError, match=r"shape must be \[C, H, W\]"):
        RowLSTM((4, 4), 2)
    with pytest.raises(TypeError, match="no cached sampler"):
        cached_sampling.sample(torch.nn.Linear(2, 2), 1)
