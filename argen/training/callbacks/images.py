"""Image grids (samples, reconstructions, completions) logged during validation.

Any LightningModule that implements ``visuals(n) -> dict[name, Tensor[N, C, H, W]]`` (integer
levels) and has ``num_levels`` gets one PNG grid per visual in the run directory and, when a W&B
logger is attached, its grids logged as uint8 images (W&B renders float images black) together
with the epoch, W&B's step metric for ``images/*`` (``argen.training.loggers``): the media slider walks
through training one validation at a time. Visuals that belong together are one W&B panel:
originals | masked | completions as ``images/completion``, originals | reconstructions as
``images/reconstruction``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from argen.models.sampling_progress import on_row

log = logging.getLogger(__name__)


class SamplingStopped(Exception):
    """Raised between sampled rows when the trainer was asked to stop (SIGTERM)."""


class RowProgress:
    """Logs ``rows done / total`` at most every ``interval`` seconds while a grid is sampled, and
    abandons sampling at the next row once ``should_stop()`` turns true (a SIGTERM from a cluster
    scheduler must not wait minutes for a PixelRNN grid)."""

    def __init__(self, what: str, should_stop, interval: float = 5.0) -> None:
        self.what, self.should_stop, self.interval = what, should_stop, interval
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if self.should_stop():
            raise SamplingStopped
        now = time.monotonic()
        if now - self.last >= self.interval or (
            done == total and now - self.start >= self.interval
        ):
            self.last = now
            log.info(f"{self.what}: row {done}/{total} ({now - self.start:.0f} s)")


def to_uint8_grid(images: torch.Tensor, num_levels: int, nrow: int = 8) -> torch.Tensor:
    """Integer levels [N, C, H, W] -> one uint8 grid [H', W', C] in 0..255."""
    scaled = images.detach().float().cpu() / (num_levels - 1)
    grid = make_grid(scaled, nrow=nrow, padding=2, pad_value=0.5)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)


# Visuals shown side by side in one W&B panel: (panel name, the visuals from left to right).
PANELS = (
    ("completion", ("originals", "masked", "completions")),
    ("reconstruction", ("originals", "reconstructions")),
)
PANEL_GAP = 8  # white pixels between the grids of a panel


def side_by_side(grids: list[np.ndarray], gap: int = PANEL_GAP) -> np.ndarray:
    """uint8 grids [H, W, C] -> one image with the grids left to right, separated by white
    columns; shorter grids are padded at the bottom with white."""
    height = max(grid.shape[0] for grid in grids)
    channels = grids[0].shape[2]
    parts: list[np.ndarray] = []
    for index, grid in enumerate(grids):
        if index:
            parts.append(np.full((height, gap, channels), 255, dtype=np.uint8))
        pad = np.full((height - grid.shape[0], grid.shape[1], channels), 255, dtype=np.uint8)
        parts.append(np.concatenate([grid, pad]))
    return np.concatenate(parts, axis=1)


def wandb_panels(grids: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, str | None]]:
    """W&B key -> (image, caption): the grouped visuals of ``PANELS`` as one panel each, every other
    visual on its own."""
    panels: dict[str, tuple[np.ndarray, str | None]] = {}
    grouped: set[str] = set()
    for panel, names in PANELS:
        if all(name in grids for name in names):
            panels[f"images/{panel}"] = (
                side_by_side([grids[name] for name in names]),
                " | ".join(names),
            )
            grouped.update(names)
    for name, grid in grids.items():
        if name not in grouped:
            panels[f"images/{name}"] = (grid, None)
    return panels


class ImageLogger(L.Callback):
    """Log the module's visuals every ``every_n_epochs`` validation epochs (rank zero only)."""

    def __init__(self, num_images: int = 64, nrow: int = 8, every_n_epochs: int = 1) -> None:
        self.num_images = num_images
        self.nrow = nrow
        self.every_n_epochs = max(1, int(every_n_epochs))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not hasattr(pl_module, "visuals"):
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self.log_visuals(trainer, pl_module, f"epoch_{trainer.current_epoch:04d}")

    @rank_zero_only
    def log_visuals(self, trainer: L.Trainer, pl_module: L.LightningModule, tag: str) -> None:
        if self.num_images <= 0 or trainer.received_sigterm:
            return
        folder = Path(trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        progress = RowProgress(
            f"Sampling {self.num_images} images ({tag})", lambda: trainer.received_sigterm
        )
        try:
            with on_row(progress):
                visuals = pl_module.visuals(self.num_images)
        except SamplingStopped:
            log.info(f"Stop requested: sample grids of {tag} skipped")
            return
        grids: dict[str, np.ndarray] = {}
        for name, images in visuals.items():
            grid = to_uint8_grid(images, pl_module.num_levels, self.nrow)
            save_image(grid.permute(2, 0, 1).float() / 255, folder / f"{name}_{tag}.png")
            grids[name] = grid.numpy()
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if wandb_loggers:
            import wandb

            # a list of one image per key, as Lightning's log_image logs them
            logged: dict[str, object] = {
                key: [wandb.Image(image, caption=caption)]
                for key, (image, caption) in wandb_panels(grids).items()
            }
            logged["epoch"] = trainer.current_epoch  # the images' step metric
            for logger in wandb_loggers:
                logger.log_metrics(logged, step=trainer.global_step)
