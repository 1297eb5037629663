"""Masked convolutions for raster-order image models (van den Oord et al. 2016, PixelRNN paper).

A pixel ``(i, j)`` may depend on every pixel before it in raster order; inside a pixel the
colours are generated R, then G, then B. Feature maps are therefore split into ``num_groups``
contiguous channel groups, group ``g`` belonging to colour ``g`` (``num_groups = C``, the number
of image channels; 1 for grey images). At the kernel centre:

* mask ``"A"`` (first layer, a sub-pixel may not see itself): output group ``g`` sees input
  groups ``< g``;
* mask ``"B"`` (later layers, the features already exclude the current sub-pixel): output group
  ``g`` sees input groups ``<= g``.

Positions before the centre in raster order are fully connected, positions after it are cut.
Masks are buffers multiplied into the weight on every forward pass, so an optimizer step or a
checkpoint load can never put weight on a forbidden connection. The same layer serves PixelCNN,
Gated PixelCNN (horizontal stack, with a centre on the kernel's last column) and PixelRNN
(input-to-state convolutions).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MaskType = Literal["A", "B"]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def channel_groups(num_channels: int, num_groups: int, chunks: int = 1) -> torch.Tensor:
    """Colour group of each channel: ``chunks`` equal blocks, each split contiguously into groups.

    ``chunks=2`` describes a layer whose output is later cut in halves (e.g. the tanh and sigmoid
    halves of a gated unit): channel ``k`` of both halves then belongs to the same colour.
    """
    if num_channels % chunks:
        raise ValueError(f"{num_channels} channels cannot be split into {chunks} equal chunks")
    per_chunk = num_channels // chunks
    if per_chunk < num_groups:
        raise ValueError(
            f"need at least {num_groups} channels per chunk (one per colour group), got {per_chunk}"
        )
    groups = torch.arange(per_chunk) * num_groups // per_chunk
    return groups.repeat(chunks)


def causal_mask(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    mask_type: MaskType,
    num_groups: int = 1,
    centre: tuple[int, int] | None = None,
    out_chunks: int = 1,
) -> torch.Tensor:
    """Binary mask [out, in, kh, kw] for a raster-order convolution.

    ``centre`` is the kernel tap that lines up with the output pixel (default: the middle tap).
    Taps before it in raster order are 1, taps after it 0, and the centre tap carries the
    colour-group mask of ``mask_type``.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = _pair(kernel_size)
    cr, cc = centre if centre is not None else (kh // 2, kw // 2)
    if not (0 <= cr < kh and 0 <= cc < kw):
        raise ValueError(f"centre {centre} lies outside a {kh}x{kw} kernel")
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    mask[:, :, :cr, :] = 1.0
    mask[:, :, cr, :cc] = 1.0
    group_in = channel_groups(in_channels, num_groups)
    group_out = channel_groups(out_channels, num_groups, out_chunks)
    if mask_type == "A":
        allowed = group_out[:, None] > group_in[None, :]
    else:
        allowed = group_out[:, None] >= group_in[None, :]
    mask[:, :, cr, cc] = allowed.float()
    return mask


IMPLS = ("auto", "dense", "rows", "split")


def check_impl(impl: str) -> str:
    """Validate a masked-convolution implementation name (see ``MaskedConv2d``)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    return impl


def auto_impl(kernel_size: tuple[int, int], centre: tuple[int, int], device_type: str) -> str:
    """The implementation ``impl="auto"`` runs: a rule from measurements.

    On a CPU (2 cores, one thread, CPU time of forward + backward, on a busy machine) the kernel
    cut below the centre row (``"rows"``) beat the two-convolution ``"split"`` (fewer
    multiply-adds, but a second pass over the input and an addition) on every layer kind of
    PixelCNN and PixelSNAIL: alone, 1.04-1.41x the dense kernel against 0.67-1.21x, except the
    grey 7x7 input layer (0.86x against 0.74x); over a whole PixelCNN training step, rows
    everywhere was 1.67x the dense network, split everywhere 1.48x, dense input layer and rows
    elsewhere 1.30x (the input layer's channels-last output sets the format of the rest). On a GPU
    (not measured yet: ``benchmarks/net_speed.py`` compares ``conv_impl`` values there) cuDNN's
    3x3 kernels are specialised, so kernels with one masked row stay dense and only those with
    more are cut.
    """
    kh, kw = kernel_size
    if kh == 1 or centre[0] == kh - 1:  # no masked rows below the centre: nothing to cut
        return "rows"
    if device_type == "cuda" and kh - 1 - centre[0] < 2:
        return "dense"
    return "rows"


class MaskedConv2d(nn.Conv2d):
    """A stride-1 convolution whose weight is multiplied by a raster-order causal mask.

    Padding is applied so that output ``(i, j)`` is computed with the kernel's ``centre`` tap on
    input ``(i, j)``; the output therefore has the input's spatial size.

    The ``weight`` parameter keeps its full kh x kw shape (checkpoints of every implementation are
    interchangeable), but ``impl`` decides which taps are computed:

    * ``"dense"``: the whole kernel times the mask, on a padded copy of the input (the reference,
      and what every layer ran before the other implementations existed);
    * ``"rows"``: only the kernel rows up to the centre row (the rows below are all masked), with
      the mask applied to the centre row only; no multiplication at all where the kept taps are
      all unmasked (1x1 grey mask-B layers), and no padded copy where none is needed;
    * ``"split"``: the unmasked taps only, as the sum of a convolution over the rows above
      (``cr x kw``, shifted down one row) and one over the current row up to the centre
      (``1 x cc``, or ``cc + 1`` when the centre tap's colour mask lets anything through);
    * ``"auto"`` (default): ``auto_impl``'s rule for the input's device.

    All give the same outputs up to float rounding and the same (exactly zero) gradients on the
    masked taps, since masked taps never enter the computation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: MaskType,
        num_groups: int = 1,
        centre: tuple[int, int] | None = None,
        out_chunks: int = 1,
        bias: bool = True,
        impl: str = "auto",
    ) -> None:
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=0, bias=bias)
        cr, cc = centre if centre is not None else (kh // 2, kw // 2)
        self.mask_type = mask_type
        self.num_groups = num_groups
        self.centre = (cr, cc)
        self.impl = check_impl(impl)
        # F.pad order: (left, right, top, bottom).
        self._pad = (cc, kw - 1 - cc, cr, kh - 1 - cr)
        mask = causal_mask(
            in_channels, out_channels, (kh, kw), mask_type, num_groups, (cr, cc), out_chunks
        )
        self.register_buffer("mask", mask, persistent=False)
        self._centre_key: tuple[int, int] | None = None
        self._centre_flags = (False, False)

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """The zero padding (left, right, top, bottom, ``F.pad`` order) that keeps the size."""
        return self._pad

    def resolved_impl(self, device_type: str) -> str:
        """The implementation run on a device of this type (``impl``, with ``"auto"`` resolved)."""
        if self.impl == "auto":
            return auto_impl(self.kernel_size, self.centre, device_type)
        return self.impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        impl = self.resolved_impl(x.device.type)
        if impl == "rows":
            return cpu_channels_last(self._forward_rows(x), x)
        if impl == "split":
            return cpu_channels_last(self._forward_split(x), x)
        return F.conv2d(F.pad(x, self._pad), self.weight * self.mask, self.bias)

    def _centre(self) -> tuple[bool, bool]:
        """Whether the centre tap's colour mask is all open (grey mask B) or all shut (grey mask
        A); read from ``mask`` again whenever it changed (a test may swap it in place)."""
        key = (self.mask.data_ptr(), self.mask._version)
        if key != self._centre_key:
            centre = self.mask[:, :, self.centre[0], self.centre[1]]
            self._centre_flags = (bool(centre.all()), not bool(centre.any()))
            self._centre_key = key
        return self._centre_flags

    def _centre_row(self, width: int) -> torch.Tensor:
        """The centre row's first ``width`` taps, colour-masked at the centre: [out, in, 1, w]."""
        cr, cc = self.centre
        row = self.weight[:, :, cr : cr + 1, :width]
        if width > cc and not self._centre()[0]:
            row = row * self.mask[:, :, cr : cr + 1, :width]
        return row

    def _forward_rows(self, x: torch.Tensor) -> torch.Tensor:
        x = cpu_channels_last(x, x)
        cr, cc = self.centre
        kw = self.kernel_size[1]
        row = self._centre_row(cc + 1)
        if cc + 1 < kw:  # taps right of the centre are masked: zero columns keep the width
            row = F.pad(row, (0, kw - 1 - cc))
        weight = row if cr == 0 else torch.cat([self.weight[:, :, :cr], row], dim=2)
        weight = cpu_channels_last(weight, x)
        left, right, top, _ = self._pad
        if left == right == top == 0:
            return F.conv2d(x, weight, self.bias)
        if left == right and top == 0:
            return F.conv2d(x, weight, self.bias, padding=(0, left))
        return F.conv2d(F.pad(x, (left, right, top, 0)), weight, self.bias)

    def _forward_split(self, x: torch.Tensor) -> torch.Tensor:
        x = cpu_channels_last(x, x)
        cr, cc = self.centre
        width = cc if self._centre()[1] else cc + 1
        left, right = self._pad[:2]
        out = None
        if cr > 0:  # rows above: output row i reads input rows i - cr .. i - 1
            above = F.pad(x, (left, right, cr, -1))
            out = F.conv2d(above, cpu_channels_last(self.weight[:, :, :cr], x), self.bias)
        if width > 0:  # the current row up to (and maybe including) the centre
            shifted = F.pad(x, (cc, width - cc - 1, 0, 0)) if cc or width - cc - 1 else x
            bias = self.bias if out is None else None
            current = F.conv2d(shifted, cpu_channels_last(self._centre_row(width), x), bias)
            out = current if out is None else out + current
        if out is None:  # nothing unmasked (a grey mask-A 1x1): dense, whose weight gets a grad
            out = F.conv2d(x, self.weight * self.mask, self.bias)
        return out

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, mask_type={self.mask_type}, colour_groups={self.num_groups}"
            f", impl={self.impl}"
        )


def cpu_channels_last(tensor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``tensor`` (an input, weight or output) in channels-last memory format when ``x`` is on a
    CPU, where oneDNN's channels-last convolutions were much faster than channels-first ones
    (benchmarks/net_speed.py); a no-op on tensors already in that format, so only the first
    layer's output is copied, and the format then carries through the elementwise operations.
    Elsewhere unchanged."""
    if x.device.type != "cpu" or not CPU_CHANNELS_LAST:
        return tensor
    return tensor.contiguous(memory_format=torch.channels_last)


CPU_CHANNELS_LAST = True


def set_conv_impl(module: nn.Module, impl: str) -> None:
    """Set ``impl`` on every ``MaskedConv2d`` inside ``module`` (weights untouched)."""
    check_impl(impl)
    for layer in module.modules():
        if isinstance(layer, MaskedConv2d):
            layer.impl = impl
