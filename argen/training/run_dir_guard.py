"""Refuse, before Hydra writes anything, a command that would mix two runs in one directory.

Hydra rewrites ``<run dir>/.hydra/`` before ``train.py`` starts, so the check has to run earlier:
as a Hydra callback at ``on_run_start``. A directory that already holds a run may only be reused to
resume that same run (same model and data, ``ckpt_path=auto`` or a checkpoint); anything else would
overwrite its summary, save ``last-v1.ckpt`` beside its ``last.ckpt`` or log into its W&B run.

Under ``trainer=ddp`` Lightning re-runs ``train.py`` once per extra device, into the directory the
first process has just created; those processes belong to the same run and must pass. The first
process therefore *claims* the directory: it writes a random token into ``<run dir>/.argen_run``
and puts the same token in its environment, which Lightning copies into every process it starts.
A process started with the directory's own token and a non-zero ``LOCAL_RANK`` is one of them; a
later command, even the same one typed again, has no token (or another one) and is checked as
before. Processes that an outside launcher starts (torchrun, SLURM) carry their global rank in
``RANK`` or ``SLURM_PROCID``: only rank 0 checks and claims.
"""

from __future__ import annotations

import os
import secrets
import traceback
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from argen.core.errors import ConfigError, exit_with_error, full_traceback_requested

RUN_MARKERS = (".hydra/config.yaml", "summary.json", "checkpoints")
TOKEN_FILE = ".argen_run"  # the token of the processes that own the run directory
TOKEN_ENV = "ARGEN_RUN_TOKEN"  # the same token, inherited by the processes Lightning starts


def read_token(run_dir: Path) -> str | None:
    """The token of the run that last claimed ``run_dir`` (None when unclaimed or unreadable)."""
    try:
        return (run_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def claim(run_dir: Path) -> str:
    """Mark ``run_dir`` as this run's: a fresh token in the directory and in this process's
    environment (so in every process Lightning relaunches from it)."""
    token = secrets.token_hex(16)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / TOKEN_FILE).write_text(token + "\n")
    os.environ[TOKEN_ENV] = token
    return token


def _env_int(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def is_relaunched_process(run_dir: Path) -> bool:
    """Whether this process is one that the run owning ``run_dir`` started (Lightning's DDP
    relaunch): it carries the directory's token and a local rank above 0."""
    token = os.environ.get(TOKEN_ENV)
    local_rank = _env_int("LOCAL_RANK")
    return (
        bool(token) and local_rank is not None and local_rank > 0 and read_token(run_dir) == token
    )


def launcher_rank() -> int | None:
    """The global rank an outside launcher gave this process (torchrun: ``RANK``; SLURM:
    ``SLURM_PROCID`` of a job with several tasks), or None when no launcher started it."""
    rank = _env_int("RANK")
    if rank is None and (_env_int("SLURM_NTASKS") or 1) > 1:
        rank = _env_int("SLURM_PROCID")
    return rank


def recorded_identity(run_dir: Path) -> tuple[str | None, str | None] | None:
    """(model, data) of the run already in ``run_dir``, or None when it holds no run."""
    if not any((run_dir / marker).exists() for marker in RUN_MARKERS):
        return None
    for source in (run_dir / ".hydra" / "config.yaml", run_dir / "summary.json"):
        if source.is_file():
            try:
                record: Any = yaml.safe_load(source.read_text())
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(record, dict):
                model, data = record.get("model"), record.get("data")
                model = model.get("name") if isinstance(model, dict) else model
                data = data.get("name") if isinstance(data, dict) else data
                return model, data
    return (None, None)


def check_run_dir(run_dir: Path, model: str, data: str, ckpt_path: str | None) -> None:
    """Raise ``ConfigError`` unless this command may write into ``run_dir``."""
    existing = recorded_identity(run_dir)
    if existing is None:
        return
    old_model, old_data = existing
    if (old_model, old_data) != (None, None) and (old_model, old_data) != (model, data):
        raise ConfigError(
            f"{run_dir} holds a model={old_model} data={old_data} run, but this command asks for "
            f"model={model} data={data}: leave hydra.run.dir out to start a new run, or ask for "
            f"model={old_model} data={old_data} to resume that one"
        )
    if ckpt_path is None:
        raise ConfigError(
            f"{run_dir} already holds a run: resume it with ckpt_path=auto, or leave "
            "hydra.run.dir out to start a new run (nothing in it was changed)"
        )


def guard_run_dir(run_dir: Path, model: str, data: str, ckpt_path: str | None) -> None:
    """``check_run_dir`` for the first process of a run, which then claims the directory; the
    other processes of the same run pass (``is_relaunched_process``, ``launcher_rank``)."""
    if is_relaunched_process(run_dir):
        return
    rank = launcher_rank()
    if rank is not None and rank > 0:
        return
    check_run_dir(run_dir, model, data, ckpt_path)
    claim(run_dir)


class RunDirGuard(Callback):
    """Hydra callback: ``guard_run_dir`` on the run directory before the job writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            guard_run_dir(
                Path(str(config.hydra.run.dir)),
                str(config.model.name),
                str(config.data.name),
                config.get("ckpt_path"),
            )
        except ConfigError as exc:
            if full_traceback_requested():
                # Hydra turns an exception raised by a callback into a warning and goes on to run
                # the job in the refused directory: print the traceback, but still stop here.
                traceback.print_exc()
                raise SystemExit(2) from None
            exit_with_error(exc)
