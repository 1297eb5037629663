"""Output heads of pixel models: per-sub-pixel distributions over ``num_levels`` intensity levels.

A head turns the last feature map of a channel-masked network into distribution parameters and
scores or samples pixel levels. The interface, shared by every raster image model (PixelCNN, Gated
PixelCNN, the PixelRNNs, PixelSNAIL, the image Transformer):

* the network's last layer outputs ``head.out_channels = C * P`` feature maps, grouped by colour
  (channels ``c*P .. c*P+P-1`` come from colour group ``c`` of the channel masks);
* ``head.params(features [B, C*P, H, W]) -> [B, C, H, W, P]`` (parameters last);
* ``head.log_prob_elements(x [...], params [..., P]) -> [...]``: log p of each sub-pixel level;
* ``head.log_prob(x [B, C, H, W], params [B, C, H, W, P]) -> [B]``: summed per example;
* ``head.level_log_probs(params [..., P]) -> [..., K]``: the full normalized distribution;
* ``head.sample(params [..., P], temperature) -> [...]``: float levels.

Sampling draws from ``level_log_probs / temperature`` so that every head samples exactly the
distribution it scores (temperature 1) and treats temperature the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("bernoulli", "categorical", "logistic_mixture")


class PixelHead(nn.Module):
    """Base class: ``params_per_channel`` (P) numbers describe each sub-pixel's distribution."""

    params_per_channel: int

    def __init__(self, num_channels: int, num_levels: int) -> None:
        super().__init__()
        self.num_channels = int(num_channels)
        self.num_levels = int(num_levels)

    @property
    def out_channels(self) -> int:
        """Feature maps the network must produce for this head (C * P)."""
        return self.num_channels * self.params_per_channel

    def params(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C*P, H, W] colour-grouped features -> [B, C, H, W, P] parameters."""
        b, _, h, w = features.shape
        p = self.params_per_channel
        return features.view(b, self.num_channels, p, h, w).permute(0, 1, 3, 4, 2)

    def log_prob_elements(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Log-probability of levels ``x`` [...] under ``params`` [..., P] (broadcasting)."""
        raise NotImplementedError

    def level_log_probs(self, params: torch.Tensor) -> torch.Tensor:
        """[..., P] -> [..., K]: log-probability of every level 0..K-1."""
        levels = torch.arange(self.num_levels, device=params.device, dtype=params.dtype)
        return self.log_prob_elements(levels, params.unsqueeze(-2))

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Sum of sub-pixel log-probabilities per example: x [B, ...], params [B, ..., P] -> [B]."""
        return self.log_prob_elements(x, params).flatten(1).sum(dim=1)

    @torch.no_grad()
    def sample(self, params: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Draw float levels [...] from ``params`` [..., P]; temperature rescales the log-probs."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        logits = self.level_log_probs(params) / temperature
        flat = torch.multinomial(F.softmax(logits.reshape(-1, self.num_levels), dim=-1), 1)
        return flat.view(logits.shape[:-1]).to(params.dtype)


class BernoulliHead(PixelHead):
    """Binary sub-pixels: one logit each, p(x=1) = sigmoid(logit)."""

    params_per_channel = 1

    def __init__(self, num_channels: int, num_levels: int = 2) -> None:
        if num_levels != 2:
            raise ValueError(f"the bernoulli head needs num_levels=2, got {num_levels}")
        super().__init__(num_channels, num_levels)

    def log_prob_elements(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        logit = params[..., 0]
        return x * F.logsigmoid(logit) + (1 - x) * F.logsigmoid(-logit)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """As the base class, in one fused op (``binary_cross_entropy_with_logits``)."""
        logit = params[..., 0]
        if x.shape != logit.shape:
            return super().log_prob(x, params)
        nll = F.binary_cross_entropy_with_logits(logit, x, reduction="none")
        return -nll.flatten(1).sum(dim=1)


class CategoricalHead(PixelHead):
    """A K-way softmax per sub-pixel (the PixelRNN/PixelCNN 256-way softmax)."""

    def __init__(self, num_channels: int, num_levels: int) -> None:
        super().__init__(num_channels, num_levels)
        self.params_per_channel = self.num_levels

    def log_prob_elements(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(params, dim=-1)
        shape = torch.broadcast_shapes(x.shape, log_probs.shape[:-1])
        index = x.long().expand(shape).unsqueeze(-1)
        return log_probs.expand(*shape, self.num_levels).gather(-1, index).squeeze(-1)

    def level_log_probs(self, params: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(params, dim=-1)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """As the base class, as one ``cross_entropy`` over the levels' axis where it lies in
        memory: ``params`` from ``head.params`` is a view of [B, C, P, H, W] features, whose
        softmax along the last (strided) axis of the view took most of the head's time."""
        if params.dim() != 5 or x.shape != params.shape[:-1]:
            return super().log_prob(x, params)
        b, c, h, w, p = params.shape
        logits = params.permute(0, 1, 4, 2, 3).reshape(b * c, p, h, w)
        nll = F.cross_entropy(logits, x.reshape(b * c, h, w).long(), reduction="none")
        return -nll.view(b, -1).sum(dim=1)


def _log_sigmoid_difference(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """Stable log(sigmoid(upper) - sigmoid(lower)) for upper > lower.

    Uses sigmoid(b) - sigmoid(a) = sigmoid(b) * sigmoid(-a) * (1 - exp(a - b)).
    """
    gap = lower - upper  # < 0
    log1mexp = torch.where(
        gap > -math.log(2.0),
        torch.log(-torch.expm1(gap)),
        torch.log1p(-torch.exp(gap.clamp(max=-math.log(2.0)))),
    )
    return F.logsigmoid(upper) + F.logsigmoid(-lower) + log1mexp


class LogisticMixtureHead(PixelHead):
    """Discretized mixture of logistics per sub-pixel (Salimans et al. 2017, PixelCNN++).

    Level k sits at ``2k/(K-1) - 1`` in [-1, 1]; its bin is ``[centre - 1/(K-1), centre + 1/(K-1)]``
    with the first and last bins extended to -inf and +inf, so the K probabilities telescope to
    exactly 1. Colours are independent mixtures given their parameters (the PixelCNN++ linear
    R->G->B mean coupling is not used); the dependence between colours of one pixel comes from the
    channel-masked network, which computes the parameters of colour c from feature group c.
    Parameters per sub-pixel: M mixture logits, M means, M log-scales (P = 3M).
    """

    def __init__(
        self,
        num_channels: int,
        num_levels: int,
        num_mixtures: int = 10,
        min_log_scale: float = -7.0,
    ) -> None:
        super().__init__(num_channels, num_levels)
        if num_mixtures < 1:
            raise ValueError(f"num_mixtures must be positive, got {num_mixtures}")
        self.num_mixtures = int(num_mixtures)
        self.min_log_scale = float(min_log_scale)
        self.params_per_channel = 3 * self.num_mixtures

    def log_prob_elements(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        logits, means, log_scales = params.split(self.num_mixtures, dim=-1)
        log_scales = log_scales.clamp(min=self.min_log_scale)
        half_bin = 1.0 / (self.num_levels - 1)
        centre = (x * (2.0 * half_bin) - 1.0).unsqueeze(-1)
        inv_scale = torch.exp(-log_scales)
        upper = (centre + half_bin - means) * inv_scale
        lower = (centre - half_bin - means) * inv_scale
        is_first = (x == 0).unsqueeze(-1)
        is_last = (x == self.num_levels - 1).unsqueeze(-1)
        # Replace the infinite edges by finite stand-ins so no NaN reaches the gradients.
        safe_upper = torch.where(is_last, lower + 1.0, upper)
        safe_lower = torch.where(is_first, upper - 1.0, lower)
        log_bin = torch.where(
            is_first,
            F.logsigmoid(upper),
            torch.where(
                is_last, F.logsigmoid(-lower), _log_sigmoid_difference(safe_upper, safe_lower)
            ),
        )
        return torch.logsumexp(F.log_softmax(logits, dim=-1) + log_bin, dim=-1)


def make_head(head: str, num_channels: int, num_levels: int, num_mixtures: int = 10) -> PixelHead:
    """Build a head by name; ``"auto"`` is bernoulli for binary data, categorical otherwise."""
    if head == "auto":
        head = "bernoulli" if num_levels == 2 else "categorical"
    if head == "bernoulli":
        return BernoulliHead(num_channels, num_levels)
    if head == "categorical":
        return CategoricalHead(num_channels, num_levels)
    if head == "logistic_mixture":
        return LogisticMixtureHead(num_channels, num_levels, num_mixtures)
    raise ValueError(f"unknown head {head!r}; choose one of 'auto', {', '.join(map(repr, HEADS))}")
