"""Naive vs cached sampling time for Gated PixelCNN (Ramachandran et al. 2017 style caching).

Run: ``python benchmarks/sampling_speed.py`` (about 3-5 minutes on 2 shared CPU cores).

For 28x28 binary images and 32x32 RGB 8-bit images (256-way categorical head) at each batch size,
in one run and with the same model weights and random generator seeds:

* ``cached_full``: the cached sampler on the whole image (measured);
* ``cached_rows`` / ``naive_rows``: both samplers on the first R rows only (measured), via
  ``stop_row``; the rows are checked to be identical to each other and to the first R rows of
  the full cached sample;
* ``naive_full``: MEASURED when ``--naive-rows`` covers the whole image, otherwise EXTRAPOLATED
  as ``naive_rows * H / R``. That extrapolation is exact up to timing noise because the naive
  sampler runs one full-image forward pass per sub-pixel, so every row costs the same.

The naive sampler at the models' default width (128 maps, 20 layers) needs one ~10 GFLOP forward
pass per sub-pixel; the defaults here use a smaller network (``--hidden-channels 32
--num-layers 5``), which makes the naive sampler cheaper and the speed-up *smaller* than at full
width (the cached sampler is dominated by per-op overhead, the naive one by arithmetic).
Prints a table and a JSON record (also written to ``--json-out`` if given).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from argen.models.cached_sampling import sample
from argen.models.gated_pixelcnn import GatedPixelCNN

CONFIGS = {
    "binary28": {"shape": (1, 28, 28), "num_levels": 2},
    "rgb32": {"shape": (3, 32, 32), "num_levels": 256},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--hidden-channels", type=int, default=32)
    parser.add_argument("--num-layers", type=int, default=5)
    parser.add_argument("--kernel-size", type=int, default=5)
    parser.add_argument(
        "--naive-rows",
        type=int,
        nargs=2,
        default=[3, 1],
        metavar=("BINARY28", "RGB32"),
        help="rows timed for the naive sampler per config (0 = the whole image, no extrapolation)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", default=None)
    return parser.parse_args(argv)


def timed(fn) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    if out.device.type == "cuda":
        torch.cuda.synchronize(out.device)
    return out, time.perf_counter() - start


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def run_one(model: GatedPixelCNN, batch: int, rows: int, device: torch.device, seed: int) -> dict:
    height = model.shape[1]
    rows = height if rows <= 0 else min(rows, height)

    def draw(sampler: str, stop_row: int) -> tuple[torch.Tensor, float]:
        gen = generator(device, seed)
        return timed(
            lambda: sample(model, batch, device, generator=gen, sampler=sampler, stop_row=stop_row)
        )

    full, cached_full = draw("cached", height)
    cached_part, cached_rows = draw("cached", rows)
    naive_part, naive_rows = draw("naive", rows)
    same_rows = torch.equal(naive_part[:, :, :rows], full[:, :, :rows])
    identical = bool(torch.equal(naive_part, cached_part) and same_rows)
    mismatches = int((naive_part[:, :, :rows] != full[:, :, :rows]).sum())
    naive_full = naive_rows * height / rows
    return {
        "batch": batch,
        "naive_rows_timed": rows,
        "naive_full_measured": rows == height,
        "cached_full_s": cached_full,
        "cached_rows_s": cached_rows,
        "naive_rows_s": naive_rows,
        "naive_full_s": naive_full,
        "speedup_same_rows": naive_rows / cached_rows,
        "speedup_full": naive_full / cached_full,
        "samples_identical": identical,
        "mismatched_subpixels": mismatches,
        "subpixels_compared": naive_part[:, :, :rows].numel(),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = []
    print(HEADER)
    print("-" * len(HEADER))
    for name, rows in zip(CONFIGS, args.naive_rows, strict=True):
        if name not in args.configs:
            continue
        config = CONFIGS[name]
        torch.manual_seed(args.seed)
        model = GatedPixelCNN(
            config["shape"],
            config["num_levels"],
            hidden_channels=args.hidden_channels,
            num_layers=args.num_layers,
            kernel_size=args.kernel_size,
        )
        model = model.to(device).eval()
        for batch in args.batch_sizes:
            record = {"config": name, **run_one(model, batch, rows, device, args.seed)}
            results.append(record)
            print_row(record)
    report = {
        "benchmark": "gated_pixelcnn_sampling_speed",
        "model": {
            "hidden_channels": args.hidden_channels,
            "num_layers": args.num_layers,
            "kernel_size": args.kernel_size,
            "head": "auto (bernoulli for binary28, 256-way categorical for rgb32)",
            "dtype": "float32",
        },
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


HEADER = (
    f"{'config':<9} {'batch':>5} {'cached full':>12} {'naive full':>16} {'speed-up':>9} "
    f"{'rows':>5} {'cached rows':>12} {'naive rows':>11} {'speed-up':>9} {'identical':>9}"
)


def print_row(record: dict) -> None:
    how = "measured" if record["naive_full_measured"] else "extrap."
    print(
        f"{record['config']:<9} {record['batch']:>5} {record['cached_full_s']:>11.2f}s "
        f"{record['naive_full_s']:>7.1f}s {how:>8} {record['speedup_full']:>8.1f}x "
        f"{record['naive_rows_timed']:>5} {record['cached_rows_s']:>11.2f}s "
        f"{record['naive_rows_s']:>10.1f}s {record['speedup_same_rows']:>8.1f}x "
        f"{str(record['samples_identical']):>9}",
        flush=True,
    )


if __name__ == "__main__":
    main()
