"""OmegaConf resolvers used by conf/: registered once, before Hydra composes the config."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from omegaconf import OmegaConf


def _run_id() -> str:
    """A short random id; cached, so every reference within one process agrees."""
    return uuid.uuid4().hex[:6]


def _merge_tags(*items: str | Iterable[str]) -> list[str]:
    """Flatten names and lists of names into one list without repeats (for W&B tags)."""
    tags: list[str] = []
    for item in items:
        for tag in [item] if isinstance(item, str) else item:
            if str(tag) not in tags:
                tags.append(str(tag))
    return tags


def _if(condition: bool, then, otherwise):
    """``${argen_if:${model.conditional},${data.num_classes},null}``: a value only when asked for."""
    return then if condition else otherwise


def register_resolvers() -> None:
    """Register ``argen_run_id``, ``merge_tags`` and ``argen_if`` (idempotent)."""
    if not OmegaConf.has_resolver("argen_if"):
        OmegaConf.register_new_resolver("argen_if", _if)
    if not OmegaConf.has_resolver("argen_run_id"):
        OmegaConf.register_new_resolver("argen_run_id", _run_id, use_cache=True)
    if not OmegaConf.has_resolver("merge_tags"):
        OmegaConf.register_new_resolver("merge_tags", _merge_tags)
