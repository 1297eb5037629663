"""Images from ``.npz`` files of uint8 arrays, so researchers can train on their own images.

The archive holds ``<split>_images`` (and optionally ``<split>_labels``) for split in train/val/test,
in NHWC or NCHW layout. A missing validation split is carved from the training images with a fixed
seed. The CIFAR-10 subset in shared/data (``train_images``, ``test_images``) loads as it is.
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from argen.data.download import ChecksumError, DataMissingError, InvalidDataError, sha256_file
from argen.data.image import SPLITS, ImageDataModule


def to_nchw(images: np.ndarray, layout: str, source: str) -> np.ndarray:
    """Accept [N, H, W], [N, H, W, C] or [N, C, H, W] uint8 and return [N, C, H, W].

    ``layout="auto"`` takes the axis of size 1, 3 or 4 as the channels; when both candidate axes
    could be channels the layout must be given.
    """
    if images.dtype != np.uint8:
        raise InvalidDataError(
            f"{source}: images must be uint8 (levels 0..255), got {images.dtype}"
        )
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise InvalidDataError(
            f"{source}: images must be [N, H, W(, C)] or [N, C, H, W], got {images.shape}"
        )
    if layout == "auto":
        channel_sizes = (1, 3, 4)
        last, second = images.shape[-1] in channel_sizes, images.shape[1] in channel_sizes
        if last == second:
            raise InvalidDataError(
                f"{source}: cannot tell the channel axis of images shaped {images.shape}; "
                "set data.datamodule.layout=nhwc or nchw"
            )
        layout = "nhwc" if last else "nchw"
    if layout not in ("nhwc", "nchw"):
        raise InvalidDataError(f"layout must be 'auto', 'nhwc' or 'nchw', got {layout!r}")
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2) if layout == "nhwc" else images)


def read_npz_splits(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The ``<split>_images`` and optional ``<split>_labels`` arrays of every split in ``path``."""
    with np.load(path) as archive:
        names = set(archive.files)
        if "train_images" not in names or "test_images" not in names:
            raise InvalidDataError(
                f"{path} must contain 'train_images' and 'test_images' (and optionally "
                f"'val_images' and '<split>_labels'); it has {sorted(names)}"
            )
        return {
            split: (
                archive[f"{split}_images"],
                archive[f"{split}_labels"] if f"{split}_labels" in names else None,
            )
            for split in SPLITS
            if f"{split}_images" in names
        }


def check_consistent(
    path: Path,
    raw: dict[str, tuple[np.ndarray, np.ndarray | None]],
    nchw: dict[str, tuple[np.ndarray, np.ndarray | None]],
) -> None:
    """Every split must have the training images' channels and size, and one label per image.

    Checked when the file is read, so a mismatch stops the run before training, not at the test.
    """
    train_shape = nchw["train"][0].shape[1:]
    train_raw = raw["train"][0].shape
    for split, (images, labels) in nchw.items():
        if images.shape[1:] != train_shape:
            raise InvalidDataError(
                f"{path}: {split}_images has shape {raw[split][0].shape} but train_images has "
                f"shape {train_raw}, i.e. images of (C, H, W) = {tuple(images.shape[1:])} vs "
                f"{tuple(train_shape)}; every split must have the same channels, height and width"
            )
        if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
            raise InvalidDataError(
                f"{path}: {split}_labels has shape {labels.shape} but {split}_images has "
                f"{len(images)} images; give one integer label per image (or no {split}_labels)"
            )


class ImageNPZDataModule(ImageDataModule):
    """Integer images from a ``.npz`` file; 256 levels unless ``num_levels`` says otherwise.

    Args:
        path: the ``.npz`` file (relative paths are resolved against ``data_dir``).
        num_levels: levels per sub-pixel (pixel values must lie in 0..num_levels-1).
        layout: ``"auto"``, ``"nhwc"`` or ``"nchw"``.
        val_fraction: share of the training images held out for validation when the file has no
            ``val_images``.
        sha256: optional checksum of the file, verified before loading.
    """

    name = "image_npz"

    def __init__(
        self,
        path: str | Path,
        data_dir: str | Path = ".",
        num_levels: int = 256,
        layout: str = "auto",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        sha256: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_device: bool | Literal["auto"] = "auto",
        max_examples: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, on_device, max_examples)
        path = Path(path).expanduser()
        self.path = path if path.is_absolute() else Path(data_dir).expanduser() / path
        self.num_levels = int(num_levels)
        self.layout = layout
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.sha256 = sha256
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] | None = None
        if self.path.exists():
            self._read()

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        if self._arrays is not None:
            return self._arrays
        if not self.path.is_file():
            raise DataMissingError(
                self.path,
                None,
                "an image_npz file is never downloaded",
                advice="Pass data.datamodule.path=/path/to/images.npz (relative paths are under "
                "paths.data_dir), or put the file at that path.",
            )
        if self.sha256 and (actual := sha256_file(self.path)) != self.sha256:
            raise ChecksumError(self.path, self.sha256, actual)
        try:
            raw = read_npz_splits(self.path)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, InvalidDataError):
                raise
            raise InvalidDataError(
                f"{self.path} cannot be read as a .npz of uint8 arrays ({type(exc).__name__}: "
                f"{exc}); save it with numpy.savez(path, train_images=..., test_images=...)"
            ) from None
        arrays = {
            split: (to_nchw(images, self.layout, f"{self.path}:{split}"), labels)
            for split, (images, labels) in raw.items()
        }
        check_consistent(self.path, raw, arrays)
        if "val" not in arrays:
            images, labels = arrays["train"]
            perm = np.random.default_rng(self.split_seed).permutation(len(images))
            num_val = max(1, round(self.val_fraction * len(images)))
            val, train = perm[:num_val], perm[num_val:]
            arrays["val"] = (images[val], None if labels is None else labels[val])
            arrays["train"] = (images[train], None if labels is None else labels[train])
        for split, (images, _) in arrays.items():
            if images.size and images.max() >= self.num_levels:
                raise InvalidDataError(
                    f"{self.path}:{split} has pixel value {images.max()}, but num_levels="
                    f"{self.num_levels}; set data.num_levels to at least {int(images.max()) + 1}"
                )
        self.shape = tuple(arrays["train"][0].shape[1:])
        labels = [lab for _, lab in arrays.values() if lab is not None]
        self.num_classes = int(max(lab.max() for lab in labels)) + 1 if labels else None
        self._arrays = arrays
        return arrays

    def net_overrides(self) -> dict:
        """The image shape is whatever the file holds."""
        return {"shape": list(self._read()["train"][0].shape[1:])}

    def fetch(self, splits: Collection[str]) -> None:
        """Nothing to download: only check that the file is there and readable."""
        self._read()

    def load_splits(
        self, splits: Collection[str] = SPLITS
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        return {
            split: (
                torch.from_numpy(images),
                None if labels is None else torch.from_numpy(labels.astype(np.int64)),
            )
            for split, (images, labels) in self._read().items()
            if split in splits
        }
