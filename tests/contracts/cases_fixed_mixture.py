"""Contract cases of the fixed-mixture model (weights of fixed densities): likelihoods and
log-likelihoods of rows drawn from overlapping Gaussians, under four fixed Gaussian models."""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import softmax

from emkit.models.fixed_mixture import FixedMixtureModel, FixedMixtureParams

from .registry import ModelCase, register, register_map

_MEANS = np.array([-1.0, 0.0, 0.8, 2.5])  # overlapping: EM needs tens of iterations


def gaussian_log_likelihoods(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """log N(x_i | μ_j, 1) of rows x_i from 0.5 N(−1, 1) + 0.5 N(1.5, 1), shape (n, 4)."""
    x = np.where(rng.uniform(size=n_rows) < 0.5, -1.0, 1.5) + rng.standard_normal(n_rows)
    return stats.norm.logpdf(x[:, None], _MEANS, 1.0)


def gaussian_likelihoods(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    return np.exp(gaussian_log_likelihoods(rng, n_rows))


def log_weights(model):
    """Unconstrained coordinates for test_optimum.py: log-weights, softmax back. (The model's own
    flatten is the weights themselves, which suits SQUAREM but not an unconstrained optimiser.)"""
    return (lambda params: np.log(params.weights),
            lambda vector, template: FixedMixtureParams(softmax(vector)))


register(ModelCase("fixed-mixture", FixedMixtureModel, gaussian_likelihoods,
                   coordinates=log_weights))
register(ModelCase("fixed-mixture-log", lambda: FixedMixtureModel(log=True),
                   gaussian_log_likelihoods, coordinates=log_weights))
# A Dirichlet prior is not doubled with the data, so "weight 2 == every row twice" does not hold
# for it: a MAP case (tests/reference/test_fixed_mixture_optimum.py also checks MAP against a
# convex solver).
register_map(ModelCase("fixed-mixture-dirichlet-prior",
                       lambda: FixedMixtureModel(prior=np.array([1.5, 3.0, 2.0, 1.2])),
                       gaussian_likelihoods, coordinates=log_weights))
