"""One sampler for the models of a variable ordering: FVSBN, NADE and MADE.

These models draw their D binary variables one at a time in an ordering (``argen.models.ordering``).
Each has one or several orderings: FVSBN one; NADE its evaluation orderings; MADE one per mask.
``model.ordering`` always means the same thing: the LongTensor [D] of the (first, or for MADE the
active) ordering, ``ordering[k]`` = the k-th variable generated. Where ``log_prob`` is the uniform
mixture over several orderings, sampling picks one ordering per sample uniformly at random, which
samples that mixture exactly.

:meth:`OrderedModel.sample` is the one loop, ``sample`` of all three with one signature and one
set of options: it checks them, picks each sample's ordering, and draws every variable at ``temperature``
from the model's conditional. A model gives only a *stepper* per ordering (:class:`OrderedStepper`):
how the next conditional's logit is computed and what a drawn value updates. ``sampler`` picks it:
``"cached"`` reuses work across steps (FVSBN's and NADE's running sums, O(D) and O(H) per variable;
MADE's hidden units computed once each, when they become final), ``"naive"`` runs the whole model
once per variable. Both draw the same random numbers in the same order, so for the same seed they
give the same samples (up to a draw within float rounding of a probability).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch

from argen.models.base import DensityModel
from argen.models.cached_sampling import check_sampler


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


class OrderedStepper(Protocol):
    """One sampling call's state for ``m`` samples under one ordering."""

    def logit(self, t: int, i: int) -> torch.Tensor:
        """[m] logit of p(x_i = 1 | the variables drawn so far); ``i`` is the ``t``-th variable."""
        ...

    def record(self, t: int, i: int, value: torch.Tensor) -> None:
        """Take the drawn values [m] of variable ``i`` (the ``t``-th of the ordering)."""
        ...

    def result(self) -> torch.Tensor:
        """The samples [m, D], in the original index space."""
        ...


class OrderedModel(DensityModel):
    """Base of FVSBN, NADE and MADE: ``ordering``, the orderings, and ``sample``.

    A subclass holds ``ordering`` (a buffer or a property: LongTensor [D]) and writes ``stepper``;
    with several orderings it also overrides ``num_orderings``, ``ordering_at`` and, when the
    mixture ``log_prob`` evaluates uses fewer, ``mixture_size``.
    """

    ordering: torch.Tensor
    sampler: str = "cached"  # the default of ``sample``'s ``sampler``
    # How a Bernoulli variable is drawn: torch.bernoulli(p) (False), or a uniform u < p (True; u
    # drawn on the CPU when a generator is given there). Kept per model so that every model draws
    # the random numbers it always drew, and its samples for a seed stay those of earlier versions.
    draw_by_uniform: bool = False
    # NADE has always drawn each sample's ordering, even from a single one (see above).
    draw_one_ordering: bool = False

    @property
    def num_orderings(self) -> int:
        """How many orderings the model holds (``ordering_index`` takes 0 .. this - 1)."""
        return 1

    @property
    def mixture_size(self) -> int:
        """How many orderings ``log_prob``'s mixture (and so ``sample``) draws from."""
        return self.num_orderings

    def ordering_at(self, index: int) -> torch.Tensor:
        """The ordering ``index`` as a LongTensor [D] (``ordering`` for index 0)."""
        return self.ordering

    @contextmanager
    def sampling_orderings(self) -> Iterator[None]:
        """Context of one ``sample`` call (MADE restores its active mask on leaving)."""
        yield

    def stepper(
        self, index: int, m: int, device: torch.device, dtype: torch.dtype, sampler: str
    ) -> OrderedStepper:
        """The stepper that draws ``m`` samples under ordering ``index`` (see the module)."""
        raise NotImplementedError  # pragma: no cover - interface

    def choose_orderings(
        self, n: int, ordering_index: int | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The ordering of each of ``n`` samples, LongTensor [n] on the CPU."""
        if ordering_index is not None:
            if not 0 <= ordering_index < self.num_orderings:
                raise ValueError(
                    f"ordering_index must be in [0, {self.num_orderings}), got {ordering_index}"
                )
            return torch.full((n,), int(ordering_index), dtype=torch.long)
        if self.mixture_size == 1 and not self.draw_one_ordering:
            return torch.full((n,), self.default_ordering_index(), dtype=torch.long)
        return torch.randint(self.mixture_size, (n,), generator=generator)

    def default_ordering_index(self) -> int:
        """The ordering of every sample when the mixture has one (MADE: the active mask)."""
        return 0

    @torch.no_grad()
    def sample(
        self,
        n: int,
        device: torch.device | str | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        ordering_index: int | None = None,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` samples [n, *shape] of {0., 1.}, one variable at a time in an ordering.

        With several orderings in the mixture, each sample picks one uniformly (exact sampling
        from the mixture that ``log_prob`` evaluates) unless ``ordering_index`` fixes it.
        ``temperature`` T divides the logit of every conditional (T = 1: the model itself);
        ``generator`` drives every random draw (the global generator without it); ``sampler``
        (default ``self.sampler``): ``"cached"`` or ``"naive"`` (``argen.models.ordered_sampling``).
        """
        check_temperature(temperature)
        sampler = check_sampler(self.sampler if sampler is None else sampler)
        device = torch.device(device) if device is not None else self.ordering.device
        dtype = next(self.parameters()).dtype
        choice = self.choose_orderings(n, ordering_index, generator)
        out = torch.zeros(n, self.num_dims, device=device, dtype=dtype)
        with self.sampling_orderings():
            for index in choice.unique().tolist():
                rows = (choice == index).nonzero().flatten().to(device)
                stepper = self.stepper(index, len(rows), device, dtype, sampler)
                for t, i in enumerate(self.ordering_at(index).tolist()):
                    probs = tempered_probs(stepper.logit(t, i), temperature)
                    stepper.record(t, i, draw_bernoulli(self, probs, generator, dtype))
                out[rows] = stepper.result()
        return out.reshape(n, *self.shape)


def draw_bernoulli(
    model: OrderedModel,
    probs: torch.Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """One draw of Bernoulli(``probs``) per row, as ``dtype`` (see ``draw_by_uniform``)."""
    if model.draw_by_uniform:
        u = torch.rand(probs.shape[0], generator=generator).to(probs.device)
        return (u < probs).to(dtype)
    return torch.bernoulli(probs, generator=generator).to(dtype)
