"""Densities, posteriors and samples of emkit.GaussianMixture against scipy.stats.

The reference mixture density is computed from the fitted attributes alone, component by
component with ``scipy.stats.multivariate_normal.logpdf`` and ``scipy.special.logsumexp``; it
shares no code with emkit's blocked, numba-compiled E-step.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emkit

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def three_clusters(n_rows_each=120, seed=3):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 3.0, 2.0]])
    scales = (0.7, 1.2, 0.9)
    parts = [center + scale * rng.normal(size=(n_rows_each, 3)) @ rng.normal(size=(3, 3))
             for center, scale in zip(centers, scales, strict=True)]
    return np.vstack(parts)


def component_covariances(model) -> list[np.ndarray]:
    """Each component's full covariance matrix, from the fitted ``covariances_``."""
    n_components, n_features = model.means_.shape
    cov = model.covariances_
    if model.covariance_type == "full":
        return list(cov)
    if model.covariance_type == "tied":
        return [cov] * n_components
    if model.covariance_type == "diag":
        return [np.diag(c) for c in cov]
    return [c * np.eye(n_features) for c in cov]


def scipy_log_joint(model, X) -> np.ndarray:
    """log π_k + log N(x | μ_k, Σ_k), shape (n_rows, K), by scipy."""
    return np.column_stack([
        np.log(weight) + multivariate_normal(mean, cov).logpdf(X)
        for weight, mean, cov in zip(model.weights_, model.means_, component_covariances(model),
                                     strict=True)
    ])


def fitted(covariance_type, **settings):
    X = three_clusters()
    model = emkit.GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                  max_iter=200, tol=1e-6, **settings).fit(X)
    return model, X


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted_model(request):
    return fitted(request.param)


def test_score_samples_equals_scipy_mixture_density(fitted_model):
    model, X = fitted_model
    # Score fresh points too: the training rows are not special.
    points = np.vstack([X, np.random.default_rng(1).normal(scale=4.0, size=(50, 3))])
    expected = logsumexp(scipy_log_joint(model, points), axis=1)
    np.testing.assert_allclose(model.score_samples(points), expected, rtol=1e-10)
    assert model.score(points) == pytest.approx(expected.mean(), rel=1e-10)


def test_predict_proba_equals_scipy_posteriors(fitted_model):
    model, X = fitted_model
    log_joint = scipy_log_joint(model, X)
    expected = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(proba, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), expected.argmax(axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_density_matches_scipy(covariance_type):
    model, X = fitted(covariance_type, dtype=np.float32)
    expected = logsumexp(scipy_log_joint(model, X), axis=1)
    np.testing.assert_allclose(model.score_samples(X), expected, rtol=1e-5)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_samples_follow_the_fitted_mixture(covariance_type):
    model, _ = fitted(covariance_type)
    model.set_params(random_state=12345)
    n_samples = 60_000
    samples, labels = model.sample(n_samples)
    assert samples.shape == (n_samples, 3) and labels.shape == (n_samples,)
    # Component frequencies follow the weights (binomial standard error < 0.002 here).
    frequencies = np.bincount(labels, minlength=3) / n_samples
    np.testing.assert_allclose(frequencies, model.weights_, atol=0.01)
    covariances = component_covariances(model)
    for k in range(3):
        rows = samples[labels == k]
        spread = np.sqrt(np.diag(covariances[k]))
        # Standard error of a mean is spread / sqrt(n_k) (< spread / 100 here): 5 of them.
        np.testing.assert_allclose(rows.mean(axis=0), model.means_[k],
                                   atol=5 * spread.max() / np.sqrt(len(rows)))
        np.testing.assert_allclose(np.cov(rows.T), covariances[k],
                                   atol=0.05 * float(np.max(np.abs(covariances[k]))))
    # The whole sample: mixture mean Σ π_k μ_k.
    mixture_mean = model.weights_ @ model.means_
    np.testing.assert_allclose(samples.mean(axis=0), mixture_mean, atol=0.05)
