"""Gated PixelCNN: AR property, normalization, sampling, full receptive field, class conditioning."""

from __future__ import annotations

import math

import pytest
import torch

from argen.models.gated_pixelcnn import GatedPixelCNN, shift_down
from argen.models.pixelcnn import PixelCNN
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized, raster_order


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: thread hand-offs cost far more than they save on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIGS = [
    ((1, 3, 3), 2, "auto"),
    ((1, 3, 3), 2, "logistic_mixture"),
    ((3, 2, 2), 2, "auto"),
    ((3, 1, 2), 3, "categorical"),
    ((3, 1, 2), 3, "logistic_mixture"),
]


def tiny(shape, levels, head="auto", **kwargs) -> GatedPixelCNN:
    torch.manual_seed(0)
    options = {
        "hidden_channels": 8,
        "num_layers": 3,
        "kernel_size": 3,
        "num_mixtures": 2,
        "output_channels": 16,
        **kwargs,
    }
    model = GatedPixelCNN(shape, levels, head=head, **options).double()
    # Larger weights and non-zero biases: a peaked distribution with strong dependencies.
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.5)
    return model


def flat_params(model: GatedPixelCNN, y: torch.Tensor | None = None):
    """[B, D] C-major flattened levels -> [B, D, P] parameters, for assert_autoregressive."""

    def conditional_params(x: torch.Tensor) -> torch.Tensor:
        labels = None if y is None else y[: x.shape[0]]
        params = model(x.view(-1, *model.shape), labels)
        return params.reshape(x.shape[0], model.num_dims, -1)

    return conditional_params


def test_shift_down_moves_rows():
    x = torch.arange(6.0).view(1, 1, 3, 2)
    assert shift_down(x).view(3, 2).tolist() == [[0, 0], [0, 1], [2, 3]]


@pytest.mark.parametrize(("shape", "levels", "head"), CONFIGS)
def test_autoregressive_property(shape, levels, head):
    model = tiny(shape, levels, head)
    x = torch.randint(levels, (3, math.prod(shape))).double()
    assert_autoregressive(flat_params(model), x, raster_order(*shape))


def test_autoregressive_property_with_labels_and_wide_kernel():
    shape = (3, 2, 3)
    model = tiny(shape, 2, num_classes=3, kernel_size=5, num_layers=2)
    x = torch.randint(2, (3, math.prod(shape))).double()
    assert_autoregressive(flat_params(model, torch.tensor([0, 2, 1])), x, raster_order(*shape))


def test_autoregressive_check_catches_unshifted_vertical_stack(monkeypatch):
    """Without the down shift the vertical stack would leak the current row (and pixel)."""
    import argen.models.gated_pixelcnn as gated

    monkeypatch.setattr(gated, "shift_down", lambda v: v)
    model = tiny((1, 2, 2), 2)
    with pytest.raises(AssertionError, match="depends on variables"):
        assert_autoregressive(flat_params(model), torch.ones(2, 4), raster_order(1, 2, 2))


@pytest.mark.parametrize(
    ("shape", "levels", "head"),
    CONFIGS + [((3, 2, 2), 2, "logistic_mixture"), ((3, 2, 2), 2, "categorical")],
)
def test_normalized(shape, levels, head):
    model = tiny(shape, levels, head)
    every = all_discrete(math.prod(shape), levels).double().view(-1, *shape)
    assert_normalized(model.log_prob, every, atol=1e-9)


def test_normalized_for_every_label():
    shape = (1, 3, 3)
    model = tiny(shape, 2, num_classes=2)
    every = all_discrete(9, 2).double().view(-1, *shape)
    for label in (0, 1):
        labels = torch.full((every.shape[0],), label)
        assert_normalized(lambda x, labels=labels: model.log_prob(x, labels), every, atol=1e-9)


def influence_on(model, shape, levels, target: tuple[int, int]) -> torch.Tensor:
    """|d params(target pixel) / d x| summed over channels and batch, as an [H, W] map."""
    torch.manual_seed(1)
    x = torch.randint(levels, (4, *shape)).double().requires_grad_(True)
    params = model(x)[:, :, target[0], target[1]]
    (grad,) = torch.autograd.grad((params * torch.randn_like(params)).sum(), x)
    return grad.abs().sum(dim=(0, 1))


def test_receptive_field_covers_every_earlier_pixel():
    """No blind spot: every pixel's parameters depend on every earlier pixel of a 5x5 image."""
    shape = (1, 5, 5)
    model = tiny(shape, 2, num_layers=5)
    earlier = torch.arange(25).view(5, 5)
    for target in range(25):
        i, j = divmod(target, 5)
        influence = influence_on(model, shape, 2, (i, j))
        assert torch.all(influence[earlier < target] > 0), f"pixel {(i, j)} misses an earlier one"
        assert torch.all(influence[earlier >= target] == 0)


def test_sees_the_pixel_that_pixelcnn_misses():
    """PixelCNN's upper-right blind spot (pixel (3, 4) for target (4, 0)) is visible here."""
    shape = (1, 5, 5)
    gated = influence_on(tiny(shape, 2, num_layers=5), shape, 2, (4, 0))
    torch.manual_seed(0)
    plain_model = PixelCNN(shape, 2, hidden_channels=8, num_layers=6).double()
    plain = influence_on(plain_model, shape, 2, (4, 0))
    assert gated[3, 4] > 0 and plain[3, 4] == 0


def test_class_label_changes_the_likelihood():
    model = tiny((1, 3, 3), 2, num_classes=2)
    x = torch.randint(2, (4, 1, 3, 3)).double()
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    assert not torch.allclose(model.log_prob(x, zeros), model.log_prob(x, ones))


def test_label_validation():
    conditional = tiny((1, 3, 3), 2, num_classes=2)
    x = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    for bad in (None, torch.tensor([0, 2]), torch.tensor([0]), torch.tensor([0.0, 1.0])):
        with pytest.raises(ValueError):
            conditional.log_prob(x, bad)
    with pytest.raises(ValueError, match="unconditional"):
        tiny((1, 3, 3), 2).log_prob(x, torch.tensor([0, 1]))


def test_samples_are_valid_images():
    model = tiny((3, 2, 3), 4).float()
    samples = model.sample(5)
    assert samples.shape == (5, 3, 2, 3) and samples.dtype == torch.float32
    assert torch.equal(samples, samples.round())
    assert samples.min() >= 0 and samples.max() <= 3
    assert torch.isfinite(model.log_prob(samples)).all()


def test_conditional_sampling_accepts_int_tensor_or_no_label():
    model = tiny((1, 2, 2), 2, num_classes=3)
    for y in (2, torch.tensor([0, 1, 2]), None):
        samples = model.sample(3, y=y)
        assert samples.shape == (3, 1, 2, 2)
        assert set(samples.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(("shape", "levels", "label"), [((1, 2, 2), 2, None), ((3, 1, 2), 2, 1)])
def test_sample_frequencies_match_log_prob(shape, levels, label):
    """The naive raster sampler draws from exactly the distribution that log_prob scores."""
    model = tiny(shape, levels, num_classes=None if label is None else 2)
    every = all_discrete(math.prod(shape), levels)
    labels = None if label is None else torch.full((every.shape[0],), label)
    exact = model.log_prob(every.double().view(-1, *shape), labels).exp()
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.2, "the test distribution should be peaked"
    num = 20000
    draws = model.sample(num, y=label).view(num, -1).long()
    codes = (draws * levels ** torch.arange(draws.shape[1] - 1, -1, -1)).sum(1)
    empirical = torch.bincount(codes, minlength=every.shape[0]).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.05


def test_log_prob_rejects_bad_input():
    model = tiny((3, 2, 2), 4)
    good = torch.full((2, 3, 2, 2), 3.0, dtype=torch.float64)
    assert model.log_prob(good).shape == (2,)
    for bad in (good.long(), good[:, :2], good + 1.0, good - 0.5):
        with pytest.raises(ValueError):
            model.log_prob(bad)


def test_constructor_errors():
    with pytest.raises(ValueError, match="kernel_size"):
        GatedPixelCNN((1, 4, 4), 2, kernel_size=4)
    with pytest.raises(ValueError, match="num_levels=2"):
        GatedPixelCNN((1, 4, 4), 5, head="bernoulli")
