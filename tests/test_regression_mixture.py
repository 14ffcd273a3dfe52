"""RegressionMixture: mixtools' maximum on the ethanol data (NOdata), the predictions against
direct formulas, weights, restarts, model files, standard errors, and its errors."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import emkit
from emkit.errors import DataError, NotFittedError, NumericalError, ParameterError
from finite_differences import hessian as finite_difference_hessian

# mixtools 2.0.0 on R 4.2.2 (Debian r-cran-mixtools), NOdata (y = Equivalence, x = NO):
#   for (s in 1:200) { set.seed(s); f <- regmixEM(NOdata$Equivalence, NOdata$NO, k = 2,
#                                                 epsilon = 1e-10, maxit = 10000) }
# 188 of the 200 starts end at log-likelihood 122.038355785 (the others at 24.582, 24.911 and
# 25.914); the best fit's lambda, beta (intercept; slope, per component) and sigma:
MIXTOOLS_LOG_LIKELIHOOD = 122.038355785
MIXTOOLS_WEIGHTS = np.array([0.489724476942, 0.510275523058])
MIXTOOLS_INTERCEPTS = np.array([0.5649858879238, 1.2470811808317])
MIXTOOLS_SLOPES = np.array([0.0850229488244, -0.0829995156717])
MIXTOOLS_SIGMAS = np.array([0.0433132071592, 0.0241411690361])


def _ethanol():
    data = emkit.datasets.load("ethanol")
    return data.data[:, :1], data.column("Equivalence")


def _in_mixtools_order(model):
    order = np.argsort(model.intercept_)
    return (model.weights_[order], model.intercept_[order], model.coef_[order, 0],
            np.sqrt(model.noise_variance_[order]))


@pytest.mark.parametrize("seed", range(5))
def test_defaults_reach_the_best_regmixem_maximum(seed):
    X, y = _ethanol()
    model = emkit.RegressionMixture(random_state=seed).fit(X, y)
    assert model.converged_
    log_likelihood = model.score(X, y) * len(y)
    assert log_likelihood == pytest.approx(MIXTOOLS_LOG_LIKELIHOOD, abs=1e-6)
    for ours, theirs in zip(_in_mixtools_order(model), (MIXTOOLS_WEIGHTS, MIXTOOLS_INTERCEPTS,
                                                        MIXTOOLS_SLOPES, MIXTOOLS_SIGMAS),
                            strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_tight_fit_agrees_with_mixtools_and_is_no_lower():
    """regmixEM stops when the log-likelihood changes by less than epsilon = 1e-10, so its
    slopes are 3e-7 (relative) short of the maximum; emkit's tight fit is 2e-11 higher."""
    X, y = _ethanol()
    model = emkit.RegressionMixture(tol=1e-14, xtol=1e-12, random_state=0).fit(X, y)
    for ours, theirs in zip(_in_mixtools_order(model), (MIXTOOLS_WEIGHTS, MIXTOOLS_INTERCEPTS,
                                                        MIXTOOLS_SLOPES, MIXTOOLS_SIGMAS),
                            strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    theirs = np.concatenate([MIXTOOLS_WEIGHTS[:1], np.column_stack(
        [MIXTOOLS_INTERCEPTS, MIXTOOLS_SLOPES, MIXTOOLS_SIGMAS**2]).ravel()])
    assert model.score(X, y) * len(y) >= _log_likelihood(theirs, X, y)


def _direct_log_joint(model, X, y):
    means = X @ model.coef_.T + model.intercept_
    return np.log(model.weights_) + stats.norm(means, np.sqrt(model.noise_variance_)).logpdf(
        y[:, None])


def test_predictions_are_the_mixture_formulas():
    X, y = _ethanol()
    model = emkit.RegressionMixture(random_state=0).fit(X, y)
    log_joint = _direct_log_joint(model, X, y)
    np.testing.assert_allclose(model.score_samples(X, y), logsumexp(log_joint, axis=1),
                               rtol=1e-12)
    posteriors = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X, y), posteriors, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(model.predict_component(X, y), posteriors.argmax(axis=1))
    np.testing.assert_allclose(model.predict(X),
                               (X @ model.coef_.T + model.intercept_) @ model.weights_)
    assert model.n_parameters() == 1 + 2 * 3
    log_likelihood = model.score(X, y) * len(y)
    assert model.bic(X, y) == pytest.approx(-2 * log_likelihood + 7 * np.log(len(y)))
    assert model.aic(X, y) == pytest.approx(-2 * log_likelihood + 14)
    assert model.lower_bound_ * len(y) == pytest.approx(log_likelihood, rel=1e-12)


def test_several_regressors_recover_the_planes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 2))
    first = rng.uniform(size=3000) < 0.3
    y = np.where(first, 1 + X @ [2.0, -1.0] + rng.normal(0, 0.3, 3000),
                 -1 + X @ [-0.5, 1.5] + rng.normal(0, 0.6, 3000))
    model = emkit.RegressionMixture(random_state=0).fit(X, y)
    order = np.argsort(model.weights_)
    np.testing.assert_allclose(model.weights_[order], [0.3, 0.7], atol=0.03)
    np.testing.assert_allclose(model.coef_[order], [[2.0, -1.0], [-0.5, 1.5]], atol=0.05)
    np.testing.assert_allclose(model.intercept_[order], [1.0, -1.0], atol=0.05)
    np.testing.assert_allclose(model.noise_variance_[order], [0.09, 0.36], rtol=0.1)


def test_integer_weights_are_repetitions():
    X, y = _ethanol()
    counts = np.random.default_rng(1).integers(0, 3, len(y))
    weighted = emkit.RegressionMixture(random_state=0).fit(X, y, sample_weight=counts)
    repeated = emkit.RegressionMixture(random_state=0).fit(np.repeat(X, counts, axis=0),
                                                           np.repeat(y, counts))
    assert weighted.score(X, y, sample_weight=counts) == pytest.approx(
        repeated.score(np.repeat(X, counts, axis=0), np.repeat(y, counts)), rel=1e-9)
    np.testing.assert_allclose(np.sort(weighted.intercept_), np.sort(repeated.intercept_),
                               rtol=1e-5)


def test_restarts_keep_the_best_and_save_load_round_trips(tmp_path):
    X, y = _ethanol()
    model = emkit.RegressionMixture(n_init=3, random_state=0).fit(X, y)
    assert len(model.restart_objectives_) == 3
    assert model.score(X, y) * len(y) == pytest.approx(max(model.restart_objectives_),
                                                       rel=1e-12)
    model.save(tmp_path / "model.emkit")
    loaded = emkit.load(tmp_path / "model.emkit")
    assert isinstance(loaded, emkit.RegressionMixture)
    np.testing.assert_array_equal(loaded.predict_proba(X, y), model.predict_proba(X, y))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_partial_fit_learns_from_mini_batches():
    X, y = _ethanol()
    model = emkit.RegressionMixture(random_state=0)
    for _ in range(30):
        for rows in np.array_split(np.arange(len(y)), 4):
            model.partial_fit(X[rows], y[rows])
    assert model.score(X, y) * len(y) > MIXTOOLS_LOG_LIKELIHOOD - 5


# ------------------------------------------------------------------------- standard errors
def _log_likelihood(vector, X, y):
    """Observed-data log-likelihood at (π_1, then per component intercept, slope, σ²)."""
    weights = np.array([vector[0], 1 - vector[0]])
    per_component = vector[1:].reshape(2, 3)
    means = per_component[:, 0] + X @ per_component[:, 1:2].T
    log_joint = np.log(weights) + stats.norm(means, np.sqrt(per_component[:, 2])).logpdf(
        y[:, None])
    return float(logsumexp(log_joint, axis=1).sum())


def test_standard_errors_agree_with_a_finite_difference_hessian():
    X, y = _ethanol()
    model = emkit.RegressionMixture(tol=1e-14, random_state=0).fit(X, y)
    vector = np.concatenate([model.weights_[:1], np.column_stack(
        [model.intercept_, model.coef_[:, 0], model.noise_variance_]).ravel()])
    hessian = finite_difference_hessian(lambda point: _log_likelihood(point, X, y), vector)
    expected = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    errors = model.standard_errors(X, y)
    np.testing.assert_allclose(errors["weights"], expected[[0, 0]], rtol=0.02)
    np.testing.assert_allclose(errors["intercept"], expected[[1, 4]], rtol=0.02)
    np.testing.assert_allclose(errors["coef"][:, 0], expected[[2, 5]], rtol=0.02)
    np.testing.assert_allclose(errors["noise_variance"], expected[[3, 6]], rtol=0.02)


def test_one_regression_has_the_least_squares_errors():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2))
    y = 1 + X @ [0.5, -2.0] + rng.normal(0, 0.7, 200)
    model = emkit.RegressionMixture(1).fit(X, y)
    design = np.column_stack([np.ones(200), X])
    beta, residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    variance = residuals[0] / 200  # the MLE
    np.testing.assert_allclose(model.noise_variance_, [variance], rtol=1e-10)
    covariance = variance * np.linalg.inv(design.T @ design)
    errors = model.standard_errors(X, y)
    np.testing.assert_allclose(errors["intercept"], [np.sqrt(covariance[0, 0])], rtol=1e-8)
    np.testing.assert_allclose(errors["coef"][0], np.sqrt(np.diag(covariance)[1:]), rtol=1e-8)
    np.testing.assert_allclose(errors["noise_variance"], [np.sqrt(2 * variance**2 / 200)],
                               rtol=1e-8)


# ------------------------------------------------------------------------- errors
def test_errors_say_what_is_wrong():
    X, y = _ethanol()
    with pytest.raises(NotFittedError):
        emkit.RegressionMixture().predict(X)
    with pytest.raises(DataError, match="needs the response"):
        emkit.RegressionMixture().fit(X, None)
    with pytest.raises(DataError, match="one response per row"):
        emkit.RegressionMixture().fit(X, y[:-1])
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        emkit.RegressionMixture().fit(X, bad)
    with pytest.raises(DataError, match="NaN"):
        emkit.RegressionMixture().fit(np.where(np.arange(len(y))[:, None] == 2, np.nan, X), y)
    with pytest.raises(DataError, match="do not determine a regression line"):
        emkit.RegressionMixture(2).fit(np.ones((10, 1)), np.arange(10.0))
    model = emkit.RegressionMixture(random_state=0).fit(X, y)
    with pytest.raises(ParameterError, match="no distribution of X"):
        model.sample(5)
    with pytest.raises(DataError, match="features"):
        model.predict(np.column_stack([X, X]))


def test_unidentified_parameters_are_named():
    X, y = _ethanol()
    model = emkit.RegressionMixture(random_state=0).fit(X, y)
    for name in ("coef_", "intercept_", "noise_variance_"):
        value = getattr(model, name)
        setattr(model, name, np.repeat(value[:1], 2, axis=0))
    with pytest.raises(NumericalError, match=r"weights\[0\] is not identified"):
        model.standard_errors(X, y)


def test_constructor_parameters_are_checked():
    X, y = _ethanol()
    with pytest.raises(ParameterError, match="n_components"):
        emkit.RegressionMixture(0).fit(X, y)
    with pytest.raises(ParameterError, match="accelerate"):
        emkit.RegressionMixture(accelerate="fast").fit(X, y)


def test_works_in_scikit_learn_model_selection():
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_score

    X, y = _ethanol()
    model = emkit.RegressionMixture(random_state=0)
    assert clone(model).get_params() == model.get_params()
    folds = KFold(4, shuffle=True, random_state=0)
    scores = cross_val_score(model, X, y, cv=folds)
    # the held-out mean log-likelihood per row, fitted on the other folds
    train, test = next(folds.split(X))
    fitted = emkit.RegressionMixture(random_state=0).fit(X[train], y[train])
    assert scores[0] == pytest.approx(fitted.score(X[test], y[test]), rel=1e-12)
