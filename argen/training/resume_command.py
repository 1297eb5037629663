"""The command that resumes a stopped run, as written to its ``summary.json`` (key ``resume``).

It repeats the run's own command-line overrides (so the same model, data and settings are
composed), points ``hydra.run.dir`` at the run directory and asks for ``ckpt_path=auto``, which
resumes from the run's ``last.ckpt`` (see ``argen.training.run.resolve_ckpt_path``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

# Overrides the resume command sets itself.
REPLACED = ("ckpt_path=", "hydra.run.dir=")


def job_overrides() -> list[str]:
    """The current Hydra job's command-line overrides (for a sweep job, its own values); empty
    when the config was not composed by a Hydra app (tests, notebooks)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def resume_command(output_dir: str | Path, overrides: Sequence[str] | None = None) -> str:
    """``python train.py <overrides> hydra.run.dir=<output_dir> ckpt_path=auto``, quoted for a
    POSIX shell; ``overrides`` defaults to the current job's."""
    given = job_overrides() if overrides is None else list(overrides)
    kept = [o for o in given if not o.lstrip("+~").startswith(REPLACED)]
    words = ["python", "train.py", *kept, f"hydra.run.dir={output_dir}", "ckpt_path=auto"]
    return shlex.join(words)
