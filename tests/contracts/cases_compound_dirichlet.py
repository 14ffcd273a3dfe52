"""Contract cases of the compound-Dirichlet models (see registry.py)."""

from __future__ import annotations

import numpy as np

from emkit.families.dirichlet import GammaPrior
from emkit.models.compound_dirichlet import DirichletMixtureModel, DirichletMultinomialMixtureModel

from .registry import ModelCase, register, register_map

_ALPHA = np.array([[4.0, 2.0, 1.0, 0.5], [0.5, 1.0, 3.0, 5.0]])


def two_dirichlet_multinomial_components(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Counts (totals 5–60) from 0.4 DM(α₁) + 0.6 DM(α₂), four categories."""
    labels = (rng.uniform(size=n_rows) < 0.6).astype(int)
    totals = rng.integers(5, 61, size=n_rows)
    return np.vstack([rng.multinomial(n, rng.dirichlet(_ALPHA[k]))
                      for n, k in zip(totals, labels, strict=True)]).astype(float)


def two_overlapping_components(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Counts from two similar Dirichlet-multinomials: EM is still moving after the contracts'
    20 iterations (on well-separated data the objective is flat to round-off by then, and which
    of the last iterates is "best" becomes a matter of round-off)."""
    alpha = np.array([[3.0, 2.0, 1.5, 1.0], [1.5, 2.0, 2.5, 3.0]])
    labels = (rng.uniform(size=n_rows) < 0.6).astype(int)
    totals = rng.integers(5, 61, size=n_rows)
    return np.vstack([rng.multinomial(n, rng.dirichlet(alpha[k]))
                      for n, k in zip(totals, labels, strict=True)]).astype(float)


def one_dirichlet_multinomial(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    totals = rng.integers(5, 61, size=n_rows)
    return np.vstack([rng.multinomial(n, rng.dirichlet([3.0, 2.0, 1.5, 1.0]))
                      for n in totals]).astype(float)


def two_dirichlet_components(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Proportions from 0.4 Dir(α₁) + 0.6 Dir(α₂) (clipped away from 0 for float64 logs)."""
    labels = (rng.uniform(size=n_rows) < 0.6).astype(int)
    P = np.vstack([rng.dirichlet(_ALPHA[k] + 1.0) for k in labels])
    P = np.maximum(P, 1e-12)
    return P / P.sum(axis=1, keepdims=True)


# The Gamma-prior models are MAP cases (register_map): with a prior, doubling every row's weight
# is not the same fit (the prior does not double). They go through test_optimum.py here and the
# other contracts in tests/test_compound_dirichlet.py (PRIOR_CASES).
register(ModelCase(
    "dmm-maximum-likelihood",
    lambda: DirichletMultinomialMixtureModel(2),
    two_overlapping_components,
    min_rows=20,
))
register(ModelCase(
    "dm-latent-probabilities",
    lambda: DirichletMultinomialMixtureModel(1, latent="probabilities"),
    one_dirichlet_multinomial,
))
register(ModelCase(
    "dmm-latent-probabilities",
    lambda: DirichletMultinomialMixtureModel(2, latent="probabilities"),
    two_dirichlet_multinomial_components,
    min_rows=20,
))
register(ModelCase(
    "dirichlet-mixture",
    lambda: DirichletMixtureModel(2),
    two_dirichlet_components,
    min_rows=20,
))

PRIOR_CASES = [register_map(case) for case in [
    ModelCase("dmm-gamma-prior", lambda: DirichletMultinomialMixtureModel(2, GammaPrior(0.1, 0.1)),
              two_overlapping_components),
    ModelCase("dmm-latent-probabilities-gamma-prior",
              lambda: DirichletMultinomialMixtureModel(2, GammaPrior(0.1, 0.1),
                                                       latent="probabilities"),
              two_overlapping_components),
    ModelCase("dirichlet-mixture-gamma-prior",
              lambda: DirichletMixtureModel(2, GammaPrior(1.0, 0.5)), two_dirichlet_components),
]]
