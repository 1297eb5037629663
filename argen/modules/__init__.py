"""Every family's LightningModule: ``density`` (images and vectors), ``text`` (characters),
``autoencoder`` (the non-generative baseline), their shared ``base``, the optimizer and schedule
set-up (``optim``) and grouped optimizer steps (``amortized``). No config parsing here.
Checkpoints written before this package existed name the old paths (``argen.density_module``,
...); ``argen.training.legacy`` maps them to these when loading."""

from argen.modules.base import ARModule, SplitMean

__all__ = ["ARModule", "SplitMean"]
