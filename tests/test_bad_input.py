"""Bad input to emkit.GaussianMixture gives an emkit error that says what was wrong.

Every test checks the exception's type (an ``emkit.errors`` class, so no IndexError, LinAlgError or
other numpy internals escape) and a key phrase of its message.
"""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from emkit import GaussianMixture
from emkit.errors import (
    DataError,
    EmkitError,
    NotFittedError,
    NumericalError,
    ParameterError,
)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(20, 2))


@pytest.fixture(scope="module")
def fitted(X):
    return GaussianMixture(2, random_state=0).fit(X)


# ---------------------------------------------------------------------- the data
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinity_is_not_a_missing_value(X, value):
    bad = X.copy()
    bad[3, 1] = value
    with pytest.raises(DataError, match="infinity") as error:
        GaussianMixture(2).fit(bad)
    assert "not a missing value" in str(error.value)


def test_a_column_with_every_value_missing(X):
    bad = X.copy()
    bad[:, 1] = np.nan
    with pytest.raises(DataError, match="column.* 1 have no observed value.*drop"):
        GaussianMixture(2).fit(bad)


def test_every_row_empty():
    with pytest.raises(DataError, match="no observed value|every row is empty"):
        GaussianMixture(2).fit(np.full((5, 2), np.nan))


def test_an_empty_row_at_predict_time_gets_the_prior(fitted, X):
    rows = X[:3].copy()
    rows[1] = np.nan
    np.testing.assert_allclose(fitted.predict_proba(rows)[1], fitted.weights_, rtol=1e-12)
    assert fitted.score_samples(rows)[1] == pytest.approx(0.0, abs=1e-12)  # density of nothing: 1


def test_empty_data():
    with pytest.raises(DataError, match="0 sample"):
        GaussianMixture(1).fit(np.empty((0, 2)))


def test_no_columns():
    with pytest.raises(DataError, match="0 feature"):
        GaussianMixture(1).fit(np.empty((5, 0)))


def test_one_row(X):
    with pytest.raises(DataError, match="at least 2 rows"):
        GaussianMixture(1).fit(X[:1])


def test_more_components_than_samples(X):
    with pytest.raises(DataError, match="n_components=21 is larger than the number of samples"):
        GaussianMixture(21).fit(X)


def test_constant_column(X):
    bad = X.copy()
    bad[:, 1] = 3.0
    with pytest.raises(DataError, match=r"column\(s\) 1 are constant"):
        GaussianMixture(2).fit(bad)


@pytest.mark.parametrize("estimator", ["GaussianHMM", "GMMHMM"])
def test_constant_column_in_a_gaussian_hmm(X, estimator):
    import emkit

    with pytest.raises(DataError, match=r"column\(s\) 0, 1 are constant"):
        getattr(emkit, estimator)(2).fit(np.tile([[1.0, 2.0]], (20, 1)))


def test_values_beyond_float32_range(X):
    bad = X.copy()
    bad[0, 0] = 1e308
    with pytest.raises(DataError, match="beyond ±3.4e\\+38, which float32 cannot represent"):
        GaussianMixture(2, dtype=np.float32).fit(bad)


def test_one_dimensional_x(X):
    with pytest.raises(DataError, match="Expected 2D array, got 1D array"):
        GaussianMixture(2).fit(X[:, 0])


def test_three_dimensional_x(X):
    with pytest.raises(DataError, match="dim 3"):
        GaussianMixture(2).fit(X.reshape(5, 4, 2))


@pytest.mark.parametrize("data", [
    np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
    [[1.0, "x"], [2.0, 3.0], [3.0, 1.0]],
], ids=["all-strings", "one-string"])
def test_non_numeric_input(data):
    with pytest.raises(DataError, match="could not convert string to float"):
        GaussianMixture(1).fit(data)


def test_complex_input(X):
    with pytest.raises(DataError, match="Complex data not supported"):
        GaussianMixture(2).fit(X + 1j)


def test_values_whose_density_overflows(X):
    with pytest.raises(NumericalError, match="extreme values"):
        GaussianMixture(2, random_state=0).fit(X * 1e300)


# ---------------------------------------------------------------------- after fit
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score"])
def test_different_number_of_features_than_fit(fitted, method):
    with pytest.raises(DataError, match="X has 3 features, but GaussianMixture is expecting 2"):
        getattr(fitted, method)(np.ones((4, 3)))


@pytest.mark.parametrize("call", [
    lambda model, X: model.predict(X),
    lambda model, X: model.predict_proba(X),
    lambda model, X: model.score(X),
    lambda model, X: model.sample(3),
    lambda model, X: model.bic(X),
], ids=["predict", "predict_proba", "score", "sample", "bic"])
def test_use_before_fit(X, call):
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'") as error:
        call(GaussianMixture(2), X)
    assert isinstance(error.value, SklearnNotFittedError)


def test_sample_needs_a_positive_count(fitted):
    with pytest.raises(ParameterError, match="n_samples must be >= 1"):
        fitted.sample(0)


# ---------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize(("settings", "phrase"), [
    ({"n_components": 0}, "n_components must be an integer >= 1"),
    ({"n_components": 2.5}, "n_components must be an integer >= 1"),
    ({"covariance_type": "bogus"}, "covariance_type must be one of"),
    ({"tol": -1.0}, "tol must be a number >= 0"),
    ({"reg_covar": -1e-3}, "reg_covar must be a number >= 0"),
    ({"init_params": "bogus"}, "init_params must be one of"),
    ({"dtype": int}, "dtype must be numpy.float64 or numpy.float32"),
    ({"dtype": "bogus"}, "dtype must be numpy.float64 or numpy.float32"),
    ({"max_iter": -1}, "max_iter must be an integer >= 0"),
    ({"n_init": 0}, "n_init must be an integer >= 1"),
    ({"accelerate": "bogus"}, "accelerate must be None"),
    ({"annealing": 0.5}, "annealing"),
    ({"annealing": [0.0, 2.0]}, "annealing must be"),
    ({"random_state": "seed"}, "random_state must be"),
], ids=lambda value: ",".join(f"{k}={v!r}" for k, v in value.items())
    if isinstance(value, dict) else "")
def test_invalid_hyperparameters(X, settings, phrase):
    with pytest.raises(ParameterError, match=phrase):
        GaussianMixture(**{"n_components": 2, **settings}).fit(X)


# ---------------------------------------------------------------------- user-given starting points
@pytest.mark.parametrize(("settings", "phrase"), [
    ({"means_init": np.zeros((3, 2))}, "means_init"),
    ({"means_init": np.zeros((2, 5))}, "means_init"),
    ({"weights_init": [0.2, 0.3, 0.5]}, "weights_init"),
    ({"weights_init": [0.2, 0.3]}, "weights_init"),
    ({"weights_init": [1.5, -0.5]}, "weights_init"),
    ({"precisions_init": np.ones((3, 2, 2))}, "precisions_init"),
    ({"precisions_init": -np.stack([np.eye(2)] * 2)}, "precisions_init"),
    ({"resp_init": np.ones((5, 2))}, "resp_init"),
    ({"resp_init": -np.ones((20, 2))}, "resp_init"),
], ids=["means-rows", "means-columns", "weights-length", "weights-sum", "weights-negative",
        "precisions-shape", "precisions-not-positive-definite", "resp-shape", "resp-negative"])
def test_invalid_starting_points(X, settings, phrase):
    with pytest.raises(EmkitError, match=phrase):
        GaussianMixture(2, **settings).fit(X)


# ---------------------------------------------------------------------- sample_weight and labels
@pytest.mark.parametrize(("sample_weight", "phrase"), [
    (-np.ones(20), "finite and non-negative"),
    (np.r_[np.nan, np.ones(19)], "finite and non-negative"),
    (np.r_[np.inf, np.ones(19)], "finite and non-negative"),
    (np.ones(7), r"sample_weight has shape \(7,\), expected \(20,\)"),
    (np.zeros(20), "sums to zero"),
    (["a"] * 20, "sample_weight"),
], ids=["negative", "nan", "inf", "wrong-length", "all-zero", "strings"])
def test_invalid_sample_weight(X, sample_weight, phrase):
    with pytest.raises(DataError, match=phrase):
        GaussianMixture(2).fit(X, sample_weight=sample_weight)


def test_invalid_sample_weight_in_score(fitted, X):
    with pytest.raises(DataError, match="finite and non-negative"):
        fitted.score(X, sample_weight=-np.ones(len(X)))


@pytest.mark.parametrize(("labels", "phrase"), [
    (np.r_[2, -np.ones(19, dtype=int)], r"labels must be -1 \(unknown\) or in 0..1"),
    (np.r_[-2, -np.ones(19, dtype=int)], r"labels must be -1 \(unknown\) or in 0..1"),
    (np.zeros(3, dtype=int), r"labels must be integers of shape \(20,\)"),
    (np.zeros(20), r"labels must be integers"),
], ids=["too-large", "below-minus-one", "wrong-length", "floats"])
def test_invalid_labels(X, labels, phrase):
    with pytest.raises(DataError, match=phrase):
        GaussianMixture(2).fit(X, labels=labels)
