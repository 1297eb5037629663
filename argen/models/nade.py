"""Neural autoregressive distribution estimator (NADE; Larochelle & Murray, 2011).

For an ordering ``o`` of the D binary variables, NADE shares one hidden layer between all
conditionals::

    a_d     = c + sum_{j<d} W[:, o_j] x_{o_j}          (running sum: O(H) per step)
    h_d     = sigmoid(a_d)
    logit_d = b_{o_d} + V[o_d] . h_d                    = logit of p(x_{o_d} = 1 | x_{o_<d})

so ``log_prob`` and ``sample`` both cost O(D H) per example.

Order-agnostic training (Uria, Murray & Larochelle, 2014, "A Deep and Tractable Density
Estimator", DeepNADE) feeds the hidden layer the 2D-vector [x * m, m], where the mask m marks the
observed variables. With this input, the mask half only adds ``W_mask[:, o_j]`` for each observed
variable, so the exact likelihood under any one ordering keeps the same O(D H) running sum.
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

# Per-chunk working set of the fused conditional pass, in elements of [chunk, D, H]. On a CPU about
# 8 MB in float32, so each chunk stays in cache while it is processed; a GPU prefers big chunks.
_CHUNK_ELEMENTS = {"cpu": 2_000_000, "cuda": 64_000_000}


class _OrderedConditionals(torch.autograd.Function):
    """All NADE logits for one ordering, computed in batch chunks with a hand-written backward.

    Inputs are already permuted into the ordering: ``xo`` [B, D], ``wo`` [D, H] (row d is the
    weight column of variable o_d), ``offset`` [D, H] (the part of a_d that does not depend on x:
    c, plus the mask contribution for order-agnostic NADE), ``vo`` [D, H], ``bo`` [D].

    Why a custom Function: autograd through ``cumsum`` over the [B, D, H] tensor allocates, stores
    and re-reads several such tensors (products, cumsum, flips, sigmoid). Here two chunk-sized
    work buffers are reused with in-place ops, and the hidden units are recomputed in backward
    instead of stored. This is about 3 times faster for B=100, D=784, H=500 on a CPU and needs
    O(chunk * D * H) memory instead of O(B * D * H).
    """

    @staticmethod
    def _hidden(xo: torch.Tensor, wo: torch.Tensor, offset: torch.Tensor, out: torch.Tensor):
        """out[b, d] = sigmoid(offset[d] + sum_{j<d} xo[b, j] wo[j]), written in place."""
        out[:, 0].zero_()
        torch.mul(xo[:, :-1, None], wo[:-1], out=out[:, 1:])
        out.cumsum_(1)
        return out.add_(offset).sigmoid_()

    @staticmethod
    def forward(ctx, xo, wo, offset, vo, bo, chunk: int):  # type: ignore[override]
        ctx.save_for_backward(xo, wo, offset, vo)
        ctx.chunk = chunk
        work = xo.new_empty(min(chunk, xo.shape[0]), xo.shape[1], wo.shape[1])
        logits = xo.new_empty(xo.shape)
        for start in range(0, xo.shape[0], chunk):
            xc = xo[start : start + chunk]
            hidden = _OrderedConditionals._hidden(xc, wo, offset, work[: xc.shape[0]])
            logits[start : start + chunk] = hidden.mul_(vo).sum(-1)
        return logits.add_(bo)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        xo, wo, offset, vo = ctx.saved_tensors
        num_dims = xo.shape[1]
        d_offset, d_vo = torch.zeros_like(offset), torch.zeros_like(vo)
        # x_{o_j} feeds every a_d with d > j, so its gradient needs the suffix sums
        # sum_{d>j} d_a[d]. In reversed coordinates k = D-1-d these are prefix sums (an in-place
        # cumsum): after reversal, column k holds sum_{d >= D-1-k} d_a[d], the suffix sum for
        # j = D-2-k. Gradients for j are accumulated at k and flipped back once at the end.
        reverse = torch.arange(num_dims - 1, -1, -1, device=xo.device)
        x_rev, w_rev = xo.flip(1)[:, 1:], wo.flip(0)[1:]  # [:, k] / [k] hold j = D-2-k
        d_w_rev = torch.zeros_like(w_rev)
        d_x_rev = torch.zeros_like(x_rev) if ctx.needs_input_grad[0] else None
        work = xo.new_empty(min(ctx.chunk, xo.shape[0]), num_dims, wo.shape[1])
        scratch = torch.empty_like(work)
        for start in range(0, xo.shape[0], ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            g = grad[rows]
            a, t = work[: g.shape[0]], scratch[: g.shape[0]]
            hidden = _OrderedConditionals._hidden(xo[rows], wo, offset, a)
            torch.mul(hidden, g[:, :, None], out=t)  # g * h
            d_vo += t.sum(0)
            d_a = hidden.neg_().add_(1).mul_(t).mul_(vo)  # g * h * (1 - h) * v, in place of h
            d_offset += d_a.sum(0)
            torch.index_select(d_a, 1, reverse, out=t)
            later = t.cumsum_(1)[:, :-1]  # later[:, k] = sum_{d > D-2-k} d_a[d]
            torch.mul(later, x_rev[rows, :, None], out=a[:, :-1])
            d_w_rev += a[:, :-1].sum(0)
            if d_x_rev is not None:
                torch.mul(later, w_rev, out=a[:, :-1])
                d_x_rev[rows] = a[:, :-1].sum(-1)
        d_wo = torch.cat([d_w_rev.flip(0), torch.zeros_like(wo[:1])])
        d_xo = None
        if d_x_rev is not None:
            d_xo = torch.cat([d_x_rev.flip(1), torch.zeros_like(xo[:, :1])], dim=1)
        return d_xo, d_wo, d_offset, d_vo, grad.sum(0), None


class NADE(OrderedModel):
    """NADE over binary images [B, C, H, W], flattened C-major to D = C*H*W variables.

    Args:
        shape: (C, H, W).
        num_levels: must be 2 (binary data).
        hidden_size: H, the number of hidden units (500 in Larochelle & Murray, 2011).
        ordering: "natural", "random" (seeded by ``ordering_seed``) or an explicit permutation.
        ordering_seed: seed of the random ordering and of the extra evaluation orderings.
        order_agnostic: train on random orderings (DeepNADE) instead of the single ordering.
        num_eval_orderings: K, the orderings whose mixture defines ``log_prob`` for an
            order-agnostic model: the given ``ordering`` first, then K-1 seeded random ones.

    Parameters follow the paper's names: W (H x D), c (H), V (D x H), b (D), and, for the
    order-agnostic model, W_mask (H x D), the weights of the mask half of the 2D-wide input.
    """

    capabilities = Capabilities(binary_only=True)  # Bernoulli conditionals

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_size: int = 500,
        ordering: Ordering = "natural",
        ordering_seed: int = 0,
        order_agnostic: bool = False,
        num_eval_orderings: int = 1,
    ) -> None:
        super().__init__(shape, num_levels)
        if num_eval_orderings < 1:
            raise ValueError(f"num_eval_orderings must be at least 1, got {num_eval_orderings}")
        if num_eval_orderings > 1 and not order_agnostic:
            raise ValueError(
                "num_eval_orderings > 1 needs order_agnostic=True: a NADE trained on one ordering "
                "has untrained conditionals for the others, so averaging over orderings hurts it"
            )
        d, h = self.num_dims, int(hidden_size)
        self.hidden_size = h
        self.order_agnostic = bool(order_agnostic)
        orders = [resolve_ordering(ordering, d, ordering_seed)]
        generator = torch.Generator().manual_seed(int(ordering_seed) + 1)
        orders += [torch.randperm(d, generator=generator) for _ in range(num_eval_orderings - 1)]
        self.register_buffer("orderings", torch.stack(orders))

        in_bound, hid_bound = 1.0 / math.sqrt(d), 1.0 / math.sqrt(h)
        self.W = nn.Parameter(torch.empty(h, d).uniform_(-in_bound, in_bound))
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.empty(d, h).uniform_(-hid_bound, hid_bound))
        self.b = nn.Parameter(torch.zeros(d))
        if self.order_agnostic:
            self.W_mask = nn.Parameter(torch.empty(h, d).uniform_(-in_bound, in_bound))
        else:
            self.register_parameter("W_mask", None)

    draw_one_ordering = True  # sample has always drawn each sample's ordering, even of one

    @property
    def ordering(self) -> torch.Tensor:
        """The first (for a plain NADE, the only) ordering: ``ordering[k]`` = k-th variable."""
        return self.orderings[0]

    @property
    def num_orderings(self) -> int:
        """K = ``num_eval_orderings``: the given ordering, then K-1 seeded random ones."""
        return self.orderings.shape[0]

    def ordering_at(self, index: int) -> torch.Tensor:
        """Evaluation ordering ``index`` (0: the given ``ordering``)."""
        return self.orderings[index]

    # ----------------------------------------------------------------- exact conditionals
    def _as_order(self, ordering: Sequence[int] | torch.Tensor | None) -> torch.Tensor:
        if ordering is None:
            return self.ordering
        if isinstance(ordering, torch.Tensor):
            ordering = ordering.tolist()
        return resolve_ordering(ordering, self.num_dims).to(self.W.device)

    def conditional_logits(
        self, x: torch.Tensor, ordering: Sequence[int] | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits [B, D] in the original index space under ``ordering`` (default: the first):
        entry i is the logit of p(x_i = 1 | variables before i in that ordering). O(B D H)."""
        order = self._as_order(ordering)
        flat = x.reshape(x.shape[0], -1).to(self.W.dtype)
        wo, vo = self.W.t()[order], self.V[order]
        offset = self.c.expand(self.num_dims, -1)
        if self.W_mask is not None:
            # Mask input m_j = 1 for every observed variable: a fixed running sum of W_mask.
            mask_sum = torch.cumsum(self.W_mask.t()[order][:-1], dim=0)
            offset = offset + F.pad(mask_sum, (0, 0, 1, 0))
        budget = _CHUNK_ELEMENTS.get(flat.device.type, _CHUNK_ELEMENTS["cpu"])
        chunk = max(1, budget // (self.num_dims * self.hidden_size))
        logits_o = _OrderedConditionals.apply(flat[:, order], wo, offset, vo, self.b[order], chunk)
        return logits_o[:, rank_of(order)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, D] of every conditional under the first ordering (original index space)."""
        return self.conditional_logits(x)

    def log_prob_ordering(
        self, x: torch.Tensor, ordering: Sequence[int] | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Exact log p(x) in nats, [B], under one ordering (default: the first)."""
        self.validate_levels(x)
        logits = self.conditional_logits(x, ordering)
        target = x.reshape(x.shape[0], -1).to(logits.dtype)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats, [B].

        With K = ``num_eval_orderings`` > 1 (order-agnostic only) this is the uniform mixture
        log p(x) = logsumexp_k log p_k(x) - log K over the fixed evaluation orderings.
        """
        if self.orderings.shape[0] == 1:
            return self.log_prob_ordering(x)
        per_order = torch.stack([self.log_prob_ordering(x, o) for o in self.orderings])
        return torch.logsumexp(per_order, dim=0) - math.log(self.orderings.shape[0])

    # ----------------------------------------------------------------- training objective
    def order_agnostic_loss(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """DeepNADE loss for given observed sets, [B] (Uria, Murray & Larochelle, ICML 2014).

        ``observed`` [B, D] (bool, original index space) marks the first d variables of an
        ordering, d in {0, ..., D-1}. The loss is (D / (D - d)) * sum over the D - d unobserved i of
        -log p(x_i | x_observed), computed in one pass from the input [x * m, m]. The paper counts
        d from 1 (d - 1 observed) and writes the factor D / (D - d + 1); here d is the number of
        observed variables, so the factor is D / (D - d). Averaged over uniform d and a uniform
        ordering it equals the expected exact NLL over orderings (an unbiased estimate).
        """
        if self.W_mask is None:
            raise ValueError("order_agnostic_loss needs a NADE built with order_agnostic=True")
        flat = x.reshape(x.shape[0], -1).to(self.W.dtype)
        mask = observed.reshape(x.shape[0], -1).to(flat.dtype)
        num_observed = mask.sum(1)
        if bool((num_observed >= self.num_dims).any()):
            raise ValueError("at least one variable must be unobserved (d < D)")
        hidden = torch.sigmoid(F.linear(flat * mask, self.W) + F.linear(mask, self.W_mask, self.c))
        logits = F.linear(hidden, self.V, self.b)
        nll = F.binary_cross_entropy_with_logits(logits, flat, reduction="none")
        return (nll * (1 - mask)).sum(1) * (self.num_dims / (self.num_dims - num_observed))

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example training objective, [B]: the exact NLL for a plain NADE; for an
        order-agnostic NADE, the stochastic DeepNADE estimate with a fresh random ordering and
        a uniform d in {0, ..., D-1} per example (see ``order_agnostic_loss``)."""
        self.validate_levels(x)
        if not self.order_agnostic:
            return -self.log_prob_ordering(x)
        batch, d = x.shape[0], self.num_dims
        rank = torch.rand(batch, d, device=x.device).argsort(dim=1)  # a random ordering each
        num_observed = torch.randint(0, d, (batch, 1), device=x.device)
        return self.order_agnostic_loss(x, rank < num_observed)

    # ----------------------------------------------------------------- sampling
    def stepper(
        self, index: int, m: int, device: torch.device, dtype: torch.dtype, sampler: str
    ) -> NADEStepper:
        """``"cached"``: the running activation, O(D H) per example; ``"naive"``: every
        conditional of the ordering recomputed (``conditional_logits``) per variable."""
        return NADEStepper(self, self.orderings[index], m, device, cached=sampler == "cached")


class NADEStepper:
    """NADE's sampling state under one ordering (``ordered_sampling.OrderedStepper``)."""

    def __init__(
        self, model: NADE, order: torch.Tensor, m: int, device: torch.device, cached: bool
    ) -> None:
        self.model, self.order, self.cached = model, order, cached
        self.w_cols = model.W.t().to(device)
        self.mask_cols = None if model.W_mask is None else model.W_mask.t().to(device)
        self.v, self.b = model.V.to(device), model.b.to(device)
        self.act = model.c.to(device).expand(m, -1).clone()
        self.x = torch.zeros(m, model.num_dims, dtype=self.w_cols.dtype, device=device)

    def logit(self, t: int, i: int) -> torch.Tensor:
        if not self.cached:
            return self.model.conditional_logits(self.x, self.order)[:, i]
        return torch.sigmoid(self.act) @ self.v[i] + self.b[i]

    def record(self, t: int, i: int, value: torch.Tensor) -> None:
        self.x[:, i] = value
        if self.cached:
            self.act += value[:, None] * self.w_cols[i]  # its input, added once
            if self.mask_cols is not None:
                self.act += self.mask_cols[i]  # its mask bit is now 1

    def result(self) -> torch.Tensor:
        return self.x
