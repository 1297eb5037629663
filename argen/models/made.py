"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015).

An autoencoder whose weight matrices are multiplied by binary masks so that output *i* depends
only on inputs that precede *i* in an ordering. Masks are applied in the forward pass (the weights
themselves are never overwritten), so the optimizer state stays consistent when masks change.

With ``num_masks > 1`` the model is trained order/connectivity-agnostically: a fixed set of mask
seeds is cycled, one per training step. Evaluation with several masks is the mixture
``log p(x) = logsumexp_k log p_k(x) - log K`` (never an average of logits, which is not a density).

Sampling (``sampler="cached"``, the default) costs about one forward pass per sample instead of D:
a hidden unit of degree m depends only on the inputs ranked <= m in the ordering, so once those
are drawn its value is final. With the units of every layer sorted by degree, drawing the variable
ranked m + 1 computes only the units of degree m in each layer (from the final units below them)
and one output row; over the D draws that adds up to each weight matrix used once (O(D H) for the
first layer). ``sampler="naive"`` runs the whole network per variable; both draw the same random
numbers in the same order, so they give the same samples for the same generator (up to a uniform
draw within float rounding of a probability, as for the raster samplers).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities
from argen.models.cached_sampling import check_sampler
from argen.models.ordered_sampling import OrderedModel
from argen.models.ordering import ORDERINGS, draw_ordering
from argen.models.packed_linear import PackedMaskedLinear

LINEAR_IMPLS = ("auto", "dense", "packed")
# linear_impl="auto" packs a layer of at least this many weights: below it the four bands' extra
# calls cost about what the skipped blocks save (1 thread, batch 100, the quiet 2-core CPU,
# ``python benchmarks/made_packing.py`` in docs/measurements.md: 16 x 16 -> 100 0.76x, 784 x 100
# 1.09x (0.97x in an earlier run: a wash), 784 x 250 1.23x, 784 x 500 1.26x).
PACK_MIN_WEIGHTS = 100_000


def _take(matrix: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``matrix[rows][:, columns]``, without copies where an index is already in order (a
    single-mask MADE in natural order: its 2 x 8000 weights are 256 MB each)."""
    for dim, index in ((0, rows), (1, columns)):
        if not torch.equal(index, torch.arange(len(index), device=index.device)):
            matrix = matrix.index_select(dim, index)
    return matrix


class _MaskedLinearFunction(torch.autograd.Function):
    """``F.linear(x, weight * mask, bias)`` as one autograd node: the same operations in the same
    order (so the same values and gradients, bit for bit), but the weight's gradient is masked
    in place, with no separate product node or extra weight-sized buffer in the backward pass."""

    @staticmethod
    def forward(ctx, x, weight, mask, bias):
        masked = weight * mask
        ctx.save_for_backward(x, masked, mask)
        ctx.has_bias = bias is not None
        return F.linear(x, masked, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, masked, mask = ctx.saved_tensors
        grad_x = grad @ masked if ctx.needs_input_grad[0] else None
        grad_weight = (grad.t() @ x).mul_(mask) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return grad_x, grad_weight, None, grad_bias


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask in every forward pass.

    ``fused`` (default): one autograd node (``_MaskedLinearFunction``) for [B, in] inputs;
    ``False``: the reference ``F.linear(x, weight * mask, bias)`` (same values and gradients).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))
        self.fused = True

    def set_mask(self, mask: torch.Tensor) -> None:
        # Rebind rather than copy in place: the previous mask may still be saved for backward.
        self.mask = mask.to(self.mask)

    def masked_weight(self) -> torch.Tensor:
        """The weight times the mask: what the layer computes with."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and x.dim() == 2:
            return _MaskedLinearFunction.apply(x, self.weight, self.mask, self.bias)
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(OrderedModel):
    """MADE for binary data of any shape (flattened to D variables).

    Args:
        shape: data shape, e.g. ``(1, 28, 28)``.
        num_levels: must be 2 (MADE here models binary data).
        hidden_sizes: widths of the hidden layers (paper: one layer of 500 units for MNIST).
        ordering: ``"natural"`` (raster order) or ``"random"`` (a permutation per mask seed).
        num_masks: number of mask seeds cycled during training (1 = a single fixed mask).
        num_eval_masks: masks averaged as a mixture at evaluation (``None`` = ``num_masks``).
        direct_connection: add a masked direct input-to-output linear layer.
        ordering_seed: base seed of the orderings and connectivity (as FVSBN's and NADE's).
        seed: deprecated name of ``ordering_seed`` (configs and checkpoints written before the
            rename still load).
        sampler: ``"cached"`` (one forward pass' work per sample) or ``"naive"`` (D passes);
            identical samples.
        linear_impl: ``"packed"`` stores and multiplies only the blocks a fixed mask keeps
            (``PackedMaskedLinear``: about 0.6 of the weights and multiply-adds; one mask only),
            ``"dense"`` the whole weight times the mask (``MaskedLinear``); ``"auto"``: with one
            mask, packs the layers of at least ``PACK_MIN_WEIGHTS`` weights. The same function
            and state dict either way.

    Attributes:
        ordering: LongTensor buffer [D], the active mask's ordering (``ordering[k]`` is the k-th
            variable generated), as FVSBN's and NADE's ``ordering``; ``ordering_kind`` keeps the
            argument (``"natural"`` or ``"random"``). Checkpoints written when the buffer was
            called ``order`` still load.
    """

    capabilities = Capabilities(binary_only=True)  # Bernoulli conditionals

    draw_by_uniform = True  # u < p with u from the generator: naive and cached share the u's

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_sizes: Sequence[int] = (500,),
        ordering: str = "natural",
        num_masks: int = 1,
        num_eval_masks: int | None = None,
        direct_connection: bool = False,
        ordering_seed: int = 0,
        seed: int | None = None,
        sampler: str = "cached",
        linear_impl: str = "auto",
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = check_sampler(sampler)
        if linear_impl not in LINEAR_IMPLS:
            raise ValueError(f"linear_impl must be one of {LINEAR_IMPLS}, got {linear_impl!r}")
        if linear_impl == "packed" and num_masks != 1:
            raise ValueError("linear_impl='packed' needs one fixed mask (num_masks=1)")
        if seed is not None:
            if ordering_seed not in (0, seed):
                raise ValueError(
                    f"seed={seed} and ordering_seed={ordering_seed} disagree; "
                    "seed is the old name of ordering_seed: give ordering_seed only"
                )
            warnings.warn(
                "MADE(seed=...) is deprecated: use ordering_seed", DeprecationWarning, stacklevel=2
            )
            ordering_seed = seed
        if ordering not in ORDERINGS:
            raise ValueError(f"ordering must be 'natural' or 'random', got {ordering!r}")
        if num_masks < 1:
            raise ValueError(f"num_masks must be >= 1, got {num_masks}")
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        if any(h < 1 for h in self.hidden_sizes) or not self.hidden_sizes:
            raise ValueError(f"hidden_sizes must be positive widths, got {list(hidden_sizes)}")
        self.ordering_kind = ordering
        self.num_masks = int(num_masks)
        self.num_eval_masks = int(num_eval_masks or num_masks)
        self.ordering_seed = int(ordering_seed)

        sizes = [self.num_dims, *self.hidden_sizes]
        self.hidden_layers = nn.ModuleList(
            MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.output_layer = MaskedLinear(sizes[-1], self.num_dims)
        self.direct = (
            MaskedLinear(self.num_dims, self.num_dims, bias=False) if direct_connection else None
        )
        self.register_buffer("ordering", torch.arange(self.num_dims))
        # The active mask is a buffer, so a resumed run continues the cycle where it stopped.
        self.register_buffer("active_mask", torch.tensor(-1))
        self.use_mask(0)
        if linear_impl == "packed" or (linear_impl == "auto" and self.num_masks == 1):
            self._pack(PACK_MIN_WEIGHTS if linear_impl == "auto" else 0)

    def _pack(self, min_weights: int) -> None:
        """Swap the layers of at least ``min_weights`` weights for their packed form: the single
        mask never changes again."""

        def packed(layer: MaskedLinear) -> nn.Module:
            if layer.weight.numel() < min_weights:
                return layer
            return PackedMaskedLinear(layer.weight, layer.bias, layer.mask)

        self.hidden_layers = nn.ModuleList(packed(layer) for layer in self.hidden_layers)
        self.output_layer = packed(self.output_layer)
        if self.direct is not None:
            self.direct = packed(self.direct)

    @property
    def mask_index(self) -> int:
        return int(self.active_mask)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Accept checkpoints written before the ordering buffer was renamed ``order`` ->
        ``ordering`` (one meaning of ``ordering`` for FVSBN, NADE and MADE)."""
        old, new = prefix + "order", prefix + "ordering"
        if old in state_dict and new not in state_dict:
            state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ masks
    def degrees(self, mask_index: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Input ordering and hidden-unit degrees for one mask seed (deterministic)."""
        gen = torch.Generator().manual_seed(self.ordering_seed * 1_000_003 + mask_index)
        num_dims = self.num_dims
        order = draw_ordering(self.ordering_kind, num_dims, gen)
        # in_degree[d] = position (1-based) of input d in the ordering.
        in_degree = torch.empty(num_dims, dtype=torch.long)
        in_degree[order] = torch.arange(1, num_dims + 1)
        hidden_degrees, low = [], 1
        for size in self.hidden_sizes:
            if num_dims == 1:
                deg = torch.zeros(size, dtype=torch.long)  # nothing to condition on
            elif mask_index == 0 and self.num_masks == 1:
                # Spread degrees evenly over [low, D-1] for the single-mask model, so that every
                # input (but the last) feeds some unit whatever the width.
                deg = low + torch.arange(size) * (num_dims - 1 - low) // max(size - 1, 1)
            else:
                deg = torch.randint(low, num_dims, (size,), generator=gen)
            hidden_degrees.append(deg)
            low = int(deg.min()) if size else low
        return order, [in_degree, *hidden_degrees]

    def use_mask(self, mask_index: int) -> None:
        """Install the masks (and ordering) for mask seed ``mask_index``."""
        mask_index %= self.num_masks
        if mask_index == self.mask_index:
            return
        order, degrees = self.degrees(mask_index)
        for layer, d_in, d_out in zip(self.hidden_layers, degrees[:-1], degrees[1:], strict=True):
            layer.set_mask(d_out[:, None] >= d_in[None, :])
        in_degree = degrees[0]
        self.output_layer.set_mask(in_degree[:, None] > degrees[-1][None, :])
        if self.direct is not None:
            self.direct.set_mask(in_degree[:, None] > in_degree[None, :])
        self.ordering.copy_(order)
        self.active_mask.fill_(mask_index)

    def next_mask(self) -> None:
        """Cycle to the next mask seed (called once per training step when num_masks > 1)."""
        if self.num_masks > 1:
            self.use_mask(self.mask_index + 1)

    # ---------------------------------------------------------------- density
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional p(x_i = 1 | x_before_i), shape [B, D], for the current mask."""
        flat = x.reshape(x.shape[0], -1)
        h = flat
        for layer in self.hidden_layers:
            h = F.relu(layer(h))
        logits = self.output_layer(h)
        if self.direct is not None:
            logits = logits + self.direct(flat)
        return logits

    def _log_prob_current_mask(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        logits = self(flat)
        return -F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(dim=1)

    def log_prob(self, x: torch.Tensor, num_masks: int | None = None) -> torch.Tensor:
        """Exact log p(x) in nats, [B]. With several masks: the uniform mixture over them."""
        self.validate_levels(x)
        masks = self.num_eval_masks if num_masks is None else int(num_masks)
        if masks == 1:
            return self._log_prob_current_mask(x)
        current = self.mask_index
        per_mask = []
        for k in range(masks):
            self.use_mask(k)
            per_mask.append(self._log_prob_current_mask(x))
        self.use_mask(current)
        return torch.logsumexp(torch.stack(per_mask), dim=0) - math.log(masks)

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example NLL under the current mask; the mask then advances (order-agnostic training).

        The training hot path: only ``x``'s form is checked here, its values once per batch by the
        caller (``validate_form``); ``log_prob`` checks everything.
        """
        self.validate_form(x)
        loss = -self._log_prob_current_mask(x)
        self.next_mask()
        return loss

    # ---------------------------------------------------------------- sampling
    @property
    def num_orderings(self) -> int:
        """One ordering per mask seed (``ordering_index`` picks a mask)."""
        return self.num_masks

    @property
    def mixture_size(self) -> int:
        """The masks of the evaluation mixture (``num_eval_masks``)."""
        return self.num_eval_masks

    def default_ordering_index(self) -> int:
        """With one evaluation mask, samples come from the active mask."""
        return self.mask_index

    def ordering_at(self, index: int) -> torch.Tensor:
        """The ordering of mask seed ``index``."""
        if index % self.num_masks == self.mask_index:
            return self.ordering
        return self.degrees(index % self.num_masks)[0].to(self.ordering.device)

    @contextmanager
    def sampling_orderings(self) -> Iterator[None]:
        """Sampling installs each sampled mask in turn; the active mask is restored after."""
        current = self.mask_index
        try:
            yield
        finally:
            self.use_mask(current)

    def stepper(
        self, index: int, m: int, device: torch.device, dtype: torch.dtype, sampler: str
    ) -> MADENaiveStepper | MADECachedStepper:
        """Install mask ``index``; ``"cached"``: each hidden unit computed once, ``"naive"``: a
        forward pass per variable (see the module docstring)."""
        self.use_mask(index)
        x = torch.zeros(m, self.num_dims, device=device, dtype=dtype)
        return MADECachedStepper(self, x) if sampler == "cached" else MADENaiveStepper(self, x)


class MADENaiveStepper:
    """Every variable of ``x`` [m, D] from a full pass of the current mask's network."""

    def __init__(self, model: MADE, x: torch.Tensor) -> None:
        self.model, self.x = model, x

    def logit(self, t: int, i: int) -> torch.Tensor:
        return self.model(self.x)[:, i]

    def record(self, t: int, i: int, value: torch.Tensor) -> None:
        self.x[:, i] = value

    def result(self) -> torch.Tensor:
        return self.x


class MADECachedStepper:
    """``MADENaiveStepper``'s draws, computing each hidden unit once, when it becomes final."""

    def __init__(self, model: MADE, x: torch.Tensor) -> None:
        num_dims, device = model.num_dims, x.device
        self.x, self.order = x, model.ordering.to(device)
        _, degrees = model.degrees(model.mask_index)
        # Everything in rank order: inputs by their rank in the ordering, units by degree.
        columns, weights, biases, ends = self.order, [], [], []
        for layer, degree in zip(model.hidden_layers, degrees[1:], strict=True):
            degree, rows = torch.sort(degree.to(device), stable=True)
            weight = layer.masked_weight()
            weights.append(_take(weight, rows, columns))
            biases.append(layer.bias[rows])
            # ends[m]: units of degree <= m, i.e. final once the inputs ranked <= m are known
            ends.append(
                torch.searchsorted(degree, torch.arange(num_dims, device=device), right=True)
            )
            columns = rows
        output = model.output_layer
        self.out_weight = _take(output.masked_weight(), self.order, columns)
        self.out_bias = output.bias[self.order]
        self.direct = None
        if model.direct is not None:
            self.direct = _take(model.direct.masked_weight(), self.order, self.order)
        self.weights, self.biases, self.ends = weights, biases, [e.tolist() for e in ends]
        self.ranked = torch.zeros_like(x)  # the inputs in rank order
        self.hidden = [x.new_zeros(x.shape[0], w.shape[0]) for w in weights]

    def logit(self, t: int, i: int) -> torch.Tensor:
        """The variable ranked t + 1 (inputs ranked <= t known): the units of degree t, then
        its output row."""
        below, known = self.ranked, t
        for h, w, b, end in zip(self.hidden, self.weights, self.biases, self.ends, strict=True):
            start = end[t - 1] if t else 0
            if end[t] > start:  # units of degree t: final now
                pre = torch.addmm(
                    b[start : end[t]], below[:, :known], w[start : end[t], :known].t()
                )
                h[:, start : end[t]] = torch.relu(pre)
            below, known = h, end[t]
        logit = torch.mv(below[:, :known], self.out_weight[t, :known]) + self.out_bias[t]
        if self.direct is not None:
            logit = logit + self.ranked[:, :t] @ self.direct[t, :t]
        return logit

    def record(self, t: int, i: int, value: torch.Tensor) -> None:
        self.ranked[:, t] = value

    def result(self) -> torch.Tensor:
        self.x[:, self.order] = self.ranked
        return self.x
