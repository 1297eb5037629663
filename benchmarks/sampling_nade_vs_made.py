"""Sampling time per image of NADE against MADE with the same hidden size, in one run.

NADE keeps a running hidden pre-activation, so a sample costs O(D*H); MADE has no such state and
runs its whole network once per pixel, O(D * D*H). FVSBN (O(D^2)) is timed alongside.

    python benchmarks/sampling_nade_vs_made.py [--hidden 500] [--num 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from argen.models.fvsbn import FVSBN
from argen.models.made import MADE
from argen.models.nade import NADE


def seconds_per_image(model: torch.nn.Module, num: int, repeats: int) -> float:
    model.eval()
    best = float("inf")
    with torch.no_grad():
        model.sample(2)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model.sample(num)
            best = min(best, time.perf_counter() - start)
    return best / num


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--num", type=int, default=16, help="images per sampling call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = (1, 28, 28)
    torch.manual_seed(0)
    times = {
        "nade": seconds_per_image(NADE(shape, hidden_size=args.hidden), args.num, args.repeats),
        "made": seconds_per_image(MADE(shape, hidden_sizes=[args.hidden]), args.num, args.repeats),
        "fvsbn": seconds_per_image(FVSBN(shape), args.num, args.repeats),
    }
    for name, seconds in times.items():
        print(f"{name:6s} {1000 * seconds:9.2f} ms per image")
    print(f"MADE / NADE sampling time: {times['made'] / times['nade']:.1f}x")
    print(
        json.dumps(
            {
                "hidden": args.hidden,
                "batch": args.num,
                "threads": torch.get_num_threads(),
                "ms_per_image": {k: 1000 * v for k, v in times.items()},
                "made_over_nade": times["made"] / times["nade"],
            }
        )
    )


if __name__ == "__main__":
    main()
