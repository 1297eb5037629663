"""Checkpoints: written atomically during training, and read back (tensors only, no pickled code
runs) to rebuild a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from fsspec.implementations.local import LocalFileSystem
from hydra.utils import instantiate
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from argen.core.atomic import atomic_file
from argen.core.errors import CheckpointError
from argen.training.callbacks.config_in_checkpoint import CONFIG_KEY
from argen.training.legacy import upgrade_targets


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with local files written by ``argen.core.atomic``: the checkpoint
    goes to a temporary file beside its final name and is renamed once complete.

    Lightning's own writer stages the file in the system's temporary directory and moves it over,
    which across file systems is a copy into the final name: a full disk left a truncated
    ``best-*.ckpt`` that looked valid. Here a failed write leaves the previous file of that name
    (``last.ckpt``) and every other checkpoint as they were, and raises ``DiskFullError`` naming
    the file when the disk is full. Remote paths (``s3://``, ...) keep Lightning's writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_file(Path(path), "wb") as handle:
            torch.save(checkpoint, handle)


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


# How a file torch.save wrote begins: a zip archive (the default since torch 1.6) or a pickle
# (protocol 2 and up, the legacy format).
TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")


def looks_like_torch_file(path: Path) -> bool:
    """Whether ``path`` begins as a file written by ``torch.save`` does (it may still be cut
    short)."""
    with path.open("rb") as f:
        head = f.read(4)
    return head.startswith(TORCH_FILE_STARTS)


def describe_load_failure(path: Path, exc: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed. torch's own message advises
    retrying with ``weights_only=False``, which would run pickled code: that advice is dropped."""
    text = str(exc)
    if not looks_like_torch_file(path):
        return (
            f"Checkpoint {path} is not a checkpoint (not a file torch.save writes): give a .ckpt "
            "written by train.py (<run dir>/checkpoints/last.ckpt or best-*.ckpt)"
        )
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
    cfg = OmegaConf.create(upgrade_targets(checkpoint[CONFIG_KEY]))  # old module paths too
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
