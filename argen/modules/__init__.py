"""What every family's LightningModule shares (``argen.modules.base``).

The families' modules stay where configs and checkpoints name them (``argen.density_module``,
``argen.text_module``, ``argen.autoencoder_module``): a checkpoint's ``_target_`` keeps loading.
"""

from argen.modules.base import ARModule, SplitMean

__all__ = ["ARModule", "SplitMean"]
