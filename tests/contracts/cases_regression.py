"""Contract cases of the mixture of linear regressions: the generic mixture over
:class:`emkit.families.regression.RegressionFamily`, as :class:`emkit.RegressionMixture` fits it
(rows (x, y))."""

from __future__ import annotations

import numpy as np

from emkit.families.regression import RegressionFamily
from emkit.models.mixture import MixtureModel

from .registry import ModelCase, register


def two_crossing_lines(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Rows (x, y) from 0.4 · (y = 1 + 1.5x + N(0, 0.7²)) + 0.6 · (y = 2 − x + N(0, 0.9²)): lines
    that overlap where they cross, so that EM takes tens of steps (the contracts compare fits
    stopped after 5–20 iterations, before round-off decides which nearly equal point is
    best)."""
    x = rng.uniform(-2, 2, n_rows)
    first = rng.uniform(size=n_rows) < 0.4
    y = np.where(first, 1 + 1.5 * x + rng.normal(0, 0.7, n_rows),
                 2 - x + rng.normal(0, 0.9, n_rows))
    return np.column_stack([x, y])


register(ModelCase("regression-mixture", lambda: MixtureModel(RegressionFamily(), 2),
                   two_crossing_lines))
