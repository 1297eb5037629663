"""The raster sampler of every image model: one loop for sampling and completion, naive or cached.

Every raster image model (PixelCNN, Gated PixelCNN, Row LSTM, Diagonal BiLSTM, PixelSNAIL, image
Transformer) derives from :class:`RasterImageModel` and samples through :func:`fill`, which draws
sub-pixels in raster order (rows top to bottom, columns left to right, colours R, G, B within a
pixel), from any prefix, with a temperature, optional class labels, and ``report_row(done,
total)`` (``sampling_progress``) after every row. A model supplies only:

* ``sampling_params(x, y, i, j, k) -> [B, P]``: the head's parameters of sub-pixel ``(k, i, j)``
  given the images ``x`` whose earlier sub-pixels are final (the *naive* sampler; the default
  reruns ``forward`` on the whole image, H*W*C passes per sample);
* ``start_cache(x, y, start) -> RasterStepper``: the *cached* sampler's state for filling ``x``
  from sub-pixel ``start`` on (its ``params(i, j, k)``, ``set_level(i, j, k, value)``,
  ``row_done(i)``; see :class:`RasterStepper`). Each model's stepper lives in its own file.

Both samplers draw every sub-pixel with :func:`draw_levels` (the head's distribution, one
``torch.multinomial`` over the batch per sub-pixel, in the same order), so for the same random
generator they consume identical random numbers; their parameters agree up to floating-point
rounding, hence the samples are identical unless a uniform draw falls within rounding distance of
a CDF boundary (never seen in float64, nor in the float32 checks of
``benchmarks/sampling_speed.py``, but possible in principle).

Caches live in the stepper of one call: nothing is stored on the module, so repeated calls hold
no memory. Dropout is off while sampling (the model is put in eval mode and restored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from argen.models.base import DensityModel
from argen.models.pixel_heads import PixelHead
from argen.models.sampling_progress import report_row

SAMPLERS = ("cached", "naive")


@runtime_checkable
class RasterStepper(Protocol):
    """The cached sampler's state for one call: it computes one sub-pixel's parameters from caches
    and hears about every value the loop writes into the images, in raster order."""

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] head parameters of sub-pixel ``(k, i, j)`` (earlier sub-pixels are final)."""
        ...

    def set_level(self, i: int, j: int, k: int, value: torch.Tensor) -> None:
        """Sub-pixel ``(k, i, j)`` is now ``value`` [B] (drawn or observed)."""
        ...

    def row_done(self, i: int) -> None:
        """Every sub-pixel of row ``i`` is final."""
        ...


# --------------------------------------------------------------------------- shared pieces
def check_sampler(sampler: str) -> str:
    """Validate a sampler name (``"cached"`` or ``"naive"``)."""
    if sampler not in SAMPLERS:
        raise ValueError(
            f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, got {sampler!r}"
        )
    return sampler


@torch.no_grad()
def draw_levels(
    head: PixelHead,
    params: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw float levels [...] from ``params`` [..., P], like ``head.sample`` plus a generator.

    With ``generator=None`` this is exactly ``head.sample`` (same ops, same global RNG stream).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = head.level_log_probs(params) / temperature
    probs = F.softmax(logits.reshape(-1, head.num_levels), dim=-1)
    flat = torch.multinomial(probs, 1, generator=generator)
    return flat.view(logits.shape[:-1]).to(params.dtype)


def resolve_labels(
    model: RasterImageModel,
    n: int,
    y: torch.Tensor | int | None,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    """Labels [n] for a class-conditional model (``None`` draws them uniformly); else ``None``.

    Both samplers call this first, so labels drawn at random use the same random numbers.
    """
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        if y is not None:
            raise ValueError(f"this {type(model).__name__} is unconditional; pass y=None")
        return None
    if y is None:
        y = torch.randint(num_classes, (n,), device=device, generator=generator)
    elif isinstance(y, int):
        y = torch.full((n,), y, dtype=torch.long, device=device)
    return model._check_labels(y.to(device), n)  # the model's own validation and messages


def observed_prefix_lengths(observed_mask: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Number of observed sub-pixels per example, [B], after checking the mask is a prefix.

    ``observed_mask`` must broadcast to ``shape`` = [B, C, H, W]. In raster order (rows top to
    bottom, columns left to right, colours R, G, B within a pixel) every example must observe a
    prefix: no observed sub-pixel may follow an unobserved one.
    """
    if not isinstance(observed_mask, torch.Tensor):
        raise TypeError(f"observed_mask must be a torch.Tensor, got {type(observed_mask).__name__}")
    if observed_mask.dtype != torch.bool and not torch.all(
        (observed_mask == 0) | (observed_mask == 1)
    ):
        raise ValueError("observed_mask must be boolean (or hold only 0 and 1)")
    try:
        mask = observed_mask.to(torch.bool).expand(shape) if observed_mask.dim() <= 4 else None
    except RuntimeError:
        mask = None
    if mask is None:
        raise ValueError(
            f"observed_mask of shape {list(observed_mask.shape)} does not broadcast to the "
            f"images' shape {list(shape)}"
        )
    raster = mask.permute(0, 2, 3, 1).reshape(shape[0], -1)  # [B, H*W*C], C fastest
    lengths = raster.sum(dim=1)
    positions = torch.arange(raster.shape[1], device=raster.device)
    prefix = positions[None, :] < lengths[:, None]
    bad = (raster != prefix).any(dim=1)
    if bad.any():
        b = int(bad.nonzero()[0, 0])
        first_gap = int((~raster[b]).nonzero()[0, 0])
        c, (i, j) = shape[1], divmod(first_gap // shape[1], shape[3])
        raise ValueError(
            "observed_mask must mark a prefix in raster order (rows top to bottom, columns left "
            f"to right, colours R, G, B within a pixel); example {b} leaves sub-pixel "
            f"(channel {first_gap % c}, row {i}, column {j}) unobserved but observes a later one"
        )
    return lengths


# --------------------------------------------------------------------------- the model interface
class RasterImageModel(DensityModel):
    """Base of the raster image models: validated labels, ``log_prob``, the sampler choice, and
    ``sample``, ``sample_cached``, ``sample_naive`` and ``complete`` through the one loop
    (:func:`fill`).

    A subclass sets ``self.head`` (a ``PixelHead``), ``self.sampler`` (``check_sampler``) and, if
    class-conditional, ``self.num_classes``; its ``forward(x)`` (or ``forward(x, y)``) returns
    head parameters [B, C, H, W, P]. It overrides ``start_cache`` to offer a cached sampler and
    ``sampling_params`` when the naive one should not rerun ``forward`` on the whole image.
    """

    head: PixelHead
    sampler: str = "cached"
    num_classes: int | None = None

    def __init__(self, shape: Sequence[int], num_levels: int = 2) -> None:
        super().__init__(shape, num_levels)
        if len(self.shape) != 3:
            raise ValueError(f"shape must be [C, H, W], got {list(shape)}")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Levels 0..K-1 -> [-1, 1]."""
        return x / (self.num_levels - 1) * 2.0 - 1.0

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Labels as a LongTensor [batch] for a conditional model, ``None`` otherwise."""
        name = type(self).__name__
        if self.num_classes is None:
            if y is not None:
                raise ValueError(f"this {name} is unconditional (num_classes=None); pass y=None")
            return None
        if y is None:
            raise ValueError(f"this {name} is class-conditional: pass labels y of shape [{batch}]")
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.long, torch.int, torch.int16):
            raise ValueError("labels y must be an integer tensor")
        if y.shape != (batch,):
            raise ValueError(f"labels y must have shape [{batch}], got {list(y.shape)}")
        if y.numel() and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes - 1}]")
        return y.long()

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log-likelihood log p(x) (or log p(x | y) for a class-conditional model) in
        nats, [B]: the head's log-probability of ``x`` under the parameters ``forward`` gives."""
        self.validate_levels(x)
        if self.num_classes is None:
            self._check_labels(y, x.shape[0])  # an unconditional model refuses labels
            return self.head.log_prob(x, self(x))
        return self.head.log_prob(x, self(x, y))

    # ------------------------------------------------------------------ per-model hooks
    def sampling_params(
        self, x: torch.Tensor, y: torch.Tensor | None, i: int, j: int, k: int
    ) -> torch.Tensor:
        """Naive sampler: [B, P] parameters of sub-pixel ``(k, i, j)`` from a full pass."""
        params = self(x) if self.num_classes is None else self(x, y)
        return params[:, k, i, j]

    def start_cache(
        self, x: torch.Tensor, y: torch.Tensor | None, start: int
    ) -> RasterStepper | None:
        """Cached sampler's state for filling ``x`` (in place) from raster sub-pixel ``start``
        on; ``None`` (the default): no cache, the naive sampler runs instead."""
        return None

    def sampling_weight(self) -> torch.Tensor:
        """A parameter whose device and dtype the samples take."""
        return next(self.parameters())

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        y: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """``n`` images [n, C, H, W] of float levels, drawn by ``sampler`` (default
        ``self.sampler``). For a class-conditional model ``y`` is a label, a tensor of ``n``
        labels, or ``None`` to draw labels uniformly at random."""
        return sample(self, n, device, temperature, y, generator, sampler or self.sampler)

    def sample_cached(self, n: int, **kwargs) -> torch.Tensor:
        """``sample`` with the cached sampler (the model's ``start_cache``)."""
        return self.sample(n, sampler="cached", **kwargs)

    def sample_naive(self, n: int, **kwargs) -> torch.Tensor:
        """Reference sampler: ``sampling_params`` per sub-pixel (a full pass each by default)."""
        return self.sample(n, sampler="naive", **kwargs)

    def complete(
        self,
        x: torch.Tensor,
        observed_mask: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        y: torch.Tensor | int | None = None,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """Sample the unobserved rest of ``x`` given a raster-order prefix (see ``complete``)."""
        return complete(self, x, observed_mask, generator, temperature, y, sampler or self.sampler)


# --------------------------------------------------------------------------- the loop
def _check_model(model: object) -> RasterImageModel:
    if not isinstance(model, RasterImageModel):
        raise TypeError(
            f"no cached sampler for {type(model).__name__}: raster sampling needs a "
            "RasterImageModel (PixelCNN, GatedPixelCNN, RowLSTM, DiagonalBiLSTM, PixelSNAIL, "
            "ImageTransformer)"
        )
    return model


@torch.no_grad()
def fill(
    model: RasterImageModel,
    x: torch.Tensor,
    observed: torch.Tensor,
    start: int,
    y: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    sampler: str,
    stop_row: int | None = None,
) -> torch.Tensor:
    """Draw the sub-pixels of ``x`` [B, C, H, W] from raster index ``start`` up to row
    ``stop_row`` (default: all rows), in place, keeping those where ``observed`` is set; returns
    ``x``. The model is in eval mode meanwhile (restored after)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    stop_row = x.shape[2] if stop_row is None else stop_row
    if not 0 <= stop_row <= x.shape[2]:
        raise ValueError(f"stop_row must lie in [0, {x.shape[2]}], got {stop_row}")
    check_sampler(sampler)
    was_training = model.training
    model.eval()
    try:
        return _loop(model, x, observed, start, y, temperature, generator, sampler, stop_row)
    finally:
        model.train(was_training)


def _loop(
    model: RasterImageModel,
    x: torch.Tensor,
    observed: torch.Tensor,
    start: int,
    y: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    sampler: str,
    stop_row: int,
) -> torch.Tensor:
    _, c, _, w = x.shape
    if start >= c * w * stop_row:
        return x
    stepper = model.start_cache(x, y, start) if sampler == "cached" else None
    for pixel in range(start // c, w * stop_row):
        i, j = divmod(pixel, w)
        for k in range(start - pixel * c if pixel == start // c else 0, c):
            if stepper is None:
                params = model.sampling_params(x, y, i, j, k)
            else:
                params = stepper.params(i, j, k)
            value = draw_levels(model.head, params, temperature, generator)
            value = torch.where(observed[:, k, i, j], x[:, k, i, j], value)
            x[:, k, i, j] = value
            if stepper is not None:
                stepper.set_level(i, j, k, value)
        if j == w - 1:
            if stepper is not None:
                stepper.row_done(i)
            report_row(i + 1, stop_row)
    return x


def sample(
    model: RasterImageModel,
    n: int,
    device: torch.device | str | None = None,
    temperature: float = 1.0,
    y: torch.Tensor | int | None = None,
    generator: torch.Generator | None = None,
    sampler: str = "cached",
    stop_row: int | None = None,
) -> torch.Tensor:
    """``n`` images [n, C, H, W] of float levels from a raster image model.

    ``sampler="cached"`` uses the model's cache (``start_cache``); ``"naive"`` its
    ``sampling_params`` per sub-pixel. Both give identical samples for the same ``generator``
    state. ``stop_row`` (for timing) generates only rows ``< stop_row`` and leaves level 0 below;
    they equal the first rows of a full sample drawn with the same generator state.
    """
    weight = _check_model(model).sampling_weight()
    device = torch.device(device) if device is not None else weight.device
    y = resolve_labels(model, n, y, device, generator)
    x = torch.zeros(n, *model.shape, device=device, dtype=weight.dtype)
    observed = torch.zeros_like(x, dtype=torch.bool)
    return fill(model, x, observed, 0, y, temperature, generator, sampler, stop_row)


def sample_cached(model: RasterImageModel, n: int, **kwargs) -> torch.Tensor:
    """Cached sampler (see ``sample``)."""
    return sample(model, n, sampler="cached", **kwargs)


def sample_naive(model: RasterImageModel, n: int, **kwargs) -> torch.Tensor:
    """Reference sampler (see ``sample``)."""
    return sample(model, n, sampler="naive", **kwargs)


def complete(
    model: RasterImageModel,
    x: torch.Tensor,
    observed_mask: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    y: torch.Tensor | int | None = None,
    sampler: str = "cached",
) -> torch.Tensor:
    """Sample the unobserved part of images ``x`` [B, C, H, W] given the observed part.

    ``observed_mask`` (broadcastable to ``x``; e.g. [H, W] or [B, 1, H, W] for whole pixels)
    marks observed sub-pixels, which must form a prefix in raster order (e.g. the top half) in
    every example; a ``ValueError`` says where it is not. The rest is drawn from the model's
    conditional p(rest | observed) (and label ``y`` for a class-conditional model). Observed
    values are returned unchanged; values of ``x`` at unobserved sub-pixels are ignored.
    """
    dtype = _check_model(model).sampling_weight().dtype
    model.validate_levels(x)
    lengths = observed_prefix_lengths(observed_mask, tuple(x.shape))
    observed = observed_mask.to(device=x.device, dtype=torch.bool).expand(x.shape)
    filled = torch.where(observed, x, torch.zeros_like(x)).to(dtype)
    y = resolve_labels(model, x.shape[0], y, x.device, generator)
    start = int(lengths.min()) if lengths.numel() else filled[0].numel()
    out = fill(model, filled, observed, start, y, temperature, generator, sampler)
    return out.to(x.dtype)
