"""MADE's masks as the lecture draws them: ordering, the integer (degree) of every unit, the mask
matrices M^W of every layer, and which input-output paths survive.

Germain et al. (2015): input d gets degree m(d) = its position (1..D) in the ordering, every
hidden unit an integer m(k) in [1, D-1]; a hidden connection k <- j is kept iff m(k) >= m(j), an
output connection d <- k iff m(d) > m(k). Output d can then depend on input j only if
m(j) < m(d). ``made_connectivity`` reads the masks the model actually applies (its buffers), and
``reach`` multiplies them out: ``reach[d, j]`` is true iff some path j -> ... -> d is kept (or the
direct connection d <- j). ``made_degrees`` recomputes the degrees with the model's own rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from argen.inspect.conditionals import InspectError, first_component
from argen.models.made import MADE


@dataclass(frozen=True)
class MadeConnectivity:
    """The masks of one MADE mask seed.

    ``order[k]``: the k-th input generated; ``degrees``: per layer (inputs first, then each hidden
    layer, then the outputs, which share the inputs' degrees) the integer of every unit;
    ``masks``: bool [out, in] per weight matrix, input -> hidden ..., last hidden -> output;
    ``direct``: bool [D, D] of the direct input -> output layer, or None; ``reach``: bool [D, D],
    output d may depend on input j.
    """

    order: torch.Tensor
    degrees: list[torch.Tensor]
    masks: list[torch.Tensor]
    direct: torch.Tensor | None
    reach: torch.Tensor

    @property
    def inputs_per_output(self) -> torch.Tensor:
        """How many inputs each output may depend on, [D]."""
        return self.reach.sum(dim=1)


def check_made(model: torch.nn.Module) -> MADE:
    """``model`` if it is a MADE; ``InspectError`` otherwise."""
    if not isinstance(model, MADE):
        raise InspectError(f"the masks view is for MADE models, not {type(model).__name__}")
    return model


def made_connectivity(model: MADE, mask_index: int = 0) -> MadeConnectivity:
    """The masks, degrees and input-output reach of ``model`` under mask seed ``mask_index``."""
    check_made(model)
    current = model.mask_index
    model.use_mask(mask_index)
    try:
        masks = [layer.mask.detach().cpu().bool() for layer in model.hidden_layers]
        masks.append(model.output_layer.mask.detach().cpu().bool())
        direct = None if model.direct is None else model.direct.mask.detach().cpu().bool()
        order, degrees = model.degrees(model.mask_index)
    finally:
        model.use_mask(current)
    paths = masks[0].double()
    for mask in masks[1:]:
        paths = mask.double() @ paths
    reach = paths > 0
    if direct is not None:
        reach = reach | direct
    return MadeConnectivity(order, [*degrees, degrees[0]], masks, direct, reach)


def lecture_made(hidden_sizes: Sequence[int] = (4, 4), order: Sequence[int] = (1, 2, 0)) -> MADE:
    """The lecture's small MADE: n = 3 inputs, two hidden layers, ordering x2, x3, x1.

    argen's MADE draws a random ordering from its seed; the first seed whose ordering is
    ``order`` (0-based input indices, first generated first) is used, so the picture shows a
    model argen really builds, with the hidden degrees it really assigns.
    """
    wanted = list(order)
    n = len(wanted)
    if sorted(wanted) != list(range(n)):
        raise InspectError(f"order must be a permutation of 0..{n - 1}, got {wanted}")
    for seed in range(1000):
        model = MADE((n,), 2, hidden_sizes=hidden_sizes, ordering="random", ordering_seed=seed)
        with first_component(model):
            if model.ordering.tolist() == wanted:
                return model
    raise InspectError(f"no ordering seed below 1000 gives the ordering {wanted}")
