"""One sampling step of the character models: temperature, top-k, and ids that are never drawn.

``exclude`` lists ids the sampler must never produce, whatever the network's logits say: the text
pipeline passes the vocabulary's unknown symbol (``argen.data.text.CharVocab.unk_id``), which
stands for characters outside the training text, so a sample holds only real characters. An
excluded id gets probability 0 (its logit is -inf) before top-k, so top-k picks among real ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_exclude(exclude: Sequence[int], vocab_size: int) -> list[int]:
    """``exclude`` as a list of ids in [0, vocab_size), leaving at least one id to draw."""
    ids = sorted({int(i) for i in exclude})
    if any(not 0 <= i < vocab_size for i in ids):
        raise ValueError(f"exclude must hold ids in [0, {vocab_size - 1}], got {ids}")
    if len(ids) >= vocab_size:
        raise ValueError(f"exclude {ids} leaves no id of the {vocab_size} to sample")
    return ids


def draw(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    exclude: Sequence[int] = (),
) -> torch.Tensor:
    """One id per row of ``logits`` [n, V]: excluded ids masked out, divided by the temperature,
    the top ``top_k`` kept, then one multinomial draw per row; LongTensor [n]."""
    logits = logits.float() / temperature
    if exclude:
        logits = logits.index_fill(-1, torch.as_tensor(exclude, device=logits.device), -torch.inf)
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
