"""Rebuild a trained model from a checkpoint alone, loading tensors only (no pickled code runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from argen.callbacks.config_in_checkpoint import CONFIG_KEY


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the file named and the reason."""


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``: plain containers and tensors, never arbitrary code."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"Checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or objects that weights-only loading refuses
        raise CheckpointError(f"Could not read checkpoint {path} weights-only: {exc}") from exc


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[L.LightningModule, DictConfig]:
    """Return the LightningModule (eval mode, weights loaded) and the run's resolved config."""
    checkpoint = read_checkpoint(path, map_location)
    if CONFIG_KEY not in checkpoint:
        raise CheckpointError(
            f"Checkpoint {path} has no '{CONFIG_KEY}': it was not written by argen's train.py, "
            "so the model it holds cannot be rebuilt"
        )
    cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    module = instantiate(cfg.model.module)
    module.on_load_checkpoint(checkpoint)
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"Checkpoint {path} does not match the model its config builds: missing {missing}, "
            f"unexpected {unexpected}"
        )
    module.eval()
    return module, cfg
