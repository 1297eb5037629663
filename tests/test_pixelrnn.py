"""PixelRNN (Row LSTM, Diagonal BiLSTM): skewing, AR property across colours, normalization,
sampling, receptive fields."""

from __future__ import annotations

import math

import pytest
import torch

from argen.models.masked_conv import causal_mask
from argen.models.pixelrnn import DiagonalBiLSTM, RowLSTM, skew, unskew
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized, raster_order

MODELS = [RowLSTM, DiagonalBiLSTM]

# (shape, num_levels, head): binary grey images and RGB images with few levels.
CONFIGS = [
    ((1, 3, 3), 2, "auto"),
    ((1, 2, 3), 3, "categorical"),
    ((3, 2, 2), 2, "auto"),
    ((3, 1, 2), 3, "categorical"),
    ((3, 1, 2), 3, "logistic_mixture"),
]


def tiny(cls, shape, levels, head="auto", **kwargs):
    torch.manual_seed(0)
    options = {"hidden_channels": 12, "num_layers": 2, "num_mixtures": 2, **kwargs}
    model = cls(shape, levels, head=head, **options).double()
    # Larger weights and non-zero biases: a peaked distribution with strong dependencies.
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.4)
    return model


def flat_params(model):
    """[B, D] C-major flattened levels -> [B, D, P] parameters, for assert_autoregressive."""

    def conditional_params(x: torch.Tensor) -> torch.Tensor:
        params = model(x.view(-1, *model.shape))
        return params.reshape(x.shape[0], model.num_dims, -1)

    return conditional_params


def influence_on(model, target: tuple[int, int], levels: int = 2) -> torch.Tensor:
    """Which input sub-pixels move the parameters of the target pixel: bool [C, H, W]."""
    torch.manual_seed(1)
    x = torch.randint(levels, (4, *model.shape)).double().requires_grad_(True)
    params = model(x)[:, :, target[0], target[1]]
    (grad,) = torch.autograd.grad((params * torch.randn_like(params)).sum(), x)
    return grad.abs().sum(dim=0) != 0


# --- skewing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (1, 4), (4, 1), (3, 5), (5, 3)])
def test_skew_shifts_row_i_right_by_i_and_unskew_inverts_it(size):
    height, width = size
    x = torch.randn(2, 3, height, width)
    skewed = skew(x)
    assert skewed.shape == (2, 3, height, width + height - 1)
    expected = torch.zeros_like(skewed)
    for i in range(height):
        expected[:, :, i, i : i + width] = x[:, :, i]
    assert torch.equal(skewed, expected)
    assert torch.equal(unskew(skewed, width), x)


def test_skew_along_other_dims_and_unskew_checks_the_width():
    y = torch.randn(2, 4, 5, 3)  # [B, H, W, C]: rows on dim 1, columns on dim 2
    assert torch.equal(skew(y, dim=1), skew(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
    assert torch.equal(unskew(skew(y, dim=1), 5, dim=1), y)
    with pytest.raises(ValueError, match="columns"):
        unskew(skew(torch.randn(1, 1, 3, 4)), 5)


# --- the contract: AR property, normalization, sampling, input validation ----------------------


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("shape", "levels", "head"), CONFIGS)
def test_autoregressive_property(cls, shape, levels, head):
    model = tiny(cls, shape, levels, head)
    x = torch.randint(levels, (3, math.prod(shape))).double()
    assert_autoregressive(flat_params(model), x, raster_order(*shape))


def test_row_lstm_autoregressive_with_wider_kernels():
    model = tiny(RowLSTM, (3, 2, 3), 2, kernel_size=5, first_kernel_size=5, num_layers=1)
    x = torch.randint(2, (3, 18)).double()
    assert_autoregressive(flat_params(model), x, raster_order(3, 2, 3))


def unmask(conv) -> None:
    """Open every tap of a masked convolution, run as the dense reference (mask buffer times
    weight)."""
    conv.mask.fill_(1.0)
    conv.impl = "dense"


def test_autoregressive_check_catches_unmasked_input_to_state():
    """Dropping the masks of the LSTMs' input-to-state leaks later colours (Diagonal BiLSTM, a
    1x1 convolution) and the pixel to the right (Row LSTM): the channel masks are needed."""
    diagonal = tiny(DiagonalBiLSTM, (3, 1, 2), 2, num_layers=1)
    unmask(diagonal.layers[0].left_input)
    row = tiny(RowLSTM, (1, 1, 3), 2, num_layers=1)
    unmask(row.layers[0].input_to_state)
    for model in (diagonal, row):
        x = torch.randint(2, (3, model.num_dims)).double()
        with pytest.raises(AssertionError, match="depends on variables"):
            assert_autoregressive(flat_params(model), x, raster_order(*model.shape))


def test_autoregressive_check_catches_a_leaky_first_layer():
    model = tiny(RowLSTM, (3, 1, 2), 2)
    model.input_conv.mask.copy_(causal_mask(3, 12, 7, "B", num_groups=3))
    model.input_conv.impl = "dense"  # the implementation that multiplies the mask buffer in
    x = torch.randint(2, (3, 6)).double()
    with pytest.raises(AssertionError, match="depends on variables"):
        assert_autoregressive(flat_params(model), x, raster_order(3, 1, 2))


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(
    ("shape", "levels", "head"), CONFIGS + [((3, 2, 2), 2, "logistic_mixture")]
)
def test_normalized(cls, shape, levels, head):
    model = tiny(cls, shape, levels, head)
    every = all_discrete(math.prod(shape), levels).double().view(-1, *shape)
    assert_normalized(model.log_prob, every, atol=1e-9)


@pytest.mark.parametrize("cls", MODELS)
def test_rows_below_do_not_change_the_rows_above(cls):
    """What ``RowsAbove`` relies on: a pass over the top r rows gives those rows' parameters."""
    model = tiny(cls, (3, 4, 3), 3)
    x = torch.randint(3, (2, 3, 4, 3)).double()
    full = model(x)
    for rows in (1, 2, 3):
        assert torch.allclose(model(x[:, :, :rows]), full[:, :, :rows], atol=1e-12)


@pytest.mark.parametrize("cls", MODELS)
def test_samples_are_valid_images(cls):
    model = tiny(cls, (3, 2, 3), 4).float()
    samples = model.sample(5)
    assert samples.shape == (5, 3, 2, 3) and samples.dtype == torch.float32
    assert torch.equal(samples, samples.round())
    assert samples.min() >= 0 and samples.max() <= 3
    assert torch.isfinite(model.log_prob(samples)).all()
    assert model.sample(2, temperature=0.5).shape == (2, 3, 2, 3)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, temperature=0.0)


@pytest.mark.parametrize("cls", MODELS)
def test_default_sampler_draws_what_the_naive_sampler_draws(cls):
    """(More in tests/test_pixelrnn_sampling.py.)"""
    model = tiny(cls, (3, 2, 2), 3)
    torch.manual_seed(5)
    fast = model.sample(64)
    torch.manual_seed(5)
    naive = model.sample_naive(64)
    assert torch.equal(fast, naive)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("shape", "levels"), [((1, 2, 2), 2), ((3, 1, 2), 2)])
def test_sample_frequencies_match_log_prob(cls, shape, levels):
    """The sampler draws from exactly the distribution that log_prob scores."""
    model = tiny(cls, shape, levels)
    with torch.no_grad():
        model.output[-1].weight.mul_(4.0)  # sharper conditionals: a peaked joint distribution
    every = all_discrete(math.prod(shape), levels)
    exact = model.log_prob(every.double().view(-1, *shape)).exp()
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.2, "the test distribution should be peaked"
    num = 20000
    draws = model.sample(num).view(num, -1).long()
    codes = (draws * levels ** torch.arange(draws.shape[1] - 1, -1, -1)).sum(1)
    empirical = torch.bincount(codes, minlength=every.shape[0]).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.05


@pytest.mark.parametrize("cls", MODELS)
def test_eight_bit_rgb(cls):
    """K = 256 with the categorical and the logistic-mixture heads."""
    x = torch.randint(256, (2, 3, 2, 2)).float()
    for head, params in (("auto", 256), ("logistic_mixture", 6)):
        model = tiny(cls, (3, 2, 2), 256, head=head).float()
        assert model(x).shape == (2, 3, 2, 2, params)
        log_prob = model.log_prob(x)
        assert log_prob.shape == (2,) and torch.isfinite(log_prob).all() and (log_prob < 0).all()
        samples = model.sample(2)
        assert samples.min() >= 0 and samples.max() <= 255 and torch.equal(samples, samples.round())


@pytest.mark.parametrize("cls", MODELS)
def test_defaults_on_binarized_mnist_shape(cls):
    model = cls((1, 28, 28))
    x = (torch.rand(2, 1, 28, 28) < 0.3).float()
    log_prob = model.log_prob(x)
    assert log_prob.shape == (2,) and torch.isfinite(log_prob).all()
    assert len(model.layers) == 7 and model.input_conv.out_channels == 64


@pytest.mark.parametrize("cls", MODELS)
def test_log_prob_rejects_bad_input(cls):
    model = tiny(cls, (1, 3, 3), 2)
    good = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    assert model.log_prob(good).shape == (2,)
    for bad in (
        good.long(),  # integer dtype
        good[:, :, :2],  # wrong shape
        good + 2.0,  # level out of range
        good + 0.5,  # not a whole level
    ):
        with pytest.raises(ValueError):
            model.log_prob(bad)


def test_constructor_errors():
    for cls in MODELS:
        with pytest.raises(ValueError, match="num_levels=2"):
            cls((1, 4, 4), 3, head="bernoulli")
        with pytest.raises(ValueError, match="hidden_channels"):
            cls((3, 4, 4), 4, hidden_channels=4)
        with pytest.raises(ValueError, match="hidden_channels"):
            cls((1, 4, 4), 2, hidden_channels=7)
        with pytest.raises(ValueError, match="num_layers"):
            cls((1, 4, 4), 2, num_layers=0)
    with pytest.raises(ValueError, match="kernel_size"):
        RowLSTM((1, 4, 4), 2, kernel_size=4)


# --- receptive fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(("num_layers", "kernel_size", "first"), [(1, 3, 7), (3, 3, 7), (2, 5, 5)])
def test_row_lstm_receptive_field_is_a_triangle(num_layers, kernel_size, first):
    """From the row r >= 1 steps above the target, the Row LSTM sees exactly the columns up to
    (r - 1) * (k // 2) + first // 2 to the right of it, whatever the depth: e.g. with k = 3 and a
    7x7 first layer, the pixel 4 columns right on the previous row is never seen."""
    model = tiny(
        RowLSTM,
        (1, 5, 14),
        2,
        num_layers=num_layers,
        kernel_size=kernel_size,
        first_kernel_size=first,
    )
    target = (4, 2)
    seen = influence_on(model, target)[0]
    for r in range(1, 5):
        reach = target[1] + (r - 1) * (kernel_size // 2) + first // 2
        row = seen[target[0] - r]
        assert row[: reach + 1].all(), f"row {target[0] - r} should be visible up to column {reach}"
        assert not row[reach + 1 :].any(), f"row {target[0] - r} is visible past column {reach}"
    assert seen[4, :2].all() and not seen[4, 2:].any(), "the left of the row only; not the target"


def test_diagonal_bilstm_sees_every_earlier_pixel_from_the_last_one():
    for shape in ((1, 5, 5), (3, 4, 4)):
        model = tiny(DiagonalBiLSTM, shape, 2, hidden_channels=12, num_layers=2)
        channels, height, width = shape
        seen = influence_on(model, (height - 1, width - 1))  # [C, H, W] over all colours
        earlier = torch.ones(channels, height, width, dtype=torch.bool)
        earlier[:, -1, -1] = False
        earlier[: channels - 1, -1, -1] = True  # the last colour sees the pixel's other colours
        assert torch.equal(seen, earlier)


@pytest.mark.parametrize("num_layers", [1, 3])
def test_diagonal_bilstm_sees_exactly_the_whole_context_of_every_pixel(num_layers):
    """Every target sees every earlier pixel and nothing else, with one layer already; in
    particular the last pixel of the previous row, which reaches targets far from the right edge
    only through the raw pixels fed to the first layer's shifted mirrored direction."""
    model = tiny(DiagonalBiLSTM, (1, 5, 8), 2, num_layers=num_layers)
    for row in (1, 3, 4):
        for col in range(8):
            seen = influence_on(model, (row, col))[0]
            earlier = torch.zeros(5, 8, dtype=torch.bool)
            earlier[:row] = True
            earlier[row, :col] = True
            assert torch.equal(seen, earlier), f"target ({row}, {col})"
