"""Exact EM with missing values against a direct numerical maximisation of the likelihood.

With entries missing at random, the observed-data log-likelihood of a Gaussian mixture is

    ℓ(θ) = Σ_i log Σ_k π_k N(x_i,o(i) | μ_k,o(i), Σ_k,o(i)o(i)),

each row's density taken over its observed coordinates o(i) only. The reference here maximises
ℓ directly with ``scipy.optimize.minimize`` (BFGS, central-difference gradients) over
unconstrained parameters (means, log-Cholesky factors or log-variances, weight logits); the
densities come from ``scipy.stats.multivariate_normal``. Nothing is shared with emkit's E-step,
which works with conditional means and covariances of the missing coordinates instead.
"""

import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emkit
from emkit.families import gaussian as gaussian_family

SIGNIFICANT = 1e-6  # "at least 6 significant digits"


# ------------------------------------------------------------------------- the reference
def observed_log_likelihood(X, weights, means, covariances) -> float:
    """ℓ(θ) above, by scipy, one call per pattern of missingness and component.

    ``covariances`` is a list of K full (D, D) matrices. Rows with no observed value add 0.
    """
    missing = np.isnan(X)
    total = 0.0
    for pattern in np.unique(missing, axis=0):
        observed = ~pattern
        if not observed.any():
            continue
        rows = X[np.all(missing == pattern, axis=1)][:, observed]
        log_joint = np.column_stack([
            np.log(weight) + np.atleast_1d(multivariate_normal(
                mean[observed], cov[np.ix_(observed, observed)]).logpdf(rows))
            for weight, mean, cov in zip(weights, means, covariances, strict=True)])
        total += float(np.sum(logsumexp(log_joint, axis=1)))
    return total


def lower_triangle(n_features):
    return np.tril_indices(n_features)


def covariance_from_log_cholesky(vector, n_features):
    """Σ = L Lᵀ, L lower triangular with log-diagonal ``vector``-packed (row-major)."""
    L = np.zeros((n_features, n_features))
    L[lower_triangle(n_features)] = vector
    diagonal = np.arange(n_features)
    L[diagonal, diagonal] = np.exp(L[diagonal, diagonal])
    return L @ L.T


def log_cholesky(covariance):
    L = np.linalg.cholesky(covariance)
    diagonal = np.arange(len(covariance))
    L[diagonal, diagonal] = np.log(L[diagonal, diagonal])
    return L[lower_triangle(len(covariance))]


class Parametrisation:
    """θ ↔ an unconstrained vector: K − 1 weight logits, means, then per component a
    log-Cholesky factor (full), log-variances (diag) or one log-variance (spherical)."""

    def __init__(self, n_components, n_features, covariance_type):
        self.n_components, self.n_features = n_components, n_features
        self.covariance_type = covariance_type
        self.per_component = {"full": n_features * (n_features + 1) // 2, "diag": n_features,
                              "spherical": 1}[covariance_type]

    def pack(self, weights, means, covariances) -> np.ndarray:
        logits = np.log(weights[1:]) - np.log(weights[0])
        if self.covariance_type == "full":
            cov_part = [log_cholesky(c) for c in covariances]
        elif self.covariance_type == "diag":
            cov_part = [np.log(np.diag(c)) for c in covariances]
        else:
            cov_part = [[np.log(c[0, 0])] for c in covariances]
        return np.concatenate([logits, np.ravel(means), np.ravel(cov_part)])

    def unpack(self, vector):
        K, D = self.n_components, self.n_features
        logits = np.concatenate([[0.0], vector[: K - 1]])
        weights = np.exp(logits - logsumexp(logits))
        means = vector[K - 1: K - 1 + K * D].reshape(K, D)
        blocks = vector[K - 1 + K * D:].reshape(K, self.per_component)
        if self.covariance_type == "full":
            covariances = [covariance_from_log_cholesky(b, D) for b in blocks]
        elif self.covariance_type == "diag":
            covariances = [np.diag(np.exp(b)) for b in blocks]
        else:
            covariances = [np.exp(b[0]) * np.eye(D) for b in blocks]
        return weights, means, covariances


def direct_maximum(X, parametrisation, start):
    """(weights, means, covariances, ℓ) at the maximum of ℓ found by BFGS from ``start``."""
    n_rows = len(X)

    def negative_mean_log_likelihood(vector):
        return -observed_log_likelihood(X, *parametrisation.unpack(vector)) / n_rows

    result = optimize.minimize(negative_mean_log_likelihood, start, method="BFGS",
                               jac="3-point", options={"gtol": 1e-10, "maxiter": 2000})
    # BFGS may stop at "precision loss" with a gradient already at round-off; check that the
    # point is a stationary point, whatever the message.
    assert np.max(np.abs(result.jac)) < 1e-7, result
    weights, means, covariances = parametrisation.unpack(result.x)
    return weights, means, covariances, -result.fun * n_rows


# ------------------------------------------------------------------------- helpers
def full_covariances(model) -> list[np.ndarray]:
    """Each component's covariance as a full matrix, from the fitted attributes."""
    n_components, n_features = model.means_.shape
    kind, cov = model.covariance_type, model.covariances_
    if kind == "full":
        return list(cov)
    if kind == "tied":
        return [cov] * n_components
    if kind == "diag":
        return [np.diag(c) for c in cov]
    return [c * np.eye(n_features) for c in cov]


def assert_significant(actual, expected, digits=SIGNIFICANT, err_msg=""):
    """Equal to ``digits`` relative to the size of the largest entry (entries near zero have no
    significant digits of their own)."""
    expected = np.asarray(expected, dtype=float)
    np.testing.assert_allclose(actual, expected, rtol=digits,
                               atol=digits * np.max(np.abs(expected)), err_msg=err_msg)


def with_missing_entries(X, fraction, rng):
    X = X.copy()
    X[rng.uniform(size=X.shape) < fraction] = np.nan
    return X


def correlated_rows(n_rows, rng):
    mean = np.array([1.0, -2.0, 0.5])
    covariance = np.array([[2.0, 0.8, -0.6], [0.8, 1.0, 0.3], [-0.6, 0.3, 1.5]])
    return rng.multivariate_normal(mean, covariance, size=n_rows)


@pytest.fixture(scope="module")
def one_cluster_with_gaps():
    """60 rows, D = 3, about 25% of entries NaN completely at random, plus one empty row."""
    rng = np.random.default_rng(20240603)
    X = with_missing_entries(correlated_rows(60, rng), 0.25, rng)
    return np.vstack([X, np.full((1, 3), np.nan)])


def em_fit(X, n_components=1, covariance_type="full", **settings):
    settings = {"reg_covar": 0.0, "tol": 1e-14, "max_iter": 5000, "random_state": 0, **settings}
    return emkit.GaussianMixture(n_components, covariance_type=covariance_type,
                                 **settings).fit(X)


def n_nonempty(X):
    return int(np.sum(~np.isnan(X).all(axis=1)))


# ------------------------------------------------------------------------- one component
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_one_component_equals_direct_maximisation(one_cluster_with_gaps, covariance_type):
    """The classic multivariate normal with missing data (Little & Rubin): EM's estimate is the
    maximum of the observed-data likelihood."""
    X = one_cluster_with_gaps
    model = em_fit(X, covariance_type=covariance_type)
    assert model.converged_

    parametrisation = Parametrisation(1, 3, covariance_type)
    # A reasonable start that is not EM's answer: the available-case moments.
    start_cov = np.diag(np.nanvar(X, axis=0))
    if covariance_type == "spherical":
        start_cov = np.mean(np.diag(start_cov)) * np.eye(3)
    start = parametrisation.pack(np.ones(1), np.nanmean(X, axis=0)[None], [start_cov])
    weights, means, covariances, log_likelihood = direct_maximum(X, parametrisation, start)

    assert_significant(model.means_, means, err_msg="means")
    assert_significant(full_covariances(model)[0], covariances[0], err_msg="covariance")
    em_log_likelihood = model.lower_bound_ * n_nonempty(X)
    assert em_log_likelihood == pytest.approx(log_likelihood, rel=1e-10)
    # ... and EM's reported objective is the scipy likelihood of EM's own parameters.
    assert em_log_likelihood == pytest.approx(
        observed_log_likelihood(X, model.weights_, model.means_, full_covariances(model)),
        rel=1e-12)


def test_one_component_tied_equals_full(one_cluster_with_gaps):
    """With one component a tied covariance is a full one."""
    X = one_cluster_with_gaps
    full, tied = em_fit(X, covariance_type="full"), em_fit(X, covariance_type="tied")
    assert_significant(tied.means_, full.means_)
    assert_significant(tied.covariances_, full.covariances_[0])
    assert tied.lower_bound_ == pytest.approx(full.lower_bound_, rel=1e-12)


def test_missing_values_are_not_filled_with_means(one_cluster_with_gaps):
    """The exact estimate differs from the fit on column-mean-imputed data (which shrinks the
    variances): the comparison above would be vacuous if the gaps changed nothing."""
    X = one_cluster_with_gaps
    exact = em_fit(X)
    imputed = em_fit(np.where(np.isnan(X), np.nanmean(X, axis=0), X))
    assert np.all(np.diag(imputed.covariances_[0]) < np.diag(exact.covariances_[0]))


# ------------------------------------------------------------------------- two components
def test_two_components_from_a_good_start_equal_direct_maximisation():
    rng = np.random.default_rng(7)
    true_means = np.array([[0.0, 0.0, 0.0], [5.0, 4.0, -3.0]])
    true_covariances = [np.array([[1.0, 0.5, 0.2], [0.5, 1.5, -0.4], [0.2, -0.4, 0.8]]),
                        np.array([[0.7, -0.2, 0.1], [-0.2, 0.5, 0.0], [0.1, 0.0, 1.2]])]
    sizes = (90, 60)
    X = np.vstack([rng.multivariate_normal(m, c, size=n)
                   for m, c, n in zip(true_means, true_covariances, sizes, strict=True)])
    X = with_missing_entries(rng.permutation(X), 0.2, rng)

    # EM from a good start: near the truth, not at it.
    start_precisions = np.array([np.linalg.inv(1.2 * c) for c in true_covariances])
    model = em_fit(X, 2, weights_init=[0.5, 0.5], means_init=true_means + 0.3,
                   precisions_init=start_precisions)
    assert model.converged_

    # scipy from EM's solution, perturbed, so it has to find the maximum itself.
    parametrisation = Parametrisation(2, 3, "full")
    em_vector = parametrisation.pack(model.weights_, model.means_, full_covariances(model))
    start = em_vector + 0.05 * np.random.default_rng(8).standard_normal(em_vector.size)
    weights, means, covariances, log_likelihood = direct_maximum(X, parametrisation, start)

    order = np.argsort(means[:, 0])  # components in the same order as EM's
    assert np.argsort(model.means_[:, 0]).tolist() == [0, 1]
    assert_significant(model.weights_, weights[order], err_msg="weights")
    assert_significant(model.means_, means[order], err_msg="means")
    for k, j in enumerate(order):
        assert_significant(model.covariances_[k], covariances[j], err_msg=f"covariance {k}")
    assert model.lower_bound_ * n_nonempty(X) == pytest.approx(log_likelihood, rel=1e-10)


# ------------------------------------------------------------------------- no information
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_empty_rows_contribute_nothing(covariance_type):
    """Appending rows with every value missing leaves the fit unchanged: same parameters, same
    log-likelihood, same number of samples; the empty rows' density is 1 and their posterior
    is the prior."""
    rng = np.random.default_rng(11)
    X = np.vstack([rng.normal(0.0, 1.0, size=(70, 2)), rng.normal(3.0, 0.6, size=(50, 2))])
    X = rng.permutation(X)
    precisions = {"full": [np.eye(2), 2 * np.eye(2)], "tied": np.eye(2), "diag": [[1.0, 1.0],
                  [2.0, 2.0]], "spherical": [1.0, 2.0]}[covariance_type]
    start = {"weights_init": [0.4, 0.6], "means_init": [[0.5, 0.5], [2.5, 2.5]],
             "precisions_init": precisions, "tol": 1e-10, "reg_covar": 1e-6, "max_iter": 500}
    complete = em_fit(X, 2, covariance_type, **start)
    padded_rows = np.vstack([X[:30], np.full((2, 2), np.nan), X[30:], np.full((1, 2), np.nan)])
    padded = em_fit(padded_rows, 2, covariance_type, **start)

    assert padded.n_iter_ == complete.n_iter_
    np.testing.assert_allclose(padded.weights_, complete.weights_, rtol=1e-12)
    np.testing.assert_allclose(padded.means_, complete.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(padded.covariances_, complete.covariances_, rtol=1e-12)
    np.testing.assert_allclose(padded.history_, complete.history_, rtol=1e-12)
    assert padded.lower_bound_ == pytest.approx(complete.lower_bound_, rel=1e-12)
    empty = np.full((1, 2), np.nan)
    assert padded.score_samples(empty) == pytest.approx([0.0], abs=1e-12)  # log Σ π_k
    np.testing.assert_allclose(padded.predict_proba(empty)[0], padded.weights_, rtol=1e-12)


def test_complete_data_never_enters_the_missing_value_code(monkeypatch):
    """Without NaN the complete-data path runs unchanged (bit for bit what it was): the
    missing-value functions are never called."""
    def must_not_run(*args, **kwargs):
        raise AssertionError("the missing-value path ran on data without NaN")

    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 3))
    before = emkit.GaussianMixture(2, random_state=0, max_iter=20).fit(X)
    monkeypatch.setattr(gaussian_family.missing, "marginal_log_density", must_not_run)
    monkeypatch.setattr(gaussian_family.missing, "conditional_statistics", must_not_run)
    after = emkit.GaussianMixture(2, random_state=0, max_iter=20).fit(X)
    for name in ("weights_", "means_", "covariances_", "history_"):
        assert np.array_equal(getattr(after, name), getattr(before, name)), name
    after.score_samples(X)
    after.predict_proba(X)
