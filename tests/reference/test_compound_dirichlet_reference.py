"""Dirichlet-multinomial fits against published values and independent optimisers.

- Holmes, Harris & Quince (2012) fit the twins gut-microbiome genus counts (278 samples × 130
  taxa, their R package's data); with one component their objective, the negative log-likelihood
  (with the multinomial coefficient) minus the log prior density of λ = log α with
  α ~ Gamma(shape 0.1, rate 0.1), has the minimum 39162.112.
- scipy.optimize on scipy.stats.dirichlet_multinomial, sharing no code with emkit's solvers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize
from scipy.special import gammaln

from emkit import datasets
from emkit.compound_dirichlet import DirichletMultinomial, DirichletMultinomialMixture

HOLMES_TWINS_K1 = 39162.112


@pytest.fixture(scope="module")
def twins():
    return datasets.load("twins").data


def holmes_objective(X, alpha, weights=(1.0,)):
    """−log-likelihood − log prior, written with scipy only."""
    alpha = np.atleast_2d(alpha)
    log_densities = np.column_stack([stats.dirichlet_multinomial.logpmf(X, a, X.sum(axis=1))
                                     for a in alpha]) + np.log(weights)
    log_prior = np.sum(0.1 * np.log(0.1) - gammaln(0.1) + 0.1 * np.log(alpha) - 0.1 * alpha)
    return -(np.logaddexp.reduce(log_densities, axis=1).sum() + log_prior)


@pytest.mark.parametrize("make", [
    lambda: DirichletMultinomial(prior="gamma"),
    lambda: DirichletMultinomial(prior="gamma", solver="fixed-point"),
    lambda: DirichletMultinomialMixture(1, random_state=0),
], ids=["em", "fixed-point", "mixture-k1"])
def test_holmes_objective_on_twins(twins, make):
    model = make().fit(twins)
    assert abs(model.objective(twins) - HOLMES_TWINS_K1) < 1e-3
    np.testing.assert_allclose(holmes_objective(twins, model.alpha_), model.objective(twins),
                               rtol=1e-12)


# EM and the fixed point agreeing on the twins α to 1e-6 at their defaults:
# tests/reference/test_convergence.py.


@pytest.mark.parametrize("prior", [None, "gamma"])
def test_maximum_agrees_with_scipy_optimize(prior):
    rng = np.random.default_rng(0)
    alpha = np.array([0.4, 1.1, 2.5, 0.8])
    totals = rng.integers(10, 80, size=120)
    X = np.vstack([rng.multinomial(n, rng.dirichlet(alpha)) for n in totals]).astype(float)

    def negative(log_alpha):
        a = np.exp(log_alpha)
        value = -stats.dirichlet_multinomial.logpmf(X, a, totals).sum()
        if prior == "gamma":
            value -= np.sum(0.1 * log_alpha - 0.1 * a)
        return value

    reference = np.exp(minimize(negative, np.zeros(4), method="BFGS", tol=1e-12).x)
    model = DirichletMultinomial(prior=prior, random_state=0).fit(X)
    np.testing.assert_allclose(model.alpha_, reference, rtol=1e-5)
    assert negative(np.log(model.alpha_)) <= negative(np.log(reference)) + 1e-7


def test_mixture_is_a_local_minimum_of_holmes_objective(twins):
    """Holmes et al.'s objective, written with scipy, at emkit's two-component fit of the twins
    data: its directional derivatives vanish and no step along random directions (in λ = log α
    and the logit of the weight) lowers it."""
    model = DirichletMultinomialMixture(2, random_state=0, tol=1e-10, max_iter=2000).fit(twins)
    found = model.objective(twins)
    np.testing.assert_allclose(holmes_objective(twins, model.alpha_, model.weights_), found,
                               rtol=1e-12)

    def objective(theta):
        alpha = np.exp(theta[:-1]).reshape(model.alpha_.shape)
        weight = 1 / (1 + np.exp(-theta[-1]))
        return holmes_objective(twins, alpha, (weight, 1 - weight))

    start = np.concatenate([np.log(model.alpha_).ravel(),
                            [np.log(model.weights_[0] / model.weights_[1])]])
    rng = np.random.default_rng(0)
    for _ in range(12):
        direction = rng.standard_normal(start.size)
        direction /= np.linalg.norm(direction)
        h = 1e-3
        up, down = objective(start + h * direction), objective(start - h * direction)
        assert abs(up - down) / (2 * h) < 1e-2  # the derivative (a slope of 1 would be 2e-3)
        assert min(up, down) > found
