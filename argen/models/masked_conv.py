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


class MaskedConv2d(nn.Conv2d):
    """A stride-1 convolution whose weight is multiplied by a raster-order causal mask.

    Padding is applied so that output ``(i, j)`` is computed with the kernel's ``centre`` tap on
    input ``(i, j)``; the output therefore has the input's spatial size.
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
    ) -> None:
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=0, bias=bias)
        cr, cc = centre if centre is not None else (kh // 2, kw // 2)
        self.mask_type = mask_type
        self.num_groups = num_groups
        self.centre = (cr, cc)
        # F.pad order: (left, right, top, bottom).
        self._pad = (cc, kw - 1 - cc, cr, kh - 1 - cr)
        mask = causal_mask(
            in_channels, out_channels, (kh, kw), mask_type, num_groups, (cr, cc), out_chunks
        )
        self.register_buffer("mask", mask, persistent=False)

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """The zero padding (left, right, top, bottom, ``F.pad`` order) that keeps the size."""
        return self._pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self._pad), self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, mask_type={self.mask_type}, colour_groups={self.num_groups}"
        )
