"""emkit.EMImputer: fills against the textbook formulas (numpy, scipy), draws against their
conditional moments, imputation error against mean imputation, scikit-learn compatibility and
bad input."""

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from emkit import EMImputer, datasets
from emkit.errors import DataError, NotFittedError, ParameterError


def correlated_data(n_samples=400, seed=0):
    """Rows of a 4-dimensional normal with strong correlations."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(4, 4))
    cov = factor @ factor.T + 0.3 * np.eye(4)
    return rng.multivariate_normal([1.0, -2.0, 0.5, 3.0], cov, size=n_samples)


def two_clusters(n_samples=400, seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.random(n_samples) < 0.4
    first = rng.multivariate_normal([0, 0, 0], [[1, 0.8, 0.3], [0.8, 1, 0.5], [0.3, 0.5, 1]],
                                    size=n_samples)
    second = rng.multivariate_normal([4, -3, 2], [[1, -0.6, 0], [-0.6, 2, 0.4], [0, 0.4, 1]],
                                     size=n_samples)
    return np.where(labels[:, None], first, second)


def punch_holes(X, fraction, seed=2, empty_rows=()):
    """X with a fraction of its entries missing completely at random (and whole rows empty)."""
    rng = np.random.default_rng(seed)
    holes = X.copy()
    holes[rng.random(X.shape) < fraction] = np.nan
    holes[list(empty_rows)] = np.nan
    return holes


def full_covariance(mixture, k):
    """Component k's covariance as a D x D matrix, from the fitted attributes."""
    cov, n_features = mixture.covariances_, mixture.means_.shape[1]
    return {"full": lambda: cov[k], "tied": lambda: cov, "diag": lambda: np.diag(cov[k]),
            "spherical": lambda: cov[k] * np.eye(n_features)}[mixture.covariance_type]()


def textbook_fill(row, mean, cov):
    """μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) for the missing entries of one row."""
    seen, hidden = ~np.isnan(row), np.isnan(row)
    if not seen.any():
        return mean[hidden].copy()
    weights = np.linalg.solve(cov[np.ix_(seen, seen)], row[seen] - mean[seen])
    return mean[hidden] + cov[np.ix_(hidden, seen)] @ weights


def textbook_posterior(row, mixture):
    """p(k | x_o) from the marginal densities of the observed coordinates (scipy)."""
    seen = ~np.isnan(row)
    if not seen.any():
        return mixture.weights_.copy()
    joint = np.array([
        weight * stats.multivariate_normal(mixture.means_[k][seen],
                                           full_covariance(mixture, k)[np.ix_(seen, seen)]
                                           ).pdf(row[seen])
        for k, weight in enumerate(mixture.weights_)])
    return joint / joint.sum()


# ------------------------------------------------------------------------------ the mean fill
def test_one_component_fill_is_the_regression_on_the_observed_values():
    X = punch_holes(correlated_data(), 0.2, empty_rows=[5, 17])
    imputer = EMImputer(random_state=0).fit(X)
    filled = imputer.transform(X)
    mean, cov = imputer.mixture_.means_[0], imputer.mixture_.covariances_[0]
    for i, row in enumerate(X):
        np.testing.assert_allclose(filled[i, np.isnan(row)], textbook_fill(row, mean, cov),
                                   rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(filled[5], mean)  # an empty row gets the mean


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mixture_fill_is_the_posterior_weighted_regression(covariance_type):
    X = punch_holes(two_clusters(), 0.25, empty_rows=[3])
    imputer = EMImputer(2, covariance_type=covariance_type, random_state=0).fit(X)
    mixture = imputer.mixture_
    filled = imputer.transform(X)
    for i, row in enumerate(X):
        posterior = textbook_posterior(row, mixture)
        expected = sum(p * textbook_fill(row, mixture.means_[k], full_covariance(mixture, k))
                       for k, p in enumerate(posterior))
        np.testing.assert_allclose(filled[i, np.isnan(row)], expected, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(filled[3], mixture.weights_ @ mixture.means_, rtol=1e-12)


def test_observed_values_are_never_changed():
    X = punch_holes(two_clusters(), 0.3)
    X[0, 0] = 0.1 + 0.2  # a value that round-off would betray
    observed = ~np.isnan(X)
    imputer = EMImputer(2, random_state=0).fit(X)
    outputs = [imputer.transform(X), *imputer.multiple_imputations(X, 3),
               EMImputer(2, sample_posterior=True, random_state=1).fit_transform(X)]
    for output in outputs:
        assert output.dtype == np.float64 and np.isfinite(output).all()
        np.testing.assert_array_equal(output[observed], X[observed])
        assert output[observed].tobytes() == X[observed].tobytes()
    complete = two_clusters()
    np.testing.assert_array_equal(imputer.transform(complete), complete)


def test_imputation_error_is_lower_than_mean_imputation():
    rng = np.random.default_rng(5)
    factor = rng.normal(size=(4, 4))
    true_mean, true_cov = np.array([1.0, -2.0, 0.5, 3.0]), factor @ factor.T + 0.3 * np.eye(4)
    truth = rng.multivariate_normal(true_mean, true_cov, size=500)
    X = punch_holes(truth, 0.2, seed=6)
    missing = np.isnan(X)

    def rmse(filled):
        return np.sqrt(np.mean((filled[missing] - truth[missing]) ** 2))

    em = rmse(EMImputer(random_state=0).fit_transform(X))
    column_means = rmse(np.where(missing, np.nanmean(X, axis=0), X))
    oracle = X.copy()  # the best fill: the regression with the true parameters
    for i, row in enumerate(X):
        oracle[i, np.isnan(row)] = textbook_fill(row, true_mean, true_cov)
    # Measured: EM 1.137, true parameters 1.133, column means 1.966 (20% MCAR).
    assert em < 0.7 * column_means
    assert em < 1.02 * rmse(oracle)


# ------------------------------------------------------------------------------ draws
def test_draws_have_the_conditional_mean_and_covariance():
    X = punch_holes(two_clusters(), 0.2)
    imputer = EMImputer(2, sample_posterior=True, random_state=0).fit(X)
    mixture = imputer.mixture_
    # A row between the clusters, so that both components contribute to its draws.
    row = np.array([2.0, np.nan, np.nan])
    posterior = textbook_posterior(row, mixture)
    assert 0.05 < posterior.min()
    means = [textbook_fill(row, mixture.means_[k], full_covariance(mixture, k)) for k in (0, 1)]
    conditional = []
    for k in (0, 1):
        cov = full_covariance(mixture, k)
        conditional.append(cov[1:, 1:] - np.outer(cov[1:, 0], cov[0, 1:]) / cov[0, 0])
    expected_mean = sum(p * m for p, m in zip(posterior, means, strict=True))
    expected_cov = sum(p * (c + np.outer(m, m)) for p, m, c in
                       zip(posterior, means, conditional, strict=True))
    expected_cov -= np.outer(expected_mean, expected_mean)

    draws = imputer.transform(np.tile(row, (40_000, 1)))[:, 1:]
    standard_error = np.sqrt(np.diag(expected_cov) / len(draws))
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) - expected_mean), 5 * standard_error)
    np.testing.assert_allclose(np.cov(draws.T), expected_cov, rtol=0.05, atol=0.02)


def test_multiple_imputations_are_independent_and_reproducible():
    X = punch_holes(correlated_data(), 0.2)
    missing = np.isnan(X)
    imputer = EMImputer(sample_posterior=True, n_imputations=4, random_state=7).fit(X)
    first = imputer.multiple_imputations(X)
    again = imputer.multiple_imputations(X)
    assert len(first) == 4
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)  # an int random_state: the same draws every call
    np.testing.assert_array_equal(imputer.transform(X), first[0])
    differences = [np.abs(first[i][missing] - first[j][missing]).min()
                   for i in range(4) for j in range(i)]
    assert min(differences) > 0
    assert len(imputer.multiple_imputations(X, n_imputations=2)) == 2
    # The draws scatter around the mean fill.
    mean_fill = EMImputer(random_state=7).fit_transform(X)
    average = np.mean(imputer.multiple_imputations(X, 200), axis=0)
    spread = np.std([d[missing] for d in first], axis=0).mean()
    assert np.abs(average[missing] - mean_fill[missing]).mean() < 0.25 * spread


# ------------------------------------------------------------------------------ real data
def test_airquality_imputes_to_finite_values():
    airquality = datasets.load("airquality")
    X = airquality.data
    missing = np.isnan(X)
    columns = [airquality.columns[j] for j in np.flatnonzero(missing.any(axis=0))]
    assert columns == ["Ozone", "Solar.R"]
    for imputer in (EMImputer(random_state=0), EMImputer(2, random_state=0)):
        filled = imputer.fit_transform(X)
        assert np.isfinite(filled).all()
        np.testing.assert_array_equal(filled[~missing], X[~missing])
    draws = EMImputer(random_state=0).fit(X).multiple_imputations(X, 3)
    assert all(np.isfinite(draw).all() for draw in draws)


# ------------------------------------------------------------------------------ scikit-learn
@parametrize_with_checks([EMImputer(random_state=0),
                          EMImputer(2, sample_posterior=True, random_state=0)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_in_a_pipeline():
    truth = correlated_data(seed=3)
    X = punch_holes(truth[:, :3], 0.2)
    y = truth[:, 3]
    pipeline = make_pipeline(EMImputer(random_state=0), LinearRegression()).fit(X, y)
    reference = LinearRegression().fit(EMImputer(random_state=0).fit_transform(X), y)
    np.testing.assert_allclose(pipeline.predict(X), reference.predict(
        EMImputer(random_state=0).fit_transform(X)))


def test_feature_names_out():
    X = punch_holes(correlated_data(), 0.1)
    imputer = EMImputer().fit(X)
    assert list(imputer.get_feature_names_out()) == ["x0", "x1", "x2", "x3"]


def test_dataframes_keep_their_column_names():
    pd = pytest.importorskip("pandas")
    X = punch_holes(correlated_data(), 0.1)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    imputer = EMImputer(random_state=0).set_output(transform="pandas").fit(frame)
    filled = imputer.transform(frame)
    assert list(filled.columns) == ["a", "b", "c", "d"]
    assert list(imputer.get_feature_names_out()) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(filled.to_numpy(), EMImputer(random_state=0).fit_transform(X))


# ------------------------------------------------------------------------------ bad input
def test_bad_input_gives_emkit_errors():
    X = punch_holes(correlated_data(), 0.1)
    with pytest.raises(NotFittedError, match="fit"):
        EMImputer().transform(X)
    infinite = X.copy()
    infinite[0, 0] = np.inf
    with pytest.raises(DataError, match="Infinity is not a missing value"):
        EMImputer().fit(infinite)
    empty_column = X.copy()
    empty_column[:, 2] = np.nan
    with pytest.raises(DataError, match="no observed value"):
        EMImputer().fit(empty_column)
    imputer = EMImputer().fit(X)
    with pytest.raises(DataError, match="features"):
        imputer.transform(X[:, :3])
    with pytest.raises(DataError, match="Infinity"):
        imputer.transform(infinite)
    with pytest.raises(ParameterError, match="n_imputations"):
        EMImputer(n_imputations=0).fit(X)
    with pytest.raises(ParameterError, match="n_imputations"):
        imputer.multiple_imputations(X, n_imputations=-1)
    with pytest.raises(ParameterError, match="sample_posterior"):
        EMImputer(sample_posterior="yes").fit(X)
    with pytest.raises(ParameterError, match="n_components"):
        EMImputer(n_components=0).fit(X)
