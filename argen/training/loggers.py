"""Lightning's W&B logger, quiet, and set up so that a W&B project reads as a comparison.

Lightning always passes ``anonymous=None`` to ``wandb.init``, which makes every run print W&B's
"anonymous setting has no effect" warning. W&B's end-of-run history dump is silenced too: a run ends
with argen's own line (run directory, test NLL, the ``wandb sync`` hint when offline).

When the W&B run starts, its metrics are defined once (``define_dashboard_metrics``): validation
NLL and bits/dim (bits/char for text: the names are the same in every family) and the
autoencoder's reconstruction loss summarise as their minimum (so the runs table sorts by the best
epoch, not the last), training throughput as its mean, and image grids and text samples are
stepped by ``epoch``, so W&B's media slider walks through training one validation at a time.

Learning curves against compute: argen's Throughput callback logs ``trainer/examples_seen``,
``trainer/train_flops`` and ``trainer/cpu_seconds`` (cumulative, validation excluded) in the same
row as each validation's metrics. W&B gives a metric one default x-axis, so the logger adds a copy
of ``val/nll`` per axis to that row (``curves/val_nll_by_examples_seen``, ...), each defined with
its axis as step metric: the dashboard then draws validation NLL against examples, FLOPs and CPU
seconds without any panel set-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from argen.models.base import count_parameters

GLOBAL_STEP = "trainer/global_step"  # Lightning's x-axis for every metric
EPOCH = "epoch"  # logged by Lightning with every metric, and by argen with every media panel
SUMMARY_MIN = ("val/nll", "val/bits_per_dim", "val/recon_loss")  # recon: autoencoder
SUMMARY_MEAN = ("train/examples_per_sec",)
# Media logged once per validation: stepped by epoch. The globs cover any future key; the exact
# names are defined too, because an exact definition always takes precedence over Lightning's "*".
EPOCH_STEPPED = (
    "images/*",
    "samples/*",
    "images/samples",
    "images/completion",
    "images/reconstruction",
    "samples/text",
)


# x-axes of the learning curves (logged by argen.training.callbacks.throughput) and what is drawn on them
CURVE_AXES = ("trainer/examples_seen", "trainer/train_flops", "trainer/cpu_seconds")
CURVE_METRIC = "val/nll"


def curve_name(axis: str, metric: str = CURVE_METRIC) -> str:
    """The copy of ``metric`` stepped by ``axis``: ``curves/val_nll_by_examples_seen``, ..."""
    return f"curves/{metric.replace('/', '_')}_by_{axis.rsplit('/', 1)[-1]}"


def with_curve_copies(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` plus a copy of ``val/nll`` for every learning-curve axis logged beside it."""
    out = dict(metrics)
    if CURVE_METRIC in metrics:
        out.update({curve_name(a): metrics[CURVE_METRIC] for a in CURVE_AXES if a in metrics})
    return out


def define_dashboard_metrics(run: Any) -> None:
    """Summaries and x-axes of argen's metrics in the W&B run ``run`` (idempotent)."""
    run.define_metric(EPOCH)
    for axis in CURVE_AXES:
        run.define_metric(axis)
        run.define_metric(curve_name(axis), step_metric=axis, summary="min")
    for name in SUMMARY_MIN:
        run.define_metric(name, step_metric=GLOBAL_STEP, summary="min")
    for name in SUMMARY_MEAN:
        run.define_metric(name, step_metric=GLOBAL_STEP, summary="mean")
    for name in EPOCH_STEPPED:
        run.define_metric(name, step_metric=EPOCH)


class QuietWandbLogger(WandbLogger):
    """``WandbLogger`` that passes no ``anonymous``, runs W&B with ``silent=True`` unless the
    config gives ``settings`` of its own, and defines argen's metrics once its run starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("settings", {"silent": True})
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
        self._metrics_defined = False

    @property
    def experiment(self) -> Any:
        """The W&B run (started on first use, as in Lightning); its metrics are defined the first
        time it is returned. On other ranks Lightning's no-op stand-in accepts the calls."""
        run = WandbLogger.experiment.fget(self)
        if not self._metrics_defined:
            self._metrics_defined = True
            define_dashboard_metrics(run)
        return run

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Lightning's, with the learning-curve copies of ``val/nll`` (module docstring)."""
        super().log_metrics(with_curve_copies(metrics), step)

    def __getstate__(self) -> dict[str, Any]:
        """A pickled copy (spawned processes) attaches to the run anew: define again there."""
        state = super().__getstate__()
        state["_metrics_defined"] = False
        return state


class ParamsInConfig(L.Callback):
    """Adds the parameter count as the plain top-level config column ``params`` of the W&B run at
    setup (fit or test), so the runs table can sort and group by model size while a run is still
    going; ``seed`` is a top-level config key already, and the model and dataset names are the
    nested ``model.name`` and ``data.name``."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                params = count_parameters(pl_module)
                logger.experiment.config.update({"params": params}, allow_val_change=True)
