"""Exact evaluation under DDP: every example scored exactly once.

Lightning's default ``DistributedSampler`` pads the dataset with repeated examples so that every
process gets the same number; that is harmless for training but biases an evaluation average.
``EvalShardSampler`` gives each process a disjoint share and pads nothing; the metrics (sums and
counts) are then reduced across processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler


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
