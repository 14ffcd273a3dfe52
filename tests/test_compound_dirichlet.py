"""Dirichlet-multinomial and Dirichlet models: solvers, estimators, bad input, files, CLI, plot.

References are independent of the code under test: scipy's special functions and densities,
scipy.optimize on the same objective, finite differences for the Laplace Hessian, repeated rows
for integer weights, and parameters drawn from known values for the recovery tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, gammaln, polygamma

import contracts.test_contracts as contract_tests
from contracts.cases_compound_dirichlet import PRIOR_CASES
from emkit import datasets
from emkit.core.engine import add_statistics
from emkit.data.chunks import Batch
from emkit.errors import DataError, NotFittedError, NumericalError, ParameterError
from emkit.estimators.compound_dirichlet import (
    Dirichlet,
    DirichletMultinomial,
    DirichletMultinomialMixture,
)
from emkit.estimators.persist import load
from emkit.families import dirichlet as family
from emkit.families.dirichlet import GammaPrior
from emkit.kernels import tiers
from emkit.models.compound_dirichlet import (
    CompoundDirichletParams,
    DirichletMultinomialMixtureModel,
)


def draw_counts(rng, alpha, n_rows, totals=(20, 200), weights=None):
    """Rows of counts from a mixture of Dirichlet-multinomials; returns (X, labels)."""
    alpha = np.atleast_2d(alpha)
    weights = np.full(len(alpha), 1 / len(alpha)) if weights is None else weights
    labels = rng.choice(len(alpha), size=n_rows, p=weights)
    N = rng.integers(*totals, size=n_rows)
    X = np.vstack([rng.multinomial(n, rng.dirichlet(alpha[k])) for n, k in zip(N, labels,
                                                                               strict=True)])
    return X.astype(float), labels


@pytest.fixture(scope="module")
def twins():
    return datasets.load("twins").data


@pytest.fixture(scope="module")
def two_groups():
    alpha = np.array([[8.0, 4.0, 2.0, 1.0, 0.5], [0.5, 1.0, 2.0, 6.0, 10.0]])
    X, labels = draw_counts(np.random.default_rng(1), alpha, 400, weights=[0.35, 0.65])
    return X, labels, alpha


# ---------------------------------------------------------------------- special functions
def test_compiled_digamma_and_trigamma_match_scipy():
    x = np.concatenate([np.geomspace(1e-8, 1e6, 400), np.arange(1, 30) + 0.5])
    psi = np.array([family._digamma(v) for v in x])
    both = np.array([family._digamma_trigamma(v) for v in x])
    np.testing.assert_allclose(psi, digamma(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(both[:, 0], digamma(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(both[:, 1], polygamma(1, x), rtol=1e-13)
    np.testing.assert_allclose([family._trigamma(v) for v in x], polygamma(1, x), rtol=1e-13)


def test_inverse_digamma_inverts_digamma():
    x = np.geomspace(1e-6, 1e5, 200)
    np.testing.assert_allclose(family.inverse_digamma(digamma(x)), x, rtol=1e-12)


# ---------------------------------------------------------------------- Dirichlet M-step
@pytest.mark.parametrize("form", ["numpy", "compiled"])  # emkit.kernels.tiers
@pytest.mark.parametrize("prior", [None, GammaPrior(0.5, 0.2)])
def test_dirichlet_newton_maximises_the_mean_log_objective(prior, form, monkeypatch):
    monkeypatch.setattr(tiers, "MODE", form)
    rng = np.random.default_rng(2)
    P = rng.dirichlet([0.3, 1.0, 2.5, 7.0], size=300)
    sum_log, n = np.log(P).sum(axis=0), len(P)
    alpha = family.dirichlet_map(sum_log, n, np.ones(4), prior)
    # The gradient, written out here with scipy, vanishes at the maximum ...
    shape, rate = (0.0, 0.0) if prior is None else prior
    gradient = n * (digamma(alpha.sum()) - digamma(alpha)) + sum_log + shape / alpha - rate
    np.testing.assert_allclose(gradient, 0.0, atol=1e-8 * n)
    # ... and scipy.optimize finds the same point of the same objective.
    from scipy.optimize import minimize

    def negative(log_alpha):
        return -family.dirichlet_objective(np.exp(log_alpha), sum_log, n, prior)

    reference = np.exp(minimize(negative, np.zeros(4), method="BFGS", tol=1e-12).x)
    np.testing.assert_allclose(alpha, reference, rtol=1e-5)
    if prior is None:  # Minka's fixed point with the inverse digamma reaches the same α
        np.testing.assert_allclose(family.dirichlet_fixed_point(sum_log, n, np.ones(4)), alpha,
                                   rtol=1e-9)


@pytest.mark.parametrize("form", ["numpy", "compiled"])
def test_newton_never_lowers_the_objective_from_a_poor_start(form, monkeypatch):
    monkeypatch.setattr(tiers, "MODE", form)
    rng = np.random.default_rng(3)
    sum_log = np.log(rng.dirichlet([0.05, 0.1, 20.0], size=50)).sum(axis=0)
    for start in (np.full(3, 1e-3), np.full(3, 1e3), np.array([50.0, 1e-4, 2.0])):
        alpha = family.dirichlet_map(sum_log, 50, start)
        assert family.dirichlet_objective(alpha, sum_log, 50) >= \
            family.dirichlet_objective(start, sum_log, 50)
        assert np.all(np.isfinite(alpha)) and np.all(alpha > 0)


# ---------------------------------------------------------------------- histograms, Pólya
def test_count_histograms_add_over_chunks_with_different_values():
    X, _ = draw_counts(np.random.default_rng(4), [1.0, 2.0, 0.3], 60)
    resp = np.random.default_rng(5).dirichlet([1, 1], size=60)
    whole = family.count_histogram(family.sparse_counts(X), resp)
    parts = [family.count_histogram(family.sparse_counts(X[s]), resp[s])
             for s in (slice(0, 7), slice(7, 8), slice(8, 60))]
    merged = add_statistics(add_statistics(parts[0], parts[1]), parts[2])
    for name in ("pair_columns", "pair_values", "total_values"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    for name in ("weight", "pair_weight", "total_weight"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole, name), rtol=1e-13)


def test_polya_objective_is_the_weighted_log_likelihood(twins):
    rng = np.random.default_rng(6)
    alpha = rng.uniform(0.01, 3.0, size=twins.shape[1])
    w = rng.uniform(0, 2, size=len(twins))
    counts = family.sparse_counts(twins)
    from_histogram = family.polya_objective(alpha, family.count_histogram(counts, w[:, None]))
    direct = w @ (stats.dirichlet_multinomial.logpmf(twins, alpha, twins.sum(axis=1))
                  - counts.log_coefficient)
    np.testing.assert_allclose(from_histogram, direct, rtol=1e-11)


@pytest.mark.parametrize("prior", [None, GammaPrior()])
def test_polya_newton_and_fixed_point_reach_the_same_maximum(prior):
    X, _ = draw_counts(np.random.default_rng(7), [0.2, 0.7, 1.5, 3.0, 0.05], 250)
    histogram = family.count_histogram(family.sparse_counts(X), np.ones((len(X), 1)))
    newton = family.polya_map(histogram, np.ones(5), 0, prior)
    fixed_point = family.polya_map(histogram, np.ones(5), 0, prior, method="fixed-point",
                                   max_iter=200_000)
    np.testing.assert_allclose(fixed_point, newton, rtol=1e-7)


# ---------------------------------------------------------------------- densities
def test_score_samples_agrees_with_scipy_dirichlet_multinomial(twins):
    model = DirichletMultinomial(prior="gamma", solver="fixed-point", tol=1e-9).fit(twins)
    expected = stats.dirichlet_multinomial.logpmf(twins, model.alpha_, twins.sum(axis=1))
    # lnΓ of counts in the thousands cancel: both sides carry round-off of about 1e-12.
    np.testing.assert_allclose(model.score_samples(twins), expected, rtol=1e-10)
    np.testing.assert_allclose(model.score(twins), expected.mean(), rtol=1e-10)


def test_mixture_score_samples_is_the_mixture_of_scipy_densities(two_groups):
    X, _, _ = two_groups
    model = DirichletMultinomialMixture(2, random_state=0).fit(X)
    components = np.column_stack([stats.dirichlet_multinomial.logpmf(X, a, X.sum(axis=1))
                                  for a in model.alpha_])
    joint = components + np.log(model.weights_)
    expected = np.logaddexp.reduce(joint, axis=1)
    np.testing.assert_allclose(model.score_samples(X), expected, rtol=1e-11)
    np.testing.assert_allclose(model.predict_proba(X), np.exp(joint - expected[:, None]),
                               atol=1e-12)


def test_dirichlet_score_samples_agrees_with_scipy():
    P = np.random.default_rng(8).dirichlet([0.5, 2.0, 3.0], size=200)
    model = Dirichlet().fit(P)
    expected = [stats.dirichlet.logpdf(p, model.alpha_[0]) for p in P]
    np.testing.assert_allclose(model.score_samples(P), expected, rtol=1e-11)


# ---------------------------------------------------------------------- recovery, agreement
def test_alpha_is_recovered_from_synthetic_counts():
    alpha = np.array([0.3, 0.8, 1.5, 4.0, 6.0])
    X, _ = draw_counts(np.random.default_rng(9), alpha, 3000)
    model = DirichletMultinomial().fit(X)
    # The standard error of log α̂ with 3000 rows is a few percent.
    np.testing.assert_allclose(model.alpha_, alpha, rtol=0.1)


def test_proportion_alpha_is_recovered():
    alpha = np.array([0.7, 2.0, 5.0])
    model = Dirichlet().fit(np.random.default_rng(10).dirichlet(alpha, size=5000))
    np.testing.assert_allclose(model.alpha_[0], alpha, rtol=0.06)


def test_em_and_fixed_point_reach_the_same_alpha():
    X, _ = draw_counts(np.random.default_rng(11), [0.3, 0.8, 1.5, 2.0, 4.0, 6.0], 300)
    em = DirichletMultinomial(tol=0.0, max_iter=1500).fit(X)
    fixed_point = DirichletMultinomial(solver="fixed-point", tol=0.0, max_iter=3000).fit(X)
    # measured 7e-15: both are at the maximum to round-off
    np.testing.assert_allclose(em.alpha_, fixed_point.alpha_, rtol=1e-12)
    assert np.all(np.diff(em.history_) >= -1e-10 * np.abs(em.history_[1:]))
    assert np.all(np.diff(fixed_point.history_) >= -1e-10 * np.abs(fixed_point.history_[1:]))


def test_mixture_recovers_two_groups(two_groups):
    X, labels, alpha = two_groups
    model = DirichletMultinomialMixture(2, n_init=3, random_state=0).fit(X)
    order = np.argsort(model.alpha_[:, 0])[::-1]  # the first true component has large α_0
    np.testing.assert_allclose(model.weights_[order], [0.35, 0.65], atol=0.06)
    np.testing.assert_allclose(model.alpha_[order], alpha, rtol=0.3)
    predicted = np.argsort(order)[model.predict(X)]
    assert np.mean(predicted == labels) > 0.97
    assert model.converged_
    assert np.all(np.diff(model.history_) >= -1e-10 * np.abs(model.history_[1:]))


def test_latent_probabilities_em_reaches_the_same_mixture(two_groups):
    X, _, _ = two_groups
    components = DirichletMultinomialMixture(2, random_state=0, tol=1e-12,
                                             max_iter=2000).fit(X)
    latent = DirichletMultinomialMixture(2, latent="probabilities", random_state=0, tol=0.0,
                                         max_iter=1500).fit(X)
    np.testing.assert_allclose(latent.lower_bound_, components.lower_bound_, rtol=1e-9)
    np.testing.assert_allclose(latent.alpha_, components.alpha_, rtol=1e-9)  # measured 1e-11
    assert latent.n_iter_ > components.n_iter_


# ---------------------------------------------------------------------- weights
def test_integer_sample_weights_equal_repeated_rows():
    X, _ = draw_counts(np.random.default_rng(12), [0.5, 1.0, 3.0, 2.0], 80)
    w = np.random.default_rng(13).integers(0, 4, size=len(X))
    for make in (lambda: DirichletMultinomial(random_state=0, tol=1e-12),
                 lambda: DirichletMultinomial(solver="fixed-point", random_state=0, tol=1e-12),
                 lambda: DirichletMultinomial(prior="gamma", random_state=0, tol=1e-12)):
        weighted = make().fit(X, sample_weight=w.astype(float))
        repeated = make().fit(np.repeat(X, w, axis=0))
        np.testing.assert_allclose(weighted.alpha_, repeated.alpha_, rtol=1e-7)
        np.testing.assert_allclose(weighted.lower_bound_ * w.sum(),
                                   repeated.lower_bound_ * w.sum(), rtol=1e-10)
    P = np.random.default_rng(14).dirichlet([1.0, 2.0, 3.0], size=80)
    weighted = Dirichlet(tol=1e-12).fit(P, sample_weight=w)
    repeated = Dirichlet(tol=1e-12).fit(np.repeat(P, w, axis=0))
    np.testing.assert_allclose(weighted.alpha_, repeated.alpha_, rtol=1e-7)


def test_mixture_weights_from_the_same_start():
    """Integer weights equal repeated rows for the mixture too, from one starting point (the
    k-means++ seeding itself is random, so the start is fixed here)."""
    X, _ = draw_counts(np.random.default_rng(15), [[3.0, 1.0, 0.5], [0.5, 1.0, 4.0]], 60)
    w = np.random.default_rng(16).integers(0, 4, size=len(X)).astype(float)
    model = DirichletMultinomialMixtureModel(2, GammaPrior())
    start = model.init_params(X, np.random.default_rng(0))
    from emkit import fit_em

    weighted = fit_em(model, Batch(X, w), init=start, tol=0.0, max_iter=30, accelerate=None)
    repeated = fit_em(model, np.repeat(X, w.astype(int), axis=0), init=start, tol=0.0,
                      max_iter=30, accelerate=None)
    np.testing.assert_allclose(weighted.params.alpha, repeated.params.alpha, rtol=1e-9)
    np.testing.assert_allclose(weighted.history, repeated.history, rtol=1e-12)


# ---------------------------------------------------------------------- the prior's contracts
@pytest.mark.parametrize("case", PRIOR_CASES, ids=[case.name for case in PRIOR_CASES])
@pytest.mark.parametrize("contract", [
    contract_tests.test_objective_never_decreases,
    contract_tests.test_statistics_add,
    contract_tests.test_zero_weight_is_row_dropped,
    contract_tests.test_integer_weight_is_row_repeated,
    contract_tests.test_mle_is_fixed_point,
    contract_tests.test_same_seed_same_bits,
    contract_tests.test_squarem_reaches_plain_em_optimum,
], ids=lambda contract: contract.__name__.removeprefix("test_"))
def test_gamma_prior_models_satisfy_the_contracts(contract, case):
    """The contracts of tests/contracts with the objective log-likelihood + log prior (all but
    "doubled weights double the objective", which a prior breaks by design)."""
    contract(case)


# ---------------------------------------------------------------------- Laplace
def test_laplace_hessian_matches_finite_differences():
    X, _ = draw_counts(np.random.default_rng(17), [[3.0, 1.0, 0.5], [0.5, 1.0, 4.0]], 40,
                       totals=(5, 30))
    model = DirichletMultinomialMixtureModel(2, GammaPrior())
    params = CompoundDirichletParams(np.array([0.4, 0.6]),
                                     np.array([[2.0, 1.2, 0.6], [0.7, 0.9, 3.0]]))
    w = np.random.default_rng(18).uniform(0.5, 2.0, size=len(X))

    def log_posterior(theta):
        alpha = np.exp(theta[:6]).reshape(2, 3)
        weights = np.array([theta[6], 1 - theta[6]])
        densities = np.column_stack([stats.dirichlet_multinomial.logpmf(X, a, X.sum(axis=1))
                                     for a in alpha])
        log_prior = np.sum(0.1 * np.log(0.1) - gammaln(0.1) + 0.1 * theta[:6] - 0.1 * alpha.ravel())
        return w @ np.logaddexp.reduce(densities + np.log(weights), axis=1) + log_prior

    theta = np.concatenate([np.log(params.alpha).ravel(), [0.4]])
    h = 1e-4
    expected = np.empty((7, 7))
    for a in range(7):
        for b in range(7):
            e_a, e_b = np.eye(7)[a] * h, np.eye(7)[b] * h
            expected[a, b] = (log_posterior(theta + e_a + e_b) - log_posterior(theta + e_a - e_b)
                              - log_posterior(theta - e_a + e_b)
                              + log_posterior(theta - e_a - e_b)) / (4 * h * h)
    actual = model.log_posterior_hessian(params, family.sparse_counts(X), w)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_laplace_needs_the_prior_and_a_maximum(two_groups):
    X, _, _ = two_groups
    with pytest.raises(ParameterError, match="needs the Gamma prior"):
        DirichletMultinomialMixture(2, prior=None, random_state=0).fit(X).laplace(X)
    model = DirichletMultinomialMixture(2, random_state=0).fit(X)
    assert np.isfinite(model.laplace(X))
    model.alpha_ = model.alpha_ * np.array([[1.0], [30.0]])  # far from the maximum
    with pytest.raises(NumericalError, match="not negative definite"):
        model.laplace(X)


def test_criteria_use_the_log_likelihood_and_parameter_count(two_groups):
    X, _, _ = two_groups
    model = DirichletMultinomialMixture(2, random_state=0).fit(X)
    log_likelihood = model.score_samples(X).sum()
    p = 2 * X.shape[1] + 1
    assert model.n_parameters() == p
    np.testing.assert_allclose(model.bic(X), -2 * log_likelihood + p * np.log(len(X)))
    np.testing.assert_allclose(model.aic(X), -2 * log_likelihood + 2 * p)
    # The objective is Holmes et al.'s: −(log-likelihood + log prior of λ = log α).
    log_prior = np.sum(0.1 * np.log(0.1) - gammaln(0.1) + 0.1 * np.log(model.alpha_)
                       - 0.1 * model.alpha_)
    np.testing.assert_allclose(model.objective(X), -(log_likelihood + log_prior))
    np.testing.assert_allclose(model.lower_bound_ * len(X), -model.objective(X), rtol=1e-12)


# ---------------------------------------------------------------------- estimator behaviour
def test_restarts_keep_the_best_and_seed_fixes_the_fit(twins):
    first = DirichletMultinomialMixture(3, n_init=3, random_state=5).fit(twins)
    second = DirichletMultinomialMixture(3, n_init=3, random_state=5).fit(twins)
    np.testing.assert_array_equal(first.alpha_, second.alpha_)
    assert first.restart_objectives_.shape == (3,)
    np.testing.assert_allclose(first.lower_bound_ * len(twins), first.restart_objectives_.max())


def test_sample_draws_counts_with_the_requested_totals(two_groups):
    X, _, _ = two_groups
    model = DirichletMultinomialMixture(2, random_state=0).fit(X)
    drawn, labels = model.sample(500, n_trials=37)
    assert drawn.shape == (500, X.shape[1]) and np.all(drawn.sum(axis=1) == 37)
    assert set(labels) <= {0, 1} and abs(np.mean(labels == 0) - model.weights_[0]) < 0.08
    default, _ = model.sample(3)
    assert np.all(default.sum(axis=1) == model.n_trials_)
    proportions, _ = Dirichlet().fit(np.random.default_rng(0).dirichlet([1, 2], 50)).sample(4)
    np.testing.assert_allclose(proportions.sum(axis=1), 1.0)
    with pytest.raises(ParameterError, match="n_trials"):
        model.sample(2, n_trials=0)


@pytest.mark.parametrize("estimator", [
    DirichletMultinomial(), DirichletMultinomial(solver="fixed-point", prior="gamma"),
    DirichletMultinomialMixture(2, random_state=0), Dirichlet(2, random_state=0)],
    ids=["dm-em", "dm-fixed-point", "dmm", "dirichlet"])
def test_save_and_load_give_the_same_predictions(estimator, two_groups, tmp_path):
    X, _, _ = two_groups
    if isinstance(estimator, Dirichlet):
        X = (X + 0.5) / (X + 0.5).sum(axis=1, keepdims=True)
    estimator.fit(X)
    path = tmp_path / "model.emkit"
    estimator.save(path)
    loaded = load(path)
    assert type(loaded) is type(estimator)
    np.testing.assert_array_equal(loaded.score_samples(X), estimator.score_samples(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    np.testing.assert_array_equal(loaded.history_, estimator.history_)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        DirichletMultinomialMixture(2).predict(np.ones((3, 2)))


# ---------------------------------------------------------------------- bad input
COUNTS = np.array([[3.0, 1.0, 0.0], [2.0, 2.0, 5.0], [0.0, 4.0, 1.0], [1.0, 1.0, 1.0]])


@pytest.mark.parametrize("estimator", [DirichletMultinomial(), DirichletMultinomialMixture(2)],
                         ids=["dm", "dmm"])
@pytest.mark.parametrize("change, message", [
    (lambda X: X.__setitem__((1, 2), -1.0), "non-negative: row 1, column 2 is -1"),
    (lambda X: X.__setitem__((0, 1), 0.5), "whole numbers: row 0, column 1 is 0.5"),
    (lambda X: X.__setitem__(2, 0.0), r"1 row\(s\) have a total count of zero.*row 2"),
    (lambda X: X.__setitem__((0, 0), np.nan), "NaN"),
], ids=["negative", "non-integer", "zero-total", "nan"])
def test_bad_counts_give_clear_errors(estimator, change, message):
    X = COUNTS.copy()
    change(X)
    with pytest.raises(DataError, match=message):
        estimator.fit(X)


def test_fewer_than_two_categories():
    for estimator in (DirichletMultinomial(), DirichletMultinomialMixture(2), Dirichlet()):
        with pytest.raises(DataError, match="at least two categories"):
            estimator.fit(np.array([[3.0], [4.0], [1.0]]))


def test_an_empty_category_needs_the_prior():
    X = COUNTS.copy()
    X[:, 2] = 0
    with pytest.raises(DataError, match="column.* 2 has no counts.*prior='gamma'"):
        DirichletMultinomial().fit(X)
    assert np.all(DirichletMultinomial(prior="gamma").fit(X).alpha_ > 0)


def test_bad_proportions():
    P = np.array([[0.2, 0.8], [0.5, 0.5], [0.3, 0.7]])
    with pytest.raises(DataError, match="strictly positive"):
        Dirichlet().fit(np.array([[0.0, 1.0], [0.5, 0.5]]))
    with pytest.raises(DataError, match="sum to 1: row 1"):
        Dirichlet().fit(P * np.array([[1.0], [2.0], [1.0]]))


@pytest.mark.parametrize("params, message", [
    ({"prior": "flat"}, "prior must be"), ({"prior_shape": 0.0}, "prior_shape"),
    ({"n_init": 0}, "n_init"), ({"tol": -1.0}, "tol"), ({"latent": "q"}, "latent"),
    ({"n_components": 9}, "larger than the number of samples"),
])
def test_bad_parameters(params, message):
    with pytest.raises((ParameterError, DataError), match=message):
        DirichletMultinomialMixture(**{"n_components": 2, **params}).fit(COUNTS)
    with pytest.raises(ParameterError, match="solver"):
        DirichletMultinomial(solver="lbfgs").fit(COUNTS)


# ---------------------------------------------------------------------- data set, CLI, plot
def test_twins_is_samples_by_taxa(twins):
    assert twins.shape == (278, 130)
    assert np.all(twins == np.round(twins)) and np.all(twins.sum(axis=1) > 0)


def test_cli_fit_and_select_dmm(tmp_path, capsys):
    import json

    from emkit.cli import main

    model_file = tmp_path / "dmm.emkit"
    converged = ["--tol", "1e-7", "--max-iter", "500", "--accelerate", "squarem", "--seed", "0"]
    assert main(["fit", "dmm", str(datasets.path("twins")), "-k", "2", "--samples-in-columns",
                 *converged, "-o", str(model_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    loaded = load(model_file)
    del loaded.feature_names_in_  # the CLI stores the taxa; here the model gets plain arrays
    assert isinstance(loaded, DirichletMultinomialMixture) and loaded.alpha_.shape == (2, 130)
    twins = datasets.load("twins")
    np.testing.assert_allclose(summary["objective"], loaded.objective(twins.data), rtol=1e-12)
    np.testing.assert_allclose(summary["laplace"], loaded.laplace(twins.data), rtol=1e-10)

    counts = tmp_path / "counts.csv"
    rng = np.random.default_rng(0)
    X, _ = draw_counts(rng, [[5.0, 2.0, 1.0], [1.0, 2.0, 6.0]], 80)
    counts.write_text("a,b,c\n" + "\n".join(",".join(str(int(v)) for v in row) for row in X))
    assert main(["select", "dmm", str(counts), "--k", "1-3", *converged, "--criterion",
                 "laplace", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert [row["n_components"] for row in table["table"]] == [1, 2, 3]
    assert table["best"]["n_components"] == 2  # the Laplace evidence finds the two groups
    assert main(["fit", "dmm", str(counts), "-k", "99"]) == 2
    assert "n_components=99" in capsys.readouterr().err
    assert main(["select", "gmm", str(counts), "--criterion", "laplace"]) == 2
    assert "laplace is for dmm" in capsys.readouterr().err
    assert main(["fit", "dmm", str(counts), "-k", "2", "--seed", "0"]) == 0  # text output
    assert "objective" in capsys.readouterr().out


def test_alpha_heatmap_shows_the_most_variable_categories(twins):
    pytest.importorskip("matplotlib")
    from emkit.plot import plot_alpha_heatmap

    names = datasets.load("twins").columns
    model = DirichletMultinomialMixture(3, random_state=0).fit(twins)
    figure = plot_alpha_heatmap(model, n_categories=12, category_names=names)
    image = figure.axes[0].images[0].get_array()
    proportions = model.alpha_ / model.alpha_.sum(axis=1, keepdims=True)
    shown = np.argsort(-proportions.std(axis=0), kind="stable")[:12]
    np.testing.assert_allclose(np.asarray(image), proportions[:, shown].T)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert labels == [names[j] for j in shown]
    with pytest.raises(DataError, match="n_categories"):
        plot_alpha_heatmap(model, n_categories=0)


def test_a_component_collapsing_onto_one_row_stays_finite_and_monotone():
    """Found by hypothesis: a Dirichlet mixture component that collapses onto one row has an
    unbounded likelihood (α → ∞); the M-step's Newton solve then divided by a denominator that
    cancelled to 0. α is capped at ALPHA_MAX and the objective still never decreases."""
    from contracts.cases_compound_dirichlet import two_dirichlet_components
    from emkit import fit_em
    from emkit.families.dirichlet import ALPHA_MAX
    from emkit.models.compound_dirichlet import DirichletMixtureModel

    X = two_dirichlet_components(np.random.default_rng(2266111), 22)
    result = fit_em(DirichletMixtureModel(2), X, random_state=804305, tol=0.0, max_iter=40,
                    warn_not_converged=False, accelerate=None)
    assert np.all(np.diff(result.history) >= -1e-10 * np.abs(result.history[1:]))
    assert np.all(np.isfinite(result.params.alpha)) and result.params.alpha.max() <= ALPHA_MAX
    assert result.params.alpha.max() == ALPHA_MAX  # the collapsed component reached the cap
