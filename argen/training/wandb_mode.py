"""Choose W&B's mode before a run starts: online when logged in, otherwise offline with a notice.

With no API key and no ``WANDB_MODE``, ``wandb.init`` would raise (non-interactive) or prompt; a
researcher on a cluster node without credentials should still get a complete local run that can be
uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc (where ``wandb login`` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not netrc_path.exists():
        return False
    try:
        hosts = netrc.netrc(str(netrc_path)).hosts
    except (netrc.NetrcParseError, OSError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
    return host in hosts


def choose_wandb_mode() -> str:
    """Set ``WANDB_MODE=offline`` when it is unset and no credentials exist; return the mode."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if has_wandb_credentials():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    rank_zero_info(
        "W&B: no API key found, logging offline (upload later with `wandb sync <run dir>/wandb/"
        "offline-run-*`, or review with `wandb leet <run dir>/wandb`)."
    )
    return "offline"


def finish_wandb(exit_code: int = 0) -> str | None:
    """End the active W&B run (so the next Hydra multirun job starts a run of its own) with the
    job's exit code: non-zero marks it failed in W&B. Returns the ``wandb sync`` command for an
    offline run, else None."""
    try:
        import wandb
    except ImportError:  # logger=csv on a machine without W&B (a lent GPU)
        return None

    run = wandb.run
    if run is None:
        return None
    offline = run.settings.mode == "offline" or getattr(run, "offline", False)
    run_dir = Path(run.dir).parent
    wandb.finish(exit_code=exit_code)
    # Marks this part as ended (argen.training.callbacks.epoch_history tells killed parts by its absence).
    (run_dir / "argen_exit_code").write_text(f"{exit_code}\n")
    return f"W&B offline: wandb sync {run_dir}" if offline else None
