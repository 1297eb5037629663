"""PixelCNN and masked convolutions: causal masks, AR property, normalization, sampling, blind spot."""

from __future__ import annotations

import math

import pytest
import torch

from argen.models.masked_conv import MaskedConv2d, causal_mask, channel_groups
from argen.models.pixelcnn import PixelCNN
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized, raster_order


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: thread hand-offs cost far more than they save on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# (shape, num_levels, head): binary grey images and RGB images with few levels.
CONFIGS = [
    ((1, 3, 3), 2, "auto"),
    ((1, 3, 3), 2, "categorical"),
    ((1, 3, 3), 2, "logistic_mixture"),
    ((3, 2, 2), 2, "auto"),
    ((3, 1, 2), 3, "categorical"),
    ((3, 1, 2), 3, "logistic_mixture"),
]


def tiny(shape, levels, head="auto", **kwargs) -> PixelCNN:
    torch.manual_seed(0)
    options = {"hidden_channels": 12, "num_layers": 2, "num_mixtures": 2, **kwargs}
    model = PixelCNN(shape, levels, head=head, **options).double()
    # Larger weights and non-zero biases: a peaked distribution with strong dependencies.
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.4)
    return model


def flat_params(model: PixelCNN):
    """[B, D] C-major flattened levels -> [B, D, P] parameters, for assert_autoregressive."""

    def conditional_params(x: torch.Tensor) -> torch.Tensor:
        params = model(x.view(-1, *model.shape))
        return params.reshape(x.shape[0], model.num_dims, -1)

    return conditional_params


def test_causal_mask_structure():
    mask_a = causal_mask(3, 3, 3, "A", num_groups=3)
    mask_b = causal_mask(3, 3, 3, "B", num_groups=3)
    for mask in (mask_a, mask_b):
        assert torch.all(mask[:, :, 0, :] == 1), "the row above is visible"
        assert torch.all(mask[:, :, 1, 0] == 1), "the pixel to the left is visible"
        assert torch.all(mask[:, :, 1, 2] == 0), "the pixel to the right is hidden"
        assert torch.all(mask[:, :, 2, :] == 0), "the row below is hidden"
    # Centre: output colour g (row) sees input colours < g (A) or <= g (B).
    assert torch.equal(mask_a[:, :, 1, 1], torch.ones(3, 3).tril(-1))
    assert torch.equal(mask_b[:, :, 1, 1], torch.ones(3, 3).tril())
    grey = causal_mask(1, 4, 5, "A")
    assert grey[:, :, 2, 2].sum() == 0


def test_channel_groups_are_contiguous_and_chunked():
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert channel_groups(8, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert channel_groups(4, 2, chunks=2).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError):
        channel_groups(2, 3)


def test_masked_conv_applies_mask_in_forward_without_touching_weights():
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 6, 3, "A", num_groups=3).double()
    forbidden = conv.mask == 0
    assert conv.weight[forbidden].abs().sum() > 0, "weights stay dense; the mask is not baked in"
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    before = conv(x)
    with torch.no_grad():
        conv.weight[forbidden] += 10.0
    assert torch.equal(conv(x), before), "forbidden weights must not affect the output"
    conv(x).sum().backward()
    assert torch.all(conv.weight.grad[forbidden] == 0)
    assert before.shape == (2, 6, 4, 4)


@pytest.mark.parametrize(("shape", "levels", "head"), CONFIGS)
def test_autoregressive_property(shape, levels, head):
    model = tiny(shape, levels, head)
    x = torch.randint(levels, (3, math.prod(shape))).double()
    assert_autoregressive(flat_params(model), x, raster_order(*shape))


def test_autoregressive_check_catches_a_leaky_first_layer():
    """Swapping the first layer's mask A for mask B lets each sub-pixel see itself."""
    model = tiny((3, 1, 2), 2)
    model.input_conv.mask.copy_(causal_mask(3, 12, 7, "B", num_groups=3))
    x = torch.randint(2, (3, 6)).double()
    with pytest.raises(AssertionError, match="depends on variables"):
        assert_autoregressive(flat_params(model), x, raster_order(3, 1, 2))


@pytest.mark.parametrize(
    ("shape", "levels", "head"),
    CONFIGS + [((3, 2, 2), 2, "logistic_mixture")],
)
def test_normalized(shape, levels, head):
    model = tiny(shape, levels, head)
    every = all_discrete(math.prod(shape), levels).double().view(-1, *shape)
    assert_normalized(model.log_prob, every, atol=1e-9)


def test_samples_are_valid_images():
    model = tiny((3, 2, 3), 4).float()
    samples = model.sample(5)
    assert samples.shape == (5, 3, 2, 3) and samples.dtype == torch.float32
    assert torch.equal(samples, samples.round())
    assert samples.min() >= 0 and samples.max() <= 3
    assert torch.isfinite(model.log_prob(samples)).all()
    cold = model.sample(2, temperature=0.5)
    assert cold.shape == (2, 3, 2, 3)


@pytest.mark.parametrize(("shape", "levels"), [((1, 2, 2), 2), ((3, 1, 2), 2)])
def test_sample_frequencies_match_log_prob(shape, levels):
    """The naive raster sampler draws from exactly the distribution that log_prob scores (a
    sampler that filled B before R, say, misses by a total variation of about 0.1 here)."""
    model = tiny(shape, levels)
    every = all_discrete(math.prod(shape), levels)
    exact = model.log_prob(every.double().view(-1, *shape)).exp()
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.2, "the test distribution should be peaked"
    num = 20000
    draws = model.sample(num).view(num, -1).long()
    codes = (draws * levels ** torch.arange(draws.shape[1] - 1, -1, -1)).sum(1)
    empirical = torch.bincount(codes, minlength=every.shape[0]).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.05


def test_log_prob_rejects_bad_input():
    model = tiny((1, 3, 3), 2)
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
    with pytest.raises(ValueError, match="num_levels=2"):
        PixelCNN((1, 4, 4), 3, head="bernoulli")
    with pytest.raises(ValueError, match="unknown head"):
        PixelCNN((1, 4, 4), 2, head="softmax")
    with pytest.raises(ValueError, match="hidden_channels"):
        PixelCNN((3, 4, 4), 4, hidden_channels=4)


def influence_on(model, shape, levels, target: tuple[int, int]) -> torch.Tensor:
    """|d params(target pixel) / d x| summed over channels and batch, as an [H, W] map."""
    torch.manual_seed(1)
    x = torch.randint(levels, (4, *shape)).double().requires_grad_(True)
    params = model(x)[:, :, target[0], target[1]]
    (grad,) = torch.autograd.grad((params * torch.randn_like(params)).sum(), x)
    return grad.abs().sum(dim=(0, 1))


def test_blind_spot_in_the_upper_right():
    """Stacked mask-B 3x3 convolutions never see (row - 1, col + 4) however deep the network:
    from the row above, only the 7x7 first layer reaches right, by at most 3 columns."""
    model = tiny((1, 5, 5), 2, num_layers=6)
    influence = influence_on(model, (1, 5, 5), 2, target=(4, 0))
    assert influence[3, 4] == 0, "pixel (3, 4) precedes (4, 0) yet is invisible: the blind spot"
    assert influence[3, 3] > 0 and influence[0, 4] > 0 and influence[3, 0] > 0
    assert torch.all(influence[4, :] == 0), "the target and later pixels stay hidden"
