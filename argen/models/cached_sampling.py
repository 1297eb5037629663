"""Fast cached sampling and image completion for convolutional ARMs.

After Ramachandran et al. (2017), "Fast Generation for Convolutional Autoregressive Models": a
naive raster sampler runs the whole network once per sub-pixel although a new pixel changes only
a few activations. Here every layer's activations are cached and, per generated sub-pixel, only
what the new value changes is computed.

Why one position per layer suffices: in a raster-order network the activation of *every* layer at
pixel ``(i, j)`` depends only on image pixels at or before ``(i, j)`` (the masks cut everything
after it). So once pixel ``(i, j)`` is final, so are all of its activations, and the activation
at ``(i, j)`` of layer ``l`` needs layer ``l-1`` only at positions that are already final or at
``(i, j)`` itself, which was just computed. Generating sub-pixel ``(k, i, j)`` therefore costs
one masked-kernel dot product per layer at ``(i, j)``, read from the cached maps.

* PixelCNN: caches the normalized image and each residual block's input to its kxk convolution.
* Gated PixelCNN: the vertical stack at row ``i`` sees all of row ``i`` and only reaches the
  horizontal stack shifted one row down, so it is computed one whole row at a time after the row
  is complete (keeping only the ``k//2`` rows its kernel needs); the horizontal stack is computed
  at one position per layer from a cache of the current row.

Both samplers draw every sub-pixel with ``draw_levels`` (the head's distribution, one
``torch.multinomial`` call over the batch per sub-pixel, in raster order R, G, B), so for the
same random generator the cached and naive samplers consume identical random numbers; their
parameters agree up to floating-point rounding, hence the samples are identical unless a uniform
draw falls within rounding distance of a CDF boundary: never seen in float64, and no flip in the
float32 checks of ``benchmarks/sampling_speed.py`` (e.g. all 12,544 sub-pixels of 16 binary 28x28
samples, and 256-way RGB rows), but possible in principle.

Cost: one full forward pass' worth of vertical-stack arithmetic plus H*W*C cheap single-position
steps, instead of H*W*C full passes. Memory: PixelCNN keeps one padded map per kxk convolution
(about a forward pass' activations); Gated PixelCNN keeps only k//2 + 1 rows per layer.

Caches live in local variables of one call: nothing is stored on the module, so repeated calls
hold no memory. All operations are plain tensor ops, so the samplers run on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.masked_conv import MaskedConv2d
from argen.models.pixel_heads import PixelHead
from argen.models.sampling_progress import report_row

SAMPLERS = ("cached", "naive")


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
    model: nn.Module,
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


@torch.no_grad()
def _naive_loop(
    params_fn: Callable[[torch.Tensor], torch.Tensor],
    head: PixelHead,
    x: torch.Tensor,
    observed: torch.Tensor,
    start: int,
    temperature: float,
    generator: torch.Generator | None,
    stop_row: int,
) -> torch.Tensor:
    """Fill rows < ``stop_row`` of ``x`` from sub-pixel ``start``: one full pass per sub-pixel."""
    _, c, _, w = x.shape
    for s in range(start, c * w * stop_row):
        (i, j), k = divmod(s // c, w), s % c
        params = params_fn(x)[:, k, i, j]
        value = draw_levels(head, params, temperature, generator)
        x[:, k, i, j] = torch.where(observed[:, k, i, j], x[:, k, i, j], value)
        if j == w - 1 and k == c - 1:
            report_row(i + 1, stop_row)
    return x


# --------------------------------------------------------------------------- layer helpers
def _masked_weight(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight * conv.mask if isinstance(conv, MaskedConv2d) else conv.weight


def _pointwise(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A 1x1 convolution as (transposed weight [in, out], bias) for ``torch.addmm``."""
    weight = _masked_weight(conv)
    return weight.reshape(weight.shape[0], -1).t().contiguous(), conv.bias


def _linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x @ weight_t if bias is None else torch.addmm(bias, x, weight_t)


@dataclass
class _Window:
    """A masked kxk convolution evaluated at one position of a channel-last padded cache.

    Only kernel rows up to the centre row are kept (the rows below are masked out entirely).
    """

    weight_t: torch.Tensor  # [(cr+1)*kw*in, out], matching a [rows, cols, in] window
    bias: torch.Tensor | None
    rows: int
    cols: int
    pad: tuple[int, int, int, int]  # F.pad order: left, right, top, bottom

    @classmethod
    def of(cls, conv: MaskedConv2d) -> _Window:
        rows = conv.centre[0] + 1
        weight = _masked_weight(conv)[:, :, :rows, :]  # [out, in, rows, kw]
        weight_t = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous()
        return cls(weight_t, conv.bias, rows, weight.shape[3], conv._pad)

    def cache(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> zero-padded channel-last cache [B, H + pad, W + pad, C]."""
        return F.pad(features, self.pad).permute(0, 2, 3, 1).contiguous()

    def write(self, cache: torch.Tensor, i: int, j: int, value: torch.Tensor) -> None:
        cache[:, i + self.pad[2], j + self.pad[0]] = value

    def at(self, cache: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Output [B, out] at pixel (i, j); padded rows i..i+cr hold input rows i-cr..i."""
        window = cache[:, i : i + self.rows, j : j + self.cols].reshape(cache.shape[0], -1)
        return _linear(window, self.weight_t, self.bias)


def _pixel_params(head: PixelHead, features: torch.Tensor) -> torch.Tensor:
    """Output-layer features [B, C*P] at one pixel -> head parameters [B, C, P]."""
    return head.params(features[:, :, None, None])[:, :, 0, 0]


def _output_stack(output: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The (ReLU, 1x1, ReLU, 1x1) output layers as pointwise maps."""
    convs = [m for m in output if isinstance(m, nn.Conv2d)]
    if len(convs) != 2 or len(output) != 4:
        raise TypeError("cached sampling expects an output stack (ReLU, 1x1, ReLU, 1x1)")
    return [_pointwise(conv) for conv in convs]


def _apply_output(stack, h: torch.Tensor) -> torch.Tensor:
    for weight_t, bias in stack:
        h = _linear(torch.relu(h), weight_t, bias)
    return h


# --------------------------------------------------------------------------- PixelCNN
class _PixelCNNStepper:
    """Caches of one PixelCNN sampling call; computes every layer at a single pixel."""

    def __init__(self, model: nn.Module, x: torch.Tensor, row: int) -> None:
        self.model = model
        self.first = _Window.of(model.input_conv)
        self.blocks = []
        for block in model.blocks:
            net = block.net
            if len(net) != 6 or not isinstance(net[3], MaskedConv2d):
                raise TypeError("cached sampling expects PixelCNN residual blocks")
            self.blocks.append((_pointwise(net[1]), _Window.of(net[3]), _pointwise(net[5])))
        self.output = _output_stack(model.output)
        # Prefill: a full pass over rows 0..row records every cached map, exact at the pixels
        # before the start (outputs at row r never depend on rows below r).
        height = x.shape[2]
        image = model.normalize(x)
        self.image = self.first.cache(image)
        self.inner = []
        h = model.input_conv(image[:, :, : row + 1])
        for block, (_, window, _) in zip(model.blocks, self.blocks, strict=True):
            inner = block.net[:3](h)
            self.inner.append(window.cache(F.pad(inner, (0, 0, 0, height - row - 1))))
            h = h + block.net[3:](inner)

    def set_level(self, i: int, j: int, k: int, level: torch.Tensor) -> None:
        value = self.model.normalize(level)
        self.image[:, i + self.first.pad[2], j + self.first.pad[0], k] = value

    def params(self, i: int, j: int) -> torch.Tensor:
        """[B, C, P] parameters at pixel (i, j), writing its activations into the caches."""
        h = self.first.at(self.image, i, j)
        for (down, window, up), cache in zip(self.blocks, self.inner, strict=True):
            inner = torch.relu(_linear(torch.relu(h), *down))
            window.write(cache, i, j, inner)
            h = h + _linear(torch.relu(window.at(cache, i, j)), *up)
        return _pixel_params(self.model.head, _apply_output(self.output, h))

    def row_done(self, i: int) -> None:
        """Nothing to do: PixelCNN has no row-level state."""


# --------------------------------------------------------------------------- Gated PixelCNN
def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class _GatedStepper:
    """Caches of one Gated PixelCNN sampling call.

    Per layer ``l``: ``vrows[l]``, the last ``k//2`` rows of the vertical stack's input (padded,
    channel-first for ``conv2d``); ``hrow[l]``, the horizontal stack's input on the current row
    (channel-last, ``k//2`` zero columns on the left); ``hbias[l]`` [W, B, 2c], everything added to
    the horizontal pre-activation that does not depend on the current row (h_conv bias, the
    vertical stack's contribution from the row above, the label bias).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, row: int):
        self.model = model
        self.layers = list(model.layers)
        self.half = self.layers[0].h_conv.centre[1]
        self.h_weights, self.out_weights, self.label_biases = [], [], []
        for layer in self.layers:
            weight = _masked_weight(layer.h_conv)[:, :, 0, :]  # [2c, in, half+1]
            self.h_weights.append(weight.permute(2, 1, 0).reshape(-1, weight.shape[0]).contiguous())
            self.out_weights.append(_pointwise(layer.h_out))
            if layer.label_bias is None:
                self.label_biases.append((None, None))
            else:
                v_bias, h_bias = layer.label_bias(y).chunk(2, dim=1)  # [B, 2c] each
                self.label_biases.append((v_bias[:, :, None, None], h_bias))
        self.output = _output_stack(model.output)
        self.x = x
        # Prefill: a full pass over rows 0..row records the maps that rows before ``row`` leave
        # behind (outputs at row r never depend on rows below r).
        v = h = model.normalize(x[:, :, : row + 1])
        self.vrows, self.hrow, self.hbias = [], [], []
        for index, layer in enumerate(self.layers):
            padded = F.pad(v, layer._v_pad)  # row r sits at padded row r + half
            self.vrows.append(padded[:, :, row : row + self.half])
            self.hrow.append(self._row_cache(h[:, :, row]))
            v_pre = layer.v_conv(padded)
            above = v_pre[:, :, row - 1 : row] if row > 0 else torch.zeros_like(v_pre[:, :, :1])
            self.hbias.append(self._h_bias(index, above))
            v, h = layer(v, h, y)

    def _row_cache(self, row: torch.Tensor) -> torch.Tensor:
        """[B, C, W] -> [B, half + W, C], zeros on the left (the h_conv padding)."""
        return F.pad(row, (self.half, 0)).permute(0, 2, 1).contiguous()

    def _h_bias(self, index: int, v_pre_above: torch.Tensor) -> torch.Tensor:
        """[B, 2c, 1, W] vertical pre-activation of the row above -> [W, B, 2c] additive term."""
        layer = self.layers[index]
        bias = layer.v_to_h(v_pre_above)[:, :, 0]  # [B, 2c, W]
        if layer.h_conv.bias is not None:
            bias = bias + layer.h_conv.bias[None, :, None]
        label = self.label_biases[index][1]
        if label is not None:
            bias = bias + label[:, :, None]
        return bias.permute(2, 0, 1).contiguous()

    def set_level(self, i: int, j: int, k: int, level: torch.Tensor) -> None:
        self.hrow[0][:, j + self.half, k] = self.model.normalize(level)

    def params(self, i: int, j: int) -> torch.Tensor:
        """[B, C, P] parameters at pixel (i, j), writing the horizontal stack into the caches."""
        h = None
        for index, layer in enumerate(self.layers):
            cache = self.hrow[index]
            window = cache[:, j : j + self.half + 1].reshape(cache.shape[0], -1)
            pre = torch.addmm(self.hbias[index][j], window, self.h_weights[index])
            h = _linear(_gate(pre), *self.out_weights[index])
            if layer.residual:
                h = cache[:, j + self.half] + h
            if index + 1 < len(self.layers):
                self.hrow[index + 1][:, j + self.half] = h
        return _pixel_params(self.model.head, _apply_output(self.output, h))

    def row_done(self, i: int) -> None:
        """Row ``i`` is complete: run the vertical stack on it and reset the row caches."""
        if i + 1 >= self.x.shape[2]:
            return
        v = self.hrow[0][:, self.half :].permute(0, 2, 1)[:, :, None]  # normalized image row i
        for index, layer in enumerate(self.layers):
            rows = torch.cat([self.vrows[index], F.pad(v, layer._v_pad[:2])], dim=2)
            self.vrows[index] = rows[:, :, 1:]
            v_pre = layer.v_conv(rows)  # [B, 2c, 1, W]
            self.hbias[index] = self._h_bias(index, v_pre)
            v_bias = self.label_biases[index][0]
            v = _gate(v_pre if v_bias is None else v_pre + v_bias)
        next_row = self.model.normalize(self.x[:, :, i + 1])
        self.hrow = [self._row_cache(next_row)] + [torch.zeros_like(c) for c in self.hrow[1:]]


# --------------------------------------------------------------------------- drivers
def _stepper_class(model: nn.Module) -> type:
    """The cache layout for ``model``; a ``TypeError`` for models these samplers do not know."""
    # Imported here: the model modules import this one.
    from argen.models.gated_pixelcnn import GatedPixelCNN
    from argen.models.pixelcnn import PixelCNN

    if isinstance(model, GatedPixelCNN):
        return _GatedStepper
    if isinstance(model, PixelCNN):
        return _PixelCNNStepper
    raise TypeError(
        f"no cached sampler for {type(model).__name__}; expected a PixelCNN or GatedPixelCNN"
    )


def _stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, start_pixel: int):
    row = start_pixel // x.shape[3]
    if _stepper_class(model) is _GatedStepper:
        return _GatedStepper(model, x, y, row)
    return _PixelCNNStepper(model, x, row)


@torch.no_grad()
def _cached_loop(
    model: nn.Module,
    x: torch.Tensor,
    observed: torch.Tensor,
    start: int,
    y: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    stop_row: int,
) -> torch.Tensor:
    """Fill rows < ``stop_row`` of ``x`` from sub-pixel ``start`` with cached activations."""
    _, c, _, w = x.shape
    if start >= c * w * stop_row:
        return x
    stepper = _stepper(model, x, y, start // c)
    for pixel in range(start // c, w * stop_row):
        i, j = divmod(pixel, w)
        for k in range(start - pixel * c if pixel == start // c else 0, c):
            params = stepper.params(i, j)[:, k]
            value = draw_levels(model.head, params, temperature, generator)
            value = torch.where(observed[:, k, i, j], x[:, k, i, j], value)
            x[:, k, i, j] = value
            stepper.set_level(i, j, k, value)
        if j == w - 1:
            stepper.row_done(i)
            report_row(i + 1, stop_row)
    return x


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's weights live (after checking the model is one we can sample)."""
    _stepper_class(model)
    weight = model.output[-1].weight
    return weight.device, weight.dtype


def _params_fn(model: nn.Module, y: torch.Tensor | None):
    if getattr(model, "num_classes", None) is None:
        return model
    return lambda x: model(x, y)


@torch.no_grad()
def _fill(
    model: nn.Module,
    x: torch.Tensor,
    observed: torch.Tensor,
    start: int,
    y: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    sampler: str,
    stop_row: int | None = None,
) -> torch.Tensor:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    stop_row = x.shape[2] if stop_row is None else stop_row
    if not 0 <= stop_row <= x.shape[2]:
        raise ValueError(f"stop_row must lie in [0, {x.shape[2]}], got {stop_row}")
    if check_sampler(sampler) == "naive":
        params_fn = _params_fn(model, y)
        return _naive_loop(
            params_fn, model.head, x, observed, start, temperature, generator, stop_row
        )
    return _cached_loop(model, x, observed, start, y, temperature, generator, stop_row)


def sample(
    model: nn.Module,
    n: int,
    device: torch.device | str | None = None,
    temperature: float = 1.0,
    y: torch.Tensor | int | None = None,
    generator: torch.Generator | None = None,
    sampler: str = "cached",
    stop_row: int | None = None,
) -> torch.Tensor:
    """``n`` images [n, C, H, W] of float levels from a PixelCNN or Gated PixelCNN.

    ``sampler="cached"`` computes one position per layer per sub-pixel; ``"naive"`` runs the full
    network per sub-pixel. Both give identical samples for the same ``generator`` state.
    ``stop_row`` (for timing) generates only rows ``< stop_row`` and leaves level 0 below; they
    equal the first rows of a full sample drawn with the same generator state.
    """
    model_device, dtype = _model_device_dtype(model)
    device = torch.device(device) if device is not None else model_device
    y = resolve_labels(model, n, y, device, generator)
    x = torch.zeros(n, *model.shape, device=device, dtype=dtype)
    observed = torch.zeros_like(x, dtype=torch.bool)
    return _fill(model, x, observed, 0, y, temperature, generator, sampler, stop_row)


def sample_cached(model: nn.Module, n: int, **kwargs) -> torch.Tensor:
    """Cached sampler (see ``sample``)."""
    return sample(model, n, sampler="cached", **kwargs)


def sample_naive(model: nn.Module, n: int, **kwargs) -> torch.Tensor:
    """Reference sampler: one full forward pass per sub-pixel (see ``sample``)."""
    return sample(model, n, sampler="naive", **kwargs)


def complete(
    model: nn.Module,
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
    _, dtype = _model_device_dtype(model)
    model.validate_levels(x)
    lengths = observed_prefix_lengths(observed_mask, tuple(x.shape))
    observed = observed_mask.to(device=x.device, dtype=torch.bool).expand(x.shape)
    filled = torch.where(observed, x, torch.zeros_like(x)).to(dtype)
    y = resolve_labels(model, x.shape[0], y, x.device, generator)
    start = int(lengths.min()) if lengths.numel() else filled[0].numel()
    out = _fill(model, filled, observed, start, y, temperature, generator, sampler)
    return out.to(x.dtype)
