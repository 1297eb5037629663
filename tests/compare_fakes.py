"""Fake run directories for the argen.compare tests: what train.py (or results/) leaves behind."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from argen.report.compare import main

ROOT = Path(__file__).resolve().parents[1]


def run_config(
    model: str,
    data: str,
    seed: int,
    net: dict | None,
    workers: int,
    datamodule: dict | None = None,
) -> dict:
    """A composed config as Hydra saves it (only the parts compare reads)."""
    loader = {"batch_size": 32, "num_workers": workers, **(datamodule or {})}
    return {
        "seed": seed,
        "model": {"name": model, "module": {"net": net or {"hidden": 16}}},
        "data": {"name": data, "datamodule": loader},
        "trainer": {"max_epochs": 2, "accelerator": "cpu" if workers else "gpu"},
        "paths": {"output_dir": "/somewhere/else"},
    }


def write_run(
    root: Path,
    name: str,
    model: str,
    data: str,
    seed: int,
    summary: dict[str, Any] | None = None,
    net: dict[str, Any] | None = None,
    workers: int = 2,
    hydra: bool = True,
    datamodule: dict[str, Any] | None = None,
) -> Path:
    """A run directory: its config (.hydra/config.yaml as train.py writes it, or config.yaml beside
    the summary as results/ keeps it) and, unless ``summary`` is None, summary.json."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = yaml.safe_dump(run_config(model, data, seed, net, workers, datamodule))
    if hydra:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(config)
    else:
        (run_dir / "config.yaml").write_text(config)
    if summary is not None:
        full = {"model": model, "data": data, "seed": seed, "status": "finished", **summary}
        (run_dir / "summary.json").write_text(json.dumps(full))
    return run_dir


def metrics(
    nll: float, bpd: float, speed: float, sample_s: float, params: int = 1000, seconds: float = 10.0
) -> dict[str, Any]:
    """The numbers of a finished run's summary.json."""
    return {
        "params": params,
        "epochs": 2,
        "train_seconds": seconds,
        "train_examples_per_sec": speed,
        "test_nll": nll,
        "test_bits_per_dim": bpd,
        "sample_seconds_per_example": sample_s,
    }


EPOCH_COLUMNS = [
    "epoch",
    "val/nll",
    "val/bits_per_dim",
    "train/nll",
    "examples_seen",
    "optimizer_steps",
    "train_flops",
    "cpu_seconds",
    "wall_seconds",
]


def write_epochs(
    run_dir: Path,
    final_nll: float,
    flops_per_example: float,
    cpu_per_example: float,
    epochs: int = 5,
    examples_per_epoch: int = 1000,
    batch_size: int = 50,
    columns: list[str] | None = None,
) -> list[dict[str, float]]:
    """epochs.csv as a run writes it (one row per validation, cumulative counts): validation NLL
    falling as 1/sqrt(epoch) towards ``final_nll``; returns the rows."""
    rows = []
    for epoch in range(epochs):
        examples = (epoch + 1) * examples_per_epoch
        nll = final_nll * (1 + 0.2 / math.sqrt(epoch + 1) - 0.2 / math.sqrt(epochs))
        rows.append(
            {
                "epoch": epoch,
                "val/nll": nll,
                "val/bits_per_dim": nll / 784 / math.log(2),
                "train/nll": nll - 1,
                "examples_seen": examples,
                "optimizer_steps": examples // batch_size,
                "train_flops": examples * flops_per_example,
                "cpu_seconds": examples * cpu_per_example,
                "wall_seconds": examples * cpu_per_example * 1.5,
            }
        )
    columns = columns or EPOCH_COLUMNS
    with (run_dir / "epochs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def close_runs(root: Path, models: dict[str, float] | None = None, seeds: int = 3) -> Path:
    """Models whose results lie close together (the labels of the old figure overlapped there),
    ``seeds`` runs each, every run with a learning curve: {model: test NLL of its first seed}."""
    models = models or {"row_lstm": 85.56, "diagonal_bilstm": 85.61, "gated_pixelcnn": 85.72}
    for index, (model, nll) in enumerate(models.items()):
        for seed in range(1, seeds + 1):
            value = nll + 0.05 * (seed - 1)
            summary = metrics(value, value / 784 / math.log(2), 50.0 + index, 2.9 + 0.01 * index)
            run_dir = write_run(
                root, f"{model}_seed{seed}", model, "binarized_mnist", seed, summary, hydra=False
            )
            # FLOPs per example are the set-up's (the same for every seed); CPU time varies
            write_epochs(run_dir, value, 1e6 * (1 + index), 1e-3 * (1 + 0.1 * seed + index))
    return root


def rendered(argv: list[str], width: int = 220) -> tuple[int, str]:
    """main(argv) printing to a recorded console: (exit code, text)."""
    console = Console(record=True, width=width, file=io.StringIO())
    code = main(argv, console=console)
    return code, console.export_text()


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of the terminal table row whose first cell is ``first_cell``."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a process without a W&B login and without WANDB_MODE."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    env.update(
        NETRC=str(tmp_path / "no_netrc"),
        WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"),
        WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
        WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"),
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env
