"""A linear layer under a fixed nested mask that stores, multiplies and trains only the blocks the
mask keeps.

MADE's masks are nested: row r keeps the columns whose degree is at most (or below) the degree of
row r. With the rows sorted by how many columns they keep and the columns by how many rows keep
them, every row keeps a prefix of the columns and the prefixes grow down the rows: a staircase
holding half of the matrix. Cut the rows into ``num_chunks`` bands; band c needs only the first
``L_c`` columns (the longest prefix in it), a dense block times its own mask. That is about
``(1 + 1/num_chunks) / 2`` of the dense layer's multiply-adds, and, because the blocks are the
parameters, the optimizer updates only that share of the weights too (where a single-mask MADE
spends half of its step).

Only for a mask that never changes (a single-mask MADE); MADE's cycling masks keep the dense
``MaskedLinear``. The state dict is the dense layer's (``weight`` with masked entries zero,
``bias``, ``mask``), so checkpoints load either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _identity_or(perm: torch.Tensor) -> torch.Tensor | None:
    """``None`` for the identity permutation (no gather needed), else ``perm``."""
    return None if torch.equal(perm, torch.arange(len(perm))) else perm


class PackedMaskedLinear(nn.Module):
    """``F.linear(x, weight * mask, bias)`` for a fixed nested 0/1 ``mask`` [out, in], computed
    and parameterised by blocks (see the module docstring); inputs [B, in]."""

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
        self.chunks: list[tuple[int, int, int]] = []
        for index, (r0, r1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            width = int(lengths[r1 - 1])
            self.chunks.append((r0, r1, width))
            block = weight.detach()[rows[r0:r1]][:, cols[:width]].clone()
            self.register_parameter(f"block{index}", nn.Parameter(block))
            # Rows of a band whose prefixes differ need the mask inside the block.
            band = ranked[r0:r1, :width]
            self.register_buffer(
                f"block_mask{index}",
                None if bool(band.all()) else band.to(weight.dtype),
                persistent=False,
            )
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.register_buffer("mask", mask.to(weight.dtype))
        self.register_buffer("row_order", rows, persistent=False)
        self.register_buffer("col_order", cols, persistent=False)
        self._row_perm = _identity_or(rows) is not None
        self._col_perm = _identity_or(cols) is not None

    def _blocks(self) -> list[torch.Tensor]:
        """Each band's weights times its mask, where it has one."""
        out = []
        for index in range(len(self.chunks)):
            block, mask = getattr(self, f"block{index}"), getattr(self, f"block_mask{index}")
            out.append(block if mask is None else block * mask)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ranked = x.index_select(1, self.col_order) if self._col_perm else x
        bias = None
        if self.bias is not None:
            bias = self.bias.index_select(0, self.row_order) if self._row_perm else self.bias
        parts = []
        for (r0, r1, width), block in zip(self.chunks, self._blocks(), strict=True):
            parts.append(F.linear(ranked[:, :width], block, None if bias is None else bias[r0:r1]))
        out = torch.cat(parts, 1)
        if self._row_perm:
            out = torch.empty_like(out).index_copy_(1, self.row_order, out)
        return out

    @property
    def weight(self) -> torch.Tensor:
        """The dense [out, in] weight, zero where the mask is (what ``MaskedLinear`` computes with)."""
        dense = self.mask.new_zeros(self.out_features, self.in_features)
        ranked = dense.new_zeros(self.out_features, self.in_features)
        for (r0, r1, width), block in zip(self.chunks, self._blocks(), strict=True):
            ranked[r0:r1, :width] = block
        dense[self.row_order[:, None], self.col_order[None, :]] = ranked
        return dense

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
            for index, (r0, r1, width) in enumerate(self.chunks):
                getattr(self, f"block{index}").copy_(ranked[r0:r1, :width])
            if self.bias is not None:
                self.bias.copy_(state_dict[prefix + "bias"])

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, chunks={len(self.chunks)}"
