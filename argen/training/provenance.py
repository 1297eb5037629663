"""Where a run's numbers came from, for its ``summary.json``: the code (git commit, whether the
tree had uncommitted changes), the command that reproduces the run, and the library versions.

Every key is measured from the running process; one that cannot be (git not installed, argen not
run from a git checkout, a config not composed by Hydra) is left out, never guessed.
"""

from __future__ import annotations

import shlex
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning
import torch

from argen.training.resume_command import job_overrides

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout argen is imported from
GIT_TIMEOUT_S = 10


def _git(*args: str) -> str | None:
    """``git <args>``'s output in the checkout argen runs from; ``None`` if git cannot say."""
    try:
        result = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(SOURCE_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``git_commit`` (HEAD) and ``git_dirty`` (tracked files differ from it), when known."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {}
    state: dict[str, Any] = {"git_commit": commit.strip()}
    status = _git("status", "--porcelain", "--untracked-files=no")
    if status is not None:
        state["git_dirty"] = bool(status.strip())
    return state


def run_command() -> str | None:
    """``python train.py <overrides>`` of this Hydra job (a sweep job's own values), quoted for a
    POSIX shell; ``None`` when the config was not composed by a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return shlex.join(["python", "train.py", *job_overrides()])


def versions() -> dict[str, str]:
    """``argen_version``, ``torch_version`` and ``lightning_version``."""
    found = {"torch_version": torch.__version__, "lightning_version": lightning.__version__}
    try:
        found["argen_version"] = metadata.version("argen")
    except metadata.PackageNotFoundError:
        pass
    return dict(sorted(found.items()))


def provenance() -> dict[str, Any]:
    """All of the above that could be found, under their summary.json names."""
    record: dict[str, Any] = git_state()
    command = run_command()
    if command is not None:
        record["command"] = command
    record.update(versions())
    return record


def device_name(device: torch.device) -> str:
    """The accelerator's name (``cuda: NVIDIA H100 ...``) or the CPU's model (``cpu: ...``, from
    /proc/cpuinfo where there is one), as the running process sees it."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return f"cpu: {line.split(':', 1)[1].strip()}"
        except OSError:
            pass
        import platform

        return f"cpu: {platform.processor() or platform.machine()}"
    return device.type
