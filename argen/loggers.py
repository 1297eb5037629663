"""Lightning's W&B logger without its stray ``anonymous`` argument and W&B's own console chatter.

Lightning always passes ``anonymous=None`` to ``wandb.init``, which makes every run print W&B's
"anonymous setting has no effect" warning. W&B's end-of-run history dump is silenced too: a run ends
with argen's own line (run directory, test NLL, the ``wandb sync`` hint when offline).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger


class QuietWandbLogger(WandbLogger):
    """``WandbLogger`` that passes no ``anonymous`` and runs W&B with ``silent=True`` unless the
    config gives ``settings`` of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("settings", {"silent": True})
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
