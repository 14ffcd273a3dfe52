"""emkit.GaussianMixture: scikit-learn compatibility, the options scikit-learn lacks (sample
weights, semi-supervised labels, resp_init, float32, SQUAREM, annealing), the degenerate-component
policy, and the fitted attributes checked against formulas computed here by hand."""

import re
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.utils.estimator_checks import parametrize_with_checks

from emkit import GaussianMixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_METHODS = ("k-means++", "kmeans", "random", "random_from_data")


def three_clusters(seed=0, n_rows=(90, 70, 50)):
    """Three overlapping 2-D clusters with different shapes."""
    rng = np.random.default_rng(seed)
    centers = ([0.0, 0.0], [3.0, 2.0], [-1.0, 4.0])
    shapes = ([[1.0, 0.4], [0.0, 0.6]], [[0.5, 0.0], [0.3, 1.1]], [[0.8, -0.3], [0.0, 0.4]])
    return np.vstack([np.asarray(c) + rng.normal(size=(n, 2)) @ np.asarray(s)
                      for c, s, n in zip(centers, shapes, n_rows, strict=True)])


def fixed_start(covariance_type, n_components=3, n_features=2):
    """A starting point that does not depend on the data or a random seed."""
    means = np.array([[0.5, 0.5], [2.0, 1.0], [-0.5, 3.0]])[:n_components, :n_features]
    precisions = {
        "full": np.stack([np.eye(n_features) * (1.0 + 0.2 * k) for k in range(n_components)]),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    return {"weights_init": np.full(n_components, 1.0 / n_components), "means_init": means,
            "precisions_init": precisions}


def full_covariances(model):
    """Each component's covariance as a full matrix."""
    n_components, n_features = model.means_.shape
    cov = model.covariances_
    return {"full": lambda: list(cov), "tied": lambda: [cov] * n_components,
            "diag": lambda: [np.diag(c) for c in cov],
            "spherical": lambda: [c * np.eye(n_features) for c in cov]}[model.covariance_type]()


def scipy_log_joint(model, X):
    components = zip(model.weights_, model.means_, full_covariances(model), strict=True)
    return np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(X)
                            for w, m, c in components])


def assert_valid_parameters(model, n_components, n_features):
    assert model.weights_.shape == (n_components,)
    assert np.all(model.weights_ > 0)
    assert model.weights_.sum() == pytest.approx(1.0, rel=1e-12)
    assert model.means_.shape == (n_components, n_features)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    for cov in full_covariances(model):
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    identity = np.eye(n_features)
    for cov, precision in zip(full_covariances(model), _full_precisions(model), strict=True):
        np.testing.assert_allclose(cov @ precision, identity, atol=1e-8)


def _full_precisions(model):
    n_components, n_features = model.means_.shape
    P = model.precisions_cholesky_
    kind = model.covariance_type
    if kind == "full":
        return [p @ p.T for p in P]
    if kind == "tied":
        return [P @ P.T] * n_components
    if kind == "diag":
        return [np.diag(p**2) for p in P]
    return [p**2 * np.eye(n_features) for p in P]


# ---------------------------------------------------------------------- scikit-learn's checks
@parametrize_with_checks([GaussianMixture()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type):
    X = three_clusters()
    counts = np.random.default_rng(1).integers(1, 4, size=len(X))
    settings = dict(covariance_type=covariance_type, max_iter=15, tol=0.0,
                    **fixed_start(covariance_type))
    weighted = GaussianMixture(3, **settings).fit(X, sample_weight=counts)
    repeated = GaussianMixture(3, **settings).fit(np.repeat(X, counts, axis=0))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(weighted.history_, repeated.history_, rtol=1e-12)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-12)
    # Weighted scoring is the same average over the repeated rows.
    assert weighted.score(X, sample_weight=counts) == pytest.approx(
        repeated.score(np.repeat(X, counts, axis=0)), rel=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weight_equals_row_dropped(covariance_type):
    rng = np.random.default_rng(2)
    # The zero-weight rows are far outliers: they would move every parameter if they counted.
    X = np.vstack([three_clusters(), rng.normal(40.0, 5.0, size=(15, 2))])
    weights = np.ones(len(X))
    weights[-15:] = 0.0
    settings = dict(covariance_type=covariance_type, max_iter=15, tol=0.0,
                    **fixed_start(covariance_type))
    with_zeros = GaussianMixture(3, **settings).fit(X, sample_weight=weights)
    dropped = GaussianMixture(3, **settings).fit(X[:-15])
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(with_zeros, name), getattr(dropped, name),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(with_zeros.history_, dropped.history_, rtol=1e-12)


def test_default_init_with_zero_weights_never_seeds_on_dropped_rows():
    """No initialisation method may seed a component on zero-weight rows (far outliers here)."""
    rng = np.random.default_rng(3)
    X = np.vstack([three_clusters(), rng.normal(40.0, 1.0, size=(30, 2))])
    weights = np.r_[np.ones(len(X) - 30), np.zeros(30)]
    for method in INIT_METHODS:
        model = GaussianMixture(3, init_params=method, random_state=0, max_iter=0, tol=0.0)
        model.fit(X, sample_weight=weights)
        assert np.all(model.means_ < 20.0), method


# ---------------------------------------------------------------------- semi-supervised labels
def two_clusters():
    rng = np.random.default_rng(4)
    return np.vstack([rng.normal(0.0, 1.0, size=(60, 2)), rng.normal(6.0, 1.0, size=(60, 2))])


@pytest.mark.parametrize("first_cluster_label", [0, 1])
def test_labels_fix_which_component_is_which(first_cluster_label):
    X = two_clusters()
    labels = np.full(len(X), -1)
    labels[:5] = first_cluster_label
    labels[60:65] = 1 - first_cluster_label
    model = GaussianMixture(2, random_state=0)
    predicted = model.fit_predict(X, labels=labels)
    known = labels >= 0
    np.testing.assert_array_equal(predicted[known], labels[known])
    np.testing.assert_array_equal(model.predict(X[known]), labels[known])
    # The unlabelled rows follow their cluster's label.
    np.testing.assert_array_equal(predicted[:60], first_cluster_label)
    np.testing.assert_array_equal(predicted[60:], 1 - first_cluster_label)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_all_rows_labelled_gives_the_closed_form_class_estimates(covariance_type):
    X = three_clusters()
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], (90, 70, 50))
    sample_weight = rng.uniform(0.5, 2.0, size=len(X))
    reg_covar = 1e-3
    model = GaussianMixture(3, covariance_type=covariance_type, reg_covar=reg_covar, max_iter=3,
                            tol=0.0, random_state=0)
    model.fit(X, sample_weight=sample_weight, labels=labels)

    class_weight = np.array([sample_weight[labels == k].sum() for k in range(3)])
    means = np.array([np.average(X[labels == k], axis=0, weights=sample_weight[labels == k])
                      for k in range(3)])
    # Weighted maximum-likelihood (biased) covariance of each class.
    scatter = np.array([np.cov(X[labels == k].T, aweights=sample_weight[labels == k], bias=True)
                        for k in range(3)])
    if covariance_type == "full":
        covariances = scatter + reg_covar * np.eye(2)
    elif covariance_type == "tied":
        covariances = np.tensordot(class_weight, scatter, axes=1) / class_weight.sum()
        covariances += reg_covar * np.eye(2)
    elif covariance_type == "diag":
        covariances = np.diagonal(scatter, axis1=1, axis2=2) + reg_covar
    else:
        covariances = np.diagonal(scatter, axis1=1, axis2=2).mean(axis=1) + reg_covar

    np.testing.assert_allclose(model.weights_, class_weight / class_weight.sum(), rtol=1e-10)
    np.testing.assert_allclose(model.means_, means, rtol=1e-10)
    np.testing.assert_allclose(model.covariances_, covariances, rtol=1e-10)
    # The objective of a fully labelled fit is the complete-data log-likelihood.
    complete = scipy_log_joint(model, X)[np.arange(len(X)), labels]
    assert model.lower_bound_ == pytest.approx(np.average(complete, weights=sample_weight),
                                               rel=1e-10)


# ---------------------------------------------------------------------- initialisation
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("method", INIT_METHODS)
def test_every_init_method_gives_valid_parameters(method, covariance_type):
    X = three_clusters()
    start = GaussianMixture(3, covariance_type=covariance_type, init_params=method,
                            random_state=0, max_iter=0, tol=0.0).fit(X)
    assert_valid_parameters(start, 3, 2)
    # Means are weighted averages of the rows: inside the data's bounding box.
    assert np.all(start.means_ >= X.min(axis=0)) and np.all(start.means_ <= X.max(axis=0))
    fitted = GaussianMixture(3, covariance_type=covariance_type, init_params=method,
                             random_state=0, max_iter=500, tol=1e-6).fit(X)
    assert fitted.converged_
    assert_valid_parameters(fitted, 3, 2)
    assert fitted.lower_bound_ >= start.lower_bound_


@pytest.mark.parametrize("with_weights", [False, True])
def test_resp_init_is_the_first_m_step(with_weights):
    X = three_clusters()
    rng = np.random.default_rng(6)
    resp = rng.dirichlet(np.ones(3), size=len(X))
    w = rng.uniform(0.5, 2.0, size=len(X)) if with_weights else np.ones(len(X))
    reg_covar = 1e-4
    model = GaussianMixture(3, resp_init=resp, reg_covar=reg_covar, max_iter=0, tol=0.0)
    model.fit(X, sample_weight=w if with_weights else None)

    weighted = resp * w[:, None]
    totals = weighted.sum(axis=0)
    means = weighted.T @ X / totals[:, None]
    covariances = np.array([(weighted[:, k, None] * (X - means[k])).T @ (X - means[k]) / totals[k]
                            + reg_covar * np.eye(2) for k in range(3)])
    np.testing.assert_allclose(model.weights_, totals / totals.sum(), rtol=1e-10)
    np.testing.assert_allclose(model.means_, means, rtol=1e-10)
    np.testing.assert_allclose(model.covariances_, covariances, rtol=1e-10)


# ---------------------------------------------------------------------- degenerate components
def tight_pair():
    rng = np.random.default_rng(7)
    return np.vstack([rng.normal(0.0, 0.1, size=(50, 2)), rng.normal(5.0, 0.1, size=(50, 2))])


def assert_no_nan(model):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
                 "history_"):
        assert np.all(np.isfinite(getattr(model, name))), name


def test_an_empty_component_is_reseeded_and_recorded():
    X = tight_pair()
    # The third mean is so far away that no row gives it any responsibility at all.
    # Plain EM: SQUAREM reaches the nearly singular fixed point within 20 passes, where
    # reg_covar's inexact M-step may lower the objective by ~1e-7 (docs/design.md).
    model = GaussianMixture(3, means_init=[[0.0, 0.0], [5.0, 5.0], [1e4, 1e4]], max_iter=20,
                            tol=0.0, accelerate=None).fit(X)
    assert_no_nan(model)
    assert_valid_parameters(model, 3, 2)
    assert model.events_, "the re-seeding must be recorded"
    iteration, message = model.events_[0]
    assert iteration >= 1 and "component 2" in message
    # Re-seeded at a data point: the mean is back among the data.
    assert np.all(np.abs(model.means_[2]) < 10.0)


def test_a_collapsing_component_is_reseeded_and_recorded():
    # Without regularisation, a component that owns a single isolated row collapses onto it.
    X = np.vstack([tight_pair(), [[20.0, -20.0]]])
    model = GaussianMixture(3, means_init=[[0.0, 0.0], [5.0, 5.0], [20.0, -20.0]],
                            precisions_init=np.stack([np.eye(2) * 100.0] * 3), reg_covar=0.0,
                            max_iter=20, tol=0.0).fit(X)
    assert_no_nan(model)
    assert_valid_parameters(model, 3, 2)
    assert any("component 2" in message for _, message in model.events_)


# ---------------------------------------------------------------------- precision, warm start
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_log_likelihood_close_to_float64(covariance_type):
    X = three_clusters()
    settings = dict(covariance_type=covariance_type, max_iter=10, tol=0.0,
                    **fixed_start(covariance_type))
    single = GaussianMixture(3, dtype=np.float32, **settings).fit(X)
    double = GaussianMixture(3, dtype=np.float64, **settings).fit(X)
    assert single.lower_bound_ == pytest.approx(double.lower_bound_, rel=1e-5)
    np.testing.assert_allclose(single.history_, double.history_, rtol=1e-5)
    np.testing.assert_allclose(single.means_, double.means_, rtol=1e-4, atol=1e-4)


# (data seed, fit seed, rows) of the contract data on which float32 EM lowered the objective
# before the fixes: a start whose covariance came out of float32 moments below reg_covar, and
# components collapsing onto two rows, whose smallest eigenvalue float32 products cannot resolve.
FLOAT32_DECREASES = [(130522, 1680, 60), (1552736674, 1798233327, 106),
                     (2419383747, 1342709268, 12), (3407191244, 754666052, 15)]


@pytest.mark.parametrize(("data_seed", "fit_seed", "n_rows"), FLOAT32_DECREASES)
def test_float32_em_never_lowers_the_objective(data_seed, fit_seed, n_rows):
    from contracts.registry import two_gaussian_clusters
    from emkit import fit_em
    from emkit.models.mixture import GaussianMixtureModel

    X = two_gaussian_clusters(np.random.default_rng(data_seed), n_rows)
    model = GaussianMixtureModel(2, "full", dtype=np.float32)
    result = fit_em(model, X, random_state=fit_seed, tol=0.0, max_iter=40, decrease_rtol=1e-6,
                    warn_not_converged=False)
    assert result.decreases == ()
    history = result.history
    assert np.all(np.diff(history) >= -1e-6 * np.abs(history[1:]))
    smallest = np.linalg.eigvalsh(result.params.components.covariances)[:, 0]
    assert np.all(smallest >= model.family.reg_covar * (1 - 1e-9))


def test_float32_moments_of_an_ill_conditioned_component_are_float64(monkeypatch):
    from emkit.families.gaussian import GaussianFamily, GaussianParams
    from emkit.kernels import tiers

    # the compiled loops' policy (the numpy forms sum everything in float64)
    monkeypatch.setattr(tiers, "MODE", "compiled")

    rng = np.random.default_rng(0)
    # Component 0 is two rows (its covariance is rank one plus reg_covar), component 1 a cloud.
    X = np.vstack([[[1.0, 2.0], [1.5, 2.7]], rng.normal(size=(40, 2))])
    weights = np.zeros((len(X), 2))
    weights[:2, 0] = 1.0
    weights[2:, 1] = 1.0
    params = GaussianParams(np.array([[1.2, 2.3], [0.0, 0.0]]), np.stack([np.eye(2)] * 2),
                            np.stack([np.eye(2)] * 2))
    single = GaussianFamily("full", 1e-6, np.float32).statistics(params, X, weights)
    double = GaussianFamily("full", 1e-6, np.float64).statistics(
        GaussianParams(*(np.asarray(a, np.float32).astype(np.float64) for a in params)),
        X.astype(np.float32).astype(np.float64), weights)
    np.testing.assert_array_equal(single.second[0], double.second[0])  # summed in float64
    assert not np.array_equal(single.second[1], double.second[1])  # float32 where it is safe
    np.testing.assert_allclose(single.second[1], double.second[1], rtol=1e-5)


def test_warm_start_continues_from_the_previous_parameters():
    X = three_clusters()
    start = fixed_start("full")
    # plain EM: SQUAREM's cycles would break differently at the restart
    warm = GaussianMixture(3, warm_start=True, max_iter=5, tol=0.0, accelerate=None, **start)
    first_history = warm.fit(X).history_
    second_history = warm.fit(X).history_
    straight = GaussianMixture(3, max_iter=10, tol=0.0, accelerate=None, **start).fit(X)
    # The second fit starts where the first ended; together they are ten iterations.
    assert second_history[0] == pytest.approx(first_history[-1], rel=1e-12)
    np.testing.assert_allclose(np.r_[first_history, second_history[1:]], straight.history_,
                               rtol=1e-12)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(warm, name), getattr(straight, name), rtol=1e-10,
                                   err_msg=name)


def test_without_warm_start_a_refit_starts_over():
    X = three_clusters()
    model = GaussianMixture(3, max_iter=5, tol=0.0, **fixed_start("full"))
    first = model.fit(X).history_
    np.testing.assert_array_equal(model.fit(X).history_, first)


# ---------------------------------------------------------------------- SQUAREM and annealing
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_squarem_reaches_the_same_optimum_in_fewer_iterations(covariance_type):
    X = three_clusters()
    settings = dict(covariance_type=covariance_type, max_iter=5000, tol=1e-11,
                    **fixed_start(covariance_type))
    plain = GaussianMixture(3, accelerate=None, **settings).fit(X)
    fast = GaussianMixture(3, accelerate="squarem", **settings).fit(X)
    assert plain.converged_ and fast.converged_
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-8)
    np.testing.assert_allclose(np.sort(fast.means_, axis=0), np.sort(plain.means_, axis=0),
                               rtol=1e-3, atol=1e-3)
    assert fast.n_iter_ < plain.n_iter_
    assert np.all(np.diff(fast.history_) >= -1e-10 * np.abs(fast.history_[1:]))


def test_annealing_runs_and_reaches_the_optimum():
    X = two_clusters()
    inverse_temperatures = [0.3, 0.6]
    annealed = GaussianMixture(2, annealing=inverse_temperatures, random_state=0, tol=1e-8,
                               max_iter=500).fit(X)
    plain = GaussianMixture(2, random_state=0, tol=1e-8, max_iter=500).fit(X)
    assert annealed.converged_
    assert_no_nan(annealed)
    assert annealed.lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-7)
    # After the tempered iterations (a few per temperature) plain EM never goes down.
    tail = annealed.history_[len(inverse_temperatures) * 5:]
    assert len(tail) >= 2
    assert np.all(np.diff(tail) >= -1e-10 * np.abs(tail[1:]))


def test_annealing_from_a_start_temperature_runs():
    X = three_clusters()
    model = GaussianMixture(3, annealing=2.0, random_state=0, max_iter=200, tol=1e-6).fit(X)
    assert_no_nan(model)
    assert_valid_parameters(model, 3, 2)


# ---------------------------------------------------------------------- model-choice criteria
# Free parameters for K = 3 components in D = 2 dimensions, counted by hand:
# K − 1 weights + K·D means + covariance entries.
PARAMETER_COUNTS = {
    "full": 2 + 6 + 3 * 3,  # three symmetric 2 × 2 matrices: 3 entries each
    "tied": 2 + 6 + 3,  # one symmetric 2 × 2 matrix
    "diag": 2 + 6 + 3 * 2,  # two variances per component
    "spherical": 2 + 6 + 3,  # one variance per component
}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_aic_icl_equal_their_formulas(covariance_type):
    X = three_clusters()
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    n = len(X)
    p = PARAMETER_COUNTS[covariance_type]
    log_joint = scipy_log_joint(model, X)
    log_likelihood = logsumexp(log_joint, axis=1).sum()
    posteriors = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    assert model.n_parameters() == p
    bic = -2 * log_likelihood + p * np.log(n)
    assert model.bic(X) == pytest.approx(bic, rel=1e-10)
    assert model.aic(X) == pytest.approx(-2 * log_likelihood + 2 * p, rel=1e-10)
    # ICL (Biernacki, Celeux & Govaert 2000): BIC plus the cost of the hard classification.
    icl = bic - 2 * np.log(posteriors.max(axis=1)).sum()
    assert model.icl(X) == pytest.approx(icl, rel=1e-10)
    assert model.icl(X) > model.bic(X)


# ---------------------------------------------------------------------- fitted attributes
def test_fit_predict_equals_predict_after_fit():
    X = three_clusters()
    model = GaussianMixture(3, random_state=0)
    labels = model.fit_predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    other = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, other.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_history_never_decreases(covariance_type):
    X = three_clusters()
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=300,
                            tol=1e-9, init_params="random", accelerate=None).fit(X)
    history = model.history_
    assert len(history) == model.n_iter_ + 1  # plain EM: one point per pass
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    assert history[-1] > history[0]


@pytest.mark.parametrize("max_iter", [3, 300])
def test_lower_bound_is_the_score_at_the_fitted_parameters(max_iter):
    X = three_clusters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=3 does not converge, on purpose
        model = GaussianMixture(3, random_state=0, max_iter=max_iter, tol=1e-8).fit(X)
    assert model.converged_ == (max_iter == 300)
    assert model.lower_bound_ == pytest.approx(model.score(X), rel=1e-12)
    assert model.history_[-1] == pytest.approx(model.score(X) * len(X), rel=1e-12)


# ---------------------------------------------------------------------- drop-in for scikit-learn
def test_convergence_warning_is_caught_by_sklearn_filters():
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    X = three_clusters()
    model = GaussianMixture(3, max_iter=1, tol=1e-12, random_state=0)
    with pytest.warns(SklearnConvergenceWarning):
        model.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", SklearnConvergenceWarning)
        model.fit(X)  # scikit-learn's filter silences emkit's warning
    assert not model.converged_


def test_max_iter_zero_returns_the_start_without_a_warning():
    X = three_clusters()
    start = fixed_start("full")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GaussianMixture(3, max_iter=0, **start).fit(X)
    assert model.n_iter_ == 0 and len(model.history_) == 1
    np.testing.assert_array_equal(model.means_, start["means_init"])


def test_verbose_prints_starts_and_every_interval_th_iteration(capsys):
    X = three_clusters()
    GaussianMixture(3, n_init=2, max_iter=5, tol=0.0, verbose=1, verbose_interval=2,
                    random_state=0).fit(X)
    block = ["Initialization {}", "  Iteration 2", "  Iteration 4",
             "Initialization did not converge."]
    expected = [line.format(0) for line in block] + [line.format(1) for line in block]
    assert capsys.readouterr().out.splitlines() == expected


def test_verbose_2_prints_times_changes_and_the_lower_bound(capsys):
    X = three_clusters()
    model = GaussianMixture(3, max_iter=200, tol=1e-3, verbose=2, verbose_interval=1,
                            random_state=0).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Initialization 0" and len(lines) == model.n_iter_ + 2
    changes = np.diff(model.history_) / len(X)
    for i, line in enumerate(lines[1:-1], start=1):
        match = re.fullmatch(r"  Iteration (\d+)\t time lapse (\S+)s\t ll change (\S+)", line)
        assert match and int(match[1]) == i and float(match[2]) >= 0
        assert float(match[3]) == pytest.approx(changes[i - 1], abs=1e-5)
    match = re.fullmatch(r"Initialization converged\. time lapse \S+s\t lower bound (\S+)\.",
                         lines[-1])
    assert match and float(match[1]) == pytest.approx(model.lower_bound_, abs=1e-5)


@pytest.mark.parametrize("settings", [{"verbose": -1}, {"verbose": "yes"},
                                      {"verbose": 1, "verbose_interval": 0}])
def test_bad_verbose_settings_are_refused(settings):
    from emkit.errors import ParameterError

    with pytest.raises(ParameterError, match="verbose"):
        GaussianMixture(2, **settings).fit(three_clusters())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_init_equal_to_the_own_start_changes_nothing(covariance_type):
    """What scikit-learn's test_gaussian_mixture_precisions_init_diag checks, with emkit's own
    k-means start: giving the precisions the initialisation would compute anyway yields the
    same fit in the same number of iterations."""
    X = three_clusters()
    # k-means, scikit-learn's start; the combined default ("auto") falls back to it when part
    # of the start is given.
    settings = dict(covariance_type=covariance_type, random_state=0, tol=1e-6,
                    init_params="kmeans")
    start = GaussianMixture(3, max_iter=0, **settings).fit(X)
    plain = GaussianMixture(3, **settings).fit(X)
    given = GaussianMixture(3, precisions_init=start.precisions_, **settings).fit(X)
    assert given.n_iter_ == plain.n_iter_ > 1
    np.testing.assert_allclose(given.precisions_cholesky_, plain.precisions_cholesky_,
                               rtol=1e-10)


def test_warm_started_single_iterations_converge_as_one_fit_does():
    """A warm start continues the same EM sequence, so the convergence test sees the objectives
    of the earlier fits: one-iteration fits in a loop stop where one long plain-EM fit does
    (a fit of fewer passes than one SQUAREM cycle runs plain EM)."""
    X = three_clusters()
    start = fixed_start("full")
    whole = GaussianMixture(3, tol=1e-8, accelerate=None, **start).fit(X)
    assert whole.converged_
    stepwise = GaussianMixture(3, tol=1e-8, max_iter=1, warm_start=True, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = 0
        while fits < 1000 and not (fits and stepwise.converged_):
            stepwise.fit(X)
            fits += 1
    assert stepwise.converged_
    assert abs(fits - whole.n_iter_) <= 1
    np.testing.assert_allclose(stepwise.means_, whole.means_, rtol=1e-6)


# ------------------------------------------------- reg_covar's inexact M-step, explained by Q
def _three_blobs():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(c, 1.0, (200, 2)) for c in ([0, 0], [6, 0], [0, 6])])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_expected_complete_log_likelihood_is_q_computed_row_by_row(covariance_type):
    """Q(θ') = Σ_i Σ_k r_ik(θ) [log π'_k + log N(x_i | μ'_k, Σ'_k)] + log prior, with the
    responsibilities of one E-step and the parameters of another fit, against scipy."""
    from emkit.data.chunks import Batch
    from emkit.models.mixture import GaussianMixtureModel, MixtureParams

    X = _three_blobs()
    fits = [GaussianMixture(3, covariance_type=covariance_type, random_state=seed,
                            max_iter=3).fit(X) for seed in (0, 1)]
    model = GaussianMixtureModel(3, covariance_type, reg_covar=1e-6)
    params = [MixtureParams(f.weights_, model.family.with_covariances(
        f.means_, f.covariances_)[0]) for f in fits]
    stats, _ = model.e_step(params[0], model.prepare(Batch(X, None, None))[0])
    resp = fits[0].predict_proba(X)
    other = fits[1]
    full_cov = {"full": lambda c, k: c[k], "tied": lambda c, k: c,
                "diag": lambda c, k: np.diag(c[k]), "spherical": lambda c, k: c[k] * np.eye(2)}
    log_joint = np.column_stack([
        np.log(other.weights_[k]) + multivariate_normal(
            other.means_[k], full_cov[covariance_type](other.covariances_, k)).logpdf(X)
        for k in range(3)])
    by_rows = float(np.sum(resp * log_joint)) + len(X) * np.log(2 * np.pi)  # D/2 · 2π per row
    assert model.expected_complete_log_likelihood(stats, params[1]) == pytest.approx(
        by_rows, rel=1e-9)


# A partition of _three_blobs() into eight clusters (an earlier hierarchical start), from which
# one component collapses.
_COLLAPSING_START = (
    "0001002000000000000131011000000101100103000000000200002000100000000012000200000200101000"
    "2200000200000200030003100000102200130000030000010003002002000001000010000000000001010013"
    "0100300000000020000000104444445444444444444444444444445444454441445444444445444444454444"
    "4444454444444454444444444444444544545444444454445444444444544444444444444444544445444445"
    "4444454444444444554445444444444444444454444444446666663666366666666666667666673667663666"
    "6666666766633663666666666676366636766666766666766737666367666666666667667636666766367766"
    "636336666733666667676666667666666666666666676666663676667636666666333666")


def test_a_decrease_explained_by_reg_covars_m_step_is_not_warned_about():
    """Eight components on three blobs: one collapses onto two rows, and reg_covar's M-step then
    lowers its own objective Q, and the log-likelihood by less (generalised EM's inequality).
    The fit records the decrease in its history but does not call it a defect."""
    from emkit.errors import LikelihoodDecreaseWarning

    X = _three_blobs()
    resp = np.eye(8)[[int(label) for label in _COLLAPSING_START]]
    for accelerate in (None, "squarem"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = GaussianMixture(8, resp_init=resp, accelerate=accelerate).fit(X)
        assert not [w for w in caught if issubclass(w.category, LikelihoodDecreaseWarning)]
        assert model.converged_
        if accelerate is None:
            assert np.min(np.diff(model.history_)) < -1e-5  # the decrease is real
