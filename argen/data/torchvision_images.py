"""8-bit image datasets in torchvision's file layout: MNIST (256 grey levels) and CIFAR-10.

Pixels stay integers 0..255 end to end; no normalization ever reaches the likelihood. Validation
sets are carved from the training images with a fixed seed: MNIST 50k/10k/10k, CIFAR-10 45k/5k/10k.
The files are read by ``mnist_files``/``cifar_files`` (not torchvision), one split at a time, so
testing needs only the test files.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Literal

import torch

from argen.data.cifar_files import cifar10_batches, load_cifar10
from argen.data.image import SPLITS, ImageDataModule
from argen.data.mnist_files import fetch_mnist, load_mnist


def _split_train_val(
    images: torch.Tensor, labels: torch.Tensor, num_val: int, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, val = perm[num_val:], perm[:num_val]
    return {"train": (images[train], labels[train]), "val": (images[val], labels[val])}


class _TorchvisionImages(ImageDataModule):
    """Shared logic: a labelled 'train' file split into train/val, and a 'test' file."""

    num_levels = 256
    num_classes = 10
    num_val = 0

    def __init__(
        self,
        data_dir: str | Path,
        download: bool = True,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_device: bool | Literal["auto"] = "auto",
        max_examples: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, on_device, max_examples)
        self.data_dir = Path(data_dir).expanduser()
        self.download = download
        self.split_seed = split_seed

    def _tensors(self, source: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [N, C, H, W] and labels of the 'train' or 'test' files, fetched if needed."""
        raise NotImplementedError

    def fetch(self, splits: Collection[str]) -> None:
        for source in sorted({"test" if split == "test" else "train" for split in splits}):
            self._fetch(source)

    def _fetch(self, source: str) -> None:
        raise NotImplementedError

    def load_splits(
        self, splits: Collection[str] = SPLITS
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        out: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        if "train" in splits or "val" in splits:
            images, labels = self._tensors("train")
            carved = _split_train_val(images, labels, self.num_val, self.split_seed)
            out.update({split: carved[split] for split in ("train", "val") if split in splits})
        if "test" in splits:
            out["test"] = self._tensors("test")
        return out


class MNISTDataModule(_TorchvisionImages):
    """MNIST with 256 grey levels, 50k/10k/10k, labels 0..9 (for class-conditional models);
    files in ``<data_dir>/MNIST/raw``."""

    name = "mnist"
    shape = (1, 28, 28)
    num_val = 10_000

    def _fetch(self, source: str) -> None:
        fetch_mnist(self.data_dir, source, self.download)

    def _tensors(self, source: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = load_mnist(self.data_dir, source, self.download)
        return images[:, None].contiguous(), labels


class CIFAR10DataModule(_TorchvisionImages):
    """CIFAR-10, 8-bit RGB, 45k/5k/10k with labels; files in ``<data_dir>/cifar-10-batches-py``
    (extracted from ``<data_dir>/cifar-10-python.tar.gz``, downloaded if absent)."""

    name = "cifar10"
    shape = (3, 32, 32)
    num_val = 5_000

    def _fetch(self, source: str) -> None:
        cifar10_batches(self.data_dir, source, self.download)

    def _tensors(self, source: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_cifar10(self.data_dir, source, self.download)
