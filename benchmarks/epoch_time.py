"""Epoch time of the convolutional and recurrent image models on this machine, in one run.

PixelCNN, Gated PixelCNN, Row LSTM and Diagonal BiLSTM (config defaults), plus a PixelCNN whose
parameter count matches the PixelRNNs' (the seed's speed trade-off at equal size), on fixed
binarized MNIST and on the CIFAR-10 subset (``data=image_npz``), through the train.py path.

Each model trains ``--steps`` measured steps after ``--warmup`` steps; the epoch time is the
MEASURED seconds per step times the steps in one epoch (an extrapolation: a full epoch of Gated
PixelCNN on a 2-core CPU takes hours). It also times sampling one image with each model's default
sampler, and prints a table and JSON.

    ARGEN_DATA_DIR=../shared/data python benchmarks/epoch_time.py [--data binarized_mnist image_npz]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

from argen.training.speed import compose_train, measure_training

MODELS = {
    "pixelcnn": ["model=pixelcnn"],
    "pixelcnn_small": ["model=pixelcnn", "model.module.net.hidden_channels=80"],
    "gated_pixelcnn": ["model=gated_pixelcnn"],
    "row_lstm": ["model=row_lstm"],
    "diagonal_bilstm": ["model=diagonal_bilstm"],
}
DATA = {
    "binarized_mnist": ["data=binarized_mnist", "data.datamodule.batch_size=32"],
    "image_npz": ["data=image_npz", "data.datamodule.batch_size=16"],
}


def worker(model: str, data: str, warmup: int, steps: int, time_sampling: bool) -> dict:
    import torch
    from hydra.utils import instantiate

    from argen.training.run import build_datamodule

    cfg = compose_train(MODELS[model] + DATA[data] + ["trainer.accelerator=cpu"])
    result = measure_training(cfg, warmup, steps)
    datamodule = build_datamodule(cfg)
    batch = int(cfg.data.datamodule.batch_size)
    steps_per_epoch = math.ceil(datamodule.num_examples("train") / batch)
    seconds_per_step = batch / result["examples_per_sec"]
    module = instantiate(cfg.model.module)
    sample_seconds = None
    if time_sampling:
        start = time.perf_counter()
        with torch.no_grad():
            module.net.eval().sample(1)
        sample_seconds = time.perf_counter() - start
    return {
        "model": model,
        "data": data,
        "batch_size": batch,
        "params": sum(p.numel() for p in module.parameters()),
        "seconds_per_step": seconds_per_step,
        "steps_per_epoch": steps_per_epoch,
        "epoch_minutes_extrapolated": seconds_per_step * steps_per_epoch / 60,
        "sample_seconds_per_image": sample_seconds,
        "sampler": str(cfg.model.module.net.get("sampler", "full passes")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--sample-on",
        nargs="*",
        default=["binarized_mnist"],
        choices=list(DATA),
        help="data sets on which sampling one image is timed (a PixelRNN needs minutes per RGB image)",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, data = args.worker
        result = worker(model, data, args.warmup, args.steps, data in args.sample_on)
        print("RESULT " + json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    rows = []
    for data in args.data:
        for model in args.models:
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    model,
                    data,
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                    "--sample-on",
                    *args.sample_on,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append(
                json.loads(next(x for x in output.splitlines() if x.startswith("RESULT "))[7:])
            )
    table = Table(title="Training epoch time on this CPU (measured s/step x steps per epoch)")
    for column in (
        "data",
        "model",
        "params",
        "batch",
        "s/step",
        "epoch (min)",
        "sample 1 image (s)",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["data"],
            r["model"],
            f"{r['params']:,}",
            str(r["batch_size"]),
            f"{r['seconds_per_step']:.3f}",
            f"{r['epoch_minutes_extrapolated']:.1f}",
            "-"
            if r["sample_seconds_per_image"] is None
            else f"{r['sample_seconds_per_image']:.2f}",
        )
    Console().print(table)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
