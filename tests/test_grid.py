"""mclust's grid fitted as one stack (emkit.estimators.grid, select_model's default path).

- Under plain EM, each (model, K) group of a stack — every one of the 14 covariance models,
  groups of fewer components padded — follows GaussianMixture(accelerate=None) from the same
  start step for step: the same number of iterations, log-likelihood and parameters.
- Under SQUAREM, each group reaches plain EM's maximum (within the convergence tolerance) and
  keeps its model's constraints (equal volumes, shapes, orientations; diagonal, spherical)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from emkit import datasets
from emkit.estimators.batched import fit_stack, stack_params
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.families.gaussian import covariances_from_precisions
from emkit.families.parsimonious import MODELS, layout
from emkit.models.batched_gaussian import GroupedRows, precision_cholesky

FAITHFUL = datasets.load("faithful").data
IRIS = load_iris().data
# The groups of a stack, out of order: the padded groups are first and last.
GROUP_KS = (2, 3, 1)
K_MAX = max(GROUP_KS)
TOL = 1e-6


@pytest.fixture(params=["faithful", "iris"])
def X(request):
    return {"faithful": FAITHFUL, "iris": IRIS}[request.param]


def _as_matrices(covariances, kind: str, K: int, D: int) -> np.ndarray:
    """Covariances in a layout ((K,), (K, D), (D, D) or (K, D, D)) as (K, D, D) matrices."""
    covariances = np.asarray(covariances, dtype=float)
    if kind == "spherical":
        return covariances[:, None, None] * np.eye(D)
    if kind == "diag":
        return covariances[:, :, None] * np.eye(D)
    if kind == "tied":
        return np.repeat(covariances[None], K, axis=0)
    return covariances


def _start(X, model: str, K: int) -> dict:
    """A rough start in the model's constraints (one EM step from k-means++ seeds), as
    GaussianMixture's weights/means/precisions_init."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one step does not converge
        fit = GaussianMixture(K, covariance_type=model, max_iter=1, init_params="k-means++",
                              random_state=0).fit(X)
    return dict(weights_init=fit.weights_, means_init=fit.means_,
                precisions_init=fit.precisions_)


def _fit_stack(X, model: str, starts: list[dict], accelerate):
    """The groups of GROUP_KS from ``starts``, one stack of full matrices padded to K_MAX
    components (weight 0, mean 0, identity covariance)."""
    G, D = len(GROUP_KS), X.shape[1]
    weights = np.zeros((G, K_MAX))
    means = np.zeros((G, K_MAX, D))
    covariances = np.broadcast_to(np.eye(D), (G, K_MAX, D, D)).copy()
    for g, (K, start) in enumerate(zip(GROUP_KS, starts, strict=True)):
        weights[g, :K] = start["weights_init"]
        means[g, :K] = start["means_init"]
        kind = layout(model)
        covariances[g, :K] = _as_matrices(
            covariances_from_precisions(start["precisions_init"], kind), kind, K, D)
    P, bad = precision_cholesky(covariances, "full")
    assert not bad.any()
    present = np.arange(K_MAX) < np.array(GROUP_KS)[:, None]
    rows = GroupedRows(np.ascontiguousarray(np.broadcast_to(X, (G,) + X.shape)),
                       np.ones((G, len(X))))
    return fit_stack(rows, stack_params(weights, means, covariances, P),
                     np.full(G, float(len(X))), K_MAX, "full", 1e-6, TOL, 1000, accelerate,
                     np.array([model] * G), present)


def _violations(model: str, S: np.ndarray) -> dict[str, float]:
    """How far the covariances S (K, D, D) are from the constraints of ``model`` (0 when
    kept exactly): with Σ_k = λ_k C_k, det C_k = 1 — equal volumes λ_k (E..), equal shapes
    (sorted eigenvalues of C_k, .E.), the identity shape (.I.), diagonal matrices (..I), a
    common orientation (..E: the Σ_k commute) and, for EEE and VEE, equal C_k."""
    D = S.shape[-1]
    volumes = np.linalg.det(S) ** (1.0 / D)
    C = S / volumes[:, None, None]
    scale = np.abs(S).max()
    found = {}
    if model[0] == "E":
        found["equal volumes"] = np.ptp(volumes) / volumes.mean()
    if model[1] == "I":
        found["spherical"] = np.abs(C - np.eye(D)).max()
    if model[1] == "E":
        found["equal shapes"] = np.ptp(np.linalg.eigvalsh(C), axis=0).max()
    if model[2] == "I":
        found["diagonal"] = np.abs(S - S * np.eye(D)).max() / scale
    if model[2] == "E":
        found["common orientation"] = max(np.abs(a @ b - b @ a).max() for a in S
                                          for b in S) / scale**2
        if model[1] == "E":
            found["equal C_k"] = np.ptp(C, axis=0).max()
    return found


def _assert_constraints(model: str, S: np.ndarray, what: str):
    violations = {name: value for name, value in _violations(model, S).items()
                  if not value < 1e-9}
    assert not violations, f"{what}: {model}'s constraints broken: {violations}"


# ---------------------------------------------------------------------- one stack, 14 models
@pytest.mark.parametrize("model", MODELS)
def test_plain_em_each_group_equals_gaussian_mixture_from_the_same_start(model, X):
    n = len(X)
    starts = [_start(X, model, K) for K in GROUP_KS]
    stack = _fit_stack(X, model, starts, accelerate=None)
    assert stack.converged.all() and not stack.degenerate.any()
    # the start is rough: the K=3 fit iterates (iterative M-steps run many times)
    assert stack.n_iter[GROUP_KS.index(3)] > 5
    for g, (K, start) in enumerate(zip(GROUP_KS, starts, strict=True)):
        single = GaussianMixture(K, covariance_type=model, accelerate=None, **start).fit(X)
        what = f"{model}, K={K}"
        assert stack.n_iter[g] == single.n_iter_, what
        assert stack.log_likelihood[g] == pytest.approx(single.lower_bound_ * n, rel=1e-9), what
        np.testing.assert_allclose(stack.weights[g, :K], single.weights_, rtol=1e-7, atol=1e-9,
                                   err_msg=what)
        np.testing.assert_allclose(stack.means[g, :K], single.means_, rtol=1e-7, atol=1e-9,
                                   err_msg=what)
        np.testing.assert_allclose(
            stack.covariances[g, :K],
            _as_matrices(single.covariances_, layout(model), K, X.shape[1]),
            rtol=1e-7, atol=1e-9, err_msg=what)
        # the padding takes no part: no weight, and the group's own weights sum to 1
        np.testing.assert_array_equal(stack.weights[g, K:], 0.0)
        assert stack.weights[g].sum() == pytest.approx(1.0, abs=1e-12)
        _assert_constraints(model, stack.covariances[g, :K], what)


@pytest.mark.parametrize("model", MODELS)
def test_squarem_reaches_plain_em_maximum_within_the_constraints(model, X):
    n = len(X)
    starts = [_start(X, model, K) for K in GROUP_KS]
    plain = _fit_stack(X, model, starts, accelerate=None)
    fast = _fit_stack(X, model, starts, accelerate="squarem")
    assert fast.converged.all() and not fast.degenerate.any()
    for g, K in enumerate(GROUP_KS):
        what = f"{model}, K={K}"
        assert fast.log_likelihood[g] >= plain.log_likelihood[g] - TOL * n, (
            what, fast.log_likelihood[g], plain.log_likelihood[g])
        np.testing.assert_array_equal(fast.weights[g, K:], 0.0)
        assert fast.weights[g].sum() == pytest.approx(1.0, abs=1e-12)
        _assert_constraints(model, fast.covariances[g, :K], what)


def test_the_constraint_check_sees_an_unconstrained_fit():
    # VVV's three covariances on faithful keep none of the other models' constraints, so
    # the checks above can fail.
    starts = [_start(FAITHFUL, "VVV", K) for K in GROUP_KS]
    stack = _fit_stack(FAITHFUL, "VVV", starts, accelerate=None)
    S = stack.covariances[GROUP_KS.index(3)]
    for model in MODELS[:-1]:
        assert max(_violations(model, S).values()) > 1e-3, model
