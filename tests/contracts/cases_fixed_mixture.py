"""Contract cases of the fixed-mixture model (weights of fixed densities): likelihoods and
log-likelihoods of rows drawn from overlapping Gaussians, under four fixed Gaussian models."""

from __future__ import annotations

import numpy as np
from scipy import stats

from emkit.models.fixed_mixture import FixedMixtureModel

from .registry import ModelCase, register

_MEANS = np.array([-1.0, 0.0, 0.8, 2.5])  # overlapping: EM needs tens of iterations


def gaussian_log_likelihoods(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """log N(x_i | μ_j, 1) of rows x_i from 0.5 N(−1, 1) + 0.5 N(1.5, 1), shape (n, 4)."""
    x = np.where(rng.uniform(size=n_rows) < 0.5, -1.0, 1.5) + rng.standard_normal(n_rows)
    return stats.norm.logpdf(x[:, None], _MEANS, 1.0)


def gaussian_likelihoods(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    return np.exp(gaussian_log_likelihoods(rng, n_rows))


register(ModelCase("fixed-mixture", FixedMixtureModel, gaussian_likelihoods))
register(ModelCase("fixed-mixture-log", lambda: FixedMixtureModel(log=True),
                   gaussian_log_likelihoods))
# No MAP case: a Dirichlet prior is not doubled with the data, so the contract "weight 2 ==
# every row twice" does not hold for it (tests/reference/test_fixed_mixture_optimum.py checks MAP).
