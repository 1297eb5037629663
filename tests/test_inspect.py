"""Dependency maps (argen.inspect.dependency) on small random nets: the map is exactly zero where
the autoregressive property and each architecture's known receptive field say it must be (PixelCNN's
blind spot included) and non-zero everywhere else inside the field."""

from __future__ import annotations

import pytest
import torch

from argen.inspect.conditionals import dimension_log_probs, ordering_rank
from argen.inspect.dependency import (
    after_target,
    default_targets,
    dependency_maps,
    field_growth,
    layer_names,
)
from argen.inspect.masks import made_connectivity
from argen.models.fvsbn import FVSBN
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.image_transformer import ImageTransformer
from argen.models.made import MADE
from argen.models.nade import NADE
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelrnn import DiagonalBiLSTM, RowLSTM
from argen.models.pixelsnail import PixelSNAIL


def strong(model):
    """Random weights and biases of a fair size: every path the architecture has carries a
    clearly non-zero gradient (no zero-initialized bias or output layer hides one)."""
    torch.manual_seed(0)
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.4)
    return model


def images(model, count: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(model.num_levels, (count, *model.shape)).float()


def seen(model, target) -> torch.Tensor:
    """Bool [C, H, W]: where the dependency map of ``target`` is non-zero."""
    return dependency_maps(model, images(model), [target])[0] > 0


def field(height: int, width: int, target: tuple[int, int], offsets) -> torch.Tensor:
    """Bool [H, W]: the pixels at ``target + offset`` for the given (row, column) offsets."""
    out = torch.zeros(height, width, dtype=torch.bool)
    for dr, dc in offsets:
        r, c = target[0] + dr, target[1] + dc
        if 0 <= r < height and 0 <= c < width:
            out[r, c] = True
    return out


# --------------------------------------------------------------------------- known fields
def masked_kernel(size: int, mask: str) -> set[tuple[int, int]]:
    """Offsets a raster-causal size x size kernel reads: the rows above, the left of the row, and
    for mask B the centre itself (van den Oord et al. 2016, Figure 2)."""
    half = size // 2
    taps = {(dr, dc) for dr in range(-half, 1) for dc in range(-half, half + 1) if dr < 0 or dc < 0}
    return taps | {(0, 0)} if mask == "B" else taps


def stacked(*kernels: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """A stack of convolutions reads the Minkowski sum of its kernels' offsets."""
    total = {(0, 0)}
    for kernel in kernels:
        total = {(a + c, b + d) for a, b in total for c, d in kernel}
    return total


def pixelcnn_field(first: int, kernel: int, blocks: int) -> set[tuple[int, int]]:
    return stacked(masked_kernel(first, "A"), *[masked_kernel(kernel, "B")] * blocks)


def gated_field(kernel: int, layers: int) -> set[tuple[int, int]]:
    """Vertical stack: a rectangle of (layers * k//2 + 1) rows above, layers * k//2 columns either
    side; horizontal stack: layers * k//2 pixels to the left (van den Oord et al. 2016b)."""
    reach = layers * (kernel // 2)
    above = {(-r, c) for r in range(1, reach + 2) for c in range(-reach, reach + 1)}
    return above | {(0, -c) for c in range(1, reach + 1)}


def row_lstm_field(first: int, kernel: int, layers: int, height: int):
    """Row r >= 1 above the target: columns from -(first//2 + (r + layers) k//2) to
    first//2 + (r - 1) k//2 (the triangle); the target's row: layers * k//2 + first//2 to the
    left (van den Oord et al. 2016a, Section 3.1)."""
    f, h = first // 2, kernel // 2
    offsets = {(0, -c) for c in range(1, f + layers * h + 1)}
    for r in range(1, height):
        offsets |= {(-r, c) for c in range(-(f + (r + layers) * h), f + (r - 1) * h + 1)}
    return offsets


def raster_before(shape, target) -> torch.Tensor:
    """Bool [C, H, W]: the sub-pixels strictly before ``target`` in raster order."""
    c, h, w = shape
    k, i, j = target
    rank = torch.arange(c * h * w).reshape(h, w, c).permute(2, 0, 1)
    return rank < rank[k, i, j]


# --------------------------------------------------------------------------- the tests
@pytest.mark.parametrize(("first", "blocks"), [(3, 2), (7, 3)])
def test_pixelcnn_map_is_its_stacked_masks_with_the_blind_spot(first, blocks):
    model = strong(
        PixelCNN((1, 12, 12), 2, hidden_channels=8, num_layers=blocks, first_kernel_size=first)
    )
    target = (0, 8, 4)
    expected = field(12, 12, target[1:], pixelcnn_field(first, 3, blocks))
    assert torch.equal(seen(model, target)[0], expected)
    # the blind spot: precedes the target in raster order, yet the map is exactly zero there
    blind = raster_before(model.shape, target)[0] & ~expected
    assert blind[target[1] - 1, target[2] + first // 2 + 1], "the pixel up-right is not seen"


def test_gated_pixelcnn_map_has_no_blind_spot():
    model = strong(GatedPixelCNN((1, 12, 12), 2, hidden_channels=8, num_layers=2, kernel_size=3))
    target = (0, 8, 5)
    expected = field(12, 12, target[1:], gated_field(3, 2))
    assert torch.equal(seen(model, target)[0], expected)
    deep = strong(GatedPixelCNN((1, 6, 6), 2, hidden_channels=8, num_layers=5, kernel_size=3))
    assert torch.equal(seen(deep, (0, 4, 2)), raster_before(deep.shape, (0, 4, 2)))


@pytest.mark.parametrize(("first", "layers"), [(3, 1), (7, 2)])
def test_row_lstm_map_is_a_triangle(first, layers):
    model = strong(
        RowLSTM((1, 9, 16), 2, hidden_channels=8, num_layers=layers, first_kernel_size=first)
    )
    target = (0, 7, 5)
    expected = field(9, 16, target[1:], row_lstm_field(first, 3, layers, 9))
    assert torch.equal(seen(model, target)[0], expected)
    assert not expected[target[1] - 1, target[2] + first // 2 + 1], "the triangle leaves a gap"


@pytest.mark.parametrize(
    ("cls", "shape", "options"),
    [
        (DiagonalBiLSTM, (1, 6, 7), {"hidden_channels": 8, "num_layers": 1}),
        (DiagonalBiLSTM, (3, 4, 4), {"hidden_channels": 12, "num_layers": 1}),
        (
            PixelSNAIL,
            (1, 6, 6),
            {
                "hidden_channels": 8,
                "num_blocks": 1,
                "num_res_blocks": 1,
                "key_channels": 4,
                "value_channels": 4,
            },
        ),
        (
            PixelSNAIL,
            (3, 4, 4),
            {
                "hidden_channels": 6,
                "num_blocks": 1,
                "num_res_blocks": 1,
                "key_channels": 4,
                "value_channels": 4,
            },
        ),
        (ImageTransformer, (1, 5, 5), {"dim": 16, "num_layers": 1, "num_heads": 2}),
        (ImageTransformer, (3, 3, 3), {"dim": 16, "num_layers": 1, "num_heads": 2}),
    ],
)
def test_full_context_models_depend_on_every_earlier_sub_pixel(cls, shape, options):
    levels = 4 if shape[0] == 3 else 2
    model = strong(cls(shape, levels, **options))
    _, h, w = shape
    for target in [(shape[0] - 1, h - 1, 1), (0, h // 2, w - 1), (shape[0] // 2, 1, 0)]:
        expected = raster_before(shape, target)
        assert torch.equal(seen(model, target), expected), f"target {target}"
        assert torch.equal(after_target(model, target), ~expected)


def test_made_map_is_its_mask_connectivity_and_respects_the_ordering():
    model = strong(MADE((1, 4, 4), 2, hidden_sizes=[12, 12], ordering="random", ordering_seed=3))
    with torch.no_grad():  # inputs >= 0 and positive hidden weights: every ReLU is active,
        for layer in model.hidden_layers:  # so no dead unit hides a path of the masks
            layer.weight.abs_()
            layer.bias.abs_()
    reach = made_connectivity(model).reach
    rank = ordering_rank(model).flatten()
    for target in [(0, 0, 0), (0, 2, 3), (0, 3, 1)]:
        d = target[1] * 4 + target[2]
        expected = reach[d].reshape(1, 4, 4)
        assert torch.equal(seen(model, target), expected)
        assert not (expected.flatten() & (rank >= rank[d])).any(), "only earlier inputs"
    last = int(model.ordering[-1])
    assert reach[last].sum() > 0, "the last output sees some inputs: the check is not vacuous"


@pytest.mark.parametrize("cls", [NADE, FVSBN])
def test_nade_and_fvsbn_maps_are_every_earlier_variable_of_their_ordering(cls):
    options = {"hidden_size": 6} if cls is NADE else {}
    model = strong(cls((1, 3, 4), 2, ordering="random", ordering_seed=5, **options))
    for target in default_targets(model.shape):
        expected = ~after_target(model, target)
        assert torch.equal(seen(model, target), expected), f"target {target}"
    assert not after_target(model, (0, 0, 0)).all(), "a random ordering: not the raster one"


def test_the_map_is_the_gradient_of_the_conditional_alone():
    """The map of a target never includes the target's own value (the observed level in the
    head is detached), and averaging over more images changes magnitudes, not the support."""
    model = strong(PixelCNN((1, 6, 6), 2, hidden_channels=8, num_layers=1, first_kernel_size=3))
    x = images(model, 5)
    (one,) = dependency_maps(model, x[:1], [(0, 3, 3)])
    (five,) = dependency_maps(model, x, [(0, 3, 3)])
    assert one[0, 3, 3] == 0 and five[0, 3, 3] == 0
    assert torch.equal(one > 0, five > 0)
    inputs = x.clone().requires_grad_(True)
    log_probs = dimension_log_probs(model.double(), x.double(), inputs.double())
    assert log_probs.shape == x.shape


@pytest.mark.parametrize("blocks", [1, 3])
def test_pixelcnn_receptive_field_grows_by_its_stacked_masks(blocks):
    model = strong(
        PixelCNN((1, 12, 12), 2, hidden_channels=16, num_layers=blocks, first_kernel_size=5)
    )
    pixel = (9, 6)
    entry = field_growth(model, images(model, 4), pixel)
    assert len(layer_names(model)) == blocks + 1
    for layer in range(blocks + 1):
        expected = field(12, 12, pixel, pixelcnn_field(5, 3, layer))
        assert torch.equal((entry >= 0) & (entry <= layer), expected), f"after layer {layer}"


def test_gated_pixelcnn_receptive_field_grows_without_a_blind_spot():
    model = strong(GatedPixelCNN((1, 12, 12), 2, hidden_channels=8, num_layers=3, kernel_size=3))
    pixel = (9, 6)
    entry = field_growth(model, images(model, 4), pixel)
    for layer in range(3):
        expected = field(12, 12, pixel, gated_field(3, layer + 1))
        assert torch.equal((entry >= 0) & (entry <= layer), expected), f"after layer {layer}"
