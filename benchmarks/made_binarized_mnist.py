"""MADE (1 hidden layer of 500 units) on the full fixed binarized MNIST, through train.py.

Prints the test NLL (nats) of the best validation checkpoint, for the single mask and, when the
model was trained with several masks, for the mask mixture; and the wall time. Target on a 2-core
CPU: test NLL <= 88.40 nats (Germain et al. 2015, single mask) within 30 minutes.

    ARGEN_DATA_DIR=../shared/data python benchmarks/made_binarized_mnist.py [--minutes 29] [--masks 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=29.0, help="training time budget")
    parser.add_argument("--masks", type=int, default=1, help="num_masks (order-agnostic if > 1)")
    parser.add_argument("--log-dir", default=str(ROOT / "logs" / "benchmarks"))
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides")
    args = parser.parse_args()

    minutes = int(args.minutes)
    seconds = int(round((args.minutes - minutes) * 60))
    overrides = [
        "experiment=made_binarized_mnist",
        f"model.module.net.num_masks={args.masks}",
        f"trainer.max_time=00:00:{minutes:02d}:{seconds:02d}",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
        f"paths.log_dir={args.log_dir}",
        *args.overrides,
    ]
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], check=True,
                   env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    wall = time.perf_counter() - start
    summaries = sorted(Path(args.log_dir).rglob("summary.json"), key=lambda p: p.stat().st_mtime)
    summary = json.loads(summaries[-1].read_text())
    print(json.dumps({
        "benchmark": "made_binarized_mnist",
        "num_masks": args.masks,
        "test_nll_nats": summary["test_nll"],
        "test_bits_per_dim": summary["test_bits_per_dim"],
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds_total": round(wall, 1),
        "train_examples_per_sec": summary["train_examples_per_sec"],
        "run_dir": summary["output_dir"],
        "target_nats": 88.40,
        "target_met": summary["test_nll"] <= 88.40 and wall <= 30 * 60,
    }, indent=2))


if __name__ == "__main__":
    main()
