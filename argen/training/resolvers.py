"""OmegaConf resolvers used by conf/: registered once, before Hydra composes the config."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


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


def _models(data: str, num_levels: int | None = None, *, _root_: DictConfig) -> str:
    """``${argen_models:image,${data.num_levels}}``: the registered density models that can model
    that data, comma-separated for a Hydra sweep (``model: ${argen_models:...}``), found in the
    config directories the running Hydra composed from (``argen.training.registry``)."""
    from argen.training.registry import CONF_DIR, models_for

    sources = OmegaConf.select(_root_, "hydra.runtime.config_sources", default=None) or []
    dirs = [
        Path(s.path) for s in sources if s.schema == "file" and (Path(s.path) / "model").is_dir()
    ]
    names: list[str] = []
    for conf_dir in dirs or [CONF_DIR]:
        names += [n for n in models_for(data, num_levels, conf_dir=conf_dir) if n not in names]
    return ",".join(sorted(names))


def register_resolvers() -> None:
    """Register ``argen_run_id``, ``merge_tags``, ``argen_if`` and ``argen_models``
    (idempotent)."""
    if not OmegaConf.has_resolver("argen_if"):
        OmegaConf.register_new_resolver("argen_if", _if)
    if not OmegaConf.has_resolver("argen_models"):
        OmegaConf.register_new_resolver("argen_models", _models)
    if not OmegaConf.has_resolver("argen_run_id"):
        OmegaConf.register_new_resolver("argen_run_id", _run_id, use_cache=True)
    if not OmegaConf.has_resolver("merge_tags"):
        OmegaConf.register_new_resolver("merge_tags", _merge_tags)
