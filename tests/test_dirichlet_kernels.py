"""The Dirichlet-multinomial kernels in both forms (emkit.kernels.tiers: numpy and compiled)
against the same independent references: scipy's special functions and densities, histograms
counted by brute force, and the stationarity of the maximum written with scipy's ψ."""


import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, gammaln, polygamma

from emkit.families import dirichlet as family
from emkit.families.dirichlet import GammaPrior
from emkit.kernels import tiers


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def form(request, monkeypatch):
    monkeypatch.setattr(tiers, "MODE", request.param)
    return request.param


def draw(rng, n_rows=60, n_categories=7, high=400):
    """Counts with small and large values (both paths of the numpy forms: counts below and above
    _SMALL_COUNTS), one row with a single category."""
    X = rng.integers(0, 4, size=(n_rows, n_categories)).astype(float)
    large = rng.uniform(size=X.shape) < 0.2
    X[large] = rng.integers(5, high, size=large.sum())
    X[0] = 0.0
    X[0, 2] = 900.0
    X[X.sum(axis=1) == 0, 0] = 1.0
    return X


# α below and above _STIRLING_FROM (20), tiny and huge
ALPHA = np.array([[0.004, 0.3, 1.7, 9.5, 19.99, 20.0, 55.0],
                  [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
                  [1e5, 3.0, 0.05, 40.0, 7.0, 0.6, 1e-3]])


def test_log_densities_match_scipy():
    X = draw(np.random.default_rng(0))
    ours = family.dirichlet_multinomial_logpmf(X, ALPHA)
    exact = np.column_stack([stats.dirichlet_multinomial.logpmf(X, a, X.sum(axis=1))
                             for a in ALPHA])
    np.testing.assert_allclose(ours, exact, rtol=1e-11)
    np.testing.assert_allclose(family.dirichlet_multinomial_logpmf(X, ALPHA[1]), exact[:, 1],
                               rtol=1e-11)


def test_histograms_match_brute_force():
    rng = np.random.default_rng(1)
    X = draw(rng)
    counts = family.sparse_counts(X)
    resp = rng.uniform(size=(len(X), 3)) * (rng.uniform(size=(len(X), 3)) > 0.3)
    histogram = family.count_histogram(counts, resp)
    for u, (j, c) in enumerate(zip(histogram.pair_columns, histogram.pair_values, strict=True)):
        np.testing.assert_allclose(histogram.pair_weight[:, u], resp[X[:, j] == c].sum(axis=0),
                                   rtol=1e-14, atol=1e-300)
    for t, total in enumerate(histogram.total_values):
        np.testing.assert_allclose(histogram.total_weight[:, t],
                                   resp[X.sum(axis=1) == total].sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(histogram.weight, resp.sum(axis=0), rtol=1e-14)


@pytest.mark.parametrize("prior", [None, GammaPrior(0.1, 0.1)])
def test_polya_objective_is_the_weighted_log_likelihood(prior):
    rng = np.random.default_rng(2)
    X = draw(rng)
    w = rng.uniform(size=len(X))
    w[:5] = 0.0  # zero weights: their pairs drop out
    histogram = family.count_histogram(family.sparse_counts(X), w[:, None])
    coefficient = gammaln(X.sum(axis=1) + 1) - gammaln(X + 1).sum(axis=1)
    for alpha in ALPHA:
        exact = w @ (stats.dirichlet_multinomial.logpmf(X, alpha, X.sum(axis=1)) - coefficient)
        if prior is not None:
            exact += np.sum(0.1 * np.log(0.1) - gammaln(0.1) + 0.1 * np.log(alpha) - 0.1 * alpha)
        assert family.polya_objective(alpha, histogram, 0, prior) == pytest.approx(exact,
                                                                                   rel=1e-11)


def _gradient(X, w, alpha, prior):
    """∂/∂α_j of Σ_i w_i log DM(x_i | α) + log prior, written with scipy's ψ."""
    N = X.sum(axis=1)
    alpha0 = alpha.sum()
    g = w @ (digamma(alpha + X) - digamma(alpha) + (digamma(alpha0) - digamma(alpha0 + N))[:,
                                                                                         None])
    if prior is not None:
        g += prior.shape / alpha - prior.rate
    return g


@pytest.mark.parametrize("prior", [None, GammaPrior(0.1, 0.1)])
@pytest.mark.parametrize("method", ["newton", "fixed-point"])
def test_polya_map_reaches_a_stationary_point(prior, method):
    rng = np.random.default_rng(3)
    truth = np.array([0.4, 1.1, 2.5, 0.8, 6.0])
    X = np.vstack([rng.multinomial(n, rng.dirichlet(truth))
                   for n in rng.integers(10, 300, size=150)]).astype(float)
    w = rng.uniform(0.5, 1.5, size=len(X))
    histogram = family.count_histogram(family.sparse_counts(X), w[:, None])
    start = np.ones(5)
    alpha = family.polya_map(histogram, start, 0, prior, method=method,
                             max_iter=500 if method == "newton" else 20_000)
    scale = w.sum()
    assert np.max(np.abs(_gradient(X, w, alpha, prior) * alpha)) < 1e-6 * scale
    assert (family.polya_objective(alpha, histogram, 0, prior)
            > family.polya_objective(start, histogram, 0, prior))


def test_polya_map_components_keeps_inactive_and_empty_components():
    rng = np.random.default_rng(4)
    X = draw(rng)
    resp = np.column_stack([np.ones(len(X)), np.zeros(len(X)), np.ones(len(X))])
    histogram = family.count_histogram(family.sparse_counts(X), resp)
    alpha = np.full((3, X.shape[1]), 1.5)
    out = family.polya_map_components(histogram, alpha, np.array([True, True, False]))
    np.testing.assert_array_equal(out[1:], alpha[1:])  # no weight, no prior: nothing to fit
    assert np.max(np.abs(_gradient(X, np.ones(len(X)), out[0], None) * out[0])) < 1e-6 * len(X)


def test_mean_log_sums_match_scipy():
    # S_kj = Σ_i w_i r_ik [ψ(α_kj + x_ij) − ψ(α_k0 + N_i)], written out with scipy's ψ
    rng = np.random.default_rng(7)
    X = draw(rng)
    resp = rng.dirichlet(np.ones(3), len(X)) * rng.uniform(0.5, 2.0, (len(X), 1))
    histogram = family.count_histogram(family.sparse_counts(X), resp)
    expected = np.array([
        resp[:, k] @ (digamma(ALPHA[k] + X) - digamma(ALPHA[k].sum() + X.sum(axis=1))[:, None])
        for k in range(3)])
    np.testing.assert_allclose(family.mean_log_sums(histogram, ALPHA), expected, rtol=1e-11,
                               atol=1e-9)


def test_digamma_and_trigamma_of_arrays_match_scipy():
    x = np.concatenate([np.geomspace(1e-8, 1e6, 400), np.arange(1, 30) + 0.5, [9.999999, 10.0]])
    psi, psi1 = family._digamma_trigamma_numpy(x)
    np.testing.assert_allclose(psi, digamma(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(psi1, polygamma(1, x), rtol=1e-13)


def test_lgamma_differences_of_arrays_match_scipy():
    a = np.repeat([0.003, 0.7, 5.0, 19.9, 20.0, 35.0, 800.0], 4)
    c = np.tile([1.0, 3.0, 17.0, 2500.0], 7)
    ours = family._lgamma_difference_numpy(a, c, gammaln(a))
    exact = gammaln(a + c) - gammaln(a)
    # the difference of two lnΓ has the error of the larger one
    np.testing.assert_allclose(ours, exact, rtol=1e-13, atol=1e-14 * gammaln(a + c).max())

