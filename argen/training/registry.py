"""The registered models: one per ``conf/model/<name>.yaml``, each with what its network class
declares it can model (``capabilities``, ``argen.models.base``).

A model is its two files, its module in ``argen/models/`` and its config; nothing else lists
models. The config checks, the comparison sweep (``${argen_models:...}``, ``argen.training.resolvers``)
and the tests ask this registry which models there are and what each can model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import get_class
from omegaconf import OmegaConf

from argen.models.base import IMAGE, Capabilities, DataKind, capabilities_of

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the checkout's Hydra configs


@dataclass(frozen=True)
class RegisteredModel:
    """One ``conf/model/<name>.yaml``: its name, its network's class path and what it models."""

    name: str
    net_target: str  # module.net._target_ of the config
    capabilities: Capabilities

    def can_model(self, data: DataKind, num_levels: int | None = None) -> bool:
        """Whether the model can model ``data`` with ``num_levels`` levels (images)."""
        return self.capabilities.refusal(data, num_levels) is None


def net_target(config_path: Path) -> str:
    """``module.net._target_`` of a model config file (read as written, nothing resolved)."""
    target = OmegaConf.select(OmegaConf.load(config_path), "module.net._target_")
    if not isinstance(target, str) or not target:
        raise ValueError(f"{config_path} sets no module.net._target_ (the network's class)")
    return target


@functools.cache
def registered_models(conf_dir: Path = CONF_DIR) -> dict[str, RegisteredModel]:
    """Every model config of ``conf_dir/model``, by name, with its network class's capabilities
    (the class is imported, nothing is built)."""
    models = {}
    for path in sorted((Path(conf_dir) / "model").glob("*.yaml")):
        target = net_target(path)
        models[path.stem] = RegisteredModel(path.stem, target, capabilities_of(get_class(target)))
    return models


def models_for(
    data: DataKind = IMAGE,
    num_levels: int | None = None,
    density_only: bool = True,
    conf_dir: Path = CONF_DIR,
) -> list[str]:
    """Names of the registered models (density models only, unless ``density_only=False``) that
    can model ``data`` with ``num_levels`` levels, sorted."""
    return [
        name
        for name, model in registered_models(Path(conf_dir)).items()
        if model.can_model(data, num_levels) and (model.capabilities.density or not density_only)
    ]
