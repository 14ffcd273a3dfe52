"""emkit.GaussianMixture against scikit-learn's GaussianMixture started from the same point.

Both run exactly ten EM iterations (``tol=0``, ``max_iter=10``) from the same weights, means and
precisions, so the same arithmetic up to round-off must give the same parameters and the same
log-likelihood. scikit-learn is an independent implementation (raw data and responsibilities in
its M-step; emkit uses centred additive statistics and numba kernels).
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import emkit

FAITHFUL_CSV = Path(emkit.__file__).parent / "datasets" / "faithful.csv"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
RTOL = 1e-8


def faithful() -> np.ndarray:
    return np.loadtxt(FAITHFUL_CSV, delimiter=",", skiprows=1)


def synthetic_5d() -> np.ndarray:
    """Three overlapping 5-D Gaussian clusters with random correlated covariances."""
    rng = np.random.default_rng(20240501)
    parts = []
    for n_rows, shift in ((150, 0.0), (100, 2.5), (70, -2.0)):
        root = rng.normal(size=(5, 5)) * 0.6 + np.eye(5)
        parts.append(rng.normal(size=(n_rows, 5)) @ root + shift * rng.normal(size=5))
    return np.vstack(parts)


DATASETS = {"faithful": faithful, "synthetic_5d": synthetic_5d}


def starting_point(X: np.ndarray, n_components: int, covariance_type: str):
    """A deliberately rough start: data rows as means, unequal weights, the data's spread."""
    rng = np.random.default_rng(7)
    n_features = X.shape[1]
    means = X[rng.choice(len(X), n_components, replace=False)]
    weights = np.arange(1.0, n_components + 1.0)
    weights /= weights.sum()
    covariance = np.cov(X.T)
    precision = np.linalg.inv(covariance)
    if covariance_type == "full":
        precisions = np.stack([precision * (1.0 + 0.3 * k) for k in range(n_components)])
    elif covariance_type == "tied":
        precisions = precision
    elif covariance_type == "diag":
        precisions = np.stack([(1.0 + 0.3 * k) / np.diag(covariance)
                               for k in range(n_components)])
    else:
        precisions = (1.0 + 0.3 * np.arange(n_components)) * n_features / np.trace(covariance)
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def fit_both(X, n_components, covariance_type, **settings):
    emkit_model = emkit.GaussianMixture(n_components, covariance_type=covariance_type,
                                        accelerate=None,  # scikit-learn's plain EM steps
                                        **settings).fit(X)
    with pytest.warns(SklearnConvergenceWarning):  # tol=0: scikit-learn never calls it converged
        sklearn_model = SklearnGaussianMixture(n_components, covariance_type=covariance_type,
                                               **settings).fit(X)
    return emkit_model, sklearn_model


def assert_close(actual, expected, name):
    """Relative agreement, with the absolute slack scaled to the array (off-diagonal zeros)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=RTOL,
                               atol=RTOL * float(np.max(np.abs(expected))), err_msg=name)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_ten_iterations_from_the_same_start_match_sklearn(dataset, covariance_type):
    X = DATASETS[dataset]()
    n_components = 3
    start = starting_point(X, n_components, covariance_type)
    ours, theirs = fit_both(X, n_components, covariance_type, tol=0.0, max_iter=10, **start)

    assert ours.n_iter_ == theirs.n_iter_ == 10
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=RTOL, abs=0)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=RTOL)
    assert_close(ours.weights_, theirs.weights_, "weights_")
    assert_close(ours.means_, theirs.means_, "means_")
    assert_close(ours.covariances_, theirs.covariances_, "covariances_")
    assert_close(ours.precisions_cholesky_, theirs.precisions_cholesky_, "precisions_cholesky_")
    assert_close(ours.precisions_, theirs.precisions_, "precisions_")
    # The runs must really have moved: ten iterations change the log-likelihood markedly.
    assert ours.history_[-1] - ours.history_[0] > 1.0


def test_default_fit_on_faithful_reaches_sklearn_optimum():
    X = faithful()
    ours = emkit.GaussianMixture(2, n_init=5, random_state=0).fit(X)
    theirs = SklearnGaussianMixture(2, n_init=5, random_state=0).fit(X)
    assert ours.converged_ and theirs.converged_
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-6, abs=0)
    # Same optimum, up to the order of the components.
    order = np.argsort(ours.means_[:, 0])
    reference_order = np.argsort(theirs.means_[:, 0])
    np.testing.assert_allclose(ours.means_[order], theirs.means_[reference_order], rtol=1e-3)
    np.testing.assert_allclose(ours.weights_[order], theirs.weights_[reference_order], rtol=1e-3)


@pytest.mark.parametrize("max_iter", [0, 1, 4])
def test_n_iter_counts_em_iterations_as_sklearn(max_iter):
    """``n_iter_`` is the number of EM iterations (M-steps) of the best start in both
    libraries: 0 for ``max_iter=0`` (the start itself, no warning), ``max_iter`` when the limit
    is reached, with the same parameters after as many iterations."""
    X = faithful()
    start = starting_point(X, 2, "full")
    if max_iter == 0:  # scikit-learn cannot return a start given by its precisions unfitted
        start = {"means_init": start["means_init"]}
    settings = dict(max_iter=max_iter, tol=1e-12, **start)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Plain EM: with SQUAREM (the default) n_iter_ counts passes over the data.
        ours = emkit.GaussianMixture(2, accelerate=None, **settings).fit(X)
        theirs = SklearnGaussianMixture(2, **settings).fit(X)
    warned = [issubclass(w.category, SklearnConvergenceWarning) for w in caught]
    assert warned == ([] if max_iter == 0 else [True, True])
    assert ours.n_iter_ == theirs.n_iter_ == max_iter
    assert_close(ours.means_, theirs.means_, "means_")
    if max_iter:
        assert_close(ours.covariances_, theirs.covariances_, "covariances_")
