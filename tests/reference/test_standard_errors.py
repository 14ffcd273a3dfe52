"""Standard errors of GaussianMixture against independent references: a finite-difference Hessian
of the observed-data log-likelihood (written here with scipy's densities: in the same free
coordinates for the linear covariance models, in coordinates of its own — volumes, shapes,
Cayley rotations — for the eigendecomposition models), the closed forms of one Gaussian in
every model, and the binomial SE of well separated weights."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emkit
from emkit.errors import NotFittedError, NumericalError
from emkit.families.gaussian_information import (
    GaussianInformation,
    eigen_coordinates,
    full_covariances,
)
from emkit.families.parsimonious import MODELS, layout
from emkit.models.information import mixture_standard_errors
from finite_differences import hessian as finite_difference_hessian


def _covariances(theta, kind, K, D):
    """The K covariance matrices from the free coordinates of each covariance type."""
    rows, columns = np.triu_indices(D)

    def symmetric(entries):
        matrix = np.zeros((D, D))
        matrix[rows, columns] = entries
        matrix[columns, rows] = entries
        return matrix

    n_unique = D * (D + 1) // 2
    if kind == "full":
        return [symmetric(theta[k * n_unique:(k + 1) * n_unique]) for k in range(K)]
    if kind == "tied":
        return [symmetric(theta)] * K
    if kind == "diag":
        return [np.diag(theta[k * D:(k + 1) * D]) for k in range(K)]
    if kind == "EII":  # mclust: one variance shared by all components
        return [theta[0] * np.eye(D)] * K
    if kind == "EEI":  # mclust: one diagonal shared by all components
        return [np.diag(theta)] * K
    return [theta[k] * np.eye(D) for k in range(K)]


def _log_likelihood(vector, X, w, kind, K, D):
    free_weights = vector[:K - 1]
    weights = np.append(free_weights, 1 - free_weights.sum())
    means = vector[K - 1:K - 1 + K * D].reshape(K, D)
    covariances = _covariances(vector[K - 1 + K * D:], kind, K, D)
    log_joint = np.column_stack([
        np.log(weights[k]) + multivariate_normal(means[k], covariances[k]).logpdf(X)
        for k in range(K)])
    return float(w @ logsumexp(log_joint, axis=1))


def _vector(model):
    K, D = model.means_.shape
    cov = np.asarray(model.covariances_)
    kind = model.covariance_type
    if kind == "full":
        rows, columns = np.triu_indices(D)
        theta = np.concatenate([c[rows, columns] for c in cov])
    elif kind == "tied":
        rows, columns = np.triu_indices(D)
        theta = cov[rows, columns]
    elif kind in ("EII", "EEI"):  # stored per component, every component the shared value
        theta = np.atleast_1d(cov[0])
    else:
        theta = cov.ravel()
    return np.concatenate([model.weights_[:-1], model.means_.ravel(), theta])


def _reported_jacobian(model, n_free):
    """Reported (weights, means, covariances) from the free vector: the delta method's
    Jacobian, by the same finite differences (the maps are linear)."""
    K, D = model.means_.shape

    def reported(vector):
        weights = np.append(vector[:K - 1], 1 - vector[:K - 1].sum())
        covariances = np.asarray(_covariances(vector[K - 1 + K * D:], model.covariance_type,
                                              K, D))
        diagonals = np.diagonal(covariances, axis1=1, axis2=2)
        shaped = {"full": covariances, "tied": covariances[0], "diag": diagonals,
                  "EEI": diagonals, "spherical": covariances[:, 0, 0],
                  "EII": covariances[:, 0, 0]}[model.covariance_type]
        return np.concatenate([weights, vector[K - 1:K - 1 + K * D], shaped.ravel()])

    base = _vector(model)
    return np.column_stack([reported(base + e) - reported(base) for e in np.eye(n_free)])


def _overlapping(seed=0, n=240):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1.5]], n // 2),
                      rng.multivariate_normal([2.5, 1], [[0.8, -0.2], [-0.2, 0.6]], n // 2)])


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical", "EII", "EEI"])
def test_agree_with_a_finite_difference_hessian(kind):
    X = _overlapping()
    w = np.random.default_rng(1).integers(1, 4, len(X)).astype(float)
    model = emkit.GaussianMixture(2, covariance_type=kind, reg_covar=0, random_state=0,
                                  tol=1e-10).fit(X, sample_weight=w)
    K, D = model.means_.shape
    vector = _vector(model)
    hessian = finite_difference_hessian(
        lambda v: _log_likelihood(v, X, w, kind, K, D), vector)
    covariance = np.linalg.inv(-hessian)
    jacobian = _reported_jacobian(model, len(vector))
    expected = np.sqrt(np.diag(jacobian @ covariance @ jacobian.T))
    errors = model.standard_errors(X, sample_weight=w)
    got = np.concatenate([errors["weights"], errors["means"].ravel(),
                          errors["covariances"].ravel()])
    assert errors["covariances"].shape == np.shape(model.covariances_)
    np.testing.assert_allclose(got, expected, rtol=0.02)


def test_three_components_agree_with_a_finite_difference_hessian():
    """K = 3: two free weights, and π_3's error by the delta method."""
    rng = np.random.default_rng(7)
    X = np.vstack([_overlapping(seed=3, n=200), rng.normal([1.0, 4.0], 0.8, size=(100, 2))])
    model = emkit.GaussianMixture(3, reg_covar=0, random_state=0, tol=1e-10).fit(X)
    K, D = model.means_.shape
    w = np.ones(len(X))
    vector = _vector(model)
    hessian = finite_difference_hessian(
        lambda v: _log_likelihood(v, X, w, "full", K, D), vector)
    jacobian = _reported_jacobian(model, len(vector))
    expected = np.sqrt(np.diag(jacobian @ np.linalg.inv(-hessian) @ jacobian.T))
    errors = model.standard_errors(X)
    got = np.concatenate([errors["weights"], errors["means"].ravel(),
                          errors["covariances"].ravel()])
    np.testing.assert_allclose(got, expected, rtol=0.02)


def test_one_gaussian_has_the_closed_forms():
    X = np.random.default_rng(3).normal(5.0, 2.0, size=(400, 1))
    model = emkit.GaussianMixture(1, reg_covar=0).fit(X)
    variance = np.var(X)  # the MLE
    errors = model.standard_errors(X)
    np.testing.assert_allclose(errors["means"], [[np.sqrt(variance / 400)]], rtol=1e-9)
    np.testing.assert_allclose(errors["covariances"], [[[np.sqrt(2 * variance**2 / 400)]]],
                               rtol=1e-9)
    np.testing.assert_allclose(errors["weights"], [0.0], atol=1e-12)  # π = 1 is fixed


def test_one_gaussian_in_several_dimensions():
    rng = np.random.default_rng(4)
    X = rng.multivariate_normal([0, 1, 2], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], 300)
    model = emkit.GaussianMixture(1, reg_covar=0).fit(X)
    errors = model.standard_errors(X)
    sigma = np.cov(X.T, bias=True)
    np.testing.assert_allclose(errors["means"][0], np.sqrt(np.diag(sigma) / 300), rtol=1e-8)
    # Var(S_ab) = (σ_aa σ_bb + σ_ab²) / n for the MLE of a Gaussian covariance.
    expected = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma**2) / 300)
    np.testing.assert_allclose(errors["covariances"][0], expected, rtol=1e-8)


def test_well_separated_weights_have_the_binomial_error():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0, 1, 700), rng.normal(20, 1, 300)])[:, None]
    model = emkit.GaussianMixture(2, random_state=0, reg_covar=0).fit(X)
    p = model.weights_
    np.testing.assert_allclose(model.standard_errors(X)["weights"], np.sqrt(p * (1 - p) / 1000),
                               rtol=1e-6)


def test_integer_weights_are_repetitions():
    X = _overlapping(seed=2, n=120)
    counts = np.random.default_rng(6).integers(0, 3, len(X))
    model = emkit.GaussianMixture(2, random_state=0).fit(X, sample_weight=counts)
    weighted = model.standard_errors(X, sample_weight=counts)
    repeated = model.standard_errors(np.repeat(X, counts, axis=0))
    for name in weighted:
        np.testing.assert_allclose(weighted[name], repeated[name], rtol=1e-9)


def test_not_fitted_and_not_identified():
    X = _overlapping(n=100)
    with pytest.raises(NotFittedError):
        emkit.GaussianMixture(2).standard_errors(X)
    model = emkit.GaussianMixture(2, random_state=0).fit(X)
    # Two identical components: the data say nothing about how the weight is split.
    model.means_ = np.repeat(model.means_[:1], 2, axis=0)
    model.covariances_ = np.repeat(model.covariances_[:1], 2, axis=0)
    with pytest.raises(NumericalError, match=r"weights\[0\] is not identified"):
        model.standard_errors(X)


def test_missing_values_are_refused():
    X = _overlapping(n=100)
    model = emkit.GaussianMixture(2, random_state=0).fit(X)
    X[0, 0] = np.nan
    with pytest.raises(emkit.errors.DataError, match="missing values"):
        model.standard_errors(X)


@pytest.mark.parametrize("alias,model", [("full", "VVV"), ("tied", "EEE"), ("diag", "VVI"),
                                         ("spherical", "VII")])
def test_mclust_names_give_the_errors_of_their_scikit_learn_aliases(alias, model):
    X = _overlapping()
    fits = [emkit.GaussianMixture(2, covariance_type=kind, random_state=0, tol=1e-10).fit(X)
            for kind in (alias, model)]
    first, second = (fit.standard_errors(X) for fit in fits)
    for name in first:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-5)


@pytest.mark.parametrize("kind", ["EII", "VII", "EEI", "VVI", "EEE", "VVV"])
def test_the_eigendecomposition_chart_gives_the_errors_of_the_linear_maps(kind):
    """At a maximum the standard errors of the reported parameters do not depend on the free
    coordinates: the chart (log-volumes, log-shapes, rotations) and the entries agree."""
    X = _overlapping()
    model = emkit.GaussianMixture(2, covariance_type=kind, reg_covar=0, random_state=0,
                                  tol=1e-12).fit(X)
    K, D = model.means_.shape
    covariances = full_covariances(model.covariances_, layout(kind), K, D)
    chart = mixture_standard_errors(GaussianInformation(
        model.means_, covariances, eigen_coordinates(kind, covariances)), model.weights_, X)
    linear = model.standard_errors(X)
    for name in linear:
        np.testing.assert_allclose(chart[name], linear[name], rtol=1e-4)


@pytest.mark.parametrize("kind", MODELS)
def test_one_component_has_the_closed_forms_in_every_model(kind):
    """K = 1: every model is the full, diagonal or spherical Gaussian MLE, so SE(mean_d) =
    σ_d/√n and the covariances' errors are those of the sample (co)variances."""
    rng = np.random.default_rng(4)
    X = rng.multivariate_normal([0, 1, 2], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], 300)
    n = len(X)
    model = emkit.GaussianMixture(1, covariance_type=kind, reg_covar=0).fit(X)
    errors = model.standard_errors(X)
    sample = np.cov(X.T, bias=True)
    if kind[2] != "I":  # a full matrix: Var(S_ab) = (σ_aa σ_bb + σ_ab²) / n
        variances = np.diag(sample)
        expected = np.sqrt((np.outer(variances, variances) + sample**2) / n)
    elif kind[1] != "I":  # a diagonal: Var(s_d) = 2 σ_d⁴ / n
        variances = np.diag(sample)
        expected = np.sqrt(2 * variances**2 / n)[None]
    else:  # one variance, the mean of the three: Var = 2 σ⁴ / (n D)
        variances = np.full(3, np.mean(np.diag(sample)))
        expected = np.sqrt([2 * variances[0] ** 2 / (3 * n)])
    np.testing.assert_allclose(errors["means"][0], np.sqrt(variances / n), rtol=1e-6)
    np.testing.assert_allclose(errors["covariances"], np.reshape(
        expected, np.shape(errors["covariances"])), rtol=1e-6)


def test_an_orientation_without_distinct_axes_is_not_identified():
    """Components with a spherical shape: no rotation changes them, so the shared
    orientation of VEE is not identified, and the error names it."""
    X = _overlapping()
    model = emkit.GaussianMixture(2, covariance_type="VEE", random_state=0).fit(X)
    model.covariances_ = np.array([np.eye(2), 2 * np.eye(2)])
    with pytest.raises(NumericalError, match=r"orientation\[0, 1\] \(shared\) is not "
                                             r"identified"):
        model.standard_errors(X)


# ---------------------------------------------------------------- the eigendecomposition models
def _cayley(entries, D):
    """An orthogonal matrix from the upper-triangle entries of a skew matrix S:
    (I − S)⁻¹ (I + S), the identity at 0 (a chart of rotations other than emkit's exp(S))."""
    skew = np.zeros((D, D))
    skew[np.triu_indices(D, 1)] = entries
    skew -= skew.T
    return np.linalg.solve(np.eye(D) - skew, np.eye(D) + skew)


class _EigenChart:
    """Σ_k = λ_k Q_k R(S_k) diag(a_k) R(S_k)ᵀ Q_kᵀ in the test's own coordinates: volumes λ
    and the first D − 1 shape entries themselves (a_D = 1 / their product), Cayley rotations
    about frames of the fitted matrices found here (ascending eigenvalues)."""

    def __init__(self, model, covariances):
        self.model = model
        K, D, _ = covariances.shape
        self.K, self.D = K, D
        volume, shape, orientation = model
        if orientation == "I":
            self.frames = np.repeat(np.eye(D)[None], K, axis=0)
            values = np.diagonal(covariances, axis1=1, axis2=2)
        elif orientation == "E":
            frame = np.linalg.eigh(covariances[0])[1]
            self.frames = np.repeat(frame[None], K, axis=0)
            values = np.diagonal(frame.T @ covariances @ frame, axis1=1, axis2=2)
        else:
            values, self.frames = np.linalg.eigh(covariances)
        volumes = np.exp(np.log(values).mean(axis=1))
        shapes = values / volumes[:, None]
        n_own = {"E": 1, "V": K, "I": 0}
        self.sizes = [n_own[volume], n_own[shape] * (D - 1),
                      n_own[orientation] * D * (D - 1) // 2]
        self.start = np.concatenate([
            volumes[:self.sizes[0]], shapes[:n_own[shape], :D - 1].ravel(),
            np.zeros(self.sizes[2])])

    def matrices(self, theta):
        K, D = self.K, self.D
        volumes, shapes, angles = np.split(theta, np.cumsum(self.sizes)[:2])
        volumes = np.broadcast_to(volumes, K)
        if self.model[1] == "I":
            shapes = np.ones((1, D))
        else:
            shapes = shapes.reshape(-1, D - 1)
            shapes = np.column_stack([shapes, 1 / shapes.prod(axis=1)])
        angles = angles.reshape(-1, D * (D - 1) // 2)
        out = []
        for k in range(K):
            rotation = (self.frames[k] @ _cayley(angles[k % len(angles)], D) if len(angles)
                        else self.frames[k])
            out.append(volumes[k] * rotation @ np.diag(shapes[k % len(shapes)]) @ rotation.T)
        return np.array(out)


def _mixture_log_likelihood(X, w, weights, means, covariances):
    log_joint = np.column_stack([
        np.log(weights[k]) + multivariate_normal(means[k], covariances[k]).logpdf(X)
        for k in range(len(weights))])
    return float(w @ logsumexp(log_joint, axis=1))


def _delta_method(log_likelihood, reported, start):
    """Standard errors of reported(θ) from a finite-difference Hessian of the log-likelihood
    at θ = start and a central-difference Jacobian of reported."""
    covariance = np.linalg.inv(-finite_difference_hessian(log_likelihood, start))
    steps = 1e-6 * np.maximum(np.abs(start), 0.1)
    jacobian = np.column_stack([(reported(start + h * e) - reported(start - h * e)) / (2 * h)
                                for h, e in zip(steps, np.eye(len(start)), strict=True)])
    return np.sqrt(np.diag(jacobian @ covariance @ jacobian.T))


def _eigen_model_reference(model, X, w):
    """The standard errors of a fitted model's reported parameters, computed here."""
    K, D = model.means_.shape
    kind = model.covariance_type
    chart = _EigenChart(kind, np.asarray(model.covariances_) if np.ndim(model.covariances_) == 3
                        else np.array([np.diag(c) for c in model.covariances_]))
    start = np.concatenate([model.weights_[:-1], model.means_.ravel(), chart.start])

    def unpack(theta):
        weights = np.append(theta[:K - 1], 1 - theta[:K - 1].sum())
        means = theta[K - 1:K - 1 + K * D].reshape(K, D)
        return weights, means, chart.matrices(theta[K - 1 + K * D:])

    def reported(theta):
        weights, means, covariances = unpack(theta)
        stored = (np.diagonal(covariances, axis1=1, axis2=2) if np.ndim(model.covariances_) == 2
                  else covariances)
        return np.concatenate([weights, means.ravel(), stored.ravel()])

    return _delta_method(lambda theta: _mixture_log_likelihood(X, w, *unpack(theta)),
                         reported, start)


@pytest.mark.parametrize("kind", ["VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV"])
def test_eigendecomposition_models_agree_with_a_finite_difference_hessian(kind):
    X = _overlapping(n=160)
    w = np.random.default_rng(1).integers(1, 4, len(X)).astype(float)
    model = emkit.GaussianMixture(2, covariance_type=kind, reg_covar=0, random_state=0,
                                  tol=1e-12).fit(X, sample_weight=w)
    errors = model.standard_errors(X, sample_weight=w)
    assert errors["covariances"].shape == np.shape(model.covariances_)
    got = np.concatenate([errors["weights"], errors["means"].ravel(),
                          errors["covariances"].ravel()])
    np.testing.assert_allclose(got, _eigen_model_reference(model, X, w), rtol=0.02)


def test_three_dimensional_orientations_agree_with_a_finite_difference_hessian():
    """VEV in 3-D: three rotation angles per component."""
    rng = np.random.default_rng(11)
    X = np.vstack([rng.multivariate_normal([0, 0, 0], [[2, 0.6, 0.2], [0.6, 1, 0.1],
                                                        [0.2, 0.1, 0.5]], 100),
                   rng.multivariate_normal([3, 1, -1], [[1, -0.3, 0], [-0.3, 0.7, 0.2],
                                                         [0, 0.2, 1.5]], 100)])
    w = np.ones(len(X))
    model = emkit.GaussianMixture(2, covariance_type="VEV", reg_covar=0, random_state=0,
                                  tol=1e-12).fit(X)
    errors = model.standard_errors(X)
    got = np.concatenate([errors["weights"], errors["means"].ravel(),
                          errors["covariances"].ravel()])
    np.testing.assert_allclose(got, _eigen_model_reference(model, X, w), rtol=0.02)
