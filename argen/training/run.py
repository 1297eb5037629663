"""One training run from a composed Hydra config: build, fit, test on the best checkpoint, summarise.

``train.py`` only composes the config and calls ``train``; everything a run does lives here so that
tests, sweeps and notebooks can call it in-process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
)
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from argen.core.atomic import atomic_write
from argen.core.errors import ConfigError, DiskFullError, find_disk_full
from argen.models.base import count_parameters
from argen.models.sampling_progress import on_row
from argen.training.budget import apply_budget, budget_of, budget_steps, run_budget
from argen.training.callbacks.budget import CPUSecondsBudget, ValidateAtMaxSteps
from argen.training.callbacks.config_in_checkpoint import ConfigInCheckpoint
from argen.training.callbacks.divergence import DivergenceCheck, divergence_of
from argen.training.callbacks.epoch_history import EpochHistory
from argen.training.callbacks.images import RowProgress
from argen.training.callbacks.rng_state import RNGState
from argen.training.callbacks.throughput import Throughput
from argen.training.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint
from argen.training.config_checks import check_config, checkpoint_identity
from argen.training.cpu_memory import keep_freed_memory
from argen.training.flops import flops_per_example
from argen.training.gpu_probe import skip_gpu_probe_without_gpu
from argen.training.legacy import dense_made_layers
from argen.training.loggers import ParamsInConfig
from argen.training.provenance import device_name, provenance
from argen.training.quiet import quiet_libraries
from argen.training.resume_command import resume_command
from argen.training.summary import (
    FINISHED,
    SUMMARY_FILE,
    RunSummary,
    is_text,
    write_summary_file,
)
from argen.training.summary import to_json as summary_json
from argen.training.wandb_mode import choose_wandb_mode, finish_wandb


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group that maps names to ``_target_`` configs."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """Instantiate the DataModule, load its data, and check it agrees with the config's spec."""
    datamodule = instantiate(cfg.data.datamodule)
    datamodule.prepare_data()
    datamodule.setup("fit")
    for key in ("shape", "num_levels"):
        declared, actual = cfg.data.get(key), getattr(datamodule, key, None)
        if declared is None or actual is None:
            continue
        if key == "shape":
            declared, actual = [int(v) for v in declared], [int(v) for v in actual]
        if declared != actual:
            raise ValueError(
                f"data.{key}={declared} in the config, but {type(datamodule).__name__} has {actual}"
            )
    return datamodule


def apply_data_overrides(cfg: DictConfig, datamodule: L.LightningDataModule) -> None:
    """Write the sizes only the data can tell (vocabulary, image shape of a file) into the network's
    config, so that the logged config and the checkpoint's copy of it rebuild the same network."""
    overrides = datamodule.net_overrides() if hasattr(datamodule, "net_overrides") else {}
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"model.module.net.{key}", value, force_add=True)


def build_module(cfg: DictConfig) -> L.LightningModule:
    """Instantiate the LightningModule and its network from ``cfg.model.module``; with
    ``compile=true`` the network is compiled in place (its state dict keys do not change, so
    checkpoints stay interchangeable with eager runs)."""
    module = instantiate(cfg.model.module)
    if cfg.get("compile"):
        module.net.compile()
    return module


WANDB_ID_FILE = "wandb_run_id"
# Strategies whose launcher re-executes the whole command line once per extra process.
RELAUNCHING_STRATEGIES = (
    "ddp",
    "ddp_find_unused_parameters_true",
    "ddp_find_unused_parameters_false",
    "fsdp",
    "deepspeed",
)


def refuse_unsafe_multirun(cfg: DictConfig) -> None:
    """Hydra multirun + a strategy that relaunches the script would make every rank run the whole
    sweep; refuse it before anything starts."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if "submitit" in str(HydraConfig.get().launcher.get("_target_", "")):
        return  # each job gets its own processes from SLURM: nothing is relaunched
    strategy = str(cfg.trainer.get("strategy") or "auto")
    devices, nodes = cfg.trainer.get("devices", 1), cfg.trainer.get("num_nodes", 1) or 1
    several = devices not in (1, "1", [0]) or int(nodes) > 1
    if (
        strategy.startswith(RELAUNCHING_STRATEGIES)
        and not strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook"))
        or (strategy == "auto" and several)
    ):
        raise ConfigError(
            f"--multirun with trainer.strategy={strategy} (devices={devices}, num_nodes={nodes}) is "
            "refused: that strategy relaunches train.py once per process, so every process would "
            "run the whole sweep. Use trainer.strategy=ddp_spawn for multi-device jobs in a sweep, "
            "run each job with its own train.py command, or launch the sweep with "
            "hydra/launcher=submitit_slurm so that each job gets its own processes."
        )


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a checkpoint to resume from, or ``auto`` for this run directory's last.ckpt
    (start fresh when there is none), so a requeued job can simply be run again."""
    requested = cfg.get("ckpt_path")
    if requested is None:
        return None
    output_dir = Path(cfg.paths.output_dir)
    if requested == "auto":
        last = output_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            rank_zero_info(f"Resuming from {last}")
            return str(last)
        rank_zero_info(f"ckpt_path=auto: no {last} yet, starting from scratch")
        return None
    path = Path(requested).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={requested} does not exist. Give the path of a .ckpt (for example "
            "<run dir>/checkpoints/last.ckpt), or ckpt_path=auto with hydra.run.dir=<run dir>."
        )
    return str(path)


def check_resume_checkpoint(cfg: DictConfig, ckpt_path: str) -> dict[str, Any]:
    """The checkpoint must be readable (weights only) and hold the requested model and data;
    otherwise say so now, before W&B or the data start. Returns the config it records."""
    from argen.training.callbacks.config_in_checkpoint import CONFIG_KEY

    recorded = read_checkpoint(ckpt_path).get(CONFIG_KEY)
    if not isinstance(recorded, dict):
        raise CheckpointError(
            f"Checkpoint {ckpt_path} has no '{CONFIG_KEY}': it was not written by argen's train.py"
        )
    have = checkpoint_identity(recorded)
    want = (cfg.model.name, cfg.data.name)
    if have != want:
        raise ConfigError(
            f"ckpt_path={ckpt_path} holds a model={have[0]} data={have[1]} run, but this command "
            f"asks for model={want[0]} data={want[1]}: ask for model={have[0]} data={have[1]} to "
            "resume it, or give a checkpoint of the requested model"
        )
    return recorded


def resume_with_its_layers(cfg: DictConfig, recorded: dict[str, Any], ckpt_path: str) -> None:
    """A MADE run from before ``linear_impl`` had dense layers; its optimizer state has their
    shapes, so the resumed run builds them (``argen.training.legacy.dense_made_layers``)."""
    net = cfg.model.module.get("net")
    if dense_made_layers(recorded) and net is not None and net.get("linear_impl") != "dense":
        with open_dict(cfg):
            net.linear_impl = "dense"
        rank_zero_info(
            f"{ckpt_path} was written by a MADE with dense layers: resuming it with "
            "model.module.net.linear_impl=dense (its optimizer state has their shapes)"
        )


def group_sweep_runs(cfg: DictConfig) -> None:
    """In a multirun, put every job's W&B run in one group named after the sweep directory (unless
    the config names a group) with job type ``sweep`` (unless it names a type other than the
    default ``train``), so the runs table tells sweep members from single runs."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    wandb_cfg = cfg.get("logger") and cfg.logger.get("wandb")
    if not wandb_cfg or not HydraConfig.initialized():
        return
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if not wandb_cfg.get("group"):
        OmegaConf.update(cfg, "logger.wandb.group", Path(HydraConfig.get().sweep.dir).name)
    if wandb_cfg.get("job_type") in (None, "train"):
        OmegaConf.update(cfg, "logger.wandb.job_type", "sweep", force_add=True)


def continue_wandb_run(cfg: DictConfig) -> None:
    """When resuming in a run directory that already has a W&B run, log into that same run."""
    id_file = Path(cfg.paths.output_dir) / WANDB_ID_FILE
    if cfg.get("logger") and cfg.logger.get("wandb") and id_file.exists():
        OmegaConf.update(cfg, "logger.wandb.id", id_file.read_text().strip(), force_add=True)
        OmegaConf.update(cfg, "logger.wandb.resume", "allow", force_add=True)


@rank_zero_only
def remember_wandb_run(trainer: L.Trainer, output_dir: Path) -> None:
    """Write the W&B run id into the run directory, where a resume finds it (continue_wandb_run)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(output_dir / WANDB_ID_FILE, logger.experiment.id)


def stop_status(exc: BaseException) -> tuple[str, int]:
    """(summary status, exit code) of a run that ended by ``exc``: a user stop (Ctrl-C, which
    Lightning turns into ``SystemExit(1)``, or SIGTERM) is ``interrupted``, anything else
    ``failed``; both give W&B and the shell a non-zero code."""
    if isinstance(exc, SIGTERMException):
        return "interrupted", 143
    if isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt)
    ):
        return "interrupted", 130
    return "failed", 1


def build_trainer(
    cfg: DictConfig, config: dict, meter: Throughput | None = None
) -> tuple[L.Trainer, Throughput]:
    """The Trainer with the config's loggers and callbacks plus argen's own (``meter``, which
    measures training, config and random state in checkpoints, epoch history and epochs.csv, the
    CPU-seconds budget; with W&B, the parameter count as a config column)."""
    loggers: list[Logger] = instantiate_group(cfg.get("logger"))
    uses_wandb = any(isinstance(lg, WandbLogger) for lg in loggers)
    if uses_wandb:
        choose_wandb_mode()
    callbacks: list[Callback] = instantiate_group(cfg.get("callbacks"))
    if not loggers:
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    throughput = meter if meter is not None else Throughput()
    history = EpochHistory(Path(cfg.paths.output_dir) / "epochs.csv", throughput)
    callbacks += [throughput, ConfigInCheckpoint(config), RNGState(), history]
    callbacks.append(DivergenceCheck())  # an exploding loss is flagged in the log and summary
    budget = budget_of(cfg)
    if budget is not None:
        callbacks.append(
            CPUSecondsBudget(throughput, budget.value)
            if budget.kind == "cpu_seconds"
            else ValidateAtMaxSteps()
        )
    if uses_wandb:
        callbacks.append(ParamsInConfig())
    extra = {}
    if not any(isinstance(cb, ProgressBar) for cb in callbacks):
        # callbacks.rich_progress_bar=null means no bar: Lightning would add its own unthrottled
        # one, whose refresh thread fails without a bar of the config's to read from.
        extra["enable_progress_bar"] = False
    if not cfg.trainer.get("plugins"):
        extra["plugins"] = [AtomicCheckpointIO()]  # a full disk never leaves a partial checkpoint
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)
    return trainer, throughput


def measure_flops(cfg: DictConfig, module: L.LightningModule, datamodule) -> float | None:
    """Training FLOPs per example (``argen.training.flops``), counted once before training; ``None`` when
    the model's training step has none that can be counted."""
    if not cfg.get("train", True):
        return None
    flops = flops_per_example(module, datamodule)
    if flops is None:
        rank_zero_info(
            f"{cfg.model.name}: no matmul/conv FLOPs counted in its training step; "
            "train_flops is not recorded"
        )
    return flops


def limit_by_budget(
    cfg: DictConfig, trainer: L.Trainer, datamodule, flops: float | None
) -> int | None:
    """Make ``budget.*`` (if any) bound training alone; returns the optimizer steps it allows
    (``None`` for a CPU-seconds budget, which its callback enforces)."""
    budget = budget_of(cfg)
    if budget is None:
        return None
    steps = budget_steps(budget, trainer, datamodule, flops)
    apply_budget(trainer, steps, OmegaConf.select(cfg, "budget.validations", default=None))
    until = f"{steps} optimizer steps" if steps is not None else "the budget is reached"
    rank_zero_info(f"budget.{budget.kind}={budget.value:g}: training runs until {until}")
    return steps


def check_before_start(cfg: DictConfig) -> str | None:
    """Everything that can be checked from the config alone; returns the checkpoint to resume."""
    check_config(cfg)
    refuse_unsafe_multirun(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is not None:
        resume_with_its_layers(cfg, check_resume_checkpoint(cfg, ckpt_path), ckpt_path)
    return ckpt_path


def train(cfg: DictConfig) -> dict[str, Any]:
    """Check the config, fit the model, test the best checkpoint, write ``summary.json``; return
    it. A run that fails or is stopped records so in ``summary.json`` and W&B (non-zero exit)."""
    quiet_libraries()
    output_dir = Path(cfg.paths.output_dir)
    trainer: L.Trainer | None = None
    try:
        ckpt_path = check_before_start(cfg)
        group_sweep_runs(cfg)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        if cfg.get("flush_denormal", True):
            # Denormal floats (weights and Adam moments decaying towards zero) slow CPU arithmetic
            # down many times over; flushing them to zero changes no result that matters.
            torch.set_flush_denormal(True)
        skip_gpu_probe_without_gpu()
        keep_freed_memory()  # no page faults for the same activations at every step (CPU)
        if ckpt_path is not None:
            continue_wandb_run(cfg)
        datamodule = build_datamodule(cfg)
        apply_data_overrides(cfg, datamodule)
        config = OmegaConf.to_container(cfg, resolve=True)
        module = build_module(cfg)
        rank_zero_info(
            f"{cfg.model.name} on {cfg.data.name}: {type(module.net).__name__}, "
            f"{count_parameters(module):,} parameters"
        )
        flops = measure_flops(cfg, module, datamodule)
        meter = Throughput(flops, text=getattr(module, "data_kind", None) == "text")
        trainer, throughput = build_trainer(cfg, config, meter)
        limit_by_budget(cfg, trainer, datamodule, flops)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
        remember_wandb_run(trainer, output_dir)
        start = time.perf_counter()
        if cfg.get("train", True):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        train_seconds = time.perf_counter() - start
        test_metrics: dict[str, float] = {}
        if cfg.get("test", True):
            checkpoint = trainer.checkpoint_callback
            best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
            if not best:
                rank_zero_info("No best checkpoint was saved: testing the current weights.")
            results = trainer.test(
                module, datamodule=datamodule, ckpt_path=best or None, weights_only=True
            )
            test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        summary = summarize(cfg, module, trainer, throughput, train_seconds, test_metrics)
        write_summary(summary, output_dir, trainer)
    except BaseException as exc:
        # A failed or stopped run says so (compare lists it); the checkpoints already written stay.
        status, code = stop_status(exc)
        record = {
            "model": cfg.model.name,
            "data": cfg.data.name,
            "seed": cfg.get("seed"),  # as given: the error may be that it is no valid seed
            "status": status,
            "error": " ".join(f"{type(exc).__name__}: {exc}".split()),
            "output_dir": str(output_dir),
        }
        if status == "interrupted":
            record["resume"] = resume_command(output_dir)
        try:
            write_summary(record, output_dir, trainer)
        except DiskFullError:
            pass  # the earlier summary.json stays whole; the error below says the disk is full
        finish_wandb(exit_code=code)
        if status == "interrupted":
            rank_zero_info(f"Run stopped; resume it with: {record['resume']}")
            raise SystemExit(code) from None
        full = None if isinstance(exc, DiskFullError) else find_disk_full(exc)
        if full is not None:  # a write that did not say which file: name the run directory
            raise DiskFullError(full.filename2 or full.filename or output_dir) from exc
        raise
    sync_hint = finish_wandb(exit_code=0)
    report_end(summary, output_dir, sync_hint)
    return summary


def report_end(summary: dict[str, Any], output_dir: Path, sync_hint: str | None) -> None:
    """The run's last line: where it is, its test result, and how to upload it when offline."""
    parts = [f"Run {output_dir}"]
    if summary.get("test_nll") is not None:
        unit, per = ("nats/char", "bits/char") if is_text(summary) else ("nats", "bits/dim")
        bits = summary.get("test_bits_per_dim")
        bits_text = f" ({bits:.4f} {per})" if bits is not None else ""
        parts.append(f"test NLL {summary['test_nll']:.4f} {unit}{bits_text}")
    elif summary.get("test_recon_loss") is not None:
        parts.append(f"test reconstruction loss {summary['test_recon_loss']:.4f}")
    if sync_hint:
        parts.append(sync_hint)
    rank_zero_info(" | ".join(parts))


def summarize(
    cfg: DictConfig,
    module: L.LightningModule,
    trainer: L.Trainer,
    throughput: Throughput,
    train_seconds: float,
    test_metrics: dict[str, float],
) -> RunSummary:
    """The run's headline numbers, in the units the README documents (``argen.training.summary``)."""
    summary = RunSummary(
        model=cfg.model.name,
        data=cfg.data.name,
        data_kind=str(getattr(module, "data_kind", "image")),  # "text": per-character units
        seed=int(cfg.seed),
        params=count_parameters(module),
        epochs=int(trainer.current_epoch),
        train_seconds=round(train_seconds, 3),
        train_examples_per_sec=throughput.examples_per_sec,
        output_dir=str(cfg.paths.output_dir),
        status=FINISHED,
    )
    record: dict[str, Any] = dict(summary)
    record.update(measured_cost(cfg, trainer, throughput))
    record.update(provenance())
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_score is not None:
        # the best value of the monitored validation metric (val/nll for density models)
        record[checkpoint.monitor.replace("/", "_")] = float(checkpoint.best_model_score)
    record.update({k.replace("/", "_"): v for k, v in test_metrics.items()})
    if hasattr(module, "timed_sample") and cfg.get("summary", {}).get("num_samples", 0):
        count = int(cfg.summary.num_samples)
        with on_row(RowProgress(f"Sampling {count} examples to time sampling", lambda: False)):
            _, seconds = module.timed_sample(count)
        record["sample_seconds_per_example"] = seconds
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            record["wandb_run"] = logger.experiment.path
            record["wandb_dir"] = str(Path(logger.experiment.dir).parent)
    return summary_json(record)


def measured_cost(cfg: DictConfig, trainer: L.Trainer, meter: Throughput) -> dict[str, Any]:
    """The budget the run was given and what its training measured (``argen.training.summary``)."""
    record: dict[str, Any] = {}
    budget = run_budget(cfg)
    if budget is not None:
        record.update(budget_kind=budget.kind, budget_value=budget.value)
    counts = meter.counts(trainer)
    for key in ("examples_seen", "characters_seen", "optimizer_steps", "train_flops"):
        if key in counts:
            record[key] = counts[key]
    if meter.flops_per_example is not None:
        record["flops_per_example"] = meter.flops_per_example
    record.update(
        cpu_seconds=round(float(counts["cpu_seconds"]), 3),
        wall_seconds=round(float(counts["wall_seconds"]), 3),
        threads=torch.get_num_threads(),
        device=device_name(trainer.strategy.root_device),
    )
    return record


# summary.json keys that are also plain top-level keys of the W&B run summary (the runs table's
# columns); every test_<metric> is too, as test/<metric>.
PLAIN_SUMMARY_KEYS = (
    "params",
    "epochs",
    "train_seconds",
    "train_examples_per_sec",
    "sample_seconds_per_example",
    "budget_value",
    "examples_seen",
    "optimizer_steps",
    "train_flops",
    "cpu_seconds",
    "wall_seconds",
)
# Text values of summary.json that W&B gets too, as summary/<key>: the budget and the provenance.
TEXT_SUMMARY_KEYS = (
    "data_kind",  # the one text value compare needs: what the units count
    "budget_kind",
    "device",
    "git_commit",
    "command",
    "argen_version",
    "torch_version",
    "lightning_version",
)


def wandb_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The W&B run summary entries of ``summary``: every number, and ``data_kind``, as
    ``summary/<key>`` (what ``argen.compare wandb:...`` reads), and the headline ones as plain keys: ``params``,
    ``train_examples_per_sec``, ``sample_seconds_per_example``, ... and ``test/<metric>``."""
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float)}
    entries = {f"summary/{k}": v for k, v in numbers.items()}
    entries.update(
        {f"summary/{k}": summary[k] for k in TEXT_SUMMARY_KEYS if isinstance(summary.get(k), str)}
    )
    entries.update({k: numbers[k] for k in PLAIN_SUMMARY_KEYS if k in numbers})
    entries.update(
        {f"test/{k[len('test_') :]}": v for k, v in numbers.items() if k.startswith("test_")}
    )
    return entries


@rank_zero_only
def write_summary(summary: dict[str, Any], output_dir: Path, trainer: L.Trainer | None) -> None:
    """Write ``summary.json`` (``argen.training.summary``'s layout, keeping an earlier file) and the run's
    W&B summary entries. The file is written whole before it takes the name (``argen.core.atomic``):
    when the disk is full the earlier ``summary.json`` stays as it was (``DiskFullError``). A run
    whose loss exploded gets ``diverged: true`` and the reason (``argen.training.callbacks.divergence``)."""
    record = write_summary_file(output_dir / SUMMARY_FILE, {**summary, **divergence_of(trainer)})
    entries = wandb_summary({k: v for k, v in record.items() if k != "version"})
    for logger in trainer.loggers if trainer is not None else []:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(entries)
