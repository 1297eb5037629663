"""Shared machinery of the image DataModules: in-memory splits, device placement, batch format.

Every image DataModule yields batches ``(x, y)``: ``x`` a float tensor [B, C, H, W] of integer levels
``0 .. num_levels - 1`` and ``y`` the labels (``None`` for unlabelled data). Pixels are stored as
uint8 and converted after the batch reaches the device, so a whole dataset costs one byte per
sub-pixel and no normalization can leak into the likelihood.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

import lightning as L
import torch

from argen.data.distributed import eval_sampler, train_sampler
from argen.data.groups import BatchGroup, train_loader
from argen.data.in_memory import TensorBatches, batch_loader

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
# The splits each Lightning stage reads; ``None`` (no stage given) means all of them.
STAGE_SPLITS: dict[str | None, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
    None: SPLITS,
}


def splits_for(stage: str | None) -> tuple[str, ...]:
    """The splits ``setup(stage)`` needs, so that evaluation never fetches the training files."""
    try:
        return STAGE_SPLITS[stage]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}; expected one of {list(STAGE_SPLITS)}") from None


def attached_stage(datamodule: L.LightningDataModule) -> str | None:
    """The stage of the trainer running ``datamodule`` (``trainer.test`` -> "test"), else ``None``.

    Lightning calls ``prepare_data()`` without arguments; this lets it fetch only what the running
    ``fit``/``validate``/``test`` will read. Without a trainer (``run.py`` before training) it is
    ``None``: everything, so that a missing test file is found before hours of training.
    """
    trainer = getattr(datamodule, "trainer", None)
    fn = getattr(getattr(trainer, "state", None), "fn", None)
    value = getattr(fn, "value", None)
    return value if value in STAGE_SPLITS else None


class ImageDataModule(L.LightningDataModule):
    """Base class: subclasses implement ``load_splits`` (and ``fetch`` if files can be downloaded)
    and declare ``name``, ``shape``, ``num_levels``.

    ``setup(stage)`` loads only the splits that stage reads, and ``prepare_data(stage)`` fetches only
    their files, so ``setup("test")`` works with the test files alone.

    Args:
        batch_size: training batch size: the global batch, split evenly over DDP processes.
        eval_batch_size: validation/test batch size per process (default: ``batch_size``).
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
        on_device: keep the tensors on the training device (``"auto"``: on an accelerator when the
            dataset takes under a quarter of its free memory).
        max_examples: keep only the first N examples of every split (quick runs and tests).
    """

    name: str = "images"
    supports_batch_groups = True  # hands a module groups of batches (argen.data.groups)
    shape: tuple[int, int, int] = (1, 28, 28)
    num_levels: int = 256
    num_classes: int | None = None

    def __init__(
        self,
        batch_size: int = 100,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_device: bool | Literal["auto"] = "auto",
        max_examples: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.on_device = on_device
        self.max_examples = max_examples
        self.splits: dict[str, TensorBatches] = {}

    # ------------------------------------------------------------- subclass API
    def load_splits(
        self, splits: Collection[str] = SPLITS
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """Return uint8 images [N, C, H, W] and optional labels for each of ``splits``, fetching
        missing files when allowed."""
        raise NotImplementedError

    def fetch(self, splits: Collection[str]) -> None:
        """Make sure the files of ``splits`` are on disk (download them); nothing by default."""

    def transform_train_images(self, x: torch.Tensor) -> torch.Tensor:
        """Turn a stored training batch into float levels (override for dynamic binarization)."""
        return x.float()

    def net_overrides(self) -> dict:
        """Constructor arguments of the network that only the data can tell (none for images)."""
        return {}

    # ---------------------------------------------------------------- Lightning
    def prepare_data(self, stage: str | None = None) -> None:
        """Fetch the files of the splits ``stage`` needs (by default: the attached trainer's stage,
        or all splits when no trainer runs this module)."""
        self.fetch(splits_for(stage if stage is not None else attached_stage(self)))

    def setup(self, stage: str | None = None) -> None:
        missing = [split for split in splits_for(stage) if split not in self.splits]
        if missing:
            for split, (images, labels) in self.load_splits(tuple(missing)).items():
                if self.max_examples is not None:
                    images = images[: self.max_examples]
                    labels = None if labels is None else labels[: self.max_examples]
                self.splits[split] = TensorBatches(images, labels)
        device = self._target_device()
        if device is not None:
            self.splits = {k: v.to(device) for k, v in self.splits.items()}

    def _target_device(self) -> torch.device | None:
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.on_device is False:
            return None
        device = trainer.strategy.root_device
        if device.type == "cpu":
            return None
        if self.on_device == "auto" and device.type == "cuda":
            size = sum(v.images.numel() for v in self.splits.values())
            free, _ = torch.cuda.mem_get_info(device)
            if size > free / 4:
                return None
        return device

    def train_dataloader(self):
        """Shuffled training batches, or groups of them when the module being fitted asks for
        several steps per call (``argen.data.groups``): the same batches in the same order.

        ``batch_size`` is the global batch; under DDP each process gets its slice of every global
        batch (``argen.data.distributed.GlobalBatchSampler``), so N processes take the steps one
        process would."""
        train = self.splits["train"]
        trainer = getattr(self, "trainer", None)
        sampler = train_sampler(train, self.batch_size, trainer)
        groups = train_loader(trainer, train, self.batch_size, self.num_workers, sampler)
        if groups is not None:  # one process only (argen.data.groups.fallback_reason)
            return groups
        return batch_loader(train, sampler.batch_size, True, self.num_workers, sampler)

    def _eval_loader(self, split: str):
        dataset = self.splits[split]
        sampler = eval_sampler(dataset, getattr(self, "trainer", None))
        return batch_loader(dataset, self.eval_batch_size, False, self.num_workers, sampler)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, BatchGroup):  # transformed batch by batch as the module takes them
            return batch._replace(transform=self.transform_train_images)
        x, y = batch
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            return self.transform_train_images(x), y
        return x.float(), y

    def num_examples(self, split: Split) -> int:
        return len(self.splits[split])
