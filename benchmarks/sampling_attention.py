"""Cached vs naive sampling of the attention models, and their training throughput.

Run: ``python benchmarks/sampling_attention.py`` (about a minute on 2 shared CPU cores with the
defaults; ``--device cuda`` on a GPU).

In one run, with the same weights and the same generator seed for both samplers:

* Image Transformer on ``--image-size`` binary images (D = H*W sub-pixels): the key/value-cached
  sampler (one token through the network per sub-pixel) against the naive one (the whole prefix
  through the network per sub-pixel, O(D^2) token passes);
* PixelSNAIL on the same images: cached (one pixel per layer, cached keys/values) against naive
  (the whole network per sub-pixel);
* Char Transformer (vocabulary ``--vocab``, context ``--context``): ``--length`` characters, longer
  than the context so the cached sampler also rebuilds its cache as the context moves on;
* training examples/s of each model: forward, backward and an Adam step on random data at the
  same sizes (images per second; windows of ``--context`` characters per second for text).

Every row says whether the two samplers' samples were identical (they draw with the same random
numbers; in float32 a flip needs a uniform draw within rounding distance of a CDF boundary).
Prints a table and a JSON record (also written to ``--json-out`` if given).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch

from argen.models.char_transformer import CharTransformer
from argen.models.image_transformer import ImageTransformer
from argen.models.pixelsnail import PixelSNAIL


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=12, help="binary images of this side")
    parser.add_argument("--image-batch", type=int, default=16)
    parser.add_argument("--dim", type=int, default=64, help="Transformer width")
    parser.add_argument("--layers", type=int, default=2, help="Transformer layers")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--snail-channels", type=int, default=32)
    parser.add_argument("--snail-blocks", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--length", type=int, default=256, help="characters sampled")
    parser.add_argument("--text-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", default=None)
    return parser.parse_args(argv)


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """The result of ``fn()`` and its wall time in seconds (device work included)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def compare_samplers(
    name: str, draw: Callable[[str, torch.Generator], torch.Tensor], device: torch.device, seed: int
) -> dict:
    """Time ``draw(sampler, generator)`` for both samplers from the same seed."""
    times, samples = {}, {}
    for sampler in ("cached", "naive"):
        gen = torch.Generator(device=device).manual_seed(seed)
        samples[sampler], times[sampler] = timed(lambda s=sampler, g=gen: draw(s, g), device)
    mismatched = int((samples["cached"] != samples["naive"]).sum())
    return {
        "model": name,
        "cached_s": times["cached"],
        "naive_s": times["naive"],
        "speedup": times["naive"] / times["cached"],
        "identical": mismatched == 0,
        "mismatched": mismatched,
        "compared": samples["cached"].numel(),
    }


def train_throughput(
    model: torch.nn.Module,
    batch: Callable[[], torch.Tensor],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    device: torch.device,
) -> float:
    """Examples per second of forward + backward + Adam over ``steps`` steps (after a warm-up)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> torch.Tensor:
        data = batch()
        loss = loss_fn(data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return data

    data = step()  # warm-up: allocations, first-call overheads
    _, seconds = timed(lambda: [step() for _ in range(steps)][-1], device)
    return steps * data.shape[0] / seconds


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = (1, args.image_size, args.image_size)
    torch.manual_seed(args.seed)
    image_tf = ImageTransformer(
        shape, 2, dim=args.dim, num_layers=args.layers, num_heads=args.heads
    ).to(device)
    snail = PixelSNAIL(
        shape,
        2,
        hidden_channels=args.snail_channels,
        num_blocks=args.snail_blocks,
        num_res_blocks=2,
        key_channels=16,
        value_channels=args.snail_channels,
    ).to(device)
    char_tf = CharTransformer(
        args.vocab, args.context, dim=args.dim, num_layers=args.layers, num_heads=args.heads
    ).to(device)
    for model in (image_tf, snail, char_tf):
        model.eval()

    sampling = [
        compare_samplers(
            "Image Transformer",
            lambda s, g: image_tf.sample(args.image_batch, generator=g, sampler=s),
            device,
            args.seed,
        ),
        compare_samplers(
            "PixelSNAIL",
            lambda s, g: snail.sample(args.image_batch, generator=g, sampler=s),
            device,
            args.seed,
        ),
        compare_samplers(
            "Char Transformer",
            lambda s, g: char_tf.sample(args.text_batch, args.length, generator=g, sampler=s),
            device,
            args.seed,
        ),
    ]

    def images() -> torch.Tensor:
        return torch.randint(2, (args.train_batch, *shape), device=device).float()

    def windows() -> torch.Tensor:
        return torch.randint(args.vocab, (args.train_batch, args.context), device=device)

    training = {
        "Image Transformer": train_throughput(
            image_tf, images, lambda x: -image_tf.log_prob(x).mean(), args.train_steps, device
        ),
        "PixelSNAIL": train_throughput(
            snail, images, lambda x: -snail.log_prob(x).mean(), args.train_steps, device
        ),
        "Char Transformer": train_throughput(
            char_tf, windows, lambda x: -char_tf.log_prob(x).mean(), args.train_steps, device
        ),
    }
    params = {
        "Image Transformer": sum(p.numel() for p in image_tf.parameters()),
        "PixelSNAIL": sum(p.numel() for p in snail.parameters()),
        "Char Transformer": sum(p.numel() for p in char_tf.parameters()),
    }
    what = {
        "Image Transformer": f"{args.image_size}x{args.image_size} binary, batch {args.image_batch}",
        "PixelSNAIL": f"{args.image_size}x{args.image_size} binary, batch {args.image_batch}",
        "Char Transformer": f"{args.length} chars (context {args.context}), batch {args.text_batch}",
    }
    header = (
        f"{'model':<18} {'params':>8} {'sampling':<34} {'cached':>8} {'naive':>9} "
        f"{'speed-up':>8} {'identical':>9} {'train ex/s':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in sampling:
        name = row["model"]
        print(
            f"{name:<18} {params[name]:>8,} {what[name]:<34} {row['cached_s']:>7.2f}s "
            f"{row['naive_s']:>8.2f}s {row['speedup']:>7.1f}x {str(row['identical']):>9} "
            f"{training[name]:>10.1f}"
        )
    print(
        f"(training: batch {args.train_batch}, {args.train_steps} timed steps; text examples are "
        f"windows of {args.context} characters; {args.threads} thread(s) on {device})"
    )
    record = {
        "args": vars(args),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "params": params,
        "sampling": sampling,
        "train_examples_per_s": training,
    }
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(record, f, indent=2)
    return record


if __name__ == "__main__":
    main()
