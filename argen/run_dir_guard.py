"""Refuse, before Hydra writes anything, a command that would mix two runs in one directory.

Hydra rewrites ``<run dir>/.hydra/`` before ``train.py`` starts, so the check has to run earlier:
as a Hydra callback at ``on_run_start``. A directory that already holds a run may only be reused to
resume that same run (same model and data, ``ckpt_path=auto`` or a checkpoint); anything else would
overwrite its summary, save ``last-v1.ckpt`` beside its ``last.ckpt`` or log into its W&B run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from argen.errors import ConfigError, exit_with_error

RUN_MARKERS = (".hydra/config.yaml", "summary.json", "checkpoints")


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


class RunDirGuard(Callback):
    """Hydra callback: ``check_run_dir`` on the run directory before the job writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_run_dir(
                Path(str(config.hydra.run.dir)),
                str(config.model.name),
                str(config.data.name),
                config.get("ckpt_path"),
            )
        except ConfigError as exc:
            exit_with_error(exc)
