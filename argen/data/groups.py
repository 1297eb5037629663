"""The data side of grouped optimizer steps (``argen.modules.amortized``): the training loader
hands the module groups of K consecutive batches gathered in one indexing operation.

The module asks for groups by its ``group_steps`` attribute (decided at setup); ``plan_groups``
reads it through the Trainer, so the data layer needs nothing from the module layer. The
batches, their order and the random transforms are exactly those of the ordinary loader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from argen.data.in_memory import TensorBatches


class BatchGroup(NamedTuple):
    """Consecutive training batches gathered at once: ``x`` holds them all, in order.

    ``transform`` (set by the DataModule after the transfer to the device) turns each stored batch
    into model inputs when the module takes it, so a random transform (dynamic binarization)
    draws its random numbers between the same steps as in the ordinary loop.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    batch_size: int
    first_batch: int  # index of the first batch within its epoch
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The ordinary batches ``(x, y)`` of the group, transformed one at a time."""
        xs = self.x.split(self.batch_size)
        ys = [None] * len(xs) if self.y is None else self.y.split(self.batch_size)
        for x, y in zip(xs, ys, strict=True):
            yield (x if self.transform is None else self.transform(x)), y


class GroupIndices(list):
    """The dataset indices of one group, with the epoch index of its first batch."""

    def __init__(self, indices: Sequence[int], first_batch: int) -> None:
        super().__init__(indices)
        self.first_batch = first_batch

    def __reduce__(self):  # keep ``first_batch`` through worker queues
        return GroupIndices, (list(self), self.first_batch)


class GroupSampler(Sampler):
    """Concatenates the ordinary loader's batches into groups of ``layout[i]`` batches.

    It wraps a ``BatchSampler`` over the ordinary loader's own sampler (the DataModule passes its
    ``argen.data.distributed.GlobalBatchSampler``: the same permutation), so the batches are
    identical; the epoch ends with the layout (which may stop before the sampler:
    ``limit_train_batches=N``).
    """

    def __init__(self, batches: BatchSampler, layout: Sequence[int]) -> None:
        self.batches = batches
        self.sampler = batches.sampler  # where Lightning looks for ``set_epoch``
        self.layout = list(layout)

    def __len__(self) -> int:
        return len(self.layout)

    def __iter__(self) -> Iterator[GroupIndices]:
        source = iter(self.batches)
        first = 0
        for size in self.layout:
            indices: list[int] = []
            for _ in range(size):
                indices.extend(next(source))
            yield GroupIndices(indices, first)
            first += size


class GroupedBatches(Dataset):
    """A ``TensorBatches`` whose ``__getitems__`` answers a ``GroupIndices`` with a ``BatchGroup``
    (one ``index_select`` for the whole group)."""

    def __init__(self, data: TensorBatches, batch_size: int) -> None:
        self.data = data
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return self.data[index]

    def __getitems__(self, indices: GroupIndices) -> BatchGroup:
        x, y = self.data.__getitems__(indices)
        return BatchGroup(x, y, self.batch_size, int(indices.first_batch))


def _one_group(group: BatchGroup) -> BatchGroup:
    return group


def group_loader(
    dataset: TensorBatches,
    batch_size: int,
    layout: Sequence[int],
    num_workers: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A shuffling ``DataLoader`` of ``BatchGroup``s cut by ``layout`` (group sizes in batches),
    in the order of ``sampler`` (default: a ``RandomSampler``)."""
    source = RandomSampler(dataset) if sampler is None else sampler
    batches = BatchSampler(source, batch_size, drop_last=False)
    on_device = dataset.images.device.type != "cpu"
    return DataLoader(
        GroupedBatches(dataset, batch_size),
        batch_sampler=GroupSampler(batches, layout),
        collate_fn=_one_group,
        num_workers=0 if on_device else num_workers,
        persistent_workers=num_workers > 0 and not on_device,
    )


def group_layout(num_batches: int, steps: int, cut_at: int | None = None) -> list[int]:
    """Sizes in batches of the groups of an epoch of ``num_batches``: ``steps`` each from the
    start (the last one partial), with one more cut at batch ``cut_at`` (where ``max_steps`` ends)."""
    cuts = set(range(steps, num_batches, steps))
    if cut_at is not None and 0 < cut_at < num_batches:
        cuts.add(cut_at)
    edges = [0, *sorted(cuts), num_batches]
    return [end - start for start, end in zip(edges[:-1], edges[1:], strict=True)]


def plan_groups(trainer: L.Trainer | None, num_examples: int, batch_size: int) -> list[int] | None:
    """The group layout of the training loader, or ``None`` for ordinary batches.

    Groups are asked for by the module being fitted (its ``group_steps``, decided at setup). An
    integer ``limit_train_batches`` shortens the epoch; a ``max_steps`` that ends inside an epoch
    cuts a group there, so training never stops inside the epoch's last group (where Lightning
    would take it for the end of the epoch and validate).
    """
    module = getattr(trainer, "lightning_module", None)
    steps = int(getattr(module, "group_steps", 1))
    if trainer is None or steps <= 1:
        return None
    num_batches = math.ceil(num_examples / batch_size)
    limit = trainer.limit_train_batches
    if isinstance(limit, int):
        num_batches = min(num_batches, limit)
    if num_batches == 0:
        return None
    remaining = trainer.max_steps - trainer.global_step
    cut_at = remaining % num_batches if trainer.max_steps >= 0 and remaining > 0 else None
    return group_layout(num_batches, steps, cut_at)
