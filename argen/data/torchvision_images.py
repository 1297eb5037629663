"""8-bit image datasets through torchvision: MNIST (256 grey levels) and CIFAR-10.

Pixels stay integers 0..255 end to end; no normalization ever reaches the likelihood. Validation
sets are carved from the training images with a fixed seed: MNIST 50k/10k/10k, CIFAR-10 45k/5k/10k.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from argen.data.download import DataMissingError
from argen.data.image import ImageDataModule


def _split_train_val(
    images: torch.Tensor, labels: torch.Tensor, num_val: int, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, val = perm[num_val:], perm[:num_val]
    return {"train": (images[train], labels[train]), "val": (images[val], labels[val])}


class _TorchvisionImages(ImageDataModule):
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

    def _dataset(self, train: bool):
        raise NotImplementedError

    def _open(self, train: bool):
        try:
            return self._dataset(train)
        except RuntimeError as exc:  # torchvision: "Dataset not found" / failed download
            target = self.data_dir / self.target_name
            raise DataMissingError(target, self.source_url, f"torchvision: {exc}") from exc

    def prepare_data(self) -> None:
        self._open(train=True)
        self._open(train=False)

    def _tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        images, labels = self._tensors(train=True)
        splits: dict = _split_train_val(images, labels, self.num_val, self.split_seed)
        splits["test"] = self._tensors(train=False)
        return splits


class MNISTDataModule(_TorchvisionImages):
    """MNIST with 256 grey levels, 50k/10k/10k, labels 0..9 (for class-conditional models)."""

    name = "mnist"
    shape = (1, 28, 28)
    num_val = 10_000
    source_url = "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz (and the other 3 files)"
    target_name = "MNIST/raw/"

    def _dataset(self, train: bool):
        from torchvision.datasets import MNIST

        return MNIST(str(self.data_dir), train=train, download=self.download)

    def _tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = self._open(train)
        return dataset.data[:, None].contiguous(), dataset.targets.long()


class CIFAR10DataModule(_TorchvisionImages):
    """CIFAR-10, 8-bit RGB, 45k/5k/10k with labels; files in ``<data_dir>/cifar-10-batches-py``."""

    name = "cifar10"
    shape = (3, 32, 32)
    num_val = 5_000
    source_url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    target_name = "cifar-10-python.tar.gz"  # torchvision extracts it on the next start

    def _dataset(self, train: bool):
        from torchvision.datasets import CIFAR10

        return CIFAR10(str(self.data_dir), train=train, download=self.download)

    def _tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = self._open(train)
        images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
        return images, torch.tensor(dataset.targets, dtype=torch.long)
