"""PixelSNAIL: exact autoregressive property over sub-pixels (convolutions and attention),
normalization, sampled frequencies, cached = naive sampling and completion, class labels."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from argen.models.pixelsnail import PixelSNAIL
from argen.models.sampling_progress import on_row
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized, raster_order
from tests.conftest import needs_data, train_in_process
from tests.helpers import record_draws

# (shape, num_levels, head): grey binary with every head, RGB binary, RGB with 3 levels.
CONFIGS = [
    ((1, 3, 3), 2, "auto"),
    ((1, 3, 3), 2, "categorical"),
    ((1, 2, 3), 2, "logistic_mixture"),
    ((3, 2, 2), 2, "auto"),
    ((3, 1, 2), 3, "categorical"),
    ((3, 1, 2), 3, "logistic_mixture"),
]


def tiny(shape, levels, head="auto", std=0.5, **kwargs) -> PixelSNAIL:
    """A tiny double-precision PixelSNAIL with large random weights (peaked, strongly coupled)."""
    torch.manual_seed(0)
    options = {
        "hidden_channels": 2 * shape[0] if shape[0] > 1 else 4,
        "num_blocks": 2,
        "num_res_blocks": 1,
        "kernel_size": 3,
        "first_kernel_size": 3,
        "key_channels": 3,
        "value_channels": 3,
        "num_heads": 2,
        "num_mixtures": 2,
        **kwargs,
    }
    model = PixelSNAIL(shape, levels, head=head, **options).double()
    for param in model.parameters():
        torch.nn.init.normal_(param, std=std)
    return model


def flat_params(model: PixelSNAIL, y: torch.Tensor | None = None):
    """[B, D] C-major flattened levels -> [B, D, P] parameters, for assert_autoregressive."""

    def conditional_params(x: torch.Tensor) -> torch.Tensor:
        labels = None if y is None else y[: x.shape[0]]
        return model(x.view(-1, *model.shape), labels).reshape(x.shape[0], model.num_dims, -1)

    return conditional_params


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("shape", "levels", "head"), CONFIGS)
def test_autoregressive_property(shape, levels, head):
    model = tiny(shape, levels, head)
    x = torch.randint(levels, (3, math.prod(shape))).double()
    assert_autoregressive(flat_params(model), x, raster_order(*shape))


def test_autoregressive_property_with_labels_several_heads_and_uneven_groups():
    shape = (3, 2, 2)
    model = tiny(shape, 4, num_classes=3, num_heads=3, first_kernel_size=5, hidden_channels=7)
    x = torch.randint(4, (3, math.prod(shape))).double()
    assert_autoregressive(flat_params(model, torch.tensor([0, 2, 1])), x, raster_order(*shape))


def test_check_catches_attention_to_the_current_pixel():
    """Keys hold the raw image: letting a pixel attend to itself leaks all of its colours."""
    model = tiny((1, 2, 2), 2)
    for block in model.blocks:
        n = block.attention.has_past.numel()
        block.attention.mask |= torch.eye(n, dtype=torch.bool)  # one colour: [N, N]
    with pytest.raises(AssertionError, match="depends on variables"):
        assert_autoregressive(flat_params(model), torch.ones(2, 4), raster_order(1, 2, 2))


def test_check_catches_a_query_that_mixes_colour_groups():
    """An unmasked query lets the red output see the pixel's green and blue through attention."""
    shape = (3, 2, 2)
    model = tiny(shape, 2)
    for block in model.blocks:
        block.attention.query.mask.fill_(1.0)
    x = torch.randint(2, (2, math.prod(shape))).double()
    with pytest.raises(AssertionError, match="depends on variables"):
        assert_autoregressive(flat_params(model), x, raster_order(*shape))


def test_every_pixel_sees_every_earlier_pixel_through_attention():
    """Masked 3x3 convolutions alone have a blind spot; attention closes it (one block)."""
    shape = (1, 4, 4)
    model = tiny(shape, 2, num_blocks=1, num_res_blocks=1)
    x = torch.randint(2, (4, *shape)).double().requires_grad_(True)
    params = model(x)
    earlier = torch.arange(16).view(4, 4)
    for target in range(16):
        i, j = divmod(target, 4)
        (grad,) = torch.autograd.grad(params[:, :, i, j].sum(), x, retain_graph=True)
        influence = grad.abs().sum(dim=(0, 1))
        assert torch.all(influence[earlier < target] > 0), f"pixel {(i, j)} misses one"
        assert torch.all(influence[earlier >= target] == 0)


def test_first_pixel_has_no_attention_and_no_nan():
    model = tiny((3, 2, 2), 4).float()
    x = torch.randint(4, (3, 3, 2, 2)).float()
    loss = -model.log_prob(x).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    image = model.normalize(x)
    h = model.input_conv(image)
    attention = model.blocks[0].attention
    out = attention(h, image) - attention.out.bias[None, :, None, None]
    assert torch.count_nonzero(out[:, :, 0, 0]) == 0  # nothing before the first pixel
    assert torch.count_nonzero(out[:, :, 0, 1]) > 0


@pytest.mark.parametrize(
    ("shape", "levels", "head"),
    [
        ((1, 2, 2), 2, "auto"),
        ((1, 2, 2), 2, "logistic_mixture"),
        ((3, 1, 2), 2, "auto"),
        ((3, 1, 2), 3, "categorical"),
        ((3, 1, 2), 3, "logistic_mixture"),
    ],
)
def test_normalized(shape, levels, head):
    model = tiny(shape, levels, head)
    every = all_discrete(math.prod(shape), levels).double().view(-1, *shape)
    assert_normalized(model.log_prob, every, atol=1e-9)


def test_normalized_for_every_label():
    shape = (1, 2, 2)
    model = tiny(shape, 2, num_classes=2)
    every = all_discrete(4, 2).double().view(-1, *shape)
    for label in (0, 1):
        labels = torch.full((every.shape[0],), label)
        assert_normalized(lambda x, labels=labels: model.log_prob(x, labels), every, atol=1e-9)
    zeros, ones = torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long)
    assert not torch.allclose(model.log_prob(every, zeros), model.log_prob(every, ones))


@pytest.mark.parametrize(("shape", "levels", "label"), [((1, 2, 2), 2, None), ((3, 1, 2), 2, 1)])
def test_sample_frequencies_match_log_prob(shape, levels, label):
    """The (cached) sampler draws from exactly the distribution that log_prob scores."""
    model = tiny(shape, levels, num_classes=None if label is None else 2)
    every = all_discrete(math.prod(shape), levels)
    labels = None if label is None else torch.full((every.shape[0],), label)
    exact = model.log_prob(every.double().view(-1, *shape), labels).exp().detach()
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.2, "the test distribution should be peaked"
    num = 20000
    draws = model.sample(num, y=label, generator=seeded(3)).view(num, -1).long()
    codes = (draws * levels ** torch.arange(draws.shape[1] - 1, -1, -1)).sum(1)
    empirical = torch.bincount(codes, minlength=every.shape[0]).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.05


@pytest.mark.parametrize(
    ("shape", "levels", "head", "label"),
    [
        ((1, 4, 3), 2, "auto", None),
        ((3, 3, 2), 4, "categorical", None),
        ((3, 2, 3), 4, "logistic_mixture", None),
        ((1, 3, 3), 2, "auto", 1),
    ],
)
def test_cached_sampling_equals_naive(shape, levels, head, label):
    model = tiny(shape, levels, head, num_classes=None if label is None else 2)
    for temperature in (1.0, 0.7):
        cached = model.sample_cached(5, temperature=temperature, y=label, generator=seeded(1))
        naive = model.sample_naive(5, temperature=temperature, y=label, generator=seeded(1))
        assert torch.equal(cached, naive)
        assert cached.shape == (5, *shape) and cached.dtype == torch.float64
    assert not torch.equal(cached, model.sample_cached(5, y=label, generator=seeded(2)))


def test_cached_params_match_a_full_forward_pass(monkeypatch):
    """Every draw of the cached sampler uses the parameters a full pass gives on its result."""
    shape = (3, 2, 3)
    model = tiny(shape, 4, "categorical")
    seen = record_draws(monkeypatch)
    samples = model.sample_cached(4, generator=seeded(0))
    full = model(samples)  # [B, C, H, W, P]
    expected = [full[:, k, i, j] for i in range(2) for j in range(3) for k in range(3)]
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_completion_keeps_the_prefix_and_matches_naive():
    shape = (3, 3, 3)
    model = tiny(shape, 4, "categorical", num_classes=2)
    x = torch.randint(4, (4, *shape)).double()
    mask = torch.zeros(4, *shape, dtype=torch.bool)
    mask[:, :, 0] = True  # first row
    mask[:, :, 1, 0] = True  # and the first pixel of the second row
    mask[:, 0, 1, 1] = True  # and red of the next: the prefix ends inside a pixel
    mask[1, 1, 1, 1] = True  # example 1 observes one sub-pixel more
    y = torch.tensor([0, 1, 1, 0])
    cached = model.complete(x, mask, generator=seeded(5), y=y, temperature=0.8)
    naive = model.complete(x, mask, generator=seeded(5), y=y, temperature=0.8, sampler="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[mask], x[mask])
    assert not torch.equal(cached[~mask], x[~mask])  # the rest was sampled (4 levels, 60 values)
    with pytest.raises(ValueError, match="prefix"):
        bad = torch.zeros(shape[1:], dtype=torch.bool)
        bad[1, 1] = True
        model.complete(x, bad, y=y)


def test_sampling_reports_every_row():
    model = tiny((1, 3, 2), 2)
    rows: list[tuple[int, int]] = []
    with on_row(lambda done, total: rows.append((done, total))):
        model.sample(2)
        model.sample_naive(2)
    assert rows == [(1, 3), (2, 3), (3, 3)] * 2


def test_labels_are_validated():
    conditional = tiny((1, 2, 2), 2, num_classes=2)
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    for bad in (None, torch.tensor([0, 2]), torch.tensor([0]), torch.tensor([0.0, 1.0])):
        with pytest.raises(ValueError):
            conditional.log_prob(x, bad)
    with pytest.raises(ValueError, match="unconditional"):
        tiny((1, 2, 2), 2).log_prob(x, torch.tensor([0, 1]))
    samples = conditional.sample(3, y=None)  # labels drawn at random
    assert samples.shape == (3, 1, 2, 2)


def test_log_prob_rejects_bad_input_and_bad_settings():
    model = tiny((3, 2, 2), 4)
    good = torch.full((2, 3, 2, 2), 3.0, dtype=torch.float64)
    assert model.log_prob(good).shape == (2,)
    for bad in (good.long(), good[:, :2], good + 1.0, good - 0.5):
        with pytest.raises(ValueError):
            model.log_prob(bad)
    for kwargs in (
        {"hidden_channels": 2},  # fewer than one per colour
        {"kernel_size": 2},
        {"num_blocks": 0},
        {"sampler": "fast"},
    ):
        with pytest.raises(ValueError):
            PixelSNAIL((3, 2, 2), 4, **{"hidden_channels": 6, **kwargs})


# ----------------------------------------------------------------------------- train.py path
TRAIN_BRIEFLY = [
    "trainer.accelerator=cpu",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "summary.num_samples=1",
    "trainer.precision=bf16-mixed",
    "compile=true",
]


def train_then_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str
) -> tuple[dict, dict, dict]:
    """One epoch through train.py's code path (in process) with bf16-mixed and compile=true, then
    a second epoch resumed from its last.ckpt; returns both summaries and the resumed run's last
    checkpoint.

    ``compile=true`` compiles the network with ``net.compile()`` as every run does, but with the
    ``aot_eager`` backend: TorchDynamo traces the model and AOTAutograd its backward exactly as
    for Inductor, without Inductor's minutes of C++ code generation on a CPU.
    """
    compiled: list[str] = []
    original = torch.nn.Module.compile

    def compile_without_codegen(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        kwargs.setdefault("backend", "aot_eager")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", compile_without_codegen)
    first = train_in_process(tmp_path / "first", *overrides, *TRAIN_BRIEFLY, "trainer.max_epochs=1")
    last = tmp_path / "first" / "run" / "checkpoints" / "last.ckpt"
    second = train_in_process(
        tmp_path / "resumed",
        *overrides,
        *TRAIN_BRIEFLY,
        "trainer.max_epochs=2",
        f"ckpt_path={last}",
    )
    assert len(compiled) == 2, "compile=true must compile the network in both runs"
    resumed = tmp_path / "resumed" / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(resumed, map_location="cpu", weights_only=True)
    steps = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert steps > 0 and checkpoint["global_step"] == 2 * steps  # the second epoch continued
    for summary in (first, second):
        assert math.isfinite(summary["test_nll"]) and summary["test_nll"] > 0
    return first, second, checkpoint


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_trains_with_bf16_compile_and_resumes_through_train_py(tmp_path, monkeypatch):
    first, second, _ = train_then_resume(
        tmp_path,
        monkeypatch,
        "model=pixelsnail",
        "data=binarized_mnist",
        "data.datamodule.max_examples=40",
        "model.module.net.hidden_channels=8",
        "model.module.net.num_blocks=1",
        "model.module.net.num_res_blocks=1",
        "model.module.net.value_channels=8",
        "callbacks.image_logger.num_images=2",
        "callbacks.image_logger.every_n_epochs=2",  # images in the resumed epoch only
    )
    assert first["model"] == second["model"] == "pixelsnail"
    assert second["test_nll"] != first["test_nll"]
    images = tmp_path / "resumed" / "run" / "images"
    assert list(images.glob("samples_*.png")) and list(images.glob("completions_*.png"))
