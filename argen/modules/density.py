"""LightningModule for density models of images (binary or K-level): training, exact evaluation,
metrics and sampling glue around any network that honours the ``log_prob``/``sample`` contract."""

from __future__ import annotations

import time

import torch
from torch import nn

from argen.models.completion import complete_top_half
from argen.modules.amortized import GroupedSteps
from argen.modules.base import ARModule
from argen.modules.optim import OptimizerFactory, SchedulerFactory


class DensityModule(GroupedSteps, ARModule):
    """Trains ``net`` by maximum likelihood and reports exact NLL in nats/example and bits/dim
    (``argen.modules.base``: ``train/loss``, ``{split}/nll``, ``{split}/bits_per_dim``).

    Args:
        net: a density model (``log_prob(x) -> [B]`` nats, ``sample(n)``); if it defines
            ``training_loss(x) -> [B]`` (order-agnostic MADE/NADE, or a step without the input
            values check, which is then made here once per batch) that is the training objective.
        optimizer: factory called with the parameters, e.g. ``partial(torch.optim.Adam, lr=1e-3)``.
        scheduler: optional factory called with the optimizer.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        conditional: pass labels ``y`` to ``log_prob``/``sample`` (class-conditional models).
        channels_last: keep convolutional networks and their inputs in channels-last memory
            format (faster convolutions on recent GPUs and some CPUs; same results).
        steps_per_call: optimizer steps per Lightning ``training_step`` on an in-memory
            DataModule (``argen.modules.amortized.GroupedSteps``): Lightning's per-batch cost is
            paid once per group of this many batches; the parameter updates are those of the
            ordinary loop.
        cuda_graph: on a GPU, replay each training step (forward, backward, clipping, optimizer
            step) as one CUDA graph (``argen.modules.cuda_graph``); nothing changes elsewhere.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        conditional: bool = False,
        channels_last: bool = False,
        steps_per_call: int = 1,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__(
            optimizer,
            scheduler,
            scheduler_interval,
            num_dims=int(net.num_dims),
            steps_per_call=steps_per_call,
            cuda_graph=cuda_graph,
        )
        self.channels_last = channels_last
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.conditional = conditional
        self._val_examples: tuple[torch.Tensor, dict] | None = None

    # ----------------------------------------------------------------- steps
    def step_inputs(self, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch if isinstance(batch, list | tuple) else (batch, None)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.conditional:
            if y is None:
                raise ValueError(
                    "conditional=true needs labelled data, but the batch has no labels"
                )
            return x, {"y": y}
        return x, {}

    def log_prob(self, batch) -> torch.Tensor:
        x, kwargs = self.step_inputs(batch)
        return self.net.log_prob(x, **kwargs)

    def ordinary_training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """One ordinary batch's training loss, checked for a non-finite value at once."""
        loss = self._step_loss(batch, check_values=True)
        self.check_finite_losses(loss.unsqueeze(0), self.global_step, batch_idx)
        return loss

    def _step_loss(self, batch, check_values: bool = False) -> torch.Tensor:
        """A step's training loss, summed for train/nll and logged. ``check_values`` checks this
        batch's input values (``training_loss`` checks only their form); unchecked, it is a step
        of a group (``GroupedSteps.group_step_loss``)."""
        if not check_values:
            return self.group_step_loss(batch)
        x, kwargs = self.step_inputs(batch)
        if hasattr(self.net, "training_loss"):
            self.net.validate_levels(x)
        loss, loss_per_example = self.step_loss(x, kwargs)
        self.record_step(loss, loss_per_example.detach().sum(), loss_per_example.numel())
        return loss

    def check_step_inputs(self, x: torch.Tensor) -> None:
        """Check that ``x`` holds the network's levels (``validate_levels``)."""
        self.net.validate_levels(x)

    def step_loss(self, x: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean training loss and the per-example losses of model inputs ``x``."""
        if hasattr(self.net, "training_loss"):
            loss_per_example = self.net.training_loss(x, **kwargs)
        else:
            loss_per_example = -self.net.log_prob(x, **kwargs)
        return loss_per_example.mean(), loss_per_example

    def record_step(self, loss: torch.Tensor, loss_sum: torch.Tensor, count: int) -> None:
        """Add a step to the epoch's running train/nll and log its loss on the logger's steps."""
        self._add_train(loss_sum, count)
        self._log_step_loss(loss)

    def _add_nll(self, split: str, batch) -> None:
        nll = -self.log_prob(batch)
        self._add(split, nll.sum(), nll.numel())

    def validation_step(self, batch, batch_idx: int) -> None:
        if batch_idx == 0:  # a few images kept for completions in the image logger
            x, kwargs = self.step_inputs(batch)
            self._val_examples = (x[:64], {k: v[:64] for k, v in kwargs.items()})
        self._add_nll("val", batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._add_nll("test", batch)

    # -------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, **kwargs) -> torch.Tensor:
        """Draw ``n`` samples in eval mode (restoring the previous mode)."""
        was_training = self.net.training
        self.net.eval()
        try:
            if self.conditional and "y" not in kwargs:
                num_classes = int(self.net.num_classes)
                kwargs["y"] = torch.arange(n, device=self.device) % num_classes
            return self.net.sample(n, device=self.device, **kwargs)
        finally:
            self.net.train(was_training)

    def timed_sample(self, n: int) -> tuple[torch.Tensor, float]:
        """Samples and the wall time per sample in seconds."""
        start = time.perf_counter()
        samples = self.sample(n)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return samples, (time.perf_counter() - start) / n

    # ----------------------------------------------------------- visuals
    @property
    def num_levels(self) -> int:
        return int(self.net.num_levels)

    def visuals(self, n: int) -> dict[str, torch.Tensor]:
        """Images for the image-logging callback: fresh samples, and completions of the top half
        of validation images for models that can complete (PixelCNN, Gated PixelCNN)."""
        images = {"samples": self.sample(n)}
        examples = self._val_examples
        if examples is not None and hasattr(self.net, "complete"):
            x, kwargs = examples
            was_training = self.net.training
            self.net.eval()
            try:
                images.update(
                    complete_top_half(self.net, x[:n], **{k: v[:n] for k, v in kwargs.items()})
                )
            finally:
                self.net.train(was_training)
        return images
