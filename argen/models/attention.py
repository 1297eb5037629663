"""A small decoder-only (GPT-style) Transformer with a key/value cache, shared by the image and
character Transformers.

* pre-norm blocks: ``x + attn(LN(x))`` then ``x + MLP(LN(x))``, a final LayerNorm;
* causal self-attention through ``torch.nn.functional.scaled_dot_product_attention`` with
  ``is_causal=True`` (fused kernels on GPUs, under autocast and ``torch.compile`` alike);
* learned or sinusoidal absolute positions (``positions="learned" | "sinusoidal"``).

Sampling one token at a time reruns nothing: ``KVCache`` keeps every layer's keys and values of
the tokens seen so far, preallocated to the longest sequence, so a step costs one token's worth of
projections per layer plus one attention row. A cached forward over ``t`` new tokens after ``p``
cached ones computes exactly what the uncached forward computes at those positions (same weights,
same causal mask), up to floating-point rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POSITIONS = ("learned", "sinusoidal")


class KVCache:
    """Keys and values of every layer for the first ``length`` positions of a batch.

    Tensors are preallocated as [layers, B, heads, max_len, head_dim]; ``write`` stores a layer's
    new keys/values after the cached ones and returns everything up to them; ``advance`` moves
    ``length`` on once all layers have been written for the new tokens.
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        num_heads: int,
        head_dim: int,
        max_len: int,
        device: torch.device | str | None,
        dtype: torch.dtype,
    ) -> None:
        shape = (num_layers, batch, num_heads, max_len, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = int(max_len)
        self.length = 0

    def write(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store [B, heads, t, d] new keys/values of ``layer``; return all [B, heads, length+t, d]."""
        end = self.length + keys.shape[2]
        if end > self.max_len:
            raise ValueError(f"the cache holds {self.max_len} positions; {end} were requested")
        self.keys[layer, :, :, self.length : end] = keys
        self.values[layer, :, :, self.length : end] = values
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, steps: int) -> None:
        """Mark ``steps`` more positions as cached (after every layer wrote them)."""
        self.length += steps

    def reset(self) -> None:
        """Forget every cached position (the memory is kept for reuse)."""
        self.length = 0


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions <= t only."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = int(num_heads)
        self.head_dim = dim // num_heads
        self.dropout = float(dropout)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        """[B, t, dim] -> [B, t, dim]; with ``cache`` the t tokens follow the cached ones."""
        b, t, dim = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, t, head_dim] each
        dropout = self.dropout if self.training else 0.0
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            past = cache.length
            k, v = cache.write(layer, k, v)
            if t == 1:  # one new token sees every cached one: no mask at all
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
            elif past == 0:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
            else:  # new token i sits at position past + i and sees keys 0 .. past + i
                rows = torch.arange(t, device=x.device)[:, None] + past
                mask = torch.arange(past + t, device=x.device)[None, :] <= rows
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.resid_drop(self.proj(out.transpose(1, 2).reshape(b, t, dim)))


class TransformerBlock(nn.Module):
    """Pre-norm block: causal attention and a GELU MLP, each added to the residual stream."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache, layer)
        return x + self.mlp(self.norm2(x))


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """[length, dim] fixed encodings of Vaswani et al. (2017): sin on even, cos on odd features."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(1e4) / dim))
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table.float()


class CausalTransformer(nn.Module):
    """Token embedding, absolute positions, ``num_layers`` pre-norm blocks and a final LayerNorm.

    ``forward(embedded, cache)`` takes token embeddings [B, t, dim] (``embed(ids)`` or one-hot
    inputs times ``tokens.weight`` for gradient checks) and returns the normalized hidden states
    [B, t, dim]; the tokens sit at positions ``cache.length ..`` (0 without a cache).
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        dim: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        positions: str = "learned",
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        if num_layers < 1 or dim < 1 or max_len < 1:
            raise ValueError(
                f"need num_layers, dim and max_len >= 1, got {num_layers}, {dim}, {max_len}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.max_len = int(max_len)
        self.num_heads = int(num_heads)
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions_kind = positions
        if positions == "learned":
            self.positions = nn.Parameter(torch.zeros(max_len, dim))
        else:
            self.register_buffer("positions", sinusoidal_positions(max_len, dim), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self._init_weights(num_layers)

    def _init_weights(self, num_layers: int) -> None:
        """GPT-2-style: N(0, 0.02) weights, zero biases, residual projections scaled down by
        sqrt(2 * layers) so the residual stream's variance does not grow with depth."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if isinstance(self.positions, nn.Parameter):
            nn.init.normal_(self.positions, std=0.02)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * num_layers))

    @property
    def dim(self) -> int:
        return self.tokens.embedding_dim

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, t] -> embeddings [B, t, dim] (positions are added in ``forward``)."""
        return self.tokens(ids)

    def new_cache(
        self, batch: int, max_len: int | None, device: torch.device, dtype: torch.dtype
    ) -> KVCache:
        """An empty cache for ``batch`` sequences of up to ``max_len`` (default: all) positions."""
        length = self.max_len if max_len is None else max_len
        return KVCache(
            len(self.blocks), batch, self.num_heads, self.head_dim, length, device, dtype
        )

    def forward(self, embedded: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = 0 if cache is None else cache.length
        t = embedded.shape[1]
        if start + t > self.max_len:
            raise ValueError(f"{start + t} positions exceed the model's max_len={self.max_len}")
        x = self.drop(embedded + self.positions[start : start + t].to(embedded.dtype))
        for index, block in enumerate(self.blocks):
            x = block(x, cache, index)
        if cache is not None:
            cache.advance(t)
        return self.norm(x)
