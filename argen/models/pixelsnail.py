"""PixelSNAIL (Chen, Mishra, Rohaninejad & Abbeel 2018, "PixelSNAIL: An Improved Autoregressive
Generative Model").

Architecture, in argen's channel-masked form:

* a mask-A ``first_kernel_size`` convolution from the image to ``hidden_channels`` feature maps;
* ``num_blocks`` blocks, each ``num_res_blocks`` gated residual blocks
  ``h + a * sigmoid(b)``, ``[a; b] = 1x1(ELU(kxk(ELU(h))))`` (mask-B convolutions, optionally plus
  a per-block class-label bias), followed by a causal attention block whose output enters one more
  gated residual update;
* ELU and a 1x1 mask-B convolution to the head's parameters.

Causality over sub-pixels. Feature maps are split into C colour groups exactly as in PixelCNN
(``masked_conv``): group g at pixel p sees the sub-pixels of p before colour g and every earlier
pixel. Attention is strictly causal over *pixels*: the query at pixel p attends to keys and values
of pixels q < p only. Keys and values are computed from the features, the raw image (all colours,
as in the paper) and the pixel's coordinates at q; since q < p in full, everything at q may be
used. Queries are per colour group: query g is a mask-B 1x1 projection of feature groups <= g
(plus the coordinates), and a mask-B 1x1 projection takes the outputs of queries <= g into group
g's channels, so the current pixel's colours reach group g only as the masked convolutions allow,
never through a later colour's query. The first pixel has nothing to attend to; its attention
output is exactly zero (it is given its own key so that the softmax is defined, and the result is
then replaced by zeros, which also makes the gradients exact zeros, never NaN).

Differences from the paper: the paper's down/down-right shifted 2x2 convolutions are replaced by
channel-masked kxk convolutions (so RGB sub-pixels are modelled autoregressively as in PixelCNN
instead of by PixelCNN++'s linear colour coupling); concat-ELU is ELU (a concatenation would mix
colour groups); the logistic-mixture head treats colours independently given their parameters.

Sampling (``sampler="cached"``): after Ramachandran et al. (2017), every layer is computed at one
pixel per generated sub-pixel from caches (padded input maps of the kxk convolutions, and per
attention block the keys and values of all earlier pixels, appended once a pixel is complete), so
a sample costs about one forward pass of convolutions plus one attention row per sub-pixel.
``"naive"`` runs the whole network per sub-pixel. Both run in the one raster loop of
``argen.models.cached_sampling``, so for the same generator they give the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities
from argen.models.cached_sampling import RasterImageModel, check_sampler
from argen.models.masked_conv import MaskedConv2d, set_conv_impl
from argen.models.pixel_heads import make_head
from argen.models.pixel_ops import ConvAt, linear, pixel_params, pointwise


def gate(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """a * sigmoid(b) for the two halves [a; b] of ``x`` along ``dim``."""
    a, b = x.chunk(2, dim=dim)
    return a * torch.sigmoid(b)


class GatedResidual(nn.Module):
    """``h + a * sigmoid(b)`` with ``[a; b] = 1x1(ELU(kxk(ELU(h))))``, mask-B convolutions."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        num_groups: int,
        dropout: float,
        num_classes: int | None,
    ) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B", num_groups)
        self.gate_conv = MaskedConv2d(channels, 2 * channels, 1, "B", num_groups, out_chunks=2)
        self.drop = nn.Dropout(dropout)
        self.label_bias = None
        if num_classes is not None:
            self.label_bias = nn.Embedding(num_classes, 2 * channels)
            nn.init.normal_(self.label_bias.weight, std=0.1)

    def forward(
        self, h: torch.Tensor, y: torch.Tensor | None, record: list | None = None
    ) -> torch.Tensor:
        inner = F.elu(h)
        if record is not None:  # the kxk convolution's input, for the cached sampler
            record.append(inner)
        pre = self.gate_conv(self.drop(F.elu(self.conv(inner))))
        if self.label_bias is not None:
            pre = pre + self.label_bias(y)[:, :, None, None]
        return h + gate(pre)


class CausalPixelAttention(nn.Module):
    """Attention of each pixel to every earlier pixel, with one query per colour group.

    ``forward(h, image)`` returns the attention's contribution [B, 2*channels, H, W] to the gate
    pre-activations of the block's attention update: a mask-B 1x1 projection of the per-colour
    outputs, so colour group g's channels (of both halves) come from the queries of groups <= g.
    """

    def __init__(
        self,
        channels: int,
        num_colours: int,
        height: int,
        width: int,
        key_channels: int,
        value_channels: int,
        num_heads: int,
    ) -> None:
        super().__init__()
        c = num_colours
        self.num_colours, self.num_heads = c, num_heads
        self.key_channels, self.value_channels = key_channels, value_channels
        self.channels = channels
        kv_in = channels + c + 2  # features, raw image, coordinates
        self.key = nn.Linear(kv_in, num_heads * key_channels)
        self.value = nn.Linear(kv_in, num_heads * value_channels)
        self.query = MaskedConv2d(channels, c * num_heads * key_channels, 1, "B", c)
        self.query_pos = nn.Linear(2, c * num_heads * key_channels, bias=False)
        # Colour group g of the output (both gate halves) reads the outputs of queries <= g.
        self.out = MaskedConv2d(
            c * num_heads * value_channels, 2 * channels, 1, "B", c, out_chunks=2
        )
        rows = torch.arange(height, dtype=torch.float32).repeat_interleave(width)
        cols = torch.arange(width, dtype=torch.float32).repeat(height)
        coords = torch.stack([rows / max(height - 1, 1), cols / max(width - 1, 1)], dim=1)
        self.register_buffer("coords", coords * 2 - 1, persistent=False)  # [N, 2]
        n = height * width
        pixel = torch.arange(n)
        earlier = pixel[None, :] < pixel[:, None]
        earlier[0, 0] = True  # the first pixel's own key: a defined softmax, output zeroed below
        self.register_buffer("mask", earlier.repeat(c, 1), persistent=False)  # [C*N, N]
        self.register_buffer("has_past", pixel > 0, persistent=False)

    def keys_values(self, h: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Keys [B, heads, N, dk] and values [B, heads, N, dv] of every pixel."""
        b = h.shape[0]
        inputs = torch.cat([h, image], dim=1).flatten(2).transpose(1, 2)  # [B, N, channels + C]
        inputs = torch.cat([inputs, self.coords.to(h.dtype).expand(b, -1, -1)], dim=2)
        keys = self.key(inputs).unflatten(2, (self.num_heads, self.key_channels)).transpose(1, 2)
        values = self.value(inputs).unflatten(2, (self.num_heads, self.value_channels))
        return keys, values.transpose(1, 2)

    def forward(self, h: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        b, _, height, width = h.shape
        n, c = height * width, self.num_colours
        query = self.query(h).flatten(2).transpose(1, 2) + self.query_pos(self.coords.to(h.dtype))
        query = query.view(b, n, c, self.num_heads, self.key_channels).permute(0, 3, 2, 1, 4)
        keys, values = self.keys_values(h, image)
        out = F.scaled_dot_product_attention(
            query.reshape(b, self.num_heads, c * n, self.key_channels),
            keys,
            values,
            attn_mask=self.mask,
        )  # [B, heads, C*N, dv]
        out = out.view(b, self.num_heads, c, n, self.value_channels).permute(0, 3, 2, 1, 4)
        out = out.reshape(b, n, c * self.num_heads * self.value_channels)  # colour-major
        out = torch.where(self.has_past[:, None], out, torch.zeros_like(out))
        return self.out(F.elu(out).transpose(1, 2).unflatten(2, (height, width)))


class SnailBlock(nn.Module):
    """Gated residual blocks, then ``h + gate(1x1(ELU(h)) + attention(h, image))``."""

    def __init__(
        self,
        channels: int,
        num_colours: int,
        height: int,
        width: int,
        num_res_blocks: int,
        kernel_size: int,
        key_channels: int,
        value_channels: int,
        num_heads: int,
        dropout: float,
        num_classes: int | None,
    ) -> None:
        super().__init__()
        self.residuals = nn.ModuleList(
            GatedResidual(channels, kernel_size, num_colours, dropout, num_classes)
            for _ in range(num_res_blocks)
        )
        self.attention = CausalPixelAttention(
            channels, num_colours, height, width, key_channels, value_channels, num_heads
        )
        self.attn_gate = MaskedConv2d(channels, 2 * channels, 1, "B", num_colours, out_chunks=2)

    def forward(
        self,
        h: torch.Tensor,
        image: torch.Tensor,
        y: torch.Tensor | None,
        record: list | None = None,
    ) -> torch.Tensor:
        for residual in self.residuals:
            h = residual(h, y, record)
        if record is not None:  # the attention's input, for the cached sampler
            record.append(h)
        return h + gate(self.attn_gate(F.elu(h)) + self.attention(h, image))


class PixelSNAIL(RasterImageModel):
    """Gated causal convolutions with causal self-attention over all earlier pixels.

    ``forward(x, y=None)`` returns head parameters [B, C, H, W, P]; ``log_prob(x, y)`` and
    ``sample(n, y=...)`` take integer labels [B] when ``num_classes`` is set (as Gated PixelCNN).

    Args:
        shape, num_levels: the data.
        hidden_channels: feature maps (at least one per colour).
        num_blocks, num_res_blocks: attention blocks, and gated residual blocks in each.
        kernel_size, first_kernel_size: masked convolution sizes (odd).
        key_channels, value_channels, num_heads: attention sizes (per head, per colour group).
        dropout: dropout inside the residual blocks.
        head, num_mixtures: the per-sub-pixel distribution.
        num_classes: class-conditional with that many labels (``None``: unconditional).
        sampler: ``"cached"`` or ``"naive"``; identical samples.
        conv_impl: how the masked convolutions compute (``MaskedConv2d``; ``"dense"``: the
            reference).
    """

    capabilities = Capabilities(labels=True)  # K levels, any channels, labels

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_channels: int = 128,
        num_blocks: int = 4,
        num_res_blocks: int = 2,
        kernel_size: int = 3,
        first_kernel_size: int = 5,
        key_channels: int = 16,
        value_channels: int = 64,
        num_heads: int = 1,
        dropout: float = 0.0,
        head: str = "auto",
        num_mixtures: int = 10,
        num_classes: int | None = None,
        sampler: str = "cached",
        conv_impl: str = "auto",
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = check_sampler(sampler)
        c, height, width = self.shape
        if hidden_channels < c:
            raise ValueError(
                f"hidden_channels must be at least {c} (one per colour), got {hidden_channels}"
            )
        for name, size in (("kernel_size", kernel_size), ("first_kernel_size", first_kernel_size)):
            if size < 1 or size % 2 == 0:
                raise ValueError(f"{name} must be odd and positive, got {size}")
        if num_blocks < 1 or num_res_blocks < 0:
            raise ValueError(
                f"need num_blocks >= 1 and num_res_blocks >= 0, got {num_blocks}, {num_res_blocks}"
            )
        if min(key_channels, value_channels, num_heads) < 1:
            raise ValueError("key_channels, value_channels and num_heads must be positive")
        self.num_classes = num_classes
        self.head = make_head(head, c, num_levels, num_mixtures)
        self.input_conv = MaskedConv2d(c, hidden_channels, first_kernel_size, "A", c)
        self.blocks = nn.ModuleList(
            SnailBlock(
                hidden_channels,
                c,
                height,
                width,
                num_res_blocks,
                kernel_size,
                key_channels,
                value_channels,
                num_heads,
                dropout,
                num_classes,
            )
            for _ in range(num_blocks)
        )
        self.output = MaskedConv2d(hidden_channels, self.head.out_channels, 1, "B", c)
        set_conv_impl(self, conv_impl)

    def _features(
        self, image: torch.Tensor, y: torch.Tensor | None, record: list | None = None
    ) -> torch.Tensor:
        """Normalized image [B, C, H, W] -> the output layer's features [B, C*P, H, W]."""
        h = self.input_conv(image)
        for block in self.blocks:
            h = block(h, image, y, record)
        return self.output(F.elu(h))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Levels [B, C, H, W] (and labels [B]) -> head parameters [B, C, H, W, P]."""
        y = self._check_labels(y, x.shape[0])
        return self.head.params(self._features(self.normalize(x), y))

    def start_cache(self, x: torch.Tensor, y: torch.Tensor | None, start: int) -> PixelSNAILStepper:
        """Cached sampler (see ``PixelSNAILStepper``)."""
        return PixelSNAILStepper(self, x, y)


# --------------------------------------------------------------------------- cached sampling
class PixelSNAILStepper:
    """Caches of one PixelSNAIL sampling call; computes every layer at a single pixel.

    Why one pixel per layer suffices: every activation at pixel p depends only on sub-pixels at
    or before p, so once earlier pixels are final their cached activations are too; keys and
    values of pixel p are appended once all of its colours are set (nothing before p needs them).
    """

    def __init__(self, model: PixelSNAIL, x: torch.Tensor, y: torch.Tensor | None) -> None:
        self.model = model
        self.colours, self.width = model.shape[0], model.shape[2]
        self.first = ConvAt(model.input_conv)
        image = model.normalize(x)
        record: list[torch.Tensor] = []
        model._features(image, y, record)  # prefill: exact before the first sampled sub-pixel
        self.image = self.first.cache(image)
        self.blocks = []
        for block in model.blocks:
            residuals = []
            for residual in block.residuals:
                conv = ConvAt(residual.conv)
                label = None if residual.label_bias is None else residual.label_bias(y)
                cache = conv.cache(record.pop(0))
                residuals.append((conv, pointwise(residual.gate_conv), label, cache))
            attention = block.attention
            keys, values = attention.keys_values(record.pop(0), image)
            query = pointwise(attention.query)
            query_pos = attention.query_pos(attention.coords.to(image.dtype))  # [N, C*h*dk]
            self.blocks.append(
                {
                    "residuals": residuals,
                    "attention": attention,
                    "query": query,
                    "query_pos": query_pos,
                    "keys": keys.contiguous(),
                    "values": values.contiguous(),
                    "gate": pointwise(block.attn_gate),
                    "out": pointwise(attention.out),
                    "input": None,
                }
            )
        self.output = pointwise(model.output)

    def set_level(self, i: int, j: int, k: int, level: torch.Tensor) -> None:
        self.image[:, i + self.first.top, j + self.first.left, k] = self.model.normalize(level)
        if k == self.colours - 1:
            self._pixel_done(i, j)

    def row_done(self, i: int) -> None:
        """Nothing to do: the attention caches grow pixel by pixel (``set_level``)."""

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] parameters of sub-pixel (k, i, j), writing its activations into the caches."""
        pixel = i * self.width + j
        h = self.first.at(self.image, i, j)
        for block in self.blocks:
            for conv, (weight, bias), label, cache in block["residuals"]:
                conv.write(cache, i, j, F.elu(h))
                pre = linear(F.elu(conv.at(cache, i, j)), weight, bias)
                h = h + gate(pre if label is None else pre + label)
            block["input"] = h
            attention = block["attention"]
            b, c, heads = h.shape[0], attention.num_colours, attention.num_heads
            out = h.new_zeros(b, c * heads * attention.value_channels)
            if pixel > 0:
                query = linear(h, *block["query"]) + block["query_pos"][pixel]
                query = query.view(b, c, heads, attention.key_channels).transpose(1, 2)
                keys = block["keys"][:, :, :pixel]
                values = block["values"][:, :, :pixel]
                attended = F.scaled_dot_product_attention(query, keys, values)  # [B, h, C, dv]
                out = attended.transpose(1, 2).reshape(b, -1)  # colour-major
            pre = linear(F.elu(h), *block["gate"]) + linear(F.elu(out), *block["out"])
            h = h + gate(pre)
        features = linear(F.elu(h), *self.output)
        return pixel_params(self.model.head, features)[:, k]

    def _pixel_done(self, i: int, j: int) -> None:
        """All colours of (i, j) are set: append its keys and values to every attention cache."""
        pixel = i * self.width + j
        image = self.image[:, i + self.first.top, j + self.first.left]  # [B, C]
        for block in self.blocks:
            attention = block["attention"]
            inputs = torch.cat(
                [
                    block["input"],
                    image,
                    attention.coords[pixel].to(image.dtype).expand(image.shape[0], -1),
                ],
                dim=1,
            )
            block["keys"][:, :, pixel] = attention.key(inputs).view(
                inputs.shape[0], -1, attention.key_channels
            )
            block["values"][:, :, pixel] = attention.value(inputs).view(
                inputs.shape[0], -1, attention.value_channels
            )
