"""Fully visible sigmoid belief network (FVSBN; Neal 1992, Frey 1998).

Every conditional is a logistic regression on the variables generated before it:
``p(x_i = 1 | x_<i) = sigmoid(b_i + sum_{j<i} W_ij x_j)``, with "<" taken in the model's ordering.
The full weight matrix is stored and a strictly-lower-triangular mask (in the permuted order) is
applied in ``forward``, so the weights are never overwritten and the optimizer sees plain tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities
from argen.models.ordered_sampling import OrderedModel
from argen.models.ordering import Ordering, rank_of, resolve_ordering


class FVSBN(OrderedModel):
    """FVSBN over binary images [B, C, H, W], flattened C-major to D = C*H*W variables.

    Attributes:
        ordering: LongTensor buffer [D]; ``ordering[k]`` is the k-th variable generated.
        weight: [D, D] unmasked weights; ``weight[i, j]`` is used only if j comes before i.
        bias: [D] biases ``b_i``.
    """

    capabilities = Capabilities(binary_only=True)  # Bernoulli conditionals

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        ordering: Ordering = "natural",
        ordering_seed: int = 0,
    ) -> None:
        super().__init__(shape, num_levels)
        d = self.num_dims
        order = resolve_ordering(ordering, d, ordering_seed)
        rank = rank_of(order)
        self.register_buffer("ordering", order)
        # mask[i, j] = 1 iff variable j is generated strictly before variable i.
        self.register_buffer("mask", (rank[None, :] < rank[:, None]).float())
        bound = 1.0 / math.sqrt(d)
        self.weight = nn.Parameter(torch.empty(d, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(d))

    def masked_weight(self) -> torch.Tensor:
        """The effective weights, with every connection that breaks the ordering set to zero."""
        return self.weight * self.mask.to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, D] in the original index space: entry i is the logit of p(x_i = 1 | x_<i)."""
        flat = x.reshape(x.shape[0], -1).to(self.weight.dtype)
        return F.linear(flat, self.masked_weight(), self.bias)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats, [B]; uses BCE-with-logits for numerical stability."""
        self.validate_levels(x)
        logits = self(x)
        target = x.reshape(x.shape[0], -1).to(logits.dtype)
        nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return -nll.sum(dim=1)

    def stepper(
        self, index: int, m: int, device: torch.device, dtype: torch.dtype, sampler: str
    ) -> FVSBNStepper:
        """``"cached"``: running logits, one weight column added per drawn variable, so sampling
        costs O(D^2) per example instead of O(D^3); ``"naive"``: ``forward`` per variable."""
        return FVSBNStepper(self, m, device, cached=sampler == "cached")


class FVSBNStepper:
    """FVSBN's sampling state (``argen.models.ordered_sampling.OrderedStepper``)."""

    def __init__(self, model: FVSBN, m: int, device: torch.device, cached: bool) -> None:
        self.model, self.cached = model, cached
        self.weight = model.masked_weight().to(device)
        self.logits = model.bias.to(device).expand(m, -1).clone()
        self.x = torch.zeros(m, model.num_dims, dtype=self.weight.dtype, device=device)

    def logit(self, t: int, i: int) -> torch.Tensor:
        return self.logits[:, i] if self.cached else self.model(self.x)[:, i]

    def record(self, t: int, i: int, value: torch.Tensor) -> None:
        self.x[:, i] = value
        if self.cached:
            self.logits += value[:, None] * self.weight[:, i][None, :]

    def result(self) -> torch.Tensor:
        return self.x
