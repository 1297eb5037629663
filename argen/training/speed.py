"""Timing train.py's path outside train.py: the speed benchmarks' shared measurement.

``benchmarks/throughput.py``, ``benchmarks/epoch_time.py`` and ``benchmarks/loop_overhead.py``
compose a training config, build its DataModule and LightningModule as ``argen.training.run``
does, and time optimizer steps under ``lightning.Trainer.fit`` with no logger, checkpointing or
(unless asked) progress bar. That code lives here, once, so a script imports only ``argen``.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the checkout's Hydra configs
PROGRESS_BARS = ("none", "rich", "throttled")


def compose_train(overrides: list[str], conf_dir: Path = CONF_DIR) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, data from ``$ARGEN_DATA_DIR``, without its
    ``hydra`` node (a script builds the objects itself; no run directory is made)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from argen.training.resolvers import register_resolvers

    register_resolvers()
    data_dir = os.environ.get("ARGEN_DATA_DIR", str(conf_dir.parent / "data"))
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.data_dir={data_dir}",
                "paths.output_dir=/tmp/argen_throughput",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_memory_mb(device: Any) -> float:
    """Peak memory in MiB: CUDA's allocator peak on a GPU, the process's peak RSS on a CPU."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress_bars(kind: str, file: Any = None) -> list:
    """The progress bar of a timed run: none, Lightning's stock Rich bar, or argen's default.

    Both Rich bars are told they draw on a terminal (``file``, stdout by default), so they render
    as they would for a person.
    """
    from lightning.pytorch.callbacks import RichProgressBar

    from argen.training.callbacks.progress import ThrottledRichProgressBar

    if kind not in PROGRESS_BARS:
        raise ValueError(f"progress bar {kind!r} is not one of {PROGRESS_BARS}")
    terminal = {"console_kwargs": {"force_terminal": True, "width": 120, "file": file}}
    if kind == "rich":
        return [RichProgressBar(**terminal)]
    if kind == "throttled":
        return [ThrottledRichProgressBar(**terminal)]
    return []


def measure_training(cfg: DictConfig, warmup: int, steps: int, progress_bar: str = "none") -> dict:
    """Examples per second of ``cfg``'s model on train.py's path, over ``steps`` optimizer steps
    after ``warmup`` (rounded up to a group boundary when the module groups ``steps_per_call``
    steps per Lightning step), with peak memory and minor page faults per step."""
    import lightning as L
    import torch

    from argen.training.run import apply_data_overrides, build_datamodule, build_module

    L.seed_everything(0, verbose=False)
    datamodule = build_datamodule(cfg)
    apply_data_overrides(cfg, datamodule)  # sizes only the data can tell (image shape of a file)
    module = build_module(cfg)
    group = max(int(getattr(module, "steps_per_call", 1)), 1)
    warmup = -(-warmup // group) * group
    marks: list[tuple[float, int, int]] = []  # (time, optimizer steps taken, page faults)

    def synchronize() -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize()

    class StepClock(L.Callback):
        # With several steps per training_step (steps_per_call) batches start on group boundaries:
        # the clock starts at the first one past the warm-up and counts optimizer steps.
        def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
            if not marks and trainer.global_step >= warmup:
                synchronize()
                marks.append((time.perf_counter(), trainer.global_step, minor_faults()))

        def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
            synchronize()
            marks.append((time.perf_counter(), trainer.global_step, minor_faults()))

    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress_bar != "none",
        enable_model_summary=False,
        callbacks=[StepClock(), *progress_bars(progress_bar)],
    )
    trainer.fit(module, datamodule=datamodule)
    batch = cfg.data.datamodule.batch_size
    (start, first_step, first_faults), (end, last_step, last_faults) = marks
    return {
        "examples_per_sec": (last_step - first_step) * batch / (end - start),
        "peak_memory_mb": peak_memory_mb(module.device),
        "minor_faults_per_step": (last_faults - first_faults) / (last_step - first_step),
        "steps_per_call": int(getattr(module, "group_steps", 1)),
        "cuda_graph": getattr(getattr(module, "_stepper", None), "graph", None) is not None,
    }
