"""PixelRNN sampling time per image: the previous cached sampler, the incremental one, naive.

Run: ``python benchmarks/pixelrnn_sampling_speed.py`` (a few minutes on one quiet CPU thread with
the defaults; ``--image-size 8 --naive-rows 1`` for a quick check that it works).

For Row LSTM and Diagonal BiLSTM, each built from its own config (``conf/model/<name>.yaml``) at its
default sizes on the chosen data (``--data binarized_mnist`` by default: 28x28 binary; ``cifar10``:
32x32 RGB, 256 levels), with the same weights and generator seed for every sampler:

* ``rows_above``: the previous cached sampler (``argen.models.pixelrnn.RowsAbove``): a pass over
  rows 0..i for every sub-pixel of row i, so a pixel's cost grows with its row (measured on the
  whole image);
* ``incremental``: the current cached sampler (``RowLSTMStepper`` / ``DiagonalBiLSTMStepper``):
  every layer at one pixel from cached per-row LSTM states (measured on the whole image);
* ``naive``: a full forward pass per sub-pixel, every row costs the same; MEASURED on the first
  ``--naive-rows`` rows and EXTRAPOLATED to the image (``* H / rows``), or measured on the whole
  image with ``--naive-rows 0``.

Times are wall and process CPU seconds per image (a batch's time / batch size) at each
``--batch-sizes``; the config's ``num_samples`` (2) is the batch ``train.py`` times for
``summary.json``. Every row says whether the samplers' samples agree (the incremental sampler against ``rows_above`` on the whole image and
against ``naive`` on the rows it drew). Prints a table and a JSON record (``--json-out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from argen.models.cached_sampling import sample
from argen.models.pixelrnn import RowsAbove
from argen.training.resolvers import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("row_lstm", "diagonal_bilstm")
DATA = ("binarized_mnist", "cifar10")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--data", default="binarized_mnist", choices=DATA)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[2, 16])
    parser.add_argument(
        "--image-size", type=int, default=0, help="square images of this side (0: the data's)"
    )
    parser.add_argument(
        "--naive-rows", type=int, default=2, help="rows timed for naive (0: the whole image)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or args.image_size < 0 or args.naive_rows < 0:
        parser.error("--batch-sizes must be positive; --image-size, --naive-rows at least 0")
    return args


def build(name: str, data: str, image_size: int, seed: int) -> torch.nn.Module:
    """The model's net from its own config, at its default sizes, on the data's image shape."""
    register_resolvers()
    overrides = [f"model={name}", f"data={data}"]
    if image_size:
        channels = 3 if data == "cifar10" else 1
        overrides.append(f"data.shape=[{channels},{image_size},{image_size}]")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(seed)
    return instantiate(cfg.model.module.net).eval()


def timed(
    fn: Callable[[], torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, float, float]:
    """The result of ``fn()``, its wall time and this process's CPU time, in seconds (device work
    included in the wall time). CPU time is what a busy shared machine bends least."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start, time.process_time() - cpu_start


def draw(model, batch: int, device: torch.device, seed: int, sampler: str, stop_row: int):
    """Images, wall and CPU seconds of one sampler: ``"rows_above"``, ``"incremental"`` or
    ``"naive"``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    if sampler == "rows_above":
        model.start_cache = lambda x, y, start: RowsAbove(model, x)
    try:
        name = "naive" if sampler == "naive" else "cached"
        return timed(
            lambda: sample(
                model, batch, device, generator=generator, sampler=name, stop_row=stop_row
            ),
            device,
        )
    finally:
        vars(model).pop("start_cache", None)


def run_one(model, batch: int, naive_rows: int, device: torch.device, seed: int) -> dict:
    height = model.shape[1]
    rows = height if naive_rows == 0 else min(naive_rows, height)
    for sampler in ("incremental", "rows_above", "naive"):  # warm-up: first-call costs
        draw(model, batch, device, seed, sampler, 1)
    new, new_s, new_cpu = draw(model, batch, device, seed, "incremental", height)
    old, old_s, old_cpu = draw(model, batch, device, seed, "rows_above", height)
    naive, naive_rows_s, naive_rows_cpu = draw(model, batch, device, seed, "naive", rows)
    naive_s, naive_cpu = naive_rows_s * height / rows, naive_rows_cpu * height / rows
    return {
        "batch": batch,
        "rows_above_s_per_image": old_s / batch,
        "incremental_s_per_image": new_s / batch,
        "naive_s_per_image": naive_s / batch,
        "rows_above_cpu_s_per_image": old_cpu / batch,
        "incremental_cpu_s_per_image": new_cpu / batch,
        "naive_cpu_s_per_image": naive_cpu / batch,
        "naive_rows_timed": rows,
        "naive_measured": rows == height,
        "speedup_over_rows_above": old_s / new_s,
        "speedup_over_naive": naive_s / new_s,
        "same_as_rows_above": bool(torch.equal(new, old)),
        "same_as_naive_rows": bool(torch.equal(new[:, :, :rows], naive[:, :, :rows])),
    }


HEADER = (
    f"{'model':<16} {'batch':>5} {'rows_above':>11} {'incremental':>12} {'naive':>17} "
    f"{'vs rows_above':>13} {'vs naive':>9} {'identical':>9} {'CPU s/image: rows_above':>24} "
    f"{'incremental':>11}"
)


def print_row(name: str, record: dict) -> None:
    how = "meas." if record["naive_measured"] else "extr."
    same = record["same_as_rows_above"] and record["same_as_naive_rows"]
    print(
        f"{name:<16} {record['batch']:>5} {record['rows_above_s_per_image']:>10.3f}s "
        f"{record['incremental_s_per_image']:>11.3f}s {record['naive_s_per_image']:>10.2f}s "
        f"{how:>5} {record['speedup_over_rows_above']:>12.1f}x "
        f"{record['speedup_over_naive']:>8.1f}x {str(same):>9} "
        f"{record['rows_above_cpu_s_per_image']:>23.3f}s "
        f"{record['incremental_cpu_s_per_image']:>10.3f}s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print("wall seconds per image (then CPU seconds); naive extrapolated from its timed rows")
    print(HEADER)
    print("-" * len(HEADER))
    results = []
    for name in args.models:
        model = build(name, args.data, args.image_size, args.seed).to(device)
        for batch in args.batch_sizes:
            record = {"model": name, **run_one(model, batch, args.naive_rows, device, args.seed)}
            results.append(record)
            print_row(name, record)
    report = {
        "benchmark": "pixelrnn_sampling_speed",
        "data": args.data,
        "shape": list(model.shape),
        "config": "conf/model/<model>.yaml defaults (7 layers, hidden_channels 64)",
        "dtype": "float32",
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
