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

from argen.models.base import Capabilities, DensityModel
from argen.models.ordering import Ordering, rank_of, resolve_ordering


def check_temperature(temperature: float) -> None:
    """Refuse a sampling temperature that is not positive (``ValueError``)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def tempered_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """p(x = 1) of Bernoulli conditionals sampled at ``temperature`` T: ``sigmoid(logits / T)``.

    This is the definition of the pixel heads and Char-RNN (log-probabilities of the levels divided
    by T, then renormalized): for two levels, log p(1) - log p(0) = logit, so the tempered odds are
    exp(logit / T). At T = 1 the logits are used unchanged (x / 1.0 is exact), so samples are the
    same as untempered ones for the same random numbers.
    """
    return torch.sigmoid(logits / temperature)


class FVSBN(DensityModel):
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

    @torch.no_grad()
    def sample(
        self, n: int, device: torch.device | str | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Draw ``n`` images [n, C, H, W] of {0., 1.}, one variable at a time in ``ordering``.

        The running logits are updated with one weight column per sampled variable, so sampling
        costs O(D^2) per example instead of O(D^3) for recomputing ``forward`` D times.
        ``temperature`` T draws each x_i from sigmoid(logit / T) (see ``tempered_probs``).
        """
        check_temperature(temperature)
        device = torch.device(device) if device is not None else self.weight.device
        weight = self.masked_weight().to(device)
        logits = self.bias.to(device).expand(n, -1).clone()
        x = torch.zeros(n, self.num_dims, dtype=weight.dtype, device=device)
        for i in self.ordering.tolist():
            xi = torch.bernoulli(tempered_probs(logits[:, i], temperature))
            x[:, i] = xi
            logits += xi[:, None] * weight[:, i][None, :]
        return x.reshape(n, *self.shape)
