"""Training throughput: argen's train.py path against a plain PyTorch loop, in the same run.

For each model, both paths train the same network (built from the same Hydra config) with the same
batch size and optimizer on binarized MNIST already in memory:

* argen: the composed config's DataModule and LightningModule under ``lightning.Trainer.fit``
  (no logger or checkpointing, per-epoch costs; no progress bar unless ``--progress-bar`` asks
  for Lightning's stock Rich bar or argen's throttled one, drawn as on a terminal). This is
  argen's default path: with the config's ``steps_per_call`` (MADE, FVSBN, NADE) several
  optimizer steps run per Lightning step (``argen.modules.amortized``); the clock then starts on a
  group boundary and counts optimizer steps;
* ``--variant NAME=OVERRIDE[,OVERRIDE]``: the argen path again with those overrides, e.g.
  ``--variant ordinary=model.module.steps_per_call=1`` (Lightning's own loop) or
  ``--variant graph=model.module.cuda_graph=true`` (on a GPU);
* plain: ``for`` loop over a random permutation, slicing batches from one tensor, Adam step.

Each measurement runs in a fresh process (so peak memory is its own), the two paths alternate, and
the best of ``--repeats`` is kept. Both paths keep freed memory as train.py does
(``argen.training.cpu_memory``; ``--malloc default`` leaves glibc's default, which page-faults a step's
activations in again at every step). Also reported: minor page faults per step, and MADE's
achieved FLOP/s as a share of this machine's measured float32 matmul peak (the roofline target
is >= 50 %).

    ARGEN_DATA_DIR=../shared/data python benchmarks/throughput.py [--models made nade gated_pixelcnn]
    ARGEN_DATA_DIR=../shared/data python benchmarks/throughput.py --models made --progress-bar rich
    ARGEN_DATA_DIR=../shared/data python benchmarks/throughput.py --models made fvsbn \
        --variant ordinary=model.module.steps_per_call=1 --out results/speed/throughput_cpu.txt

``--out FILE`` writes what is printed (the table and the JSON) to FILE too, headed by the command
and the time; the measurement itself is ``argen.training.speed``, shared with epoch_time.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from argen.report.terminal_record import recorded_output
from argen.training.speed import (
    PROGRESS_BARS,
    compose_train,
    measure_training,
    minor_faults,
    peak_memory_mb,
)

# Model overrides: the configs' networks, kept at sizes that step in well under a second on a CPU.
MODELS = {
    "made": ["model=made"],
    "fvsbn": ["model=fvsbn"],
    "nade": ["model=nade"],
    "pixelcnn": [
        "model=pixelcnn",
        "model.module.net.hidden_channels=32",
        "model.module.net.num_layers=4",
        "data.datamodule.batch_size=16",
    ],
    "gated_pixelcnn": [
        "model=gated_pixelcnn",
        "model.module.net.hidden_channels=32",
        "model.module.net.num_layers=5",
        "data.datamodule.batch_size=16",
    ],
}


def measure_plain(cfg, warmup: int, steps: int) -> dict:
    import lightning as L
    import torch

    from argen.training.run import build_datamodule, build_module

    L.seed_everything(0, verbose=False)
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"
    )
    data = build_datamodule(cfg).splits["train"].images.to(device).float()
    module = build_module(cfg)  # the same network as argen's path, compiled when compile=true
    net = module.net.to(device).train()
    optimizer = module.optimizer_factory(net.parameters())
    loss_of = net.training_loss if hasattr(net, "training_loss") else (lambda x: -net.log_prob(x))
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=str(cfg.trainer.precision).startswith("bf16")
    )
    batch = cfg.data.datamodule.batch_size
    order = torch.randperm(len(data), device=device)
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, faults = time.perf_counter(), minor_faults()
        index = order[(step * batch) % (len(data) - batch) :][:batch]
        with autocast:
            loss = loss_of(data[index]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {
        "examples_per_sec": steps * batch / (time.perf_counter() - start),
        "peak_memory_mb": peak_memory_mb(device),
        "minor_faults_per_step": (minor_faults() - faults) / steps,
    }


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def worker(args) -> None:
    from argen.training.cpu_memory import keep_freed_memory
    from argen.training.gpu_probe import skip_gpu_probe_without_gpu

    # train.py does this; the plain loop gets it too, since the probe it avoids comes from
    # importing Lightning (which this script does for both paths), not from a plain loop
    skip_gpu_probe_without_gpu()
    # train.py does this too (argen.training.cpu_memory): glibc otherwise returns the activations' memory
    # to the system and faults it in again at every step, in either path (--malloc default)
    if args.malloc == "keep":
        keep_freed_memory()
    cfg = compose_train(
        MODELS[args.model] + ["trainer.accelerator=" + args.accelerator] + args.overrides
    )
    if args.path == "argen":
        result = measure_training(cfg, args.warmup, args.steps, args.progress_bar)
    else:
        result = measure_plain(cfg, args.warmup, args.steps)
    result["batch_size"] = int(cfg.data.datamodule.batch_size)
    if args.model == "made":
        net = cfg.model.module.net
        sizes = [784, *net.hidden_sizes, 784]
        products = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        # forward 2ab and weight gradient 2ab per layer; input gradient 2ab for all but the first
        flops_per_example = 6 * sum(products) - 2 * products[0]
        result["flops_per_sec"] = result["examples_per_sec"] * flops_per_example
    print("RESULT " + json.dumps(result))


def run_worker(model: str, path: str, args, variant: list[str] | None = None) -> dict:
    overrides = [*args.overrides, *(variant or [])]
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--model",
        model,
        "--path",
        path,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--accelerator",
        args.accelerator,
        "--progress-bar",
        args.progress_bar,
        "--malloc",
        args.malloc,
        *(["--", *overrides] if overrides else []),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    # a progress bar may leave terminal control codes in front of the line
    line = next(x for x in output.splitlines() if "RESULT " in x)
    return json.loads(line.split("RESULT ", 1)[1])


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    if not name or not overrides:
        raise argparse.ArgumentTypeError(f"expected NAME=OVERRIDE[,OVERRIDE], got {text!r}")
    return name, overrides.split(",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["made", "nade", "gated_pixelcnn"], choices=sorted(MODELS)
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument(
        "--progress-bar",
        choices=PROGRESS_BARS,
        default="none",
        help="argen path's progress bar: none, Lightning's Rich bar, argen's throttled Rich bar",
    )
    parser.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="keep freed memory in both paths as train.py does (argen.training.cpu_memory), or glibc's "
        "default (which page-faults the activations in again at every step)",
    )
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="NAME=OVERRIDE[,OVERRIDE]",
        help="also measure the argen path with these config overrides (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the printed table and JSON to this file (e.g. results/speed/throughput_cpu.txt)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every model")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with recorded_output(args.out):
        report(args)


def report(args) -> None:
    """Measure every model on each path (best of ``--repeats``) and print a table and JSON."""
    import torch
    from rich.console import Console
    from rich.table import Table

    peak = matmul_peak_flops()
    paths = {"argen": ("argen", []), **{n: ("argen", o) for n, o in args.variant}}
    paths["plain"] = ("plain", [])
    rows = []
    for model in args.models:
        best: dict[str, dict] = {}
        for _ in range(args.repeats):
            for name, (path, variant) in paths.items():
                result = run_worker(model, path, args, variant)
                if name not in best or result["examples_per_sec"] > best[name]["examples_per_sec"]:
                    best[name] = result
        plain = best["plain"]["examples_per_sec"]
        row = {
            "model": model,
            "batch_size": best["argen"]["batch_size"],
            "steps_per_call": best["argen"]["steps_per_call"],
            "argen_examples_per_sec": best["argen"]["examples_per_sec"],
            "plain_examples_per_sec": plain,
            "ratio": best["argen"]["examples_per_sec"] / plain,
            "argen_peak_memory_mb": best["argen"]["peak_memory_mb"],
            "plain_peak_memory_mb": best["plain"]["peak_memory_mb"],
            "argen_minor_faults_per_step": best["argen"]["minor_faults_per_step"],
            "plain_minor_faults_per_step": best["plain"]["minor_faults_per_step"],
            "variants": {
                name: {**best[name], "ratio": best[name]["examples_per_sec"] / plain}
                for name, _ in args.variant
            },
        }
        if "flops_per_sec" in best["argen"]:
            row["argen_share_of_matmul_peak"] = best["argen"]["flops_per_sec"] / peak
            row["plain_share_of_matmul_peak"] = best["plain"]["flops_per_sec"] / peak
        rows.append(row)

    table = Table(
        title=f"Training throughput ({args.accelerator}, torch threads "
        f"{torch.get_num_threads()}, matmul peak {peak / 1e9:.1f} GFLOP/s)"
    )
    columns = ["model", "batch", "steps/call", "argen ex/s", "plain ex/s", "argen/plain"]
    for name, _ in args.variant:
        columns += [f"{name} ex/s", f"{name}/plain"]
    columns += ["peak MB argen", "peak MB plain", "faults/step argen", "plain", "% of matmul peak"]
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        share = r.get("argen_share_of_matmul_peak")
        cells = [
            r["model"],
            str(r["batch_size"]),
            str(r["steps_per_call"]),
            f"{r['argen_examples_per_sec']:.0f}",
            f"{r['plain_examples_per_sec']:.0f}",
            f"{r['ratio']:.2f}",
        ]
        for name, _ in args.variant:
            variant = r["variants"][name]
            cells += [f"{variant['examples_per_sec']:.0f}", f"{variant['ratio']:.2f}"]
        cells += [
            f"{r['argen_peak_memory_mb']:.0f}",
            f"{r['plain_peak_memory_mb']:.0f}",
            f"{r['argen_minor_faults_per_step']:.0f}",
            f"{r['plain_minor_faults_per_step']:.0f}",
            "" if share is None else f"{100 * share:.0f} %",
        ]
        table.add_row(*cells)
    Console(width=200).print(table)
    print(json.dumps({"matmul_peak_flops": peak, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
