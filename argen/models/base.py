"""The one contract shared by every density model in argen.

A density model is a plain ``nn.Module`` (no Lightning, no Hydra) with

* ``log_prob(x) -> Tensor[B]``: the exact log-likelihood of each example, in nats;
* ``sample(n, ...) -> Tensor``: ``n`` fresh examples in the same format as the data.

Image models see float tensors ``[B, C, H, W]`` whose values are the integer levels
``0 .. num_levels - 1`` (``{0., 1.}`` for binary data). ``validate_levels`` rejects anything else
with a message that says what was wrong, so a bad input never yields a wrong number.

What a model can model is declared once, on its class, as ``capabilities = Capabilities(...)``
right after the class docstring; everything that needs to know derives from it (the model's own
refusal of data it cannot model, train.py's config checks, the registry of ``conf/model/``, the
comparison sweep and the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

IMAGE, TEXT = "image", "text"
DataKind = Literal["image", "text"]


@dataclass(frozen=True)
class Capabilities:
    """What a model class can model: declared once, as the class attribute ``capabilities``.

    Images are float tensors [B, C, H, W] of levels 0..K-1, with any number of channels C (RGB
    included); text is a sequence of token ids.
    """

    data: DataKind = IMAGE  # what the model's inputs are
    binary_only: bool = False  # images of two levels only (Bernoulli conditionals); else any K
    labels: bool = False  # can condition on class labels (``num_classes``)
    density: bool = True  # exact ``log_prob`` and ``sample``; False: no likelihood (autoencoder)

    def refusal(self, data: DataKind, num_levels: int | None = None) -> str | None:
        """Why this model cannot model ``data`` (with ``num_levels`` levels), or ``None`` if it
        can: one phrase, for the error message of whoever asked."""
        if data != self.data:
            nouns = {IMAGE: "images", TEXT: "text"}
            return f"it models {nouns[self.data]}, not {nouns[data]}"
        if self.binary_only and num_levels is not None and num_levels != 2:
            return f"it models binary data (num_levels=2), not num_levels={num_levels}"
        return None


def capabilities_of(model: type | nn.Module) -> Capabilities:
    """The ``capabilities`` a model class (or an instance's class) declares; ``TypeError`` with
    what to add if it declares none."""
    cls = model if isinstance(model, type) else type(model)
    declared = getattr(cls, "capabilities", None)
    if not isinstance(declared, Capabilities):
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} declares no capabilities: add "
            "`capabilities = Capabilities(...)` (argen.models.base) after its class docstring"
        )
    return declared


class DensityModel(nn.Module):
    """Base class: stores the data shape and number of levels, validates inputs, and refuses data
    its class's ``capabilities`` cannot model (binary-only models: ``num_levels != 2``)."""

    capabilities: Capabilities  # declared by every concrete model class

    def __init__(self, shape: Sequence[int], num_levels: int = 2) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.num_levels = int(num_levels)
        if self.num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        if capabilities_of(self).binary_only:
            require_binary(self.num_levels, type(self).__name__)

    @property
    def num_dims(self) -> int:
        """Number of modelled variables D (used for bits/dim = nats / (D ln 2))."""
        return math.prod(self.shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, **kwargs) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def validate_levels(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a floating tensor [B, *shape] of integer levels."""
        validate_levels(x, self.shape, self.num_levels, type(self).__name__)

    def validate_form(self, x: torch.Tensor) -> None:
        """The free part of ``validate_levels``: type, dtype and shape, no pass over the values.

        ``training_loss`` (the training hot path) checks only this much; its caller checks the
        values once per batch or group of batches (``DensityModule``, ``argen.modules.amortized``), and
        ``log_prob`` always checks them.
        """
        validate_form(x, self.shape, type(self).__name__)


def count_parameters(module: nn.Module) -> int:
    """The parameters of ``module`` as papers count them: a layer that stores only what its mask
    keeps (``num_dense_parameters``, e.g. ``PackedMaskedLinear``) counts its dense shape, so a
    model's count does not depend on how its layers are stored."""
    total, packed = 0, set()
    for sub in module.modules():
        if hasattr(sub, "num_dense_parameters"):
            total += sub.num_dense_parameters()
            packed.update(id(p) for p in sub.parameters())
    return total + sum(p.numel() for p in module.parameters() if id(p) not in packed)


def validate_form(x: torch.Tensor, shape: Sequence[int], who: str) -> None:
    """Raise unless ``x`` is a floating tensor [B, *shape] (no pass over its values)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}.log_prob expects a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(
            f"{who}.log_prob expects a floating tensor of pixel levels, got dtype {x.dtype}; "
            "convert with x.float()"
        )
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{who}.log_prob expects inputs of shape [B, {', '.join(map(str, shape))}], "
            f"got {list(x.shape)}"
        )


def validate_levels(x: torch.Tensor, shape: Sequence[int], num_levels: int, who: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating tensor [B, *shape] of levels 0..K-1."""
    validate_form(x, shape, who)
    if x.numel() == 0:
        return
    # One pass for the range, one for the fractional parts, one host sync: this runs once per
    # batch in training (min, max and equal-to-round took 3x longer on a CPU).
    low_high = torch.aminmax(x.detach())
    stats = torch.stack([*low_high, torch.frac(x.detach()).abs_().sum()])
    low, high, fractional = stats.tolist()
    if not (low >= 0 and high <= num_levels - 1 and fractional == 0):
        raise ValueError(
            f"{who}.log_prob expects integer levels in [0, {num_levels - 1}] "
            f"(num_levels={num_levels}), got values in [{low:g}, {high:g}]"
            + ("" if fractional == 0 else " that are not whole numbers")
            + "; binarize or quantize the data first"
        )


def require_binary(num_levels: int, model: str) -> None:
    """A binary-only model (``Capabilities(binary_only=True)``) refuses non-binary data: called
    by ``DensityModel.__init__``, before any parameter is made."""
    if num_levels != 2:
        raise ValueError(
            f"{model} models binary data (num_levels=2), but the data has num_levels={num_levels}. "
            "Use a binary dataset (data=binarized_mnist) or a model of any number of levels "
            "(`python train.py --help` lists the models; e.g. model=pixelcnn)."
        )
