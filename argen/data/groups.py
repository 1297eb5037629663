"""Grouped optimizer steps, the one place that decides them: when a fit may hand a module groups
of K consecutive batches for one ``training_step`` (``steps_per_group``), where an epoch's groups
are cut (``plan_groups``), and the loader that gathers each group in one indexing operation
(``group_loader``, ``BatchGroup``). The module side, which runs a group as K ordinary optimizer
steps, is ``argen.modules.amortized``; it imports from here, never the other way.

The interface between the two sides, by duck typing so that no import runs up the layers:

* a DataModule that can hand out groups sets ``supports_batch_groups = True``, builds its
  training loader with ``train_loader`` (``None``: ordinary batches) and, in
  ``on_after_batch_transfer``, leaves a ``BatchGroup`` to the module with its ``transform`` set;
* a LightningModule that takes groups asks ``steps_per_group(trainer, K)`` in its ``setup`` and
  keeps the answer as ``group_steps`` (1: ordinary batches), which ``plan_groups`` reads through
  the Trainer.

The batches, their order and the random transforms are exactly those of the ordinary loader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import lightning as L
import torch
from lightning.pytorch.callbacks import GradientAccumulationScheduler
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from argen.data.in_memory import TensorBatches


# ------------------------------------------------------------------------------ when it applies
def fallback_reason(trainer: L.Trainer) -> str | None:
    """Why this Trainer's settings need the ordinary loop (``None``: groups keep them exact)."""
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        return f"strategy {type(trainer.strategy).__name__} (one process on one device only)"
    limit = trainer.limit_train_batches  # 1.0 (float): all batches; an int: that many
    if isinstance(limit, float) and limit != 1.0 or isinstance(limit, int) and limit < 1:
        return f"limit_train_batches={limit} (a fraction of an epoch)"
    # Lightning leaves ``val_check_interval`` unset when it is a time ("00:00:10:00")
    interval = getattr(trainer, "val_check_interval", None)
    if interval is None:
        return "val_check_interval as a time (validation on a clock, within an epoch)"
    if not (isinstance(interval, float) and interval == 1.0):
        return f"val_check_interval={interval} (validation within an epoch)"
    if trainer.accumulate_grad_batches != 1 or any(
        isinstance(callback, GradientAccumulationScheduler) for callback in trainer.callbacks
    ):
        # Lightning counts accumulation windows, and writes step logs, by its own batches
        return f"accumulate_grad_batches={trainer.accumulate_grad_batches}"
    if trainer.overfit_batches or trainer.fast_dev_run:
        return "overfit_batches/fast_dev_run"
    return None


def steps_per_group(trainer: L.Trainer, requested: int) -> int:
    """The optimizer steps per ``training_step`` a module asking for ``requested`` gets in this
    fit: ``requested``, or 1 (ordinary batches) when the DataModule cannot hand out groups or the
    Trainer's settings need the ordinary loop (``fallback_reason``)."""
    if not getattr(trainer.datamodule, "supports_batch_groups", False):
        return 1
    return 1 if fallback_reason(trainer) is not None else max(int(requested), 1)


# ------------------------------------------------------------------------------ the groups
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

    Groups are asked for by the module being fitted (its ``group_steps``, decided at setup by
    ``steps_per_group``). An
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


def train_loader(
    trainer: L.Trainer | None,
    dataset: TensorBatches,
    batch_size: int,
    num_workers: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader | None:
    """The training loader of ``BatchGroup``s when the module being fitted takes groups, in the
    order of ``sampler`` (the ordinary loader's), else ``None``: the DataModule's ordinary one."""
    layout = plan_groups(trainer, len(dataset), batch_size)
    if layout is None:
        return None
    return group_loader(dataset, batch_size, layout, num_workers, sampler)
