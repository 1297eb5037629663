"""Amortized training steps, the module side: several ordinary optimizer steps per Lightning
``training_step``.

Lightning's loop costs 0.5-0.7 ms a batch on a CPU (hooks, progress tracking, the automatic
optimization closure, logging bookkeeping): an eighth to a sixth of a MADE or FVSBN step at batch
100. A module asking for ``K`` steps per call pays it once per K steps instead. Which fits get
groups, where an epoch's groups are cut and how they are loaded is decided in one place,
``argen.data.groups`` (the in-memory DataModule hands over a ``BatchGroup``: the shuffle, the
batches and their order exactly those of the ordinary loader). This module runs them:
``GroupedSteps`` is the LightningModule base (``DensityModule`` extends it and provides a small
step interface: inputs, loss, record, network), ``GroupStepper`` the loop inside one
``training_step``.

The group loop does per batch, with manual optimization, what Lightning's automatic loop does:
zero_grad, backward, the Trainer's gradient clipping (after the ``on_before_optimizer_step``
hooks), the optimizer step, step- and epoch-interval LR schedulers (plateau ones with their
monitored value, after validation), and the step loss written to the logger at the logger's
steps; the per-step callback hooks (``on_before_zero_grad``, ``on_before_backward``,
``on_after_backward``, ``on_before_optimizer_step``) run at every step. Only the non-finite-loss
check waits for the end of the group (it still names the first bad step, and no checkpoint is
written in between).

``trainer.global_step`` counts optimizer steps as before (every ``LightningOptimizer.step`` counts
one), and so does the logger's step axis. What a group changes is what Lightning calls a batch:
the progress bar, ``on_train_batch_start/end`` and ``batch_idx`` count groups, so a callback that
acts at a given step sees only group boundaries (``max_time``, ``SIGTERM`` and a stop request are
checked between groups). Settings that count batches in ways a group cannot honour keep the
ordinary loop (``argen.data.groups.fallback_reason``); either way the parameters are bit-identical.

Lightning's public API is used where it has one (``manual_backward``, ``LightningOptimizer.step``,
``optimizer_zero_grad``, ``configure_gradient_clipping``, ``lr_scheduler_step``,
``Trainer.lr_scheduler_configs``, ``log_every_n_steps``, ``is_last_batch``). Four internals
remain, each because Lightning has no public way to do what its own loop does between batches:

* ``lightning.pytorch.trainer.call._call_callback_hooks`` and ``_call_lightning_module_hook``
  for ``on_before_zero_grad``: in manual optimization Lightning calls the other three per-step
  hooks (from ``manual_backward`` and ``LightningOptimizer.step``) but never this one; its
  automatic loop calls it through these dispatchers, which also time it in the profiler and set
  the hook name that ``self.log`` checks. Calling the hook methods directly would skip both.
* ``trainer.fit_loop.epoch_loop._batches_that_stepped`` and
  ``trainer._logger_connector.update_train_step_metrics()``: the logger's step axis is Lightning's
  count of batches that stepped, and a batch's logged step values are written only at the end of
  that batch. Steps inside a group write theirs at their own step, as the ordinary loop does; no
  public call flushes logged values or sets the step axis.
* ``fit_loop.epoch_loop.manual_optimization.optim_step_progress`` (``_direct_step``,
  ``_graph_step``) and ``automatic_optimization.optim_progress`` (``carry_step_count``), loop
  progress counters without an underscore but with no public setter: ``global_step`` is read from
  them, so a step taken without ``LightningOptimizer.step`` (no hook to dispatch, or a CUDA graph
  replay) counts itself, and a checkpoint resumes with its step count in either loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.trainer import call
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torch import nn

from argen.data.groups import BatchGroup, fallback_reason, steps_per_group
from argen.modules.cuda_graph import StepGraph, graph_blocker

Inputs = tuple[torch.Tensor, dict[str, torch.Tensor]]


# ------------------------------------------------------------------------ the module's base
class GroupedSteps(L.LightningModule):
    """A LightningModule whose ``training_step`` takes a group of ``steps_per_call`` batches as
    that many ordinary optimizer steps where the fit allows it (``argen.data.groups``), else one
    batch in Lightning's automatic loop. The parameter updates are those of the ordinary loop.

    Keyword args (the rest go to the next base class):
        steps_per_call: optimizer steps per ``training_step`` asked for (1: the ordinary loop).
        cuda_graph: on a GPU, replay each step as one CUDA graph (``argen.modules.cuda_graph``).

    A subclass provides the step interface: ``net`` (the network a CUDA graph records),
    ``step_inputs``, ``check_step_inputs``, ``step_loss``, ``record_step`` and
    ``ordinary_training_step``; ``check_finite_losses`` is here for both loops.
    """

    net: nn.Module
    monitor: str  # the validation metric plateau schedulers watch (``ARModule.monitor``)

    def __init__(
        self, *args: Any, steps_per_call: int = 1, cuda_graph: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if int(steps_per_call) < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
        self.steps_per_call = int(steps_per_call)
        self.cuda_graph = bool(cuda_graph)
        # steps per training_step in the current fit (1: Lightning's automatic loop); the
        # DataModule reads it to hand over groups of batches (argen.data.groups.plan_groups)
        self.group_steps = 1
        self._stepper: GroupStepper | None = None

    # ------------------------------------------------------ the step interface (subclasses)
    def step_inputs(self, batch: Any) -> Inputs:
        """Model inputs ``(x, kwargs)`` of one ordinary batch."""
        raise NotImplementedError

    def check_step_inputs(self, x: torch.Tensor) -> None:
        """Check input values (a CUDA-graphed group checks all its inputs once, before its steps)."""
        raise NotImplementedError

    def step_loss(self, x: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean training loss and the per-example losses of model inputs ``x``."""
        raise NotImplementedError

    def record_step(self, loss: torch.Tensor, loss_sum: torch.Tensor, count: int) -> None:
        """Add a step to the epoch's running metrics and log its loss."""
        raise NotImplementedError

    def ordinary_training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """``training_step`` in Lightning's automatic loop (one batch, its loss checked at once)."""
        raise NotImplementedError

    def group_step_loss(self, batch: Any) -> torch.Tensor:
        """One step of a group: its loss, recorded; unchecked (the group checks its losses once,
        at its end)."""
        x, kwargs = self.step_inputs(batch)
        loss, loss_per_example = self.step_loss(x, kwargs)
        self.record_step(loss, loss_per_example.detach().sum(), loss_per_example.numel())
        return loss

    def check_finite_losses(self, losses: torch.Tensor, first_step: int, first_batch: int) -> None:
        """Stop on the first non-finite loss of consecutive steps (one host sync for them all)."""
        finite = torch.isfinite(losses)
        if bool(finite.all()):
            return
        bad = int((~finite).nonzero()[0])
        raise FloatingPointError(
            f"Non-finite training loss ({losses[bad].item()}) at global step {first_step + bad}, "
            f"epoch {self.current_epoch}, batch {first_batch + bad}. Training stopped; the last "
            "saved checkpoint is unchanged. Lower the learning rate or enable gradient clipping "
            "(trainer.gradient_clip_val=1.0)."
        )

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        """Choose the training loop of this fit: groups of ``steps_per_call`` batches with manual
        optimization where the fit allows it (``argen.data.groups.steps_per_group``), else
        Lightning's automatic loop. Set here, after Lightning's configuration checks, which refuse
        manual optimization with ``gradient_clip_val``: the group loop applies that clipping."""
        super().setup(stage)
        if stage != "fit":
            return
        trainer = self.trainer
        self.group_steps = steps_per_group(trainer, self.steps_per_call)
        reason = fallback_reason(trainer)
        supported = getattr(trainer.datamodule, "supports_batch_groups", False)
        if self.steps_per_call > 1 and supported and reason is not None:
            rank_zero_info(
                f"steps_per_call={self.steps_per_call}: one step per batch in this run "
                f"({reason}); same results, Lightning's per-batch cost"
            )
        graphs = self.cuda_graph and trainer.strategy.root_device.type == "cuda"
        self.automatic_optimization = not (self.group_steps > 1 or graphs and reason is None)
        self._stepper = None if self.automatic_optimization else GroupStepper(self)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if self.automatic_optimization:
            return self.ordinary_training_step(batch, batch_idx)
        return self._stepper.run(batch, batch_idx)

    def on_train_start(self) -> None:
        super().on_train_start()
        carry_step_count(self.trainer)

    def on_before_optimizer_step(self, optimizer) -> None:
        # Lightning's automatic loop clips after this hook; the group loop clips here
        if not self.automatic_optimization:
            clip_like_lightning(self, optimizer)

    # it does nothing else: ``GroupStepper._direct_step`` clips itself (``calls_nothing_per_step``)
    on_before_optimizer_step.only_clips = True

    def on_train_epoch_end(self) -> None:
        stepper = None if self.automatic_optimization else self._stepper
        if stepper is not None:
            stepper.after_last_step()
        super().on_train_epoch_end()
        if stepper is not None:
            stepper.after_epoch()


# ------------------------------------------------------------------------ the group loop
class GroupStepper:
    """Runs a ``BatchGroup`` as ordinary optimizer steps inside one ``training_step``.

    Args:
        module: the ``GroupedSteps`` module (manual optimization) whose step interface it calls;
            the losses of a group are checked for non-finite values once, at its end. Its LR
            schedulers (``Trainer.lr_scheduler_configs``) are stepped here: Lightning does not
            step them in manual mode.
    """

    def __init__(self, module: GroupedSteps) -> None:
        self.module = module
        self.step_plateau_pending: int | None = None
        # asked for; ``graph`` is set at the first group if it can
        self.cuda_graph = module.cuda_graph
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
        module.check_finite_losses(torch.stack(losses), first_step, first)
        # Lightning counts this call as one batch that stepped, after it writes the step's logs
        # (as for the last step of the group): leave the count one short of global_step.
        epoch_loop._batches_that_stepped = trainer.global_step - 1
        return losses[-1].detach()

    def _ordinary_step(self, inputs: Any, index: int, optimizer) -> torch.Tensor:
        """One step as Lightning's automatic loop takes it, hooks included."""
        module, trainer = self.module, self.module.trainer
        loss = module.group_step_loss(inputs)
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
        loss = module.group_step_loss(inputs)
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
        module = self.module
        inputs = [
            module.step_inputs(batch) for _, batch in zip(range(count), batches, strict=False)
        ]
        if inputs:
            module.check_step_inputs(torch.cat([x for x, _ in inputs]))
        return inputs

    def _graph_loss(self, x: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        loss, loss_per_example = self.module.step_loss(x, kwargs)
        return loss, loss_per_example.detach().sum()

    def _graph_step(self, inputs: tuple) -> torch.Tensor:
        """One replay: the step's loss is recorded (and logged) at the step it belongs to; the
        non-finite check waits for the end of the group."""
        x, kwargs = inputs
        loss, total = self.graph.step(x, kwargs)
        self.module.record_step(loss, total, len(x))
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
        """Lightning's ``_update_learning_rates`` for manual optimization (which it skips). In
        manual mode Lightning keeps each scheduler's interval and frequency but drops ``monitor``
        and ``strict``: plateau schedulers watch the module's ``monitor`` and always need it."""
        trainer = self.module.trainer
        config: LRSchedulerConfig
        for config in trainer.lr_scheduler_configs:
            is_plateau = isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            if config.interval != interval or is_plateau != plateau:
                continue
            if index % config.frequency:
                continue
            value = None
            if is_plateau:
                monitor = self.module.monitor
                value = trainer.callback_metrics.get(monitor)
                if value is None:
                    raise RuntimeError(
                        f"ReduceLROnPlateau conditioned on metric {monitor} which is not "
                        f"available. Available metrics are: {list(trainer.callback_metrics)}."
                    )
            self.module.lr_scheduler_step(config.scheduler, value)

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
