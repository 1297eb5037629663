"""Fake run directories for the argen.compare tests: what train.py (or results/) leaves behind."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from argen.compare import main

ROOT = Path(__file__).resolve().parents[1]


def run_config(model: str, data: str, seed: int, net: dict | None, workers: int) -> dict:
    """A composed config as Hydra saves it (only the parts compare reads)."""
    return {
        "seed": seed,
        "model": {"name": model, "module": {"net": net or {"hidden": 16}}},
        "data": {"name": data, "datamodule": {"batch_size": 32, "num_workers": workers}},
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
) -> Path:
    """A run directory: its config (.hydra/config.yaml as train.py writes it, or config.yaml beside
    the summary as results/ keeps it) and, unless ``summary`` is None, summary.json."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = yaml.safe_dump(run_config(model, data, seed, net, workers))
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
