"""The order of the data on one process or many: training per global batch, exact evaluation.

**Training.** ``data.datamodule.batch_size`` is the *global* batch: the examples of one optimizer
step summed over all processes. ``GlobalBatchSampler`` fixes the order of an epoch from the seed
and the epoch number alone (never from the global random generator, which sampling images on rank
0 moves): one permutation of the whole training set, cut into global batches; under DDP with N
processes, process r takes the r-th of N equal slices of every global batch, i.e. a batch of
``batch_size / N``. DDP averages the processes' gradients, so a step on N processes is the step
one process takes on the whole global batch, up to float rounding. Lightning's own
``DistributedSampler`` instead deals out one permutation example by example, pads the epoch with
repeated examples, and draws a different permutation from one process.

The epoch's last global batch may be partial (``len % batch_size`` examples): its slices then
differ by at most one example, and each process averages over its own slice, so that one step
weighs examples slightly unequally; with fewer examples than processes it is skipped under DDP (a
process with no batch would stall the others). With ``len`` a multiple of ``batch_size`` (binarized
MNIST's 50,000 with the default 100) every step is exact.

**Evaluation.** Lightning's default sampler pads the dataset with repeated examples so that every
process gets the same number; that biases an evaluation average. ``EvalShardSampler`` gives each
process a disjoint share and pads nothing; the metrics (sums and counts) are then reduced across
processes. ``eval_batch_size`` is per process: it changes memory and speed, never a result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from argen.core.errors import ConfigError


def global_seed() -> int:
    """The run's seed as ``lightning.seed_everything`` recorded it (0 when none was set)."""
    try:
        return int(os.environ.get("PL_GLOBAL_SEED", 0))
    except ValueError:
        return 0


class GlobalBatchSampler(DistributedSampler):
    """This process's examples of every global batch, in order (see the module docstring).

    A ``DistributedSampler``, so Lightning keeps it under DDP (and calls ``set_epoch``); batch its
    indices with ``batch_size`` (the per-process batch) and ``drop_last=False``.

    Args:
        dataset: what is sampled (only its length is used).
        global_batch_size: examples per optimizer step over all processes; a multiple of
            ``num_replicas``.
        num_replicas, rank: the processes and this one's global rank.
        seed: the permutation's seed (default: the run's seed, ``global_seed``); epoch ``e``
            uses ``seed + e``.
    """

    def __init__(
        self,
        dataset: Sized,
        global_batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int | None = None,
    ) -> None:
        if global_batch_size < 1 or global_batch_size % num_replicas:
            raise ConfigError(
                f"data.datamodule.batch_size={global_batch_size} is the global batch, split "
                f"evenly over {num_replicas} processes: give a multiple of {num_replicas}"
            )
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=global_seed() if seed is None else int(seed),
        )
        self.global_batch_size = int(global_batch_size)
        self.batch_size = self.global_batch_size // num_replicas  # per process

    def order(self) -> torch.Tensor:
        """The epoch's permutation of the whole dataset (the same on every process)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.dataset), generator=generator)  # type: ignore[arg-type]

    def _keeps(self, size: int) -> bool:
        """Whether a global batch of ``size`` examples is trained on (each process needs one)."""
        return size >= self.num_replicas

    def global_batches(self) -> list[torch.Tensor]:
        """The epoch's global batches (dataset indices), as every process sees them."""
        batches = list(self.order().split(self.global_batch_size))
        return [batch for batch in batches if self._keeps(len(batch))]

    def __iter__(self) -> Iterator[int]:
        for batch in self.global_batches():
            yield from batch.tensor_split(self.num_replicas)[self.rank].tolist()

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.global_batch_size)  # type: ignore[arg-type]
        last = len(torch.arange(rest).tensor_split(self.num_replicas)[self.rank])
        return full * self.batch_size + (last if self._keeps(rest) else 0)


def train_sampler(dataset: Sized, global_batch_size: int, trainer=None) -> GlobalBatchSampler:
    """The training sampler of this process of ``trainer`` (one process when there is none)."""
    world, rank = 1, 0
    if trainer is not None:
        world, rank = int(trainer.world_size), int(trainer.global_rank)
    return GlobalBatchSampler(dataset, global_batch_size, world, rank)


class EvalShardSampler(DistributedSampler):
    """Indices ``rank, rank + world, ...`` in order, without padding or shuffling.

    It subclasses ``DistributedSampler`` so that Lightning keeps it instead of installing its own.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.shard = list(range(rank, len(dataset), num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard)

    def __len__(self) -> int:
        return len(self.shard)


def eval_sampler(dataset: Dataset, trainer) -> EvalShardSampler | None:
    """An ``EvalShardSampler`` when ``trainer`` runs several processes, else ``None``."""
    if trainer is None or trainer.world_size <= 1 or not dist.is_available():
        return None
    return EvalShardSampler(dataset, trainer.world_size, trainer.global_rank)
