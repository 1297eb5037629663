"""Network speed before and after issue 24, in one process: training steps, MADE sampling, and
argen's networks against minimal masked networks of the same shape.

Every row times two implementations of the same network, with the same weights and batch, in the
same plain loop (zero_grad, loss, backward, Adam step), interleaved (one timed block of each in
turn, ``--repeats`` times) and reports medians:

* before: what the networks ran until this change, kept reachable for this comparison: dense
  masked convolutions (``conv_impl="dense"``: the k x k kernel times its mask, on a padded copy),
  the heads' generic ``log_prob`` (``PixelHead.log_prob``), MADE's dense ``F.linear(x, weight *
  mask, bias)`` (``linear_impl="dense"``, ``MaskedLinear.fused = False``), and the full input
  values check in every step (``log_prob``);
* after: the default path: ``conv_impl="auto"`` (only the unmasked taps' rows, channels-last on a
  CPU, no padded copy or mask product where none is needed), the heads' fused ``log_prob``, MADE's
  packed layers (a single mask: only the blocks it keeps are stored, multiplied and updated by
  the optimizer; ``argen.models.packed_linear``), and ``training_loss``, which
  checks only the inputs' form (``DensityModule`` checks their values once per batch, or once per
  group of ``steps_per_call`` batches; the ``+ check`` rows add that check to every step);
* minimal: a network of the same shape written the usual way (masks multiplied into the weights
  in ``forward``, ``F.conv2d`` with padding, the loss from ``binary_cross_entropy_with_logits``),
  against argen's (ratio = argen's time / minimal's; <= 1.00 means argen is at least as fast);
* MADE sampling: ``sampler="cached"`` (each hidden unit computed once) against ``"naive"`` (a full
  pass per variable); the naive 2 x 8000 time is extrapolated from ``--naive-draws`` passes.

Each row also checks that both sides compute the same NLL (the largest difference per example).
Runs on 1 and 2 threads (``--threads``); ``--quick`` shrinks every size to check the script runs.
Do not take numbers while other jobs use the machine.

    python benchmarks/net_speed.py [--quick] [--threads 1 2] [--repeats 5] [--steps 3] [--only MADE]

The full run takes roughly half an hour on two CPU cores (the naive 1 x 8000 MADE sampler and
the paper-sized PixelCNN dominate); ``--skip-sampling`` leaves the sampling table out.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import DensityModel
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.made import MADE, MaskedLinear
from argen.models.masked_conv import causal_mask
from argen.models.pixel_heads import PixelHead
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelsnail import PixelSNAIL
from argen.training.cpu_memory import keep_freed_memory

Loss = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- the two paths
def loss_before(net: DensityModel) -> Loss:
    """The replaced step: values check, dense network, generic head log_prob."""
    if isinstance(net, MADE):
        return lambda x: -net.log_prob(x)  # validate_levels + forward, as training_loss was

    def loss(x: torch.Tensor) -> torch.Tensor:
        net.validate_levels(x)
        return -PixelHead.log_prob(net.head, x, net(x))

    return loss


def loss_after(net: DensityModel, check: bool = False) -> Loss:
    """The default step: what ``DensityModule`` calls (``training_loss`` if any, else log_prob)."""
    step = getattr(net, "training_loss", None)
    if step is None:
        return lambda x: -net.log_prob(x)
    if not check:
        return step

    def checked(x: torch.Tensor) -> torch.Tensor:
        net.validate_levels(x)
        return step(x)

    return checked


# --------------------------------------------------------------------------- minimal networks
class PlainMaskedLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MinimalMADE(nn.Module):
    """A one-mask MADE written the usual way, with argen's masks and weights."""

    def __init__(self, made: MADE) -> None:
        super().__init__()
        layers = [*made.hidden_layers, made.output_layer]
        self.layers = nn.ModuleList(
            PlainMaskedLinear(lay.in_features, lay.out_features, lay.mask) for lay in layers
        )
        with torch.no_grad():
            for mine, theirs in zip(self.layers, layers, strict=True):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.view(x.shape[0], -1)
        h = flat
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        logits = self.layers[-1](h)
        return F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(1)


class PlainMaskedConv(nn.Conv2d):
    def __init__(self, cin: int, cout: int, k: int, mask_type: str) -> None:
        super().__init__(cin, cout, k, padding=k // 2)
        self.register_buffer("mask", causal_mask(cin, cout, k, mask_type), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class MinimalPixelCNN(nn.Module):
    """A grey binary PixelCNN of argen's shape (7x7 mask A, residual blocks, two 1x1 layers)."""

    def __init__(self, net: PixelCNN) -> None:
        super().__init__()
        hidden = net.input_conv.out_channels
        self.input_conv = PlainMaskedConv(1, hidden, net.input_conv.kernel_size[0], "A")
        self.blocks = nn.ModuleList()
        for block in net.blocks:
            k = block.net[3].kernel_size[0]
            self.blocks.append(
                nn.Sequential(
                    nn.ReLU(),
                    PlainMaskedConv(hidden, hidden // 2, 1, "B"),
                    nn.ReLU(),
                    PlainMaskedConv(hidden // 2, hidden // 2, k, "B"),
                    nn.ReLU(),
                    PlainMaskedConv(hidden // 2, hidden, 1, "B"),
                )
            )
        out = net.output[1].out_channels
        self.output = nn.Sequential(
            nn.ReLU(),
            PlainMaskedConv(hidden, out, 1, "B"),
            nn.ReLU(),
            PlainMaskedConv(out, 1, 1, "B"),
        )
        self.load_state_dict(net.state_dict(), strict=False)  # same module names where shared
        for mine, theirs in zip(self.blocks, net.blocks, strict=True):
            mine.load_state_dict(theirs.net.state_dict())

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_conv(x * 2.0 - 1.0)
        for block in self.blocks:
            h = h + block(h)
        logits = self.output(h)
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


# --------------------------------------------------------------------------- timing
@dataclass
class Side:
    name: str
    net: nn.Module
    loss: Loss


def train_step_timer(side: Side, x: torch.Tensor) -> Callable[[int], float]:
    optimizer = torch.optim.Adam(side.net.parameters(), lr=1e-4)

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            side.loss(x).mean().backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps

    return run


def interleaved(timers: list[Callable[[int], float]], steps: int, repeats: int) -> list[float]:
    """Median seconds per step of each timer, timed in turn ``repeats`` times after a warm-up."""
    for timer in timers:
        timer(1)
    times: list[list[float]] = [[] for _ in timers]
    for _ in range(repeats):
        for timer, record in zip(timers, times, strict=True):
            record.append(timer(steps))
    return [statistics.median(record) for record in times]


def nll_gap(a: Loss, b: Loss, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def twin(build: Callable[[str], DensityModel], seed: int = 0) -> tuple[DensityModel, DensityModel]:
    """The network twice, with the same weights: dense convolutions, and the default."""
    torch.manual_seed(seed)
    before = build("dense")
    after = build("auto")
    after.load_state_dict(before.state_dict())
    return before, after


# --------------------------------------------------------------------------- the rows
def sizes(quick: bool) -> dict:
    if quick:
        return {
            "pixelcnn": [
                ("default", dict(shape=(1, 8, 8), hidden_channels=16, num_layers=2), 4),
                (
                    "paper",
                    dict(shape=(3, 8, 8), num_levels=256, hidden_channels=24, num_layers=2),
                    4,
                ),
            ],
            "gated": dict(shape=(1, 8, 8), hidden_channels=8, num_layers=2),
            "snail": dict(shape=(1, 8, 8), hidden_channels=8, num_blocks=1, num_res_blocks=1),
            "pixel_batch": 4,
            "made": [
                dict(shape=(1, 8, 8), hidden_sizes=[50]),
                dict(shape=(1, 8, 8), hidden_sizes=[200]),
            ],
            "made_batch": 20,
            "sampling": [("1 x 50", [50]), ("1 x 200", [200]), ("2 x 200", [200, 200])],
            "sample_shape": (1, 8, 8),
        }
    return {
        "pixelcnn": [
            ("default: 1x28x28 binary, 2h=128", dict(shape=(1, 28, 28)), 16),
            (
                "paper: 3x32x32, 256 levels, 2h=256",
                dict(shape=(3, 32, 32), num_levels=256, hidden_channels=256),
                16,
            ),
        ],
        "gated": dict(shape=(1, 28, 28)),
        "snail": dict(shape=(1, 28, 28)),
        "pixel_batch": 16,
        "made": [  # the paper's size, and the 8000 units of its best single-mask figure
            dict(shape=(1, 28, 28), hidden_sizes=[500]),
            dict(shape=(1, 28, 28), hidden_sizes=[8000]),
        ],
        "made_batch": 100,
        "sampling": [("1 x 500", [500]), ("1 x 8000", [8000]), ("2 x 8000", [8000, 8000])],
        "sample_shape": (1, 28, 28),
    }


def binary_batch(shape, n: int, levels: int = 2) -> torch.Tensor:
    return torch.randint(levels, (n, *shape), generator=torch.Generator().manual_seed(1)).float()


def made_label(made: dict, batch: int) -> str:
    return f"MADE 1 x {made['hidden_sizes'][0]}, batch {batch}"


def training_rows(cfg: dict, steps: int, repeats: int, only: Callable[[str], bool]) -> list[tuple]:
    """(what, before ms, after ms, NLL gap) per training-step comparison."""
    rows = []
    for label, kwargs, batch in cfg["pixelcnn"]:
        before, after = twin(lambda impl, kw=kwargs: PixelCNN(**kw, conv_impl=impl))
        x = binary_batch(kwargs["shape"], batch, kwargs.get("num_levels", 2))
        rows.append((f"PixelCNN {label}, batch {batch}", before, after, x))
    batch = cfg["pixel_batch"]
    for name, cls, key in (
        ("Gated PixelCNN", GatedPixelCNN, "gated"),
        ("PixelSNAIL", PixelSNAIL, "snail"),
    ):
        kw = cfg[key]
        before, after = twin(lambda impl, cls=cls, kw=kw: cls(**kw, conv_impl=impl))
        x = binary_batch(kw["shape"], batch)
        rows.append((f"{name} {kw['shape']}, batch {batch}", before, after, x))
    for made in cfg["made"]:
        torch.manual_seed(0)
        net = MADE(**made, linear_impl="dense")
        for layer in net.modules():
            if isinstance(layer, MaskedLinear):
                layer.fused = False  # the reference F.linear(x, weight * mask, bias)
        twin_made = MADE(**made)
        twin_made.load_state_dict(net.state_dict())
        x = binary_batch(made["shape"], cfg["made_batch"])
        rows.append((made_label(made, cfg["made_batch"]), net, twin_made, x))

    results = []
    for what, before, after, x in rows:
        if not only(what):
            continue
        sides = [
            Side("before", before, loss_before(before)),
            Side("after", after, loss_after(after)),
        ]
        if what == made_label(cfg["made"][0], cfg["made_batch"]):
            checked = MADE(**cfg["made"][0])
            checked.load_state_dict(before.state_dict())
            sides.append(Side("after + check", checked, loss_after(checked, check=True)))
        gap = nll_gap(sides[0].loss, sides[1].loss, x)
        times = interleaved([train_step_timer(s, x) for s in sides], steps, repeats)
        results.append((what, times[0], times[1], gap))
        if len(times) > 2:
            results.append((f"{what}, values checked every step", times[0], times[2], gap))
    return results


def minimal_rows(cfg: dict, steps: int, repeats: int, only: Callable[[str], bool]) -> list[tuple]:
    """(what, argen ms, minimal ms, NLL gap): argen's default path against a plain network."""
    results = []
    label, kwargs, batch = cfg["pixelcnn"][0]
    torch.manual_seed(0)
    net = PixelCNN(**kwargs)
    plain = MinimalPixelCNN(net)
    x = binary_batch(kwargs["shape"], batch)
    pairs = [(f"PixelCNN {label}, batch {batch}", net, plain, x)]
    for kwargs in cfg["made"]:
        torch.manual_seed(0)
        made = MADE(**kwargs)
        x = binary_batch(kwargs["shape"], cfg["made_batch"])
        pairs.append((made_label(kwargs, cfg["made_batch"]), made, MinimalMADE(made), x))
    for what, argen_net, minimal, x in pairs:
        if not only(what):
            continue
        sides = [
            Side("argen", argen_net, loss_after(argen_net)),
            Side("minimal", minimal, minimal.loss),
        ]
        gap = nll_gap(sides[0].loss, sides[1].loss, x)
        times = interleaved([train_step_timer(s, x) for s in sides], steps, repeats)
        results.append((what, times[0], times[1], gap))
    return results


def sampling_rows(cfg: dict, num: int, naive_draws: int, repeats: int) -> list[tuple]:
    """(what, naive s, cached s, naive extrapolated?) for MADE sampling of ``num`` images."""
    results = []
    for label, hidden in cfg["sampling"]:
        torch.manual_seed(0)
        net = MADE(cfg["sample_shape"], hidden_sizes=hidden).eval()
        dims = net.num_dims
        cached, naive = [], []
        extrapolate = naive_draws < dims and len(hidden) > 1 and min(hidden) >= 4000
        for _ in range(repeats):
            start = time.perf_counter()
            drawn = net.sample(num, generator=torch.Generator().manual_seed(0), sampler="cached")
            cached.append(time.perf_counter() - start)
            if extrapolate:  # the naive sampler's cost is D identical passes: time a few
                x = torch.zeros(num, dims)
                start = time.perf_counter()
                with torch.no_grad():
                    for _ in range(naive_draws):
                        net(x)
                naive.append((time.perf_counter() - start) * dims / naive_draws)
            else:
                start = time.perf_counter()
                reference = net.sample(
                    num, generator=torch.Generator().manual_seed(0), sampler="naive"
                )
                naive.append(time.perf_counter() - start)
        # Same generator, same samples (up to a uniform draw within float rounding of a p)
        same = (
            "not drawn"
            if extrapolate
            else f"{int((drawn == reference).all(1).all(1).all(1).sum())} of {num}"
        )
        results.append(
            (
                f"MADE {label}, {num} images",
                statistics.median(naive),
                statistics.median(cached),
                extrapolate,
                same,
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per side (median)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed block")
    parser.add_argument("--sample-num", type=int, default=16, help="images per sampling call")
    parser.add_argument("--sample-repeats", type=int, default=1)
    parser.add_argument("--naive-draws", type=int, default=32, help="passes timed for 2 x 8000")
    parser.add_argument("--skip-sampling", action="store_true")
    parser.add_argument(
        "--only", nargs="+", default=[], help="time only the rows whose name contains one of these"
    )
    args = parser.parse_args()
    wanted = [w.lower() for w in args.only]

    def only(what: str) -> bool:
        return not wanted or any(w in what.lower() for w in wanted)

    torch.set_flush_denormal(True)  # as train.py does on a CPU
    keep_freed_memory()  # as train.py does: a step's freed activations stay in the process
    cfg = sizes(args.quick)
    if args.quick:
        args.repeats, args.steps = min(args.repeats, 3), min(args.steps, 2)

    print("| what | threads | before (ms/step) | after (ms/step) | speed-up | NLL gap (nats) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for what, before, after, gap in training_rows(cfg, args.steps, args.repeats, only):
            print(
                f"| {what} | {threads} | {1e3 * before:.2f} | {1e3 * after:.2f} | "
                f"{before / after:.2f}x | {gap:.1e} |",
                flush=True,
            )
    print()
    print(
        "| argen against a minimal network | threads | argen (ms/step) | minimal (ms/step) | argen / minimal | NLL gap (nats) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for what, mine, minimal, gap in minimal_rows(cfg, args.steps, args.repeats, only):
            print(
                f"| {what} | {threads} | {1e3 * mine:.2f} | {1e3 * minimal:.2f} | "
                f"{mine / minimal:.2f} | {gap:.1e} |",
                flush=True,
            )
    if args.skip_sampling:
        return
    print()
    print("| MADE sampling | threads | naive (s) | cached (s) | speed-up | naive's samples |")
    print("| --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        torch.set_num_threads(threads)
        rows = sampling_rows(cfg, args.sample_num, args.naive_draws, args.sample_repeats)
        for what, naive, cached, estimated, same in rows:
            mark = " (est.)" if estimated else ""
            print(
                f"| {what} | {threads} | {naive:.2f}{mark} | {cached:.3f} | {naive / cached:.0f}x | {same} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
