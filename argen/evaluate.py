"""Exact test (or validation) NLL of a checkpoint: ``python -m argen.evaluate CKPT``.

Prints nats per example and bits per dimension (nats/char and bits/char for text models), computed
on every example of the split. Only the evaluated split's data files are needed (Lightning calls the
DataModule's ``prepare_data``/``setup`` for the test or validation stage alone). An unusable
checkpoint or missing data file is reported in one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from argen.checkpoint import load_checkpoint
from argen.errors import exit_with_error, find_user_error
from argen.resolvers import register_resolvers


def evaluate(
    checkpoint: str | Path,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
) -> dict[str, float]:
    """Metrics of ``checkpoint`` on ``split`` ('test' or 'val')."""
    register_resolvers()
    module, cfg = load_checkpoint(checkpoint)
    data_cfg = OmegaConf.to_container(cfg.data.datamodule)
    if data_dir is not None and "data_dir" in data_cfg:
        data_cfg["data_dir"] = data_dir
    if batch_size is not None and "eval_batch_size" in data_cfg:
        data_cfg["eval_batch_size"] = batch_size
    datamodule = instantiate(data_cfg)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    results = run(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m argen.evaluate", description=__doc__)
    parser.add_argument("checkpoint", help="a .ckpt written by train.py")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--data-dir", help="override the data directory stored in the checkpoint")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        metrics = evaluate(
            args.checkpoint, args.split, args.data_dir, args.batch_size, args.accelerator
        )
    except Exception as exc:  # a user's mistake is one line; anything else keeps its traceback
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        exit_with_error(user_error)
    if args.json:
        print(json.dumps(metrics))
        return
    table = Table(title=f"{args.checkpoint} ({args.split} split)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()
