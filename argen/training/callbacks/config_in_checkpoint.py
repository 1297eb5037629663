"""Store the resolved run configuration inside every checkpoint, so a checkpoint alone is enough to
rebuild its model for evaluation or sampling (``argen.training.checkpoint.load_checkpoint``)."""

from __future__ import annotations

import lightning as L

CONFIG_KEY = "argen_config"


class ConfigInCheckpoint(L.Callback):
    """Adds ``checkpoint["argen_config"]``: a plain dict (safe for ``torch.load(weights_only=True)``)."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = self.config
