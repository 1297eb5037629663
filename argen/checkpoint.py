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
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} does not exist: give the path of a .ckpt file "
            "(<run dir>/checkpoints/last.ckpt or best-*.ckpt)"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or objects that weights-only loading refuses
        raise CheckpointError(describe_load_failure(path, exc)) from None


def describe_load_failure(path: Path, exc: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed. torch's own message advises
    retrying with ``weights_only=False``, which would run pickled code: that advice is dropped."""
    text = str(exc)
    if "Weights only load failed" in text or "Unsupported global" in text:
        return (
            f"Checkpoint {path} holds Python objects beyond tensors and plain containers; argen "
            "never unpickles those (that could run arbitrary code). Use a checkpoint written by "
            "argen's train.py"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return (
        f"Checkpoint {path} cannot be read ({first}): it is truncated or not a PyTorch "
        "checkpoint; use another checkpoint of the run (last.ckpt or best-*.ckpt)"
    )


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
            f"Checkpoint {path} does not match the model its config builds: "
            f"{len(missing)} missing and {len(unexpected)} unexpected weights "
            f"(first: {(missing or unexpected)[0]}); was it written by another version of argen?"
        )
    module.eval()
    return module, cfg
