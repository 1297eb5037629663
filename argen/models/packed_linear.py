"""A linear layer under a fixed nested mask that stores, multiplies and trains only the blocks the
mask keeps.

MADE's masks are nested: row r keeps the columns whose degree is at most (or below) the degree of
row r. With the rows sorted by how many columns they keep and the columns by how many rows keep
them, every row keeps a prefix of the columns and the prefixes grow down the rows: a staircase
holding half of the matrix. Cut the rows into ``num_chunks`` bands; band c needs only the first
``L_c`` columns (the longest prefix in it), a dense block times its own mask. That is about
``(1 + 1/num_chunks) / 2`` of the dense layer's multiply-adds, and, because the blocks are the
parameters, the optimizer updates only that share of the weights too (where a single-mask MADE
spends half of its step). The bands live in one flat parameter and run as one autograd node
(``_Bands``): per-band parameters and autograd nodes cost more, in per-tensor optimizer work and
per-op overhead, than the skipped blocks save at MADE's sizes on a CPU
(``benchmarks/made_packing.py``).

Only for a mask that never changes (a single-mask MADE); MADE's cycling masks keep the dense
``MaskedLinear``. The state dict is the dense layer's (``weight`` with masked entries zero,
``bias``, ``mask``), so checkpoints load either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _is_identity(perm: torch.Tensor) -> bool:
    """Whether ``perm`` leaves every index in place (no gather needed)."""
    return torch.equal(perm, torch.arange(len(perm)))


class _Bands(torch.autograd.Function):
    """``x @ (W * M).T + b`` for the band layout of a ``PackedMaskedLinear``, as one node: each band
    writes its columns of the output (forward) and its slice of the flat gradient (backward)."""

    @staticmethod
    def forward(ctx, x, flat, bias, layer):
        out = x.new_empty(x.shape[0], layer.out_features)
        weights = []
        for (r0, r1, width, offset), mask in zip(layer.bands, layer.band_masks(), strict=True):
            block = flat[offset : offset + (r1 - r0) * width].view(r1 - r0, width)
            block = block if mask is None else block * mask
            weights.append(block)
            if bias is None:
                torch.mm(x[:, :width], block.t(), out=out[:, r0:r1])
            else:
                torch.addmm(bias[r0:r1], x[:, :width], block.t(), out=out[:, r0:r1])
        ctx.save_for_backward(x, *weights)
        ctx.layer, ctx.has_bias = layer, bias is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, *weights = ctx.saved_tensors
        layer = ctx.layer
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_flat = grad.new_empty(layer.num_stored) if ctx.needs_input_grad[1] else None
        for (r0, r1, width, offset), mask, block in zip(
            layer.bands, layer.band_masks(), weights, strict=True
        ):
            band = grad[:, r0:r1]
            if grad_x is not None:
                done = grad_x[:, :width]  # out= (not addmm_): the FLOP counter counts it
                torch.addmm(done, band, block, out=done)
            if grad_flat is not None:
                piece = grad_flat[offset : offset + (r1 - r0) * width].view(r1 - r0, width)
                torch.mm(band.t(), x[:, :width], out=piece)
                if mask is not None:
                    piece.mul_(mask)
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_flat, grad_bias, None


class PackedMaskedLinear(nn.Module):
    """``F.linear(x, weight * mask, bias)`` for a fixed nested 0/1 ``mask`` [out, in], computed
    and parameterised by bands (see the module docstring); inputs [B, in].

    ``packed``: the bands' weights, one after another, each [rows, width] row-major, in the
    ranked layout (rows and columns sorted as described above); ``weight`` gives the dense matrix.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        mask: torch.Tensor,
        num_chunks: int = 4,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = mask.shape
        mask = mask.detach().to(torch.bool).cpu()
        rows = torch.argsort(mask.sum(1), stable=True)
        cols = torch.argsort(mask.sum(0), descending=True, stable=True)
        ranked = mask[rows][:, cols]
        lengths = ranked.sum(1)
        if not torch.equal(ranked, torch.arange(self.in_features)[None, :] < lengths[:, None]):
            raise ValueError("PackedMaskedLinear needs a nested mask (MADE's); use MaskedLinear")
        bounds = sorted({round(self.out_features * c / num_chunks) for c in range(num_chunks + 1)})
        ranked_weight = weight.detach().cpu()[rows][:, cols]
        self.bands: list[tuple[int, int, int, int]] = []  # (first row, end row, width, offset)
        pieces, offset = [], 0
        for index, (r0, r1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            width = int(lengths[r1 - 1])
            self.bands.append((r0, r1, width, offset))
            offset += (r1 - r0) * width
            pieces.append(ranked_weight[r0:r1, :width].reshape(-1))
            # A band whose rows keep prefixes of different lengths needs the mask inside its block.
            band = ranked[r0:r1, :width]
            self.register_buffer(
                f"band_mask{index}",
                None if bool(band.all()) else band.to(weight.dtype),
                persistent=False,
            )
        self.num_stored = offset
        self.packed = nn.Parameter(torch.cat(pieces).to(weight))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.register_buffer("mask", mask.to(weight))
        self.register_buffer("row_order", rows.to(weight.device), persistent=False)
        self.register_buffer("col_order", cols.to(weight.device), persistent=False)
        self.register_buffer("row_rank", torch.argsort(rows).to(weight.device), persistent=False)
        self.register_buffer("col_rank", torch.argsort(cols).to(weight.device), persistent=False)
        self._row_perm = not _is_identity(rows)
        self._col_perm = not _is_identity(cols)

    def band_masks(self) -> list[torch.Tensor | None]:
        return [getattr(self, f"band_mask{index}") for index in range(len(self.bands))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            # Autocast's low-precision matmul (bf16-mixed) applies to F.linear, not to the bands'
            # out= products: one dense product of the assembled weight (gradients reach the bands).
            return F.linear(x, self.weight, self.bias)
        ranked = x.index_select(1, self.col_order) if self._col_perm else x
        bias = self.bias
        if bias is not None and self._row_perm:
            bias = bias.index_select(0, self.row_order)
        out = _Bands.apply(ranked, self.packed, bias, self)
        return out.index_select(1, self.row_rank) if self._row_perm else out

    def to_dense(self, flat: torch.Tensor) -> torch.Tensor:
        """A packed tensor (the weights, or their gradient) as the dense [out, in] matrix, masked
        entries zero."""
        ranked = flat.new_zeros(self.out_features, self.in_features)
        for (r0, r1, width, offset), mask in zip(self.bands, self.band_masks(), strict=True):
            block = flat[offset : offset + (r1 - r0) * width].view(r1 - r0, width)
            if mask is None:
                ranked[r0:r1, :width] = block
            elif torch.is_grad_enabled() and block.requires_grad:
                ranked[r0:r1, :width] = block * mask
            else:  # no temporary (the sampler's 8000 x 8000 layers)
                torch.mul(block, mask, out=ranked[r0:r1, :width])
        if self._row_perm:
            ranked = ranked.index_select(0, self.row_rank)
        if self._col_perm:
            ranked = ranked.index_select(1, self.col_rank)
        return ranked

    @property
    def weight(self) -> torch.Tensor:
        """The dense [out, in] weight, zero where the mask is (what ``MaskedLinear`` computes with)."""
        return self.to_dense(self.packed)

    def masked_weight(self) -> torch.Tensor:
        """``weight``, already zero where the mask is (``MaskedLinear.masked_weight``'s role)."""
        return self.weight

    def num_dense_parameters(self) -> int:
        """The dense layer's count (masked weights included), the count papers report."""
        return self.out_features * self.in_features + (
            0 if self.bias is None else self.out_features
        )

    # ------------------------------------------------------------ the dense layer's state dict
    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        weight = self.weight if keep_vars else self.weight.detach()
        destination[prefix + "weight"] = weight
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()
        destination[prefix + "mask"] = self.mask

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ) -> None:
        names = ["weight", "mask"] + ([] if self.bias is None else ["bias"])
        for name in names:
            if prefix + name not in state_dict:
                missing_keys.append(prefix + name)
        if strict:
            own = {prefix + name for name in ("weight", "bias", "mask")}
            unexpected_keys.extend(
                key
                for key in state_dict
                if key.startswith(prefix) and "." not in key[len(prefix) :] and key not in own
            )
        if any(prefix + name not in state_dict for name in names):
            return
        mask = state_dict[prefix + "mask"]
        if not torch.equal(mask.to(torch.bool).cpu(), self.mask.to(torch.bool).cpu()):
            errors.append(
                f"{prefix}mask: the checkpoint's mask differs from this layer's fixed mask"
            )
            return
        weight = state_dict[prefix + "weight"].to(self.mask)
        ranked = weight[self.row_order][:, self.col_order]
        with torch.no_grad():
            for r0, r1, width, offset in self.bands:
                piece = self.packed[offset : offset + (r1 - r0) * width]
                piece.copy_(ranked[r0:r1, :width].reshape(-1))
            if self.bias is not None:
                self.bias.copy_(state_dict[prefix + "bias"])

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bands={len(self.bands)}, stored={self.num_stored}"
        )
