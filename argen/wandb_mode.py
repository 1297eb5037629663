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


def finish_wandb() -> None:
    """End the active W&B run so that the next Hydra multirun job starts a run of its own."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
