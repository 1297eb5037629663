"""A whole training step of a small model as one CUDA graph (``model.module.cuda_graph=true``).

On a GPU a MADE step at batch 100 is a few dozen small kernels; launching them from Python (and
Lightning) costs more than running them. ``StepGraph`` records forward, backward, the Trainer's
gradient clipping and the optimizer step once (``torch.cuda.graph``) and then replays them for
every batch of the same shape: one launch a step. It runs inside the group loop
(``argen.modules.amortized``), after a few ordinary warm-up steps on a side stream (which allocate the
optimizer state and autograd's buffers, as capture requires); a batch of another shape (the
partial last batch of an epoch) and a changed learning rate (a scheduler step) are handled
eagerly and by capturing again.

Inside a graph nothing may wait for the host, so the step's input check and its non-finite-loss
check run once per group instead of once per step, and per-step callback hooks cannot run:
``graph_blocker`` says why a setting keeps the ordinary steps (no CUDA device, 16-bit mixed
precision's gradient scaler, an optimizer without ``capturable``, a network that changes
between steps, callbacks with per-step hooks). Off the GPU the option does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch

Inputs = tuple[torch.Tensor, dict[str, torch.Tensor]]
LossFn = Callable[[torch.Tensor, dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


def graph_blocker(
    module: L.LightningModule, optimizer: torch.optim.Optimizer, step_hooks: bool
) -> str | None:
    """Why the training step of ``module`` cannot be one CUDA graph (``None``: it can).

    Args:
        step_hooks: whether a callback or the module defines per-step hooks.
    """
    if module.device.type != "cuda":
        return "no CUDA device"
    if getattr(module.trainer.precision_plugin, "scaler", None) is not None:
        return "16-bit mixed precision (its gradient scaler waits for the host)"
    if not (optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")):
        return f"{type(optimizer).__name__} is neither fused nor capturable"
    net = module.net
    if getattr(net, "num_masks", 1) > 1 or getattr(net, "order_agnostic", False):
        return "the network changes between steps (mask cycling or random orderings)"
    if step_hooks:
        return "callbacks with per-step hooks (on_before_backward, on_after_backward, ...)"
    return None


class _NoCheck:
    """Shadows a model's ``validate_levels`` while a graph is recorded: the check waits for the
    host, so it runs on the whole group before the steps instead."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.models = [m for m in net.modules() if hasattr(type(m), "validate_levels")]

    def __enter__(self) -> None:
        for model in self.models:
            model.validate_levels = _skip

    def __exit__(self, *exc) -> None:
        for model in self.models:
            del model.validate_levels


def _skip(x: torch.Tensor) -> None:
    return None


class StepGraph:
    """One training step on static tensors, captured after ``warmup`` eager steps and replayed.

    ``loss_fn(x, kwargs)`` returns the mean loss and the summed per-example losses; ``clip()``
    clips the gradients in place. With ``capture=False`` (no CUDA: tests) the recorded step runs
    eagerly on the static tensors instead, so everything but the capture itself can be checked.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        clip: Callable[[], None],
        warmup: int = 3,
        capture: bool = True,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.clip = clip
        self.warmup = warmup
        self.capture = capture
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.recorded = False
        self.static: Inputs | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.lrs: list[float] = []

    def step(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """One optimizer step on ``x``; returns (loss, summed per-example losses)."""
        if self.recorded and not self._fits(x, kwargs):
            return self._eager(x, kwargs)  # e.g. the partial last batch of an epoch
        if self.recorded and self._lrs() != self.lrs:
            self._drop()  # a scheduler changed the learning rate: record again
        if not self.recorded:
            if self.eager_steps < self.warmup:
                return self._eager(x, kwargs)
            self._record(x, kwargs)
        static_x, static_kwargs = self.static
        static_x.copy_(x)
        for name, value in kwargs.items():
            static_kwargs[name].copy_(value)
        if self.graph is not None:
            self.graph.replay()
        else:  # capture=False: the recorded step, run eagerly on the static tensors
            self.optimizer.zero_grad(set_to_none=False)
            self._body(static_x, static_kwargs)
        loss, total = self.outputs
        return loss.clone(), total.clone()

    # ----------------------------------------------------------------------------- pieces
    def _body(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> None:
        loss, total = self.loss_fn(x, kwargs)
        loss.backward()
        self.clip()
        self.optimizer.step()
        self.outputs = (loss.detach(), total)

    def _eager(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        # Gradients stay where a recorded step writes them (zeroed in place, then accumulated
        # into: the same values as a fresh backward).
        self.optimizer.zero_grad(set_to_none=not self.recorded)
        if self.capture and not self.recorded:  # warm-up on a side stream, as capture requires
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss, total = self._eager_body(x, kwargs)
            torch.cuda.current_stream().wait_stream(side)
        else:
            loss, total = self._eager_body(x, kwargs)
        self.eager_steps += 1
        return loss, total

    def _eager_body(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]):
        loss, total = self.loss_fn(x, kwargs)
        loss.backward()
        self.clip()
        self.optimizer.step()
        return loss.detach(), total

    def _record(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> None:
        self.static = (x.clone(), {name: value.clone() for name, value in kwargs.items()})
        self.lrs = self._lrs()
        if self.capture:
            self.optimizer.zero_grad(set_to_none=True)  # backward allocates them in the graph
            self.graph = torch.cuda.CUDAGraph()
            # a fused optimizer keeps its step counts on the device and computes the same with
            # the flag; it only tells step() that it may be recorded
            flags = [group.get("capturable", False) for group in self.optimizer.param_groups]
            for group in self.optimizer.param_groups:
                group["capturable"] = True
            try:
                with _NoCheck(self.net), torch.cuda.graph(self.graph):
                    self._body(*self.static)
            finally:
                for group, flag in zip(self.optimizer.param_groups, flags, strict=True):
                    group["capturable"] = flag
        self.recorded = True

    def _drop(self) -> None:
        self.graph, self.static, self.outputs, self.recorded = None, None, None, False

    def _fits(self, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> bool:
        static_x, static_kwargs = self.static
        return static_x.shape == x.shape and all(
            static_kwargs[name].shape == value.shape for name, value in kwargs.items()
        )

    def _lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]
