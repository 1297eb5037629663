"""Hydra's own records of a run (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``),
written whole or not at all, like every record argen writes.

Hydra writes them in place with ``open(..., "w")`` before the job starts, so a full disk left a
truncated ``config.yaml`` under its final name, which the run-directory guard, ``argen.compare``
and resuming all read. Hydra has no option for this; its one writer, ``hydra.core.utils.
_save_config`` (private, unchanged from Hydra 1.1 to 1.3), is replaced by an atomic one.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from argen.core.atomic import atomic_write


def save_config_atomically(cfg: DictConfig, filename: str, output_dir: Path) -> None:
    """What ``_save_config`` writes (the config as YAML), through ``argen.core.atomic``."""
    atomic_write(Path(output_dir) / filename, OmegaConf.to_yaml(cfg))


def write_hydra_files_atomically() -> None:
    """Install ``save_config_atomically`` as Hydra's config writer (before ``hydra.main`` runs)."""
    import hydra.core.utils as hydra_utils

    if getattr(hydra_utils, "_save_config", None) is None:
        return  # a Hydra without that writer: nothing to replace
    hydra_utils._save_config = save_config_atomically
