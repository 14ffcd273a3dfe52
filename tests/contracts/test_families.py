"""Every component family and every HMM emission against its written contract
(:mod:`emkit.families.base`): the methods exist, statistics add, ``m_step`` returns
``(params, events)``, and log-densities agree with scipy's distributions.

To put a new family through these checks, add a :class:`FamilyCase` (or :class:`EmissionCase`)
below: a factory, data of the right kind, and scipy's log-density of one row under one
component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import logsumexp

from emkit.core.engine import add_statistics
from emkit.families.base import (
    ComponentFamily,
    Emission,
    mixing_weights,
)
from emkit.families.bernoulli import BernoulliFamily
from emkit.families.categorical import CategoricalEmission, CategoricalFamily
from emkit.families.dirichlet import DirichletFamily, DirichletMultinomialFamily, GammaPrior
from emkit.families.gaussian import GaussianFamily
from emkit.families.gaussian_emission import GaussianEmission, GMMEmission
from emkit.families.gaussian_missing import full_covariances
from emkit.families.poisson import PoissonEmission, PoissonFamily
from emkit.families.regression import RegressionFamily
from emkit.families.student import StudentFamily
from emkit.models.mixture import MixtureModel

from .test_contracts import numeric_fields

N_COMPONENTS = 3


# ---------------------------------------------------------------------------------- cases
def gaussian_rows(rng, n_rows):
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 3.0, 1.0]])
    X = centres[rng.integers(0, 3, n_rows)] + rng.normal(size=(n_rows, 3))
    return X @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, -0.4], [0.0, 0.0, 0.7]])


def proportions(rng, n_rows):
    alphas = np.array([[2.0, 5.0, 3.0, 1.0], [8.0, 1.0, 1.0, 4.0], [1.0, 1.0, 6.0, 6.0]])
    return np.array([rng.dirichlet(alphas[k]) for k in rng.integers(0, 3, n_rows)])


def counts(rng, n_rows):
    return np.array([rng.multinomial(rng.integers(5, 40), p) for p in proportions(rng, n_rows)],
                    dtype=float)


def regression_rows(rng, n_rows):
    """Rows (x_1, x_2, y) from three regression planes."""
    x = rng.normal(size=(n_rows, 2))
    planes = np.array([[0.0, 1.0, -1.0], [3.0, -2.0, 0.5], [-2.0, 0.0, 2.0]])
    line = planes[rng.integers(0, 3, n_rows)]
    y = line[:, 0] + np.sum(line[:, 1:] * x, axis=1) + rng.normal(0, 0.5, n_rows)
    return np.column_stack([x, y])


def regression_logpdf(family, params, row, k):
    mean = params.intercept[k] + params.coef[k] @ row[:-1]
    return scipy_stats.norm(mean, np.sqrt(params.noise_variance[k])).logpdf(row[-1])


def gaussian_logpdf(family, params, x, k):
    cov = full_covariances(family, params)[k]
    return scipy_stats.multivariate_normal(params.means[k], cov).logpdf(x)


def dirichlet_logpdf(family, alpha, x, k):
    return scipy_stats.dirichlet(alpha[k]).logpdf(x)


def dirichlet_multinomial_logpmf(family, alpha, x, k):
    return scipy_stats.dirichlet_multinomial(alpha[k], int(x.sum())).logpmf(x)


def binary_items(rng, n_rows):
    theta = np.array([[0.9, 0.7, 0.2, 0.4], [0.1, 0.5, 0.8, 0.6], [0.5, 0.5, 0.5, 0.9]])
    X = (rng.uniform(size=(n_rows, 4)) < theta[rng.integers(0, 3, n_rows)]).astype(float)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return X


def bernoulli_logpmf(family, params, x, k):
    seen = ~np.isnan(x)
    return float(np.sum(scipy_stats.bernoulli(params.probabilities[k][seen]).logpmf(x[seen])))


ITEM_LEVELS = (3, 4, 2)


def polytomous_items(rng, n_rows):
    X = np.column_stack([rng.integers(0, levels, n_rows) for levels in ITEM_LEVELS]).astype(float)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return X


def items_logpmf(family, params, x, k):
    return float(sum(scipy_stats.multinomial(1, params.probabilities[k, d, :levels]).logpmf(
        np.eye(levels)[int(x[d])]) for d, levels in enumerate(ITEM_LEVELS)
        if not np.isnan(x[d])))


def student_logpdf(family, params, x, k):
    return scipy_stats.multivariate_t(params.means[k], params.covariances[k],
                                      df=params.dof[k]).logpdf(x)


@dataclass(frozen=True)
class FamilyCase:
    name: str
    make: Callable[[], Any]
    data: Callable[[np.random.Generator, int], np.ndarray]
    reference: Callable[[Any, Any, np.ndarray, int], float]  # scipy's log p(x | k)


FAMILIES = [
    *(FamilyCase(f"gaussian-{kind}", lambda kind=kind: GaussianFamily(kind), gaussian_rows,
                 gaussian_logpdf) for kind in ("full", "tied", "diag", "spherical")),
    FamilyCase("dirichlet", DirichletFamily, proportions, dirichlet_logpdf),
    FamilyCase("dirichlet-gamma-prior", lambda: DirichletFamily(GammaPrior(0.7, 0.3)),
               proportions, dirichlet_logpdf),
    FamilyCase("dirichlet-multinomial", DirichletMultinomialFamily, counts,
               dirichlet_multinomial_logpmf),
    FamilyCase("dirichlet-multinomial-latent-probabilities",
               lambda: DirichletMultinomialFamily(latent="probabilities"), counts,
               dirichlet_multinomial_logpmf),
    FamilyCase("poisson", PoissonFamily, lambda rng, n: poisson_frames(rng, n),
               lambda family, params, x, k: poisson_logpmf(family, params, x, k)),
    FamilyCase("poisson-gamma-prior", lambda: PoissonFamily(2.0, 0.5),
               lambda rng, n: poisson_frames(rng, n),
               lambda family, params, x, k: poisson_logpmf(family, params, x, k)),
    FamilyCase("bernoulli", BernoulliFamily, binary_items, bernoulli_logpmf),
    FamilyCase("bernoulli-beta-prior", lambda: BernoulliFamily(2.0, 1.5), binary_items,
               bernoulli_logpmf),
    FamilyCase("categorical", lambda: CategoricalFamily(ITEM_LEVELS), polytomous_items,
               items_logpmf),
    FamilyCase("categorical-dirichlet-prior", lambda: CategoricalFamily(ITEM_LEVELS, 1.5),
               polytomous_items, items_logpmf),
    FamilyCase("regression", RegressionFamily, regression_rows, regression_logpdf),
    FamilyCase("student", StudentFamily, gaussian_rows, student_logpdf),
    FamilyCase("student-fixed-dof", lambda: StudentFamily(dof=3.0), gaussian_rows,
               student_logpdf),
]


def family_start(case, n_rows=120, seed=0):
    rng = np.random.default_rng(seed)
    family = case.make()
    X = case.data(rng, n_rows)
    data = family.read(X)
    weights, params = family.init([(data, None)], N_COMPONENTS, rng)
    return family, X, data, weights, params, rng


def assert_same_fields(a, b, rtol=1e-12, atol=1e-12):
    fa, fb = numeric_fields(a), numeric_fields(b)
    assert [name for name, _ in fa] == [name for name, _ in fb]
    for (name, x), (_, y) in zip(fa, fb, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=name)


# ---------------------------------------------------------------------------------- families
@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_family_meets_the_component_family_protocol(case):
    family, X, data, weights, params, _ = family_start(case)
    assert isinstance(family, ComponentFamily)
    assert family.n_rows(data) == len(X)
    assert weights.shape == (N_COMPONENTS,) and np.isclose(weights.sum(), 1.0)
    log_density = family.log_density(params, data)
    assert log_density.shape == (len(X), N_COMPONENTS)
    assert np.all(np.isfinite(log_density))
    assert np.isfinite(family.log_prior(params))


@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_family_log_density_matches_scipy(case):
    family, X, data, _, params, _ = family_start(case, n_rows=25)
    ours = np.asarray(family.log_density(params, data), dtype=float)
    scipy_values = np.array([[case.reference(family, params, X[i], k)
                              for k in range(N_COMPONENTS)] for i in range(len(X))])
    np.testing.assert_allclose(ours, scipy_values, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("beta", [1.0, 0.4])
@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_family_posteriors_are_the_tempered_mixture_posteriors(case, beta):
    """A fused fast path (the Gaussian's compiled kernels) gives what the generic formula does."""
    family, _, data, weights, params, _ = family_start(case)
    log_weights = np.log(weights)
    log_norm, resp = family.posteriors(params, data, log_weights, beta)
    log_joint = family.log_density(params, data) + log_weights
    np.testing.assert_allclose(log_norm, logsumexp(log_joint, axis=1), rtol=1e-12)
    expected = np.exp(beta * log_joint - logsumexp(beta * log_joint, axis=1, keepdims=True))
    # The Gaussian kernels drop a term 40 nats or more below a row's best before tempering
    # (exact at β = 1, where e^-40 is below float64 resolution next to 1): a tempered posterior
    # may be off by up to e^(-40 β).
    np.testing.assert_allclose(resp, expected, rtol=1e-10, atol=max(1e-14, np.exp(-40 * beta)))


@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_family_statistics_add(case):
    family, X, _, weights, params, rng = family_start(case)
    resp = rng.dirichlet(np.ones(N_COMPONENTS), len(X)) * rng.uniform(0.5, 2.0, (len(X), 1))
    split = len(X) // 3
    whole = family.statistics(params, family.read(X), resp)
    parts = add_statistics(family.statistics(params, family.read(X[:split]), resp[:split]),
                           family.statistics(params, family.read(X[split:]), resp[split:]))
    assert_same_fields(whole, parts)
    np.testing.assert_allclose(family.component_weights(whole), resp.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_family_m_step_returns_params_and_events(case):
    family, X, data, weights, params, _ = family_start(case)
    _, resp = family.posteriors(params, data, np.log(weights))
    result = family.m_step(family.statistics(params, data, resp), params)
    assert isinstance(result, tuple) and len(result) == 2
    new, events = result
    assert isinstance(events, tuple) and all(isinstance(e, str) for e in events)
    assert np.all(np.isfinite(family.log_density(new, data)))
    # an empty component (no weight at all) is repaired, reported or kept: never NaN
    resp[:, 0] = 0.0
    new, events = family.m_step(family.statistics(params, data, resp), params)
    assert isinstance(events, tuple)
    assert np.all(np.isfinite(family.log_density(new, data)))


@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_family_coordinates_round_trip_and_count_the_free_parameters(case):
    family, X, data, _, params, _ = family_start(case)
    vector = family.flatten(params)
    assert len(vector) == family.n_parameters(N_COMPONENTS, X.shape[1])
    again = family.unflatten(vector, params)
    np.testing.assert_allclose(family.log_density(again, data), family.log_density(params, data),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", FAMILIES, ids=[c.name for c in FAMILIES])
def test_a_family_is_all_a_mixture_needs(case):
    """The generic mixture over the family: EM never lowers the objective, and its weight
    M-step is the mixture's."""
    family, X, *_ = family_start(case)
    model = MixtureModel(family, N_COMPONENTS)
    params = model.init_params(X, np.random.default_rng(3))
    previous = -np.inf
    for _ in range(15):
        stats, log_likelihood = model.e_step(params, X)
        objective = log_likelihood + model.log_prior(params)
        assert objective >= previous - 1e-9 * abs(objective)
        previous = objective
        params = model.m_step(stats, params)
        np.testing.assert_allclose(params.weights,
                                   mixing_weights(family.component_weights(stats)))
    assert model.n_parameters(X.shape[1]) == N_COMPONENTS - 1 + family.n_parameters(
        N_COMPONENTS, X.shape[1])


# ---------------------------------------------------------------------------------- emissions
def poisson_frames(rng, n_rows):
    rates = np.array([[1.0, 6.0], [4.0, 0.5], [9.0, 3.0]])
    return rng.poisson(rates[rng.integers(0, 3, n_rows)]).astype(float)


def symbols(rng, n_rows):
    return rng.integers(0, 4, (n_rows, 1)).astype(float)


def gaussian_emission_logpdf(emission, params, x, k):
    return gaussian_logpdf(emission.family, params, x, k)


def gmm_emission_logpdf(emission, params, x, k):
    M = emission.n_mix
    return logsumexp([np.log(params.weights[k, m])
                      + gaussian_logpdf(emission.family, params.components, x, k * M + m)
                      for m in range(M)])


def poisson_logpmf(emission, params, x, k):
    return float(np.sum(scipy_stats.poisson(params.rates[k]).logpmf(x)))


def categorical_logpmf(emission, params, x, k):
    return float(scipy_stats.multinomial(1, params.probabilities[k]).logpmf(
        np.eye(emission.n_categories)[int(x[0])]))


@dataclass(frozen=True)
class EmissionCase:
    name: str
    make: Callable[[], Any]
    data: Callable[[np.random.Generator, int], np.ndarray]
    reference: Callable[[Any, Any, np.ndarray, int], float]


EMISSIONS = [
    *(EmissionCase(f"gaussian-{kind}", lambda kind=kind: GaussianEmission(kind), gaussian_rows,
                   gaussian_emission_logpdf) for kind in ("full", "tied", "diag", "spherical")),
    EmissionCase("gaussian-full-prior", lambda: GaussianEmission(
        "full", means_weight=0.5, covars_prior=0.2, covars_weight=5.0), gaussian_rows,
        gaussian_emission_logpdf),
    EmissionCase("gmm-diag", lambda: GMMEmission(2, "diag"), gaussian_rows, gmm_emission_logpdf),
    EmissionCase("gmm-full", lambda: GMMEmission(2, "full"), gaussian_rows, gmm_emission_logpdf),
    EmissionCase("poisson", PoissonEmission, poisson_frames, poisson_logpmf),
    EmissionCase("categorical", lambda: CategoricalEmission(4), symbols, categorical_logpmf),
]


def emission_start(case, n_rows=120, seed=0):
    rng = np.random.default_rng(seed)
    emission = case.make()
    X = case.data(rng, n_rows)
    params = emission.init(X, np.ones(len(X)), N_COMPONENTS, rng)
    return emission, X, params, rng


@pytest.mark.parametrize("case", EMISSIONS, ids=[c.name for c in EMISSIONS])
def test_emission_meets_the_emission_protocol(case):
    emission, X, params, rng = emission_start(case)
    assert isinstance(emission, Emission)
    emission.validate(X)
    log_density = emission.log_density(params, X, rows=None)
    assert log_density.shape == (len(X), N_COMPONENTS) and log_density.dtype == np.float64
    assert np.all(np.isfinite(log_density))
    assert np.isfinite(emission.log_prior(params))
    states = rng.integers(0, N_COMPONENTS, 7)
    assert emission.sample(params, states, rng).shape == (7, X.shape[1])
    merged = emission.merge(params, params, "")
    np.testing.assert_allclose(emission.log_density(merged, X), log_density, rtol=1e-12)
    assert len(emission.flatten(params)) >= emission.n_parameters(N_COMPONENTS, X.shape[1])


@pytest.mark.parametrize("case", EMISSIONS, ids=[c.name for c in EMISSIONS])
def test_emission_log_density_matches_scipy(case):
    emission, X, params, _ = emission_start(case, n_rows=20)
    ours = emission.log_density(params, X)
    scipy_values = np.array([[case.reference(emission, params, X[i], k)
                              for k in range(N_COMPONENTS)] for i in range(len(X))])
    np.testing.assert_allclose(ours, scipy_values, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", EMISSIONS, ids=[c.name for c in EMISSIONS])
def test_emission_statistics_add(case):
    emission, X, params, rng = emission_start(case)
    weights = rng.dirichlet(np.ones(N_COMPONENTS), len(X))
    split = 2 * len(X) // 5
    whole = emission.statistics(params, X, weights)
    parts = add_statistics(emission.statistics(params, X[:split], weights[:split]),
                           emission.statistics(params, X[split:], weights[split:], rows=None))
    assert_same_fields(whole, parts)


@pytest.mark.parametrize("case", EMISSIONS, ids=[c.name for c in EMISSIONS])
def test_emission_m_step_returns_params_and_events(case):
    emission, X, params, rng = emission_start(case)
    weights = rng.dirichlet(np.ones(N_COMPONENTS), len(X))
    result = emission.m_step(emission.statistics(params, X, weights), params, emission.letters)
    assert isinstance(result, tuple) and len(result) == 2
    new, events = result
    assert isinstance(events, tuple) and all(isinstance(e, str) for e in events)
    assert np.all(np.isfinite(emission.log_density(new, X)))
    # no letter to update: the parameters stay what they were
    same, _ = emission.m_step(emission.statistics(params, X, weights), params, "")
    np.testing.assert_allclose(emission.log_density(same, X), emission.log_density(params, X))
