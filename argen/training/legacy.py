"""Configs written by older argen versions, brought up to the current code paths.

A checkpoint or a run directory keeps the config it was trained with, whose ``_target_`` strings
name the classes of its day. When argen's modules moved into packages (``argen.modules``,
``argen.training``, ``argen.report``, ``argen.core``) and ``CharRNNModule`` became ``TextModule``,
those strings went stale; ``upgrade_targets`` rewrites them on load, so an old checkpoint still
rebuilds its model and an old run still groups with new runs of the same set-up in
``argen.compare``. Nothing is rewritten on disk.
"""

from __future__ import annotations

from typing import Any

# Old dotted path (a module, or a class) -> the current one; the longest match wins.
MOVED: dict[str, str] = {
    "argen.text_module.CharRNNModule": "argen.modules.text.TextModule",
    "argen.text_module": "argen.modules.text",
    "argen.density_module": "argen.modules.density",
    "argen.autoencoder_module": "argen.modules.autoencoder",
    "argen.optim": "argen.modules.optim",
    "argen.callbacks.inspect": "argen.inspect.callback",
    "argen.callbacks": "argen.training.callbacks",
}
_BY_LENGTH = sorted(MOVED, key=len, reverse=True)


def current_target(target: str) -> str:
    """``target`` (a dotted path) with an old module or class path replaced by today's."""
    for old in _BY_LENGTH:
        if target == old or target.startswith(old + "."):
            return MOVED[old] + target[len(old) :]
    return target


def upgrade_targets(config: Any) -> Any:
    """A copy of a plain config (dicts and lists, as loaded from YAML or a checkpoint) with every
    ``_target_`` string made current."""
    if isinstance(config, dict):
        return {
            key: current_target(value)
            if key == "_target_" and isinstance(value, str)
            else upgrade_targets(value)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [upgrade_targets(item) for item in config]
    return config


def dense_made_layers(config: dict[str, Any]) -> bool:
    """Whether a run's config built a MADE before MADE had ``linear_impl`` (its single-mask layers
    were then dense): resuming it needs ``linear_impl=dense``, the shapes of its optimizer state."""
    net = ((config.get("model") or {}).get("module") or {}).get("net") or {}
    return str(net.get("_target_", "")).endswith("made.MADE") and "linear_impl" not in net
