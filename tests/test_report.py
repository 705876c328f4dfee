"""The report writers' statistics."""

import math

import pytest

from clead_edu.report import interval


def test_interval_matches_textbook_values():
    """Mean and 95% t half-width: [1, 2, 3] -> 2 ± 4.303 * 1 / sqrt(3) (t_{0.975, 2} = 4.303)."""
    mean, half = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert interval([5.0, 5.0])[1] == 0.0
    assert math.isnan(interval([0.5])[1])
