"""Input checks every log_prob runs: integer levels in range pass, anything else names the problem."""

from __future__ import annotations

import math

import pytest
import torch

from argen.models.base import validate_levels

SHAPE = (1, 2, 2)


@pytest.mark.parametrize("levels", [2, 256])
def test_integer_levels_in_range_pass(levels):
    x = torch.randint(0, levels, (5, *SHAPE)).float()
    x[0, 0, 0, 0] = levels - 1
    validate_levels(x, SHAPE, levels, "M")
    validate_levels(x.double(), SHAPE, levels, "M")


@pytest.mark.parametrize(
    ("value", "levels", "message"),
    [
        (0.5, 2, "not whole numbers"),
        (254.999, 256, "not whole numbers"),
        (-1.0, 2, r"got values in \[-1, 1\]"),
        (2.0, 2, r"got values in \[0, 2\]"),
        (256.0, 256, r"got values in \[0, 256\]"),
        (math.nan, 2, "integer levels"),
        (math.inf, 2, "integer levels"),
    ],
)
def test_values_out_of_range_or_fractional_are_refused(value, levels, message):
    x = torch.zeros(3, *SHAPE)
    x[1, 0, 1, 1] = 1.0
    x[2, 0, 0, 1] = value
    with pytest.raises(ValueError, match=message):
        validate_levels(x, SHAPE, levels, "M")
