"""Amortized training steps: several ordinary optimizer steps per Lightning ``training_step``.

Lightning's loop costs 0.5-0.7 ms a batch on a CPU (hooks, progress tracking, the automatic
optimization closure, logging bookkeeping): an eighth to a sixth of a MADE or FVSBN step at batch
100. A module with ``steps_per_call=K`` pays it once per K steps instead:

* the in-memory DataModule cuts each epoch into *groups* of K consecutive batches and gathers each
  group in one indexing operation (``BatchGroup``); the shuffle, the batches and their order are
  exactly those of the ordinary loader, the last group of an epoch may be partial, and a group
  ends where ``max_steps`` ends;
* the module runs the K steps itself with manual optimization, doing per batch what Lightning's
  automatic loop does: zero_grad, backward, the Trainer's gradient clipping (after the
  ``on_before_optimizer_step`` hooks), the optimizer step, step- and epoch-interval LR schedulers
  (plateau ones with their monitored value, after validation), and the step loss written to the
  logger at the logger's steps; the per-step callback hooks (``on_before_zero_grad``,
  ``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``) run at every step.
  Only the non-finite-loss check waits for the end of the group (it still names the first bad
  step, and no checkpoint is written in between).

``trainer.global_step`` counts optimizer steps as before (every ``LightningOptimizer.step`` counts
one), and so does the logger's step axis. What a group changes is what Lightning calls a batch:
the progress bar, ``on_train_batch_start/end`` and ``batch_idx`` count groups, so a callback that
acts at a given step sees only group boundaries (``max_time``, ``SIGTERM`` and a stop request are
checked between groups). Settings that count batches in ways a group cannot honour (gradient
accumulation, a fraction of an epoch, validation within an epoch, several processes) keep the
ordinary loop (``fallback_reason``); either way the parameters are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import GradientAccumulationScheduler
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.trainer import call
from lightning.pytorch.utilities import rank_zero_info

from argen.data.groups import BatchGroup
from argen.modules.cuda_graph import StepGraph, graph_blocker


# ------------------------------------------------------------------------------ when it applies
def fallback_reason(trainer: L.Trainer) -> str | None:
    """Why this Trainer's settings need the ordinary loop (``None``: groups keep them exact)."""
    if not isinstance(trainer.strategy, SingleDeviceStrategy):
        return f"strategy {type(trainer.strategy).__name__} (one process on one device only)"
    limit = trainer.limit_train_batches  # 1.0 (float): all batches; an int: that many
    if isinstance(limit, float) and limit != 1.0 or isinstance(limit, int) and limit < 1:
        return f"limit_train_batches={limit} (a fraction of an epoch)"
    interval = trainer.val_check_interval
    if getattr(trainer, "_val_check_time_interval", None) is not None or not (
        isinstance(interval, float) and interval == 1.0
    ):
        return f"val_check_interval={interval} (validation within an epoch)"
    if trainer.accumulate_grad_batches != 1 or any(
        isinstance(callback, GradientAccumulationScheduler) for callback in trainer.callbacks
    ):
        # Lightning counts accumulation windows, and writes step logs, by its own batches
        return f"accumulate_grad_batches={trainer.accumulate_grad_batches}"
    if trainer.overfit_batches or trainer.fast_dev_run:
        return "overfit_batches/fast_dev_run"
    return None


def effective_steps(steps_per_call: int, trainer: L.Trainer) -> int:
    """Steps per group for this Trainer: ``steps_per_call``, or 1 (the ordinary loop) when its
    settings need it."""
    return 1 if fallback_reason(trainer) is not None else max(int(steps_per_call), 1)


# ------------------------------------------------------------------------ the module's side
@dataclass
class Schedule:
    """An LR scheduler with Lightning's stepping rules (``LRSchedulerConfig``'s fields)."""

    scheduler: Any
    interval: str = "epoch"
    frequency: int = 1
    plateau: bool = False
    monitor: str | None = None
    strict: bool = True


class GroupStepper:
    """Runs a ``BatchGroup`` as ordinary optimizer steps inside one ``training_step``.

    Args:
        module: the LightningModule (manual optimization), with ``_inputs``, ``_loss``,
            ``_record`` and ``_check_finite`` as ``DensityModule`` has them.
        loss_of: ``loss_of(batch)``: the step's loss (forward, running sums, logging); the
            losses of a group are checked for non-finite values once, at its end.
        schedules: the module's LR schedulers (Lightning does not step them in manual mode).
    """

    def __init__(
        self,
        module: L.LightningModule,
        loss_of: Callable[[Any], torch.Tensor],
        schedules: list[Schedule],
        cuda_graph: bool = False,
    ) -> None:
        self.module = module
        self.loss_of = loss_of
        self.schedules = schedules
        self.step_plateau_pending: int | None = None
        self.cuda_graph = cuda_graph  # asked for; ``graph`` is set at the first group if it can
        self.graph: StepGraph | None = None

    def run(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        """All steps of ``batch`` (a ``BatchGroup``, or one ordinary batch); returns the last loss."""
        trainer = self.module.trainer
        callbacks = trainer.callbacks
        # Lightning dispatches every per-step hook to every callback (about 4 us each on a CPU,
        # even for Callback's empty methods); during the group only those that define one are
        # listed, so the same hooks run at the same points for a fraction of the cost.
        stepping = [cb for cb in callbacks if defines_step_hooks(cb)]
        if self.cuda_graph:
            self._start_graph(stepping)
        self.direct = not stepping and calls_nothing_per_step(self.module)
        trainer.callbacks = stepping
        try:
            return self._run(batch, batch_idx)
        finally:
            trainer.callbacks = callbacks

    def _run(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        module, trainer = self.module, self.module.trainer
        if isinstance(batch, BatchGroup):
            batches, first, full = batch.batches(), batch.first_batch, batch.num_batches
        else:
            batches, first, full = iter([batch]), batch_idx, 1
        count = full
        if trainer.max_steps >= 0:  # groups are cut where max_steps ends; this only guards
            count = min(count, max(trainer.max_steps - trainer.global_step, 0))
        optimizer = module.optimizers()
        epoch_loop = trainer.fit_loop.epoch_loop
        # Lightning's own end-of-epoch test (``_num_ready_batches_reached``), from public values
        epoch_end = count == full and (
            trainer.is_last_batch or batch_idx + 1 == trainer.num_training_batches
        )
        first_step = trainer.global_step
        if self.graph is not None:
            # the inputs of all steps first (their checks wait for the host once), then the steps
            batches = self._checked_inputs(batches, count)
        losses = []
        for offset, inputs in zip(range(count), batches, strict=False):
            index = first + offset  # the ordinary loop's batch_idx
            if self.graph is None:
                step = self._direct_step if self.direct else self._ordinary_step
                loss = step(inputs, index, optimizer)
            else:
                loss = self._graph_step(inputs)
            losses.append(loss)
            self._step_schedules("step", index + 1)
            if offset < count - 1:
                self._step_schedules("step", index + 1, plateau=True)
                self._end_of_ordinary_batch(epoch_loop)
            elif epoch_end:
                self._step_schedules("epoch", trainer.current_epoch + 1)
                self.step_plateau_pending = index + 1  # after validation: ``after_last_step``
            else:
                self._step_schedules("step", index + 1, plateau=True)
        if not losses:
            return None
        module._check_finite(torch.stack(losses), first_step, first)
        # Lightning counts this call as one batch that stepped, after it writes the step's logs
        # (as for the last step of the group): leave the count one short of global_step.
        epoch_loop._batches_that_stepped = trainer.global_step - 1
        return losses[-1].detach()

    def _ordinary_step(self, inputs: Any, index: int, optimizer) -> torch.Tensor:
        """One step as Lightning's automatic loop takes it, hooks included."""
        module, trainer = self.module, self.module.trainer
        loss = self.loss_of(inputs)
        # the ordinary loop's closure: zero_grad (with its hooks), backward, then the step
        call._call_callback_hooks(trainer, "on_before_zero_grad", optimizer)
        if defines_hook(module, L.LightningModule, "on_before_zero_grad"):
            call._call_lightning_module_hook(trainer, "on_before_zero_grad", optimizer)
        module.optimizer_zero_grad(trainer.current_epoch, index, optimizer)
        module.manual_backward(loss)
        optimizer.step()  # counts the step (global_step); clipping in on_before_optimizer_step
        return loss

    def _direct_step(self, inputs: Any, index: int, optimizer) -> torch.Tensor:
        """``_ordinary_step`` without Lightning's dispatch, when it would call nothing else
        (``calls_nothing_per_step``): backward, the module's clipping, the step, its count."""
        module, trainer = self.module, self.module.trainer
        loss = self.loss_of(inputs)
        raw = optimizer.optimizer
        module.optimizer_zero_grad(trainer.current_epoch, index, raw)
        loss.backward()
        clip_like_lightning(module, raw)
        raw.step()
        progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()
        return loss

    # --------------------------------------------------------------------- CUDA graph
    def _start_graph(self, stepping: list[L.Callback]) -> None:
        """At the first group: record the steps in a CUDA graph if this run allows it."""
        self.cuda_graph = False  # decided once
        module = self.module
        optimizer = module.optimizers().optimizer
        module_hooks = any(
            defines_hook(module, L.LightningModule, hook)
            for hook in ("on_before_zero_grad", "on_before_backward", "on_after_backward")
        )
        reason = graph_blocker(module, optimizer, bool(stepping) or module_hooks)
        if reason is not None:
            rank_zero_info(f"cuda_graph=true: training steps run without a CUDA graph ({reason})")
            return
        self.graph = StepGraph(
            module.net,
            optimizer,
            self._graph_loss,
            lambda: clip_like_lightning(module, optimizer),
            capture=module.device.type == "cuda",
        )

    def _checked_inputs(self, batches: Iterator, count: int) -> list[tuple]:
        inputs = [
            self.module._inputs(batch) for _, batch in zip(range(count), batches, strict=False)
        ]
        if inputs:
            self.module.net.validate_levels(torch.cat([x for x, _ in inputs]))
        return inputs

    def _graph_loss(self, x: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        loss, loss_per_example = self.module._loss(x, kwargs)
        return loss, loss_per_example.detach().sum()

    def _graph_step(self, inputs: tuple) -> torch.Tensor:
        """One replay: the step's loss is recorded (and logged) at the step it belongs to; the
        non-finite check waits for the end of the group."""
        x, kwargs = inputs
        loss, total = self.graph.step(x, kwargs)
        self.module._record(loss, total, len(x))
        progress = self.module.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()
        return loss

    def _end_of_ordinary_batch(self, epoch_loop) -> None:
        """What Lightning does after a batch that stepped, for a step inside a group: write the
        logged step values on the logger's steps, then count the batch."""
        trainer = self.module.trainer
        steps = trainer.global_step
        epoch_loop._batches_that_stepped = steps - 1
        every = trainer.log_every_n_steps
        if (every > 0 and steps % every == 0) or trainer.should_stop:
            trainer._logger_connector.update_train_step_metrics()
        epoch_loop._batches_that_stepped = steps

    def _step_schedules(self, interval: str, index: int, plateau: bool = False) -> None:
        """Lightning's ``_update_learning_rates`` for manual optimization (which it skips)."""
        for schedule in self.schedules:
            if schedule.interval != interval or schedule.plateau != plateau:
                continue
            if index % schedule.frequency:
                continue
            value = None
            if schedule.plateau:
                value = self.module.trainer.callback_metrics.get(schedule.monitor)
                if value is None:
                    available = list(self.module.trainer.callback_metrics)
                    message = (
                        f"ReduceLROnPlateau conditioned on metric {schedule.monitor} which is not "
                        f"available. Available metrics are: {available}."
                    )
                    if schedule.strict:
                        raise RuntimeError(message)
                    continue
            self.module.lr_scheduler_step(schedule.scheduler, value)

    def after_last_step(self) -> None:
        """Plateau schedulers on the step interval, for the epoch's last step: Lightning steps
        them after the epoch's validation (call at the start of ``on_train_epoch_end``)."""
        if self.step_plateau_pending is not None:
            index, self.step_plateau_pending = self.step_plateau_pending, None
            self._step_schedules("step", index, plateau=True)

    def after_epoch(self) -> None:
        """Plateau schedulers on the epoch interval (call at the end of ``on_train_epoch_end``)."""
        self._step_schedules("epoch", self.module.trainer.current_epoch + 1, plateau=True)


STEP_HOOKS = (
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
)


def defines_hook(obj: object, base: type, hook: str) -> bool:
    """Whether ``obj``'s class overrides ``base``'s (empty) ``hook``."""
    return getattr(type(obj), hook, None) is not getattr(base, hook)


def defines_step_hooks(callback: L.Callback) -> bool:
    """Whether a callback does anything in the hooks Lightning calls at every optimizer step."""
    return any(defines_hook(callback, L.Callback, hook) for hook in STEP_HOOKS)


def calls_nothing_per_step(module: L.LightningModule) -> bool:
    """Whether Lightning's per-step machinery would only do, for this module and Trainer, what
    ``GroupStepper._direct_step`` does: one device, full or bf16 precision without a gradient
    scaler, no profiler, and no module hook of its own for backward or the step's other hooks
    (the callbacks are checked by the caller)."""
    trainer = module.trainer
    plugin = trainer.precision_plugin
    plain_precision = type(plugin) is Precision or (
        type(plugin) is MixedPrecision and plugin.scaler is None
    )
    return (
        plain_precision
        and isinstance(trainer.strategy, SingleDeviceStrategy)
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not any(
            defines_hook(module, L.LightningModule, hook)
            for hook in (
                "backward",
                "on_before_zero_grad",
                "on_before_backward",
                "on_after_backward",
            )
        )
        and getattr(type(module).on_before_optimizer_step, "only_clips", False)
    )


def only_clips(hook: Callable) -> Callable:
    """Marks a module's ``on_before_optimizer_step`` that does nothing but ``clip_like_lightning``
    (which ``GroupStepper._direct_step`` then calls itself)."""
    hook.only_clips = True
    return hook


def clip_like_lightning(module: L.LightningModule, optimizer: torch.optim.Optimizer) -> None:
    """The Trainer's gradient clipping, called where the automatic loop calls it (after the
    ``on_before_optimizer_step`` hooks). Without a clip value the default hook does nothing, so
    it is only called then when the module defines its own."""
    trainer = module.trainer
    if trainer.gradient_clip_val or defines_hook(
        module, L.LightningModule, "configure_gradient_clipping"
    ):
        module.configure_gradient_clipping(
            optimizer,
            gradient_clip_val=trainer.gradient_clip_val,
            gradient_clip_algorithm=trainer.gradient_clip_algorithm,
        )


def carry_step_count(trainer: L.Trainer) -> None:
    """Make automatic and manual optimization agree on the optimizer steps taken, so a checkpoint
    written in one mode resumes with the right ``global_step`` in the other."""
    loop = trainer.fit_loop.epoch_loop
    automatic = loop.automatic_optimization.optim_progress.optimizer.step.total
    manual = loop.manual_optimization.optim_step_progress.total
    steps = max(automatic.completed, manual.completed)
    for tracker in (automatic, manual):
        tracker.ready = tracker.completed = steps
