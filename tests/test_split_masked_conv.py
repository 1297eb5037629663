"""Masked convolutions that compute only their unmasked taps (``MaskedConv2d(impl=...)``).

Every implementation must give the dense masked kernel's outputs and gradients (to float64
rounding) for every mask type, colour grouping and kernel shape the models use; whole models
must give the same ``log_prob``; and checkpoints must load across implementations.
"""

from __future__ import annotations

import pytest
import torch

from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.masked_conv import IMPLS, MaskedConv2d, auto_impl, set_conv_impl
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelsnail import PixelSNAIL

FAST = [impl for impl in IMPLS if impl != "dense"]

# (in, out, kernel, mask type, colour groups, centre, out_chunks): every layer kind in the models
LAYERS = [
    (1, 8, 7, "A", 1, None, 1),  # PixelCNN's grey input layer
    (3, 12, 7, "A", 3, None, 1),  # ... on RGB
    (3, 12, 5, "A", 3, None, 1),  # PixelSNAIL's input layer
    (8, 8, 3, "B", 1, None, 1),  # residual kxk
    (12, 12, 3, "B", 3, None, 1),
    (12, 12, 5, "B", 3, None, 1),
    (12, 24, 1, "B", 3, None, 2),  # 1x1 into gated halves
    (8, 4, 1, "B", 1, None, 1),
    (3, 6, 1, "A", 3, None, 1),  # 1x1 mask A: only the colour mask lets anything through
    (1, 4, 1, "A", 1, None, 1),  # nothing unmasked at all: the bias alone
    (3, 12, (1, 3), "A", 3, (0, 2), 2),  # Gated PixelCNN's horizontal stack
    (12, 24, (1, 3), "B", 3, (0, 2), 2),
    (4, 8, (3, 5), "B", 1, (1, 2), 1),  # a rectangular kernel
]


def layer_copies(spec, impls=IMPLS) -> dict[str, MaskedConv2d]:
    torch.manual_seed(0)
    cin, cout, kernel, mask_type, groups, centre, chunks = spec
    convs = {
        i: MaskedConv2d(cin, cout, kernel, mask_type, groups, centre, chunks, impl=i) for i in impls
    }
    state = convs["dense"].state_dict()
    for conv in convs.values():
        conv.load_state_dict(state)
        conv.double()
    return convs


@pytest.mark.parametrize(
    "spec", LAYERS, ids=[f"{s[2]}{s[3]}-g{s[4]}-{s[0]}to{s[1]}" for s in LAYERS]
)
def test_every_impl_gives_the_dense_outputs_and_gradients(spec):
    convs = layer_copies(spec)
    x = torch.randn(3, spec[0], 6, 5, dtype=torch.double)
    grads = {}
    for impl, conv in convs.items():
        out = conv(x)
        assert out.shape == (3, spec[1], 6, 5)
        torch.manual_seed(1)
        weights = torch.randn(out.shape, dtype=out.dtype)  # not randn_like: layouts differ
        (out * weights).sum().backward()
        grads[impl] = (out.detach(), conv.weight.grad.clone(), conv.bias.grad.clone())
    reference = grads["dense"]
    for impl in FAST:
        for got, want in zip(grads[impl], reference, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        masked = convs[impl].mask == 0
        assert torch.all(grads[impl][1][masked] == 0), f"{impl} put gradient on a masked tap"


@pytest.mark.parametrize("spec", LAYERS[:6], ids=lambda s: f"{s[2]}{s[3]}-g{s[4]}")
def test_masked_weights_never_reach_the_output(spec):
    """Weights on masked taps are ignored whatever they hold (e.g. from an old checkpoint)."""
    convs = layer_copies(spec)
    x = torch.randn(2, spec[0], 5, 6, dtype=torch.double)
    for conv in convs.values():
        before = conv(x)
        with torch.no_grad():
            conv.weight.add_(torch.randn_like(conv.weight) * (1 - conv.mask) * 100)
        torch.testing.assert_close(conv(x), before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kernel", "mask_type", "groups", "taps"),
    [(7, "B", 1, 3 * 7 + 4), (7, "A", 1, 3 * 7 + 3), (7, "A", 3, 3 * 7 + 4), (3, "B", 1, 5)],
)
def test_split_convolves_only_the_unmasked_taps(monkeypatch, kernel, mask_type, groups, taps):
    """The split form's kernels cover (k//2) x k + k//2 taps, plus the centre where its colour
    mask lets anything through: about half of the dense k x k."""
    import argen.models.masked_conv as masked_conv

    used = []
    conv2d = masked_conv.F.conv2d

    def counting(x, weight, *args, **kwargs):
        used.append(weight.shape[2] * weight.shape[3])
        return conv2d(x, weight, *args, **kwargs)

    monkeypatch.setattr(masked_conv.F, "conv2d", counting)
    conv = MaskedConv2d(3, 6, kernel, mask_type, groups, impl="split")
    conv(torch.randn(1, 3, 8, 8))
    assert sum(used) == taps
    assert taps <= (kernel * kernel) // 2 + kernel // 2 + 1


def tiny_models(channels: int, levels: int):
    shape = (channels, 4, 5)
    yield (
        "pixelcnn",
        lambda impl: PixelCNN(shape, levels, hidden_channels=12, num_layers=2, conv_impl=impl),
    )
    yield (
        "gated",
        lambda impl: GatedPixelCNN(shape, levels, hidden_channels=6, num_layers=2, conv_impl=impl),
    )
    yield (
        "pixelsnail",
        lambda impl: PixelSNAIL(
            shape,
            levels,
            hidden_channels=6,
            num_blocks=1,
            num_res_blocks=1,
            key_channels=4,
            value_channels=4,
            conv_impl=impl,
        ),
    )


@pytest.mark.parametrize(("channels", "levels"), [(1, 2), (3, 3)], ids=["grey", "rgb"])
def test_models_give_the_dense_log_prob_with_every_impl(channels, levels):
    for name, build in tiny_models(channels, levels):
        torch.manual_seed(0)
        dense = build("dense").double()
        x = torch.randint(levels, (4, channels, 4, 5)).double()
        reference = dense.log_prob(x)
        for impl in FAST:
            model = build(impl).double()
            model.load_state_dict(dense.state_dict())  # same keys and shapes: k x k weights
            torch.testing.assert_close(
                model.log_prob(x),
                reference,
                rtol=1e-12,
                atol=1e-9,
                msg=lambda m, name=name: f"{name}: {m}",
            )
            set_conv_impl(model, "dense")
            torch.testing.assert_close(
                model.log_prob(x),
                reference,
                rtol=0,
                atol=0,
                msg=lambda m, name=name: f"{name}: {m}",
            )


def test_checkpoints_keep_full_kernels_and_load_across_impls():
    dense = PixelCNN((1, 4, 4), hidden_channels=8, num_layers=1, conv_impl="dense")
    split = PixelCNN((1, 4, 4), hidden_channels=8, num_layers=1, conv_impl="split")
    assert dense.state_dict().keys() == split.state_dict().keys()
    assert split.input_conv.weight.shape == (8, 1, 7, 7)
    split.load_state_dict(dense.state_dict())
    x = torch.randint(2, (3, 1, 4, 4)).float()
    torch.testing.assert_close(split.log_prob(x), dense.log_prob(x), rtol=1e-5, atol=1e-4)


def test_bad_impl_names_are_refused():
    with pytest.raises(ValueError, match="impl must be one of"):
        MaskedConv2d(1, 2, 3, "A", impl="sparse")
    with pytest.raises(ValueError, match="impl must be one of"):
        PixelCNN((1, 4, 4), hidden_channels=8, num_layers=1, conv_impl="fast")


def test_auto_resolves_to_a_concrete_impl_per_device():
    for kernel, centre in (((7, 7), (3, 3)), ((3, 3), (1, 1)), ((1, 1), (0, 0)), ((1, 3), (0, 2))):
        for device in ("cpu", "cuda"):
            assert auto_impl(kernel, centre, device) in ("dense", "rows", "split")
    conv = MaskedConv2d(2, 4, 3, "B")
    assert conv.impl == "auto" and conv.resolved_impl("cpu") == "rows"


@pytest.mark.slow
def test_the_speed_benchmark_runs_and_finds_the_same_nll():
    """``benchmarks/net_speed.py --quick`` runs; before/after and argen/minimal NLLs agree."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    args = ["--quick", "--threads", "1", "--repeats", "1", "--steps", "1"]
    result = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "net_speed.py"), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    training, minimal = result.stdout.split("\n\n")[:2]  # the two tables with an NLL gap
    gaps = [
        float(line.split("|")[-2])
        for line in (training + "\n" + minimal).splitlines()
        if line.startswith("| ") and "nats" not in line and "---" not in line
    ]
    assert len(gaps) >= 8, result.stdout  # 6 before/after rows and 2 minimal-network rows
    assert max(gaps) < 1e-3
    assert "16 of 16" in result.stdout  # the cached MADE sampler drew the naive one's samples
