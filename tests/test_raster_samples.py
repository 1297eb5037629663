"""Raster samples pinned bit for bit: every raster image model, on tiny fixed-seed instances, must
draw exactly what the recorded fixture holds (cached and naive sampling, temperature, labels,
completion from a prefix).

The fixture ``tests/fixtures/raster_samples.pt`` was written by ``python -m
tests.test_raster_samples`` before the samplers were merged into one loop, so this test proves that
the merge kept every draw: same parameters, same random numbers, same order. Rewrite it only for a
change that is meant to change samples, and say so in the commit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.image_transformer import ImageTransformer
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelrnn import DiagonalBiLSTM, RowLSTM
from argen.models.pixelsnail import PixelSNAIL

FIXTURE = Path(__file__).parent / "fixtures" / "raster_samples.pt"
BATCH = 3


def _randomized(model: torch.nn.Module, seed: int, std: float) -> torch.nn.Module:
    """Seeded large weights and non-zero biases: peaked, strongly coupled conditionals."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model.eval()


def _build(name: str, sampler: str = "cached") -> torch.nn.Module:
    """The tiny float32 instance ``name`` (``sampler`` for the models that take one)."""
    torch.manual_seed(0)
    extra = {} if name.startswith(("row_lstm", "diagonal_bilstm")) else {"sampler": sampler}
    builders: dict[str, Callable[[], torch.nn.Module]] = {
        "pixelcnn_grey": lambda: PixelCNN((1, 4, 4), 2, hidden_channels=8, num_layers=2, **extra),
        "pixelcnn_rgb": lambda: PixelCNN(
            (3, 3, 3),
            4,
            hidden_channels=12,
            num_layers=2,
            head="logistic_mixture",
            num_mixtures=2,
            **extra,
        ),  # fmt: skip
        "gated_grey": lambda: GatedPixelCNN(
            (1, 4, 4), 2, hidden_channels=8, num_layers=3, kernel_size=3, **extra
        ),
        "gated_rgb_labels": lambda: GatedPixelCNN(
            (3, 3, 3), 4, hidden_channels=6, num_layers=2, kernel_size=5, num_classes=3, **extra
        ),
        "row_lstm_grey": lambda: RowLSTM((1, 4, 4), 2, hidden_channels=8, num_layers=2),
        "row_lstm_rgb": lambda: RowLSTM((3, 3, 3), 4, hidden_channels=12, num_layers=2),
        "diagonal_bilstm_grey": lambda: DiagonalBiLSTM(
            (1, 4, 4), 2, hidden_channels=8, num_layers=2
        ),
        "diagonal_bilstm_rgb": lambda: DiagonalBiLSTM(
            (3, 3, 3), 4, hidden_channels=12, num_layers=2, head="logistic_mixture", num_mixtures=2
        ),
        "pixelsnail_grey": lambda: PixelSNAIL(
            (1, 4, 4),
            2,
            hidden_channels=4,
            num_blocks=2,
            num_res_blocks=1,
            first_kernel_size=3,
            key_channels=3,
            value_channels=3,
            num_heads=2,
            **extra,
        ),  # fmt: skip
        "pixelsnail_rgb_labels": lambda: PixelSNAIL(
            (3, 3, 3),
            4,
            hidden_channels=6,
            num_blocks=1,
            num_res_blocks=1,
            first_kernel_size=3,
            key_channels=3,
            value_channels=3,
            num_classes=2,
            **extra,
        ),  # fmt: skip
        "transformer_grey": lambda: ImageTransformer(
            (1, 4, 4), 2, dim=8, num_layers=2, num_heads=2, mlp_ratio=2, **extra
        ),
        "transformer_rgb": lambda: ImageTransformer(
            (3, 3, 3),
            4,
            dim=8,
            num_layers=2,
            num_heads=2,
            mlp_ratio=2,
            positions="sinusoidal",
            head="logistic_mixture",
            num_mixtures=2,
            **extra,
        ),  # fmt: skip
    }
    return _randomized(builders[name](), seed=sum(map(ord, name)), std=0.3)


MODELS = [
    "pixelcnn_grey",
    "pixelcnn_rgb",
    "gated_grey",
    "gated_rgb_labels",
    "row_lstm_grey",
    "row_lstm_rgb",
    "diagonal_bilstm_grey",
    "diagonal_bilstm_rgb",
    "pixelsnail_grey",
    "pixelsnail_rgb_labels",
    "transformer_grey",
    "transformer_rgb",
]
PIXEL_RNNS = {m for m in MODELS if m.startswith(("row_lstm", "diagonal_bilstm"))}


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _prefix_mask(shape: tuple[int, ...], lengths: list[int]) -> torch.Tensor:
    """[B, C, H, W] mask of the first ``lengths[b]`` sub-pixels in raster order (C fastest)."""
    c, h, w = shape
    raster = torch.arange(c * h * w)[None, :] < torch.tensor(lengths)[:, None]
    return raster.view(len(lengths), h, w, c).permute(0, 3, 1, 2)


def _images(model: torch.nn.Module) -> torch.Tensor:
    return torch.randint(model.num_levels, (BATCH, *model.shape), generator=_seeded(7)).float()


def _draw(name: str, case: str) -> torch.Tensor:
    """One recorded case of model ``name``: the samples it draws, as uint8 levels."""
    sampler = "naive" if case.endswith("naive") else "cached"
    model = _build(name, sampler)
    labels = {"y": torch.tensor([2, 0, 1]) % model.num_classes} if "labels" in name else {}
    if name in PIXEL_RNNS:  # the PixelRNNs drew from the global generator
        torch.manual_seed(5)
        if case.startswith("sample"):
            draw = model.sample if sampler == "cached" else model.sample_naive
            temperature = 0.7 if "cold" in case else 1.0
            return draw(BATCH, temperature=temperature).to(torch.uint8)
        raise KeyError(case)
    if case.startswith("sample_cold"):
        out = model.sample(BATCH, temperature=0.7, generator=_seeded(3), **labels)
    elif case.startswith("sample_random_labels"):
        out = model.sample(BATCH, generator=_seeded(4))
    elif case.startswith("sample"):
        out = model.sample(BATCH, generator=_seeded(1), **labels)
    elif case.startswith("complete_half"):
        x, mask = _images(model), torch.zeros(model.shape[1:], dtype=torch.bool)
        mask[: model.shape[1] // 2] = True
        out = model.complete(x, mask, generator=_seeded(9), **labels)
    elif case.startswith("complete_prefixes"):
        x, c, h, w = _images(model), *model.shape
        mask = _prefix_mask(model.shape, [0, c * w + 1, c * h * w // 2 + c])
        out = model.complete(x, mask, generator=_seeded(2), temperature=0.8, **labels)
    else:
        raise KeyError(case)
    return out.to(torch.uint8)


def _cases(name: str) -> list[str]:
    base = ["sample", "sample_cold"]
    if name in PIXEL_RNNS:
        return [f"{case}_{s}" for case in base for s in ("cached", "naive")]
    cases = [*base, "complete_half", "complete_prefixes"]
    if "labels" in name:
        cases.append("sample_random_labels")
    return [f"{case}_{s}" for case in cases for s in ("cached", "naive")]


CASES = [(name, case) for name in MODELS for case in _cases(name)]


def _load() -> dict[str, torch.Tensor]:
    """The fixture: all cases' levels in one flat uint8 tensor (a few KB), cut by name."""
    stored = torch.load(FIXTURE, weights_only=True)
    pieces = stored["levels"].split([torch.Size(s).numel() for s in stored["shapes"]])
    return {
        key: piece.view(shape)
        for key, shape, piece in zip(stored["keys"], stored["shapes"], pieces, strict=True)
    }


@pytest.fixture(scope="module")
def recorded() -> dict[str, torch.Tensor]:
    return _load()


def test_fixture_covers_every_case(recorded):
    assert set(recorded) == {f"{name}/{case}" for name, case in CASES}


@pytest.mark.parametrize(("name", "case"), CASES)
def test_samples_are_bit_identical_to_the_recording(recorded, name, case):
    expected = recorded[f"{name}/{case}"]
    assert torch.equal(_draw(name, case), expected)


def record() -> None:
    """Write the fixture from the current samplers."""
    torch.set_num_threads(1)
    FIXTURE.parent.mkdir(exist_ok=True)
    samples = {f"{name}/{case}": _draw(name, case) for name, case in CASES}
    stored = {
        "keys": list(samples),
        "shapes": [list(v.shape) for v in samples.values()],
        "levels": torch.cat([v.flatten() for v in samples.values()]),
    }
    torch.save(stored, FIXTURE)
    print(f"wrote {len(samples)} cases to {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python -m tests.test_raster_samples --record  (rewrites the fixture)")
    record()
