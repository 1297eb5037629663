"""Shared checks that every density model must pass (see DEVELOPERS.md, "Quality bar").

Each check takes plain callables so that one helper serves MADE, NADE, PixelCNN, Char-RNN, ...:

* ``assert_autoregressive``: the parameters of conditional *i* have an exactly-zero gradient with
  respect to every input dimension that is not strictly before *i* in the model's ordering, and a
  non-zero gradient with respect to at least some earlier ones (so a constant model cannot pass).
* ``assert_normalized``: ``log_prob`` summed in probability space over every possible input is 1.
* ``assert_cached_equals_naive``: a binary model's cached sampler draws what its naive one draws.
* ``all_binary`` / ``all_discrete``: enumerate every input of a tiny instance.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch


def all_discrete(num_dims: int, num_levels: int) -> torch.Tensor:
    """Every vector in {0..num_levels-1}^num_dims as a LongTensor [num_levels**num_dims, num_dims]."""
    rows = list(itertools.product(range(num_levels), repeat=num_dims))
    return torch.tensor(rows, dtype=torch.long)


def all_binary(num_dims: int) -> torch.Tensor:
    """Every binary vector of length ``num_dims`` as a float tensor [2**num_dims, num_dims]."""
    return all_discrete(num_dims, 2).float()


def assert_normalized(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    every_input: torch.Tensor,
    atol: float = 1e-5,
    batch_size: int = 4096,
) -> None:
    """The model's probabilities over ``every_input`` (all possible inputs) sum to one."""
    with torch.no_grad():
        chunks = [log_prob(chunk) for chunk in every_input.split(batch_size)]
    log_probs = torch.cat(chunks).double()
    assert log_probs.shape == (every_input.shape[0],), "log_prob must return one value per example"
    assert torch.isfinite(log_probs).all(), "log_prob returned a non-finite value"
    assert (log_probs <= 1e-6).all(), "a discrete probability cannot exceed 1"
    total = torch.logsumexp(log_probs, dim=0).exp().item()
    assert abs(total - 1.0) < atol, f"probabilities sum to {total:.8f}, not 1"


def assert_autoregressive(
    conditional_params: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    order: Sequence[int] | torch.Tensor,
) -> None:
    """Check the autoregressive property by exact gradients.

    ``conditional_params(x)`` maps a float input ``x`` of shape [B, D] (one flattened dimension per
    variable, differentiable) to the parameters of every conditional, shape [B, D, ...]: entry
    ``[:, i]`` parameterizes p(x_i | x_before_i). ``order[k]`` is the index of the k-th variable
    generated. Conditional ``i`` may depend only on variables that come strictly before ``i``.
    """
    x = x.detach().clone().double().requires_grad_(True)
    num_dims = x.shape[1]
    order = torch.as_tensor(order, dtype=torch.long)
    assert sorted(order.tolist()) == list(range(num_dims)), "order must be a permutation of 0..D-1"
    rank = torch.empty(num_dims, dtype=torch.long)
    rank[order] = torch.arange(num_dims)

    saw_dependency = False
    for i in range(num_dims):
        params = conditional_params(x)
        assert params.shape[:2] == x.shape[:2], "conditional_params must return [B, D, ...]"
        # Sum with random weights so that no dependency can cancel out by symmetry.
        target = params[:, i]
        weights = torch.randn_like(target)
        (grad,) = torch.autograd.grad((target * weights).sum(), x, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(x)
        influence = grad.abs().sum(dim=0)
        forbidden = rank >= rank[i]
        # Inputs may carry trailing axes (one-hot characters): a variable leaks if any entry does.
        influence = influence.reshape(num_dims, -1).sum(dim=1)
        leaked = influence[forbidden]
        assert torch.all(leaked == 0), (
            f"conditional {i} (position {rank[i].item()} in the ordering) depends on variables "
            f"{torch.nonzero(forbidden).flatten()[leaked != 0].tolist()} that are not before it"
        )
        saw_dependency = saw_dependency or bool((influence[~forbidden] != 0).any())
    assert saw_dependency, "no conditional depends on any earlier variable: the check is vacuous"


def raster_order(channels: int, height: int, width: int) -> torch.Tensor:
    """PixelCNN/PixelRNN ordering of a [C, H, W] image flattened C-major: pixel by pixel in raster
    order, and within a pixel channel by channel (R, then G, then B)."""
    index = torch.arange(channels * height * width).reshape(channels, height, width)
    return index.permute(1, 2, 0).reshape(-1)


def assert_cached_equals_naive(model, num: int, temperature: float, seed: int) -> None:
    """The same generator gives the same binary samples from ``sampler="cached"`` as from
    ``"naive"``, and the draw is not degenerate (all zeros or all ones would match trivially)."""
    draws = {}
    for sampler in ("naive", "cached"):
        generator = torch.Generator().manual_seed(seed)
        draws[sampler] = model.sample(
            num, temperature=temperature, generator=generator, sampler=sampler
        )
    assert torch.equal(draws["cached"], draws["naive"])
    assert 0.05 < draws["cached"].mean() < 0.95, "a degenerate draw"
