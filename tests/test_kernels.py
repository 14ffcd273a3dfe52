"""The compiled kernels against plain numpy, on shapes that exercise every code path."""

import numpy as np
import pytest

from emkit.kernels import gaussian as kernels
from emkit.kernels import tiers
from emkit.kernels.fastmath import exp_nonpositive


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def form(request, monkeypatch):
    """Every test here runs each kernel's numpy form and its compiled form (emkit.kernels.tiers)
    against the same independent reference."""
    monkeypatch.setattr(tiers, "MODE", request.param)
    return request.param


def test_exp_nonpositive_is_within_two_ulp_of_numpy():
    s = -np.random.default_rng(0).uniform(0.0, 85.0, 2000)
    s[:4] = [0.0, -1e-300, -85.0, -np.log(2) / 2]
    ours = np.array([exp_nonpositive(v) for v in s])
    exact = np.exp(s)
    assert np.max(np.abs(ours - exact) / exact) <= 2 * np.finfo(float).eps
    assert np.isnan(exp_nonpositive(np.nan))
    # the whole float64 range (the HMM kernels' use): subnormals, then exactly 0
    deep = np.array([-700.0, -740.0, -745.0, -800.0, -1e4, -np.inf])
    ours = np.array([exp_nonpositive(v) for v in deep])
    assert np.allclose(ours[:3], np.exp(deep[:3]), rtol=1e-12, atol=1e-323)
    assert np.all(ours[3:] == 0.0)


@pytest.mark.parametrize("n_rows", [1, 300, 20_000])  # serial and threaded paths
@pytest.mark.parametrize("n_features", [1, 3, 5, 16])
def test_densities_posteriors_and_moments_match_numpy(n_rows, n_features):
    rng = np.random.default_rng(n_features)
    K = 3
    X = rng.normal(size=(n_rows, n_features)) * 3
    means = rng.normal(size=(K, n_features))
    factors = np.triu(rng.normal(size=(K, n_features, n_features)))
    constants = rng.normal(size=K)
    whitened = np.einsum("bki,kij->bkj", X[:, None, :] - means[None], factors)
    joint = constants - 0.5 * np.sum(whitened**2, axis=2)
    np.testing.assert_allclose(kernels.triangular_log_density(X, means, factors, constants),
                               joint, rtol=1e-12, atol=1e-10)
    log_norm, posterior = kernels.triangular_log_density(X, means, factors, constants, True)
    top = joint.max(axis=1, keepdims=True)
    exact_norm = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
    np.testing.assert_allclose(log_norm, exact_norm, rtol=1e-12, atol=1e-12)
    exact_posterior = np.exp(joint - exact_norm[:, None])
    np.testing.assert_allclose(posterior, exact_posterior, rtol=1e-12, atol=1e-15)

    weights = rng.uniform(size=(n_rows, K)) * (rng.uniform(size=(n_rows, K)) > 0.3)
    deviations = X[:, None, :] - means[None]
    for full in (True, False):
        weight_sum, first, second = kernels.weighted_moments(X, weights, means, full)
        np.testing.assert_allclose(weight_sum, weights.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(first, np.einsum("bk,bkd->kd", weights, deviations),
                                   rtol=1e-10, atol=1e-9)
        exact = np.einsum("bk,bki,bkj->kij", weights, deviations, deviations)
        if not full:
            exact = np.einsum("kii->ki", exact)
        np.testing.assert_allclose(second, exact, rtol=1e-10, atol=1e-9)


def test_annealed_posteriors_are_tempered_joint_densities():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2))
    means = rng.normal(size=(2, 2))
    scales = rng.uniform(0.5, 2, size=(2, 2))
    constants = np.zeros(2)
    joint = kernels.diagonal_log_density(X, means, scales, constants)
    _, posterior = kernels.diagonal_log_density(X, means, scales, constants, True, 0.3)
    tempered = np.exp(0.3 * (joint - joint.max(axis=1, keepdims=True)))
    np.testing.assert_allclose(posterior, tempered / tempered.sum(axis=1, keepdims=True),
                               rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_missing_value_kernels_match_the_per_pattern_numpy_formulas(covariance_type):
    from emkit.families import gaussian_missing as missing
    from emkit.families.gaussian import GaussianFamily

    rng = np.random.default_rng(2)
    K, D, n = 3, 5, 400
    family = GaussianFamily(covariance_type)
    A = rng.normal(size=(K, D, D))
    covariances = {"full": A @ A.transpose(0, 2, 1) + np.eye(D),
                   "tied": A[0] @ A[0].T + np.eye(D),
                   "diag": rng.uniform(0.5, 2.0, (K, D)),
                   "spherical": rng.uniform(0.5, 2.0, K)}[covariance_type]
    params, _ = family.with_covariances(rng.normal(size=(K, D)), covariances)
    X = rng.normal(size=(n, D)) * 2
    X[rng.uniform(size=X.shape) < 0.4] = np.nan
    X[0] = np.nan  # a row with nothing observed
    X = X[np.isnan(X).any(axis=1)]  # the kernels see the incomplete rows only
    n = len(X)
    W = rng.uniform(size=(n, K)) * (rng.uniform(size=(n, K)) > 0.3)  # some weights zero
    W[:, 2] = 0.0  # a component with no weight at all
    only_x0 = np.isnan(X[:, 1:]).all(axis=1) & ~np.isnan(X[:, 0])
    W[only_x0, 1] = 0.0  # ... and one with none in a whole pattern
    log_density = np.zeros((n, K))
    weight, first, second = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    for observed, rows in missing.missingness_groups(X):
        if not observed.any():
            continue
        for k, conditional in enumerate(missing.conditionals(family, params, observed)):
            log_density[rows, k] = conditional.log_density(X[rows])
            deviation = conditional.completed(X[rows]) - params.means[k]
            w = W[rows, k]
            weight[k] += w.sum()
            first[k] += w @ deviation
            second[k] += (w[:, None] * deviation).T @ deviation
            second[k][np.ix_(~observed, ~observed)] += w.sum() * conditional.covariance
    layout = missing.layout(X)
    np.testing.assert_array_equal(layout.incomplete, np.arange(n))
    assert len(layout.observed) == 2**D - 1 and only_x0.any()  # every pattern with a NaN
    np.testing.assert_allclose(missing.marginal_log_density(family, params, layout),
                               log_density, rtol=1e-12, atol=1e-12)
    stats = missing.conditional_statistics(family, params, layout, W)
    if covariance_type in ("diag", "spherical"):
        second = np.einsum("kii->ki", second)
    np.testing.assert_allclose(stats.weight, weight, rtol=1e-12)
    np.testing.assert_allclose(stats.first, first, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats.second, second, rtol=1e-10, atol=1e-10)


def test_missing_value_kernels_factorise_only_components_with_weight():
    from emkit.families.gaussian_missing import pattern_index

    X = np.array([[1.0, np.nan], [np.nan, 2.0]])
    observed, order, starts = pattern_index(X)
    means = np.zeros((2, 2))
    covs = np.array([np.eye(2), [[1.0, 0.0], [0.0, -1.0]]])  # component 1: Σ_22 < 0
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        kernels.missing_log_density(X, order, starts, observed, means, covs)
    weights = np.array([[1.0, 0.0], [0.5, 0.0]])
    weight, first, second = kernels.missing_moments(X, order, starts, observed, means, covs,
                                                    weights, means, True)
    # row 0 completes to (1, 0), row 1 to (0, 2); each missing coordinate adds its conditional
    # variance 1 under component 0, times the row's weight
    np.testing.assert_allclose(weight, [1.5, 0.0])
    np.testing.assert_allclose(first, [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(second, [[[1.5, 0.0], [0.0, 3.0]], np.zeros((2, 2))])
    _, _, diagonal = kernels.missing_moments(X, order, starts, observed, means, covs, weights,
                                             means, False)
    np.testing.assert_allclose(diagonal[:, :, 0], [[1.5, 3.0], [0.0, 0.0]])
    weights[1, 1] = 0.1  # row 1 observes coordinate 2, where component 1 is not definite
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        kernels.missing_moments(X, order, starts, observed, means, covs, weights, means, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_nan_agrees_with_numpy(dtype):
    from emkit.kernels.gaussian import any_nan

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 7)).astype(dtype)
    X[10, 2], X[10, 5] = np.inf, -np.inf  # infinities are not NaN, nor is their sum
    assert not any_nan(X)
    for row, column in [(0, 0), (299, 6), (150, 3)]:
        Y = X.copy()
        Y[row, column] = np.nan
        assert any_nan(Y) and any_nan(np.asfortranarray(Y))
        assert any_nan(Y[:, column:]) and not any_nan(np.delete(Y, column, axis=1))


def test_logsumexp_and_posteriors_match_scipy():
    from scipy.special import logsumexp as scipy_logsumexp
    from scipy.special import softmax

    from emkit.families.base import logsumexp, posteriors_from_log_joint

    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 300.0, (7, 4, 5))  # exp() of these overflows without the shift
    values[0, 0] = -np.inf  # a row no component explains
    values[1, 2, 3] = -np.inf
    for axis in (-1, 0, 1):
        for keepdims in (False, True):
            np.testing.assert_allclose(logsumexp(values, axis, keepdims),
                                       scipy_logsumexp(values, axis=axis, keepdims=keepdims),
                                       rtol=1e-13)
    log_norm, posteriors = posteriors_from_log_joint(values[1:])
    np.testing.assert_allclose(posteriors, softmax(values[1:], axis=-1), rtol=1e-12, atol=1e-300)
    _, tempered = posteriors_from_log_joint(values[1:], 0.3)
    np.testing.assert_allclose(tempered, softmax(0.3 * values[1:], axis=-1), rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_allclose(log_norm, scipy_logsumexp(values[1:], axis=-1), rtol=1e-13)


def test_posteriors_from_joint_match_scipy_with_empty_rows():
    from scipy.special import logsumexp, softmax

    rng = np.random.default_rng(4)
    joint = rng.normal(0.0, 50.0, (200, 5))
    joint[3] = -np.inf  # a row no component explains: log norm −inf, uniform posterior
    joint[7, 1:] = -np.inf
    log_norm, posterior = kernels.posteriors_from_joint(joint)
    np.testing.assert_allclose(log_norm[joint.max(axis=1) > -np.inf],
                               logsumexp(np.delete(joint, 3, axis=0), axis=1), rtol=1e-13)
    assert log_norm[3] == -np.inf and np.all(posterior[3] == 0.2)
    np.testing.assert_allclose(np.delete(posterior, 3, axis=0),
                               softmax(np.delete(joint, 3, axis=0), axis=1), rtol=1e-12,
                               atol=1e-17)


def test_precision_factors_invert_the_covariances_and_flag_singular_ones():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(6, 4, 4))
    covariances = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(4)
    covariances[2, :, 3] = covariances[2, :, 0]  # a column repeated: singular
    covariances[2, 3, :] = covariances[2, 0, :]
    covariances[4, 1, 1] = np.nan
    covariances[5, 2, 2] = -1.0
    P, bad = kernels.precision_cholesky_factors(covariances, 1e-7)
    np.testing.assert_array_equal(bad, [False, False, True, False, True, True])
    for k in np.flatnonzero(~bad):
        assert np.allclose(np.tril(P[k], -1), 0.0)  # upper triangular
        np.testing.assert_allclose(P[k] @ P[k].T, np.linalg.inv(covariances[k]), rtol=1e-9,
                                   atol=1e-9)
    np.testing.assert_array_equal(P[bad], np.broadcast_to(np.eye(4), (3, 4, 4)))
