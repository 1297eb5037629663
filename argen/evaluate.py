"""Exact test (or validation) NLL of a checkpoint: ``python -m argen.evaluate CKPT``.

Prints nats per example and bits per dimension (nats/char and bits/char for text models), computed
on every example of the split. Only the evaluated split's data files are needed (Lightning calls the
DataModule's ``prepare_data``/``setup`` for the test or validation stage alone). An unusable
checkpoint or missing data file is reported in one line (exit code 2).

``--wandb`` also logs the metrics as one W&B run of job type ``eval`` (offline, to be uploaded
with ``wandb sync``, when there is no W&B login), finished exactly once: with a non-zero exit code
when the evaluation fails, so W&B shows it as failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from argen.core.errors import exit_with_error, find_user_error
from argen.training.checkpoint import load_checkpoint
from argen.training.quiet import quiet_libraries
from argen.training.resolvers import register_resolvers

EVAL_JOB_TYPE = "eval"


def evaluate(
    checkpoint: str | Path,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
) -> dict[str, float]:
    """Metrics of ``checkpoint`` on ``split`` ('test' or 'val')."""
    quiet_libraries()
    register_resolvers()
    module, cfg = load_checkpoint(checkpoint)
    return evaluate_module(module, cfg, split, data_dir, batch_size, accelerator)


def evaluate_module(
    module: L.LightningModule,
    cfg: DictConfig,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
) -> dict[str, float]:
    """Metrics of a loaded ``module`` on ``split`` of the data its config ``cfg`` names."""
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


def eval_run_config(
    cfg: DictConfig, checkpoint: str | Path, split: str, params: int
) -> dict[str, Any]:
    """The eval run's W&B config: the checkpoint's model and data config and seed (the same columns
    as its training run), the checkpoint, the split, the parameter count and, when the checkpoint
    lies in a run directory that logged to W&B, that training run's id."""
    from argen.training.run import WANDB_ID_FILE

    config = OmegaConf.to_container(cfg, resolve=True)
    columns: dict[str, Any] = {k: config[k] for k in ("model", "data", "seed") if k in config}
    path = Path(checkpoint).resolve()
    columns.update(checkpoint=str(path), split=split, params=params)
    id_file = path.parent.parent / WANDB_ID_FILE  # <run dir>/checkpoints/<name>.ckpt
    if id_file.is_file():
        columns["train_wandb_run_id"] = id_file.read_text().strip()
    return columns


def failure_exit_code(exc: BaseException) -> int:
    """The exit code a failed evaluation ends its W&B run (and the process) with."""
    if find_user_error(exc) is not None:
        return 2
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) and exc.code else 1
    return 1


def evaluate_to_wandb(
    checkpoint: str | Path,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
    project: str = "argen",
    entity: str | None = None,
    directory: str | Path | None = None,
) -> tuple[dict[str, float], str | None]:
    """Evaluate ``checkpoint`` as one W&B run of job type ``eval`` (offline without a login) and
    return (metrics, the ``wandb sync`` hint of an offline run). An unusable checkpoint fails
    before W&B starts; a failure after that finishes the run once, with a non-zero exit code."""
    import wandb

    from argen.training.wandb_mode import choose_wandb_mode, finish_wandb

    register_resolvers()
    module, cfg = load_checkpoint(checkpoint)
    params = sum(p.numel() for p in module.parameters())
    choose_wandb_mode()
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    model, data = str(cfg.model.name), str(cfg.data.name)
    run = wandb.init(
        project=project,
        entity=entity,
        job_type=EVAL_JOB_TYPE,
        name=f"eval-{model}-{data}-{split}",
        tags=[model, data, EVAL_JOB_TYPE],
        dir=None if directory is None else str(directory),
        config=eval_run_config(cfg, checkpoint, split, params),
        settings=wandb.Settings(silent=True, console="off"),
    )
    try:
        metrics = evaluate_module(module, cfg, split, data_dir, batch_size, accelerator)
        run.log(metrics)
        run.summary.update({"params": params})
    except BaseException as exc:
        finish_wandb(exit_code=failure_exit_code(exc))
        raise
    return metrics, finish_wandb(exit_code=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m argen.evaluate", description=__doc__)
    parser.add_argument("checkpoint", help="a .ckpt written by train.py")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--data-dir", help="override the data directory stored in the checkpoint")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the metrics as one W&B run (job type eval); offline without a W&B login",
    )
    parser.add_argument("--wandb-project", default="argen", help="W&B project (default: argen)")
    parser.add_argument("--wandb-entity", help="W&B entity (default: yours)")
    parser.add_argument(
        "--wandb-dir", help="where the W&B run files go, under <dir>/wandb (default: W&B's own)"
    )
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    sync_hint = None
    try:
        if args.wandb:
            metrics, sync_hint = evaluate_to_wandb(
                args.checkpoint,
                args.split,
                args.data_dir,
                args.batch_size,
                args.accelerator,
                args.wandb_project,
                args.wandb_entity,
                args.wandb_dir,
            )
        else:
            metrics = evaluate(
                args.checkpoint, args.split, args.data_dir, args.batch_size, args.accelerator
            )
    except Exception as exc:  # a user's mistake is one line; anything else keeps its traceback
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        exit_with_error(user_error)
    if sync_hint:
        print(sync_hint, file=sys.stderr)  # stdout stays the metrics alone
    if args.json:
        print(json.dumps(metrics))
        return
    print_metrics(Console(), args.checkpoint, args.split, metrics)


def print_metrics(console: Console, checkpoint: str, split: str, metrics: dict[str, float]) -> None:
    """The checkpoint on a line of its own, never wrapped (a pipe is 80 columns wide: a long path
    as a table title was broken mid-word), then a table of the metrics."""
    console.print(f"{checkpoint} ({split} split)", soft_wrap=True, markup=False, highlight=False)
    table = Table()
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)


if __name__ == "__main__":
    main()
