"""mclust's 14 covariance models (``emkit.families.parsimonious``) in ``GaussianMixture``.

The M-steps are checked against an independent minimiser of the same objective over each
model's own free parameters (volume, shape, orientation), which also counts them; EM with
them never lowers the likelihood; fitted covariances keep their model's constraints, with and
without SQUAREM; and the scikit-learn names are the models they alias.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from emkit import GaussianMixture
from emkit.errors import ParameterError
from emkit.families import parsimonious

MODELS = parsimonious.MODELS


def random_scatter(rng, n_components, n_features):
    """Positive definite scatter matrices of different sizes, shapes and orientations."""
    scatter = []
    for _ in range(n_components):
        root = rng.normal(size=(n_features, n_features)) * rng.uniform(0.3, 2.0)
        scatter.append(root @ root.T + 0.1 * np.eye(n_features))
    return np.array(scatter)


#: Covariances in any layout as (K, D, D) matrices.
full = parsimonious.as_matrices
in_layout = parsimonious.in_layout


def m_step(model, scatter, counts, rounds=1):
    """The model's M-step as (K, D, D) matrices, continued ``rounds`` times from its own result
    (the iterative models stop after a bounded number of rounds per call)."""
    kind = parsimonious.layout(model)
    given = np.diagonal(scatter, axis1=1, axis2=2).copy() if kind in ("spherical", "diag") \
        else scatter
    covariances = parsimonious.covariances(model, given, counts)
    for _ in range(rounds - 1):
        covariances = parsimonious.covariances(model, given, counts, covariances)
    return full(covariances, model, *scatter.shape[:2])


def objective(scatter, counts, covariances):
    """Σ_k n_k [log det Σ_k + tr(S_k Σ_k⁻¹)], written independently of the module."""
    traces = np.trace(np.linalg.solve(covariances, scatter), axis1=1, axis2=2)
    return float(counts @ (np.linalg.slogdet(covariances)[1] + traces))


def model_coordinates(model, covariances):
    """The free parameters of ``model`` around in-model ``covariances`` (K, D, D):
    Σ_k(θ) = e^{v_k} λ_k Q_k D_k diag(A_k e^{s_k}) D_kᵀ Q_kᵀ, with v (log volumes), s (log shapes,
    summing to 0) and Q (rotations, the Cayley transform of a skew matrix) each shared by all
    components when the model says Equal, one per component when Variable, absent when
    Identity. Returns the number of coordinates and θ ↦ (K, D, D)."""
    n_components, n_features = covariances.shape[:2]
    volume, shape, orientation = model
    if orientation == "V":
        diagonals, axes = np.linalg.eigh(covariances)
    else:
        base = np.linalg.eigh(covariances[0])[1] if orientation == "E" else np.eye(n_features)
        axes = np.repeat(base[None], n_components, axis=0)
        diagonals = np.einsum("kij,kil,klj->kj", axes, covariances, axes)
    volumes = np.exp(np.mean(np.log(diagonals), axis=1))
    shapes = diagonals / volumes[:, None]
    # An orthonormal basis of the vectors summing to 0 (log-shapes keep det A = 1).
    sum_zero = np.linalg.qr(np.column_stack([np.ones(n_features), np.eye(n_features)]))[0][:, 1:]
    sum_zero = sum_zero[:, : n_features - 1]
    rows, cols = np.triu_indices(n_features, 1)
    identity = np.eye(n_features)

    def count(letter, per):
        return 0 if letter == "I" else per * (1 if letter == "E" else n_components)

    sizes = (count(volume, 1), count(shape, n_features - 1), count(orientation, len(rows)))

    def build(theta):
        v, s, o = np.split(theta, np.cumsum(sizes)[:2])
        v = np.broadcast_to(v, (n_components,)) if sizes[0] else np.zeros(n_components)
        s = (np.broadcast_to(s.reshape(-1, n_features - 1), (n_components, n_features - 1))
             @ sum_zero.T) if sizes[1] else np.zeros((n_components, n_features))
        o = (np.broadcast_to(o.reshape(-1, len(rows)), (n_components, len(rows)))
             if sizes[2] else np.zeros((n_components, len(rows))))
        skew = np.zeros((n_components, n_features, n_features))
        skew[:, rows, cols] = o
        skew = skew - np.swapaxes(skew, 1, 2)
        rotation = np.linalg.solve(identity - skew, identity + skew) @ axes
        scale = np.exp(v)[:, None] * volumes[:, None] * shapes * np.exp(s)
        return np.einsum("kij,kj,klj->kil", rotation, scale, rotation)

    return sum(sizes), build


@pytest.mark.parametrize("model", MODELS)
def test_m_step_minimises_over_the_models_own_parameters(model):
    """Starting at the M-step's covariances, BFGS over the model's free parameters (and from
    a random point of the model) finds nothing lower: the M-step is the constrained
    minimiser. The coordinates are as many as mclust's count of covariance parameters."""
    rng = np.random.default_rng(MODELS.index(model))
    n_components, n_features = 3, 3
    scatter = random_scatter(rng, n_components, n_features)
    counts = rng.uniform(5.0, 40.0, n_components)
    result = m_step(model, scatter, counts, rounds=400)
    size, build = model_coordinates(model, result)
    assert size == parsimonious.n_covariance_parameters(model, n_components, n_features)
    assert np.allclose(build(np.zeros(size)), result, rtol=1e-10, atol=1e-12)
    at_result = objective(scatter, counts, result)
    for start in (np.zeros(size), rng.normal(0.0, 0.5, size)):
        found = optimize.minimize(lambda theta: objective(scatter, counts, build(theta)),
                                  start, method="BFGS")
        assert at_result <= found.fun + 1e-8 * abs(at_result), (model, at_result, found.fun)


@pytest.mark.parametrize("model", MODELS)
def test_m_step_from_previous_never_increases_the_objective(model):
    """A single bounded M-step started from in-model covariances ends no higher than them,
    whatever the new scatter (what makes EM with the iterative M-steps monotone)."""
    rng = np.random.default_rng(100 + MODELS.index(model))
    n_components, n_features = 4, 3
    counts = rng.uniform(5.0, 40.0, n_components)
    previous = m_step(model, random_scatter(rng, n_components, n_features), counts, rounds=3)
    kind = parsimonious.layout(model)
    stored = {"spherical": previous[:, 0, 0], "diag": np.diagonal(previous, axis1=1, axis2=2),
              "tied": previous[0], "full": previous}[kind]
    for _ in range(5):
        scatter = random_scatter(rng, n_components, n_features)
        given = np.diagonal(scatter, axis1=1, axis2=2).copy() if kind in ("spherical", "diag") \
            else scatter
        new = full(parsimonious.covariances(model, given, counts, stored), model, n_components,
                   n_features)
        assert objective(scatter, counts, new) <= objective(scatter, counts, previous) + 1e-10


def three_clusters(rng, n_rows=180):
    """Three overlapping 3-D clusters of different volumes, shapes and orientations."""
    parts = []
    for k, size in enumerate((n_rows // 3, n_rows // 3, n_rows - 2 * (n_rows // 3))):
        root = rng.normal(size=(3, 3)) * (0.5 + 0.5 * k)
        parts.append(rng.normal(size=(size, 3)) @ root + 2.0 * rng.normal(size=3))
    return rng.permutation(np.vstack(parts))


@pytest.mark.parametrize("model", MODELS)
def test_em_never_lowers_the_likelihood(model):
    """reg_covar=0 (the M-step is then exact, as in the contract tests), from random
    responsibilities so that EM runs many iterations."""
    X = three_clusters(np.random.default_rng(7))
    fit = GaussianMixture(3, covariance_type=model, reg_covar=0.0, init_params="random",
                          max_iter=300, tol=1e-10, random_state=1).fit(X)
    history = np.asarray(fit.history_)
    assert len(history) > 10
    steps = np.diff(history)
    assert np.all(steps >= -1e-10 * np.abs(history[1:])), steps.min()
    assert not fit.events_


def check_constraints(model, covariances):
    """Equal volumes / shapes / orientations where the model says so, diagonal where it says
    Identity orientation, spherical where it says Identity shape."""
    n_components, n_features = covariances.shape[:2]
    volume, shape, orientation = model
    log_volumes = np.linalg.slogdet(covariances)[1] / n_features
    if volume == "E":
        assert np.ptp(log_volumes) < 1e-8
    off_diagonal = covariances - np.einsum("kii->ki", covariances)[:, :, None] * np.eye(
        n_features)
    scale = np.abs(covariances).max()
    if orientation == "I":
        assert np.abs(off_diagonal).max() <= 1e-12 * scale
    if shape == "I":
        assert np.allclose(covariances, np.exp(log_volumes)[:, None, None] * np.eye(n_features),
                           rtol=1e-8)
    normalised = covariances / np.exp(log_volumes)[:, None, None]
    if shape == "E" and orientation == "E":
        assert np.allclose(normalised, normalised[0], rtol=1e-6, atol=1e-8 * scale)
    if orientation == "E":  # one set of axes: the matrices commute
        for k in range(1, n_components):
            product = covariances[0] @ covariances[k]
            assert np.allclose(product, product.T, rtol=1e-6, atol=1e-8 * np.abs(product).max())
    if shape == "E":  # the same eigenvalues after dividing out the volume
        values = np.linalg.eigvalsh(normalised)
        assert np.allclose(values, values[0], rtol=1e-6)


@pytest.mark.parametrize("accelerate", [None, "squarem"])
@pytest.mark.parametrize("model", MODELS)
def test_fitted_covariances_keep_the_model(model, accelerate):
    """Also with SQUAREM, whose extrapolations in log-Cholesky coordinates leave the models
    with a common shape or orientation (they are projected back)."""
    X = three_clusters(np.random.default_rng(3))
    fit = GaussianMixture(3, covariance_type=model, accelerate=accelerate, random_state=0,
                          init_params="kmeans").fit(X)
    assert fit.converged_
    covariances = full(fit.covariances_, model, 3, 3)
    check_constraints(model, covariances)
    assert np.all(np.diff(fit.history_) >= -1e-9 * np.abs(fit.history_[1:]))


@pytest.mark.parametrize("alias, model", sorted(parsimonious.ALIASES.items()))
def test_scikit_learn_names_are_the_models_they_alias(alias, model):
    X = three_clusters(np.random.default_rng(5))
    by_alias = GaussianMixture(3, covariance_type=alias, random_state=0).fit(X)
    by_model = GaussianMixture(3, covariance_type=model, random_state=0).fit(X)
    shape = {"full": (3, 3, 3), "tied": (3, 3), "diag": (3, 3), "spherical": (3,)}[alias]
    assert by_alias.covariances_.shape == by_model.covariances_.shape == shape
    assert by_alias.precisions_.shape == shape
    np.testing.assert_allclose(by_alias.covariances_, by_model.covariances_, rtol=1e-12)
    assert by_alias.n_parameters() == by_model.n_parameters()


@pytest.mark.filterwarnings("ignore::emkit.errors.ConvergenceWarning")  # 5 steps: not the point
def test_storage_shapes_of_the_new_models():
    X = three_clusters(np.random.default_rng(5))
    for model, shape in [("EII", (3,)), ("EEI", (3, 3)), ("VEI", (3, 3)), ("EVI", (3, 3)),
                         ("VEE", (3, 3, 3)), ("EVV", (3, 3, 3))]:
        fit = GaussianMixture(3, covariance_type=model, random_state=0, max_iter=5).fit(X)
        assert fit.covariances_.shape == fit.precisions_.shape == shape
        samples, labels = fit.sample(50)
        assert samples.shape == (50, 3) and labels.shape == (50,)


def test_unknown_model_is_refused_with_the_list():
    with pytest.raises(ParameterError, match="VEV"):
        GaussianMixture(2, covariance_type="VVX").fit(np.random.default_rng(0).normal(
            size=(20, 2)))


@pytest.mark.parametrize("model", ["VEV", "EVE", "VEI"])
def test_missing_values_weights_and_float32(model):
    """The models go wherever the four do: rows with NaN (exact EM on the observed
    coordinates), sample weights (a weight of 2 is a repeated row) and a float32 E-step."""
    rng = np.random.default_rng(11)
    X = three_clusters(rng)
    gaps = X.copy()
    gaps[rng.uniform(size=X.shape) < 0.1] = np.nan
    fit = GaussianMixture(3, covariance_type=model, random_state=0, reg_covar=0.0,
                          init_params="kmeans").fit(gaps)
    assert np.all(np.diff(fit.history_) >= -1e-10 * np.abs(fit.history_[1:]))
    check_constraints(model, full(fit.covariances_, model, 3, 3))

    start = GaussianMixture(3, covariance_type=model, random_state=0, max_iter=0).fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, max_iter=50, tol=0.0)
    weights = rng.integers(1, 3, len(X))
    weighted = GaussianMixture(3, covariance_type=model, **init).fit(X, sample_weight=weights)
    repeated = GaussianMixture(3, covariance_type=model, **init).fit(np.repeat(X, weights, 0))
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-7)

    single = GaussianMixture(3, covariance_type=model, random_state=0,
                             dtype=np.float32).fit(X)
    double = GaussianMixture(3, covariance_type=model, random_state=0).fit(X)
    assert single.score(X) == pytest.approx(double.score(X), abs=1e-4)


def test_the_list_of_names_is_the_aliases_and_the_models():
    """``COVARIANCE_TYPES`` is written out (the command line reads it without importing)."""
    assert parsimonious.COVARIANCE_TYPES == tuple(parsimonious.ALIASES) + parsimonious.MODELS


def padding_matrices(rng, count, n_features):
    return random_scatter(rng, count, n_features).reshape(count, n_features, n_features)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("with_previous", [False, True])
def test_stacked_m_step_is_each_mixtures_own(model, with_previous):
    """Mixtures of 1 to 4 components, padded to 4 and stacked, get the covariances each gets
    alone: the padding changes nothing, and each iterative M-step stops by its own rule."""
    rng = np.random.default_rng(7)
    n_features, K = 3, 4
    kind = parsimonious.layout(model)
    diagonal = kind in ("spherical", "diag")
    alone, scatters, counts, previous = [], [], [], []
    for n_components in range(1, K + 1):
        scatter = random_scatter(rng, n_components, n_features)
        count = rng.uniform(5, 50, n_components)
        given = np.diagonal(scatter, axis1=1, axis2=2).copy() if diagonal else scatter
        before = (parsimonious.covariances(model, given, rng.uniform(5, 50, n_components))
                  if with_previous else None)
        alone.append(full(parsimonious.covariances(model, given, count, before), model,
                          n_components, n_features))
        padding = K - n_components
        # padding: any positive definite matrices, with counts of 0
        scatters.append(np.concatenate([scatter, padding_matrices(rng, padding, n_features)]))
        counts.append(np.concatenate([count, np.zeros(padding)]))
        if with_previous:
            stored = full(before, model, n_components, n_features)
            previous.append(np.concatenate([stored, padding_matrices(rng, padding, n_features)]))
    scatters, counts = np.array(scatters), np.array(counts)
    present = counts > 0
    given = np.diagonal(scatters, axis1=2, axis2=3).copy() if diagonal else scatters
    if with_previous:
        previous = np.array(previous)
        previous = {"spherical": previous[:, :, 0, 0], "tied": previous[:, 0],
                    "diag": np.diagonal(previous, axis1=2, axis2=3)}.get(kind, previous)
    stacked = parsimonious.stacked_covariances(model, given, counts,
                                               previous if with_previous else None, present)
    for g, expected in enumerate(alone):
        np.testing.assert_allclose(full(stacked[g], model, K, n_features)[: g + 1], expected,
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model", ["VEI", "VEV", "VEE", "EVE", "VVE"])
@pytest.mark.parametrize("n_features", [1, 2, 3, 4])
def test_iterative_m_steps_agree_in_both_forms(model, n_features, monkeypatch):
    """The compiled loops of the iterative M-steps (emkit.kernels.parsimonious) and their
    numpy forms: the same covariances, from the pooled scatter and from previous ones."""
    from emkit.kernels import tiers

    rng = np.random.default_rng(n_features)
    scatter = np.array([random_scatter(rng, 4, n_features) for _ in range(3)])
    counts = rng.uniform(1, 30, size=(3, 4))
    counts[1, 3] = 0.0  # a padded component
    given = (np.diagonal(scatter, axis1=2, axis2=3).copy() if model == "VEI" else scatter)
    previous = parsimonious.stacked_covariances(model, given, rng.uniform(1, 30, (3, 4)))
    results = {}
    for form in ("numpy", "compiled"):
        monkeypatch.setattr(tiers, "MODE", form)
        results[form] = [parsimonious.stacked_covariances(model, given, counts, before,
                                                          counts > 0)
                         for before in (None, previous)]
    for numpy_form, compiled in zip(results["numpy"], results["compiled"], strict=True):
        np.testing.assert_allclose(compiled, numpy_form, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_features", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("with_previous", [False, True])
def test_a_stack_of_every_model_has_each_mixtures_own_m_step_in_both_forms(
        n_features, with_previous, monkeypatch):
    """A grid's M-step (BatchedGaussianMixtureModel with a model per group, some mixtures
    padded): compiled in one loop over the stack, and in numpy model by model, every group's
    covariances are those of its own mixture's M-step alone."""
    from emkit.kernels import tiers
    from emkit.models.batched_gaussian import BatchedGaussianMixtureModel

    rng = np.random.default_rng(10 + n_features)
    K = 4
    models = [model for model in MODELS for _ in range(2)]
    G = len(models)
    present = np.arange(K) < np.where(np.arange(G) % 2, K, 2)[:, None]  # every other: K = 2
    scatter = np.array([random_scatter(rng, K, n_features) for _ in range(G)])
    counts = np.where(present, rng.uniform(1, 30, size=(G, K)), 0.0)
    previous = np.array([m_step(model, random_scatter(rng, K, n_features), counts[g] + 1)
                         for g, model in enumerate(models)])
    stack = BatchedGaussianMixtureModel(K, "full", 1e-6, 1e-6, np.ones(G), None,
                                        models=models, present=present)
    rows = np.arange(G)
    results = {}
    for form in ("numpy", "compiled"):
        monkeypatch.setattr(tiers, "MODE", form)
        results[form] = stack._constrained(scatter.copy(), counts, previous if with_previous
                                           else None, rows, present)
    for g, model in enumerate(models):
        k = present[g]
        kind = parsimonious.layout(model)
        diagonal = kind in ("spherical", "diag")
        given = np.diagonal(scatter[g][k], axis1=1, axis2=2) if diagonal else scatter[g][k]
        before = None
        if with_previous:
            before = in_layout(previous[g][k], model)
        alone = full(parsimonious.covariances(model, given, counts[g][k], before), model,
                     int(k.sum()), n_features)
        for form, stacked in results.items():
            np.testing.assert_allclose(stacked[g][k], alone, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{model} ({form})")
            assert np.all(stacked[g][~k] == np.eye(n_features))  # padding: the identity


@pytest.mark.parametrize("model", ["VEV", "VEE", "EVV"])
def test_the_compiled_m_step_of_a_stack_gives_nan_for_a_mixture_with_bad_statistics(
        model, monkeypatch):
    """One mixture's bad statistics (a NaN, or a scatter that is not positive definite) make
    its covariances NaN (the caller's degeneracy test then keeps its previous ones), not an
    error, and leave the others alone."""
    from emkit.kernels import tiers
    from emkit.models.batched_gaussian import BatchedGaussianMixtureModel

    monkeypatch.setattr(tiers, "MODE", "compiled")
    rng = np.random.default_rng(3)
    scatter = np.array([random_scatter(rng, 3, 2) for _ in range(4)])
    scatter[1, 0, 0, 0] = np.nan
    scatter[2, 1] = -scatter[2, 1]
    stack = BatchedGaussianMixtureModel(3, "full", 1e-6, 1e-6, np.ones(4), None,
                                        models=[model, model, model, "EVE"])
    out = stack._constrained(scatter, np.ones((4, 3)), None, np.arange(4),
                             np.ones((4, 3), dtype=bool))
    assert np.isnan(out[1]).all()
    if model != "VEV":  # (a negative definite scatter has its eigen-decomposition)
        assert np.isnan(out[2]).all()
    assert np.isfinite(out[[0, 3]]).all()


@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 6, 10, 13])
def test_the_compiled_eigen_decomposition_is_lapacks(n_features):
    """The compiled M-steps' eigen-decomposition (Jacobi's up to 10-D, LAPACK's above):
    LAPACK's eigenvalues (ascending) to rounding, orthonormal eigenvectors that rebuild the
    matrix, on positive definite, indefinite, nearly singular and repeated-eigenvalue
    matrices."""
    from emkit.kernels.parsimonious import _symmetric_eigen

    rng = np.random.default_rng(n_features)
    root = rng.normal(size=(n_features, n_features))
    orthogonal = np.linalg.qr(root)[0]
    matrices = [random_scatter(rng, 1, n_features)[0], root + root.T,
                orthogonal @ np.diag(np.logspace(-12, 2, n_features)) @ orthogonal.T,
                orthogonal @ np.diag([3.0] * (n_features - 1) + [1.0]) @ orthogonal.T,
                np.eye(n_features)]
    for matrix in matrices:
        values, vectors = np.empty(n_features), np.empty((n_features, n_features))
        _symmetric_eigen(matrix, values, vectors)
        scale = np.abs(matrix).max()
        np.testing.assert_allclose(values, np.linalg.eigvalsh(matrix), rtol=0,
                                   atol=1e-13 * scale)
        np.testing.assert_allclose(vectors.T @ vectors, np.eye(n_features), atol=1e-13)
        np.testing.assert_allclose((vectors * values) @ vectors.T, matrix, rtol=0,
                                   atol=1e-13 * scale)
