"""Checks of a composed config that run before data loading, W&B or training start.

Every check raises ``ConfigError`` with one line that names the offending setting and says what to
do, so a typo costs seconds, not a download, a W&B run and an epoch.
"""

from __future__ import annotations

from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from argen.core.errors import ConfigError
from argen.models.base import IMAGE, TEXT, Capabilities, capabilities_of
from argen.training.budget import given_budgets
from argen.training.registry import models_for

NOUNS = {TEXT: "text", IMAGE: "images"}
HINTS = {
    TEXT: "a text dataset (data=tinyshakespeare, or data=text data.datamodule.path=FILE)",
    IMAGE: "an image dataset (data=binarized_mnist, data=mnist, data=cifar10, data=image_npz)",
}


def data_kind(cfg: DictConfig) -> str:
    """Image data declares its number of levels; text data has a vocabulary instead."""
    return IMAGE if "num_levels" in cfg.data else TEXT


def model_class(cfg: DictConfig) -> type:
    """The network class the model config builds (``model.module.net._target_``), imported."""
    target = OmegaConf.select(cfg, "model.module.net._target_")
    if not target:
        raise ConfigError(
            f"model={cfg.model.get('name')} has no model.module.net._target_ to build"
        )
    try:
        return get_class(target)
    except ImportError as exc:
        raise ConfigError(
            f"model={cfg.model.get('name')}: model.module.net._target_={target} cannot be "
            f"imported ({exc})"
        ) from None


def model_capabilities(cfg: DictConfig) -> Capabilities:
    """What the config's network class declares it can model (``argen.models.base``)."""
    try:
        return capabilities_of(model_class(cfg))
    except TypeError as exc:
        raise ConfigError(f"model={cfg.model.get('name')}: {exc}") from None


def check_model_matches_data(cfg: DictConfig) -> None:
    """The model's declared capabilities admit the data: its kind (images or text), its number of
    levels (binary-only models) and, for ``model.conditional=true``, labels."""
    model, data = cfg.model.get("name"), cfg.data.get("name")
    capabilities, have = model_capabilities(cfg), data_kind(cfg)
    wanted = capabilities.data
    if wanted != have:
        raise ConfigError(
            f"model={model} models {NOUNS[wanted]}, but data={data} is {NOUNS[have]}: "
            f"use {HINTS[wanted]}, or a model of {NOUNS[have]}"
        )
    levels = OmegaConf.select(cfg, "data.num_levels", throw_on_resolution_failure=False)
    if have == IMAGE and isinstance(levels, int) and capabilities.refusal(have, levels):
        others = ", ".join(f"model={name}" for name in models_for(IMAGE, levels))
        raise ConfigError(
            f"model={model} cannot model data={data}: {model_class(cfg).__name__} models binary "
            f"data (num_levels=2), but the data has num_levels={levels}: use a binary dataset "
            f"(data=binarized_mnist) or a model of {levels} levels ({others})"
        )
    if OmegaConf.select(cfg, "model.conditional", throw_on_resolution_failure=False) is True:
        if not capabilities.labels:
            raise ConfigError(f"model={model} cannot condition on class labels: drop conditional")
        if OmegaConf.select(cfg, "data.num_classes", throw_on_resolution_failure=False) is None:
            raise ConfigError(
                f"model.conditional=true needs labelled data, but data={data} has no "
                "data.num_classes: use labelled data (data=mnist, data=cifar10) or drop it"
            )


def check_resolves(cfg: DictConfig) -> None:
    """Every interpolation resolves and no mandatory value (``???``) is left unset."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = exc.full_key or "a value"
        raise ConfigError(
            f"{key} must be set (it is ??? in the config): add {key}=... to the command line"
        ) from None
    except InterpolationResolutionError as exc:
        raise ConfigError(
            f"config value {exc.full_key} cannot be resolved ({exc.msg}): "
            f"model={cfg.model.get('name')} and data={cfg.data.get('name')} may not fit together"
        ) from None


def _positive(cfg: DictConfig, key: str, minimum: float, inclusive: bool = True) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{key}={value} is invalid: it must be a number {bound}")


NUMERIC_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("data.datamodule.batch_size", 1, True),
    ("data.datamodule.eval_batch_size", 1, True),
    ("data.datamodule.seq_len", 1, True),
    ("data.datamodule.max_examples", 1, True),
    ("model.module.optimizer.lr", 0, False),
    ("model.module.optimizer.weight_decay", 0, True),
    ("trainer.max_epochs", -1, True),
    ("trainer.accumulate_grad_batches", 1, True),
    ("trainer.gradient_clip_val", 0, True),
    ("trainer.log_every_n_steps", 1, True),
    ("summary.num_samples", 0, True),
    ("callbacks.image_logger.num_images", 0, True),
)


def check_numbers(cfg: DictConfig) -> None:
    for key, minimum, inclusive in NUMERIC_BOUNDS:
        _positive(cfg, key, minimum, inclusive)


MAX_SEED = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything enforces


def check_seed(cfg: DictConfig) -> None:
    """``seed`` is a whole number numpy accepts (Lightning would raise deep inside the run)."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed} is invalid: it must be a whole number from 0 to {MAX_SEED}")


def check_budget(cfg: DictConfig) -> None:
    """At most one ``budget.*``, a positive number, and not beside the Trainer's own limits on
    steps or time (two budgets in one run)."""
    given = given_budgets(cfg)
    if len(given) > 1:
        both = " and ".join(f"budget.{k}={v}" for k, v in given.items())
        raise ConfigError(f"{both}: give at most one budget (set the others to null)")
    validations = OmegaConf.select(cfg, "budget.validations", default=None)
    if validations is not None:
        if isinstance(validations, bool) or not isinstance(validations, int) or validations < 1:
            raise ConfigError(
                f"budget.validations={validations} is invalid: give a whole number of at least 1"
            )
        if "cpu_seconds" in given or not given:
            raise ConfigError(
                f"budget.validations={validations} needs budget.examples, budget.steps or "
                "budget.flops (it spreads validations over a known number of steps)"
            )
    for kind, value in given.items():
        _positive(cfg, f"budget.{kind}", 0, inclusive=False)
        trainer = cfg.get("trainer") or {}
        if trainer.get("max_steps") not in (None, -1):
            raise ConfigError(
                f"budget.{kind}={value} and trainer.max_steps={trainer.max_steps} are two budgets: "
                "keep one (trainer.max_steps=-1, or budget.steps instead)"
            )
        if trainer.get("max_time"):
            raise ConfigError(
                f"budget.{kind}={value} and trainer.max_time={trainer.max_time} are two budgets: "
                "keep one (trainer.max_time=null; budget.cpu_seconds is the time budget that "
                "other jobs on the machine cannot shorten)"
            )


def check_network_builds(cfg: DictConfig) -> None:
    """Build the network once when the config alone fixes its shape (image data with a declared
    shape), so that a model that cannot model the data says why before the data is loaded. The
    random state is restored, so the run's initial weights do not change."""
    if data_kind(cfg) != IMAGE or cfg.data.get("shape") is None:
        return
    with torch.random.fork_rng(devices=[]):
        try:
            instantiate(cfg.model.module.net)
        except InstantiationException as exc:
            cause = exc.__cause__ or exc
            raise ConfigError(
                f"model={cfg.model.get('name')} cannot model data={cfg.data.get('name')}: {cause}"
            ) from None


def check_config(cfg: DictConfig) -> None:
    """All checks, cheapest first."""
    check_model_matches_data(cfg)
    check_resolves(cfg)
    check_numbers(cfg)
    check_budget(cfg)
    check_seed(cfg)
    check_network_builds(cfg)


def checkpoint_identity(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """(model name, data name) recorded in a checkpoint's or a run directory's config."""
    model, data = config.get("model") or {}, config.get("data") or {}
    return model.get("name"), data.get("name")
