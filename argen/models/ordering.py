"""Variable orderings of the fully connected ARMs (FVSBN, NADE, MADE), in one place.

An ordering is a LongTensor ``order`` [D] with ``order[k]`` the index of the k-th variable
generated (``rank_of`` inverts it); ``model.ordering`` is that tensor in all three models (FVSBN's
buffer, NADE's first evaluation ordering, the active mask's buffer in MADE). It is given, as the
constructor argument ``ordering`` (the config key), as ``"natural"`` (raster order, ``arange(D)``),
``"random"`` (a permutation drawn from a seed: every model's argument is ``ordering_seed``) or,
for FVSBN and NADE, an explicit permutation. FVSBN and NADE draw ``torch.randperm(D)`` from a
generator seeded with ``ordering_seed``; MADE, which needs an ordering per mask, seeds mask k's
generator with ``ordering_seed * 1_000_003 + k`` (so its mask 0 for seed 0 is theirs for seed 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Ordering = str | Sequence[int]
ORDERINGS = ("natural", "random")


def draw_ordering(kind: str, num_dims: int, generator: torch.Generator) -> torch.Tensor:
    """``"natural"`` (draws nothing) or ``"random"`` (one ``randperm`` from ``generator``)."""
    if kind == "natural":
        return torch.arange(num_dims)
    if kind == "random":
        return torch.randperm(num_dims, generator=generator)
    raise ValueError(f"ordering must be 'natural' or 'random', got {kind!r}")


def resolve_ordering(ordering: Ordering, num_dims: int, seed: int = 0) -> torch.Tensor:
    """Turn ``"natural"``, ``"random"`` (permutation seeded by ``seed``) or an explicit list into a
    LongTensor ``order`` with ``order[k]`` = index of the k-th variable generated."""
    if isinstance(ordering, str):
        if ordering not in ORDERINGS:
            raise ValueError(
                f"ordering must be 'natural', 'random' or a list of indices, got {ordering!r}"
            )
        return draw_ordering(ordering, num_dims, torch.Generator().manual_seed(int(seed)))
    order = torch.as_tensor(list(ordering), dtype=torch.long)
    if order.ndim != 1 or sorted(order.tolist()) != list(range(num_dims)):
        raise ValueError(
            f"an explicit ordering must be a permutation of 0..{num_dims - 1} "
            f"(one entry per variable), got {list(ordering)}"
        )
    return order


def rank_of(order: torch.Tensor) -> torch.Tensor:
    """Inverse permutation: ``rank[i]`` is the position of variable ``i`` in ``order``."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return rank
