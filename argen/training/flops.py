"""Training FLOPs per example, counted once per run on a real training batch.

What is counted: the floating-point operations of one forward and backward pass of the module's
own ``training_step`` on the first ``MAX_EXAMPLES`` examples of a real training batch, as
``torch.utils.flop_counter.FlopCounterMode`` counts them: matrix products and convolutions
(``mm``, ``addmm``, ``bmm``, convolutions, scaled-dot-product attention, forward and backward; a
multiply-add is 2 FLOPs). Element-wise work (activations, the loss, normalisation) is not counted,
and neither is the optimizer step. The count is divided by the number of examples in the batch.
A network whose work is all element-wise (NADE's cumulative-sum hidden layer) counts 0: then
``flops_per_example`` returns ``None`` (not measured) rather than a misleading zero.

It is taken on a copy of the module (parameters, buffers and random state of the run are left as
they were), eagerly even when the network is compiled, and with oneDNN off: PyTorch runs CPU LSTMs
as one fused oneDNN kernel that the counter cannot see into, and the same LSTM without oneDNN does
the same matrix products as ``mm``/``addmm`` calls, which it counts. The count depends only on
shapes, so it is the same on every device.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode

from argen.training.callbacks.throughput import batch_size_of

# Every model's cost is linear in the batch, and counting runs the real arithmetic (a batch of 32
# took Gated PixelCNN's default size over two minutes on one CPU thread): two examples suffice.
MAX_EXAMPLES = 2


def leading(batch: Any, count: int) -> Any:
    """The first ``count`` examples of a batch (a tensor, or a tuple/list of tensors and Nones)."""
    if isinstance(batch, torch.Tensor):
        return batch[:count]
    if isinstance(batch, list | tuple):
        return type(batch)(leading(part, count) for part in batch)
    return batch


def first_training_batch(datamodule: L.LightningDataModule) -> Any:
    """A real training batch as the module receives it (after the DataModule's transfer hook),
    drawn without changing the random state of the run."""
    with torch.random.fork_rng(devices=[]):
        batch = next(iter(datamodule.train_dataloader()))
        return datamodule.on_after_batch_transfer(batch, 0)


def count_training_flops(module: L.LightningModule, batch: Any) -> int:
    """FLOPs (see the module docstring) of one forward+backward of ``module.training_step`` on
    ``batch``, run on a copy of ``module``."""
    counted = copy.deepcopy(module)
    for sub in counted.modules():  # count the eager network, not a compiled one
        if getattr(sub, "_compiled_call_impl", None) is not None:
            sub._compiled_call_impl = None
    counted.train()
    with warnings.catch_warnings():  # self.log without a Trainer; oneDNN's TF32 notice
        warnings.simplefilter("ignore")
        with (
            torch.random.fork_rng(devices=[]),
            torch.backends.mkldnn.flags(enabled=False),
            FlopCounterMode(display=False) as counter,
        ):
            loss = counted.training_step(batch, 0)
            loss.backward()
    return int(counter.get_total_flops())


def flops_per_example(module: L.LightningModule, datamodule: L.LightningDataModule) -> float | None:
    """Training FLOPs per example of ``module`` on ``datamodule``'s training data (for text an
    example is one training window of characters); ``None`` when none are countable."""
    batch = leading(first_training_batch(datamodule), MAX_EXAMPLES)
    count = batch_size_of(batch)
    if count == 0:
        raise ValueError("the first training batch has no examples to count FLOPs on")
    flops = count_training_flops(module, batch)
    return flops / count if flops > 0 else None
