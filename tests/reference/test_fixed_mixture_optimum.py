"""FixedMixture's optimum against an independent convex solver, and the KKT conditions.

The reference maximises F(λ) = Σ_i w_i log (L λ)_i + Σ_j (α_j − 1) log λ_j over the simplex with
scipy's SLSQP (which finds the support), then polishes on that support with Newton's method on
the exact Hessian in the coordinates (λ_1 … λ_{k−1}), λ_k = 1 − Σ — no EM anywhere. The
optimum is unique here (the supported columns are linearly independent), so the weights must
agree to 1e-8. KKT for the concave problem: the mean posterior ratio
g_j = (1/Σw) Σ_i w_i L_ij / (L λ)_i is 1 where λ_j > 0 and at most 1 where λ_j = 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import optimize

from emkit import FixedMixture


def reference_optimum(L: np.ndarray, w: np.ndarray, alpha: np.ndarray | None = None
                      ) -> np.ndarray:
    """argmax over the simplex of Σ w log(Lλ) + Σ (α−1) log λ (SLSQP, then Newton)."""
    M = L.shape[1]
    extra = np.zeros(M) if alpha is None else alpha - 1.0
    total = w.sum()

    def negative(lam):
        lam = np.maximum(lam, 1e-300)
        p = L @ lam
        value = w @ np.log(p) + extra @ np.log(lam)
        gradient = (w / p) @ L + extra / lam
        return -value / total, -gradient / total

    start = np.full(M, 1.0 / M)
    result = optimize.minimize(negative, start, jac=True, method="SLSQP",
                               bounds=[(0.0, 1.0)] * M,
                               constraints=[{"type": "eq", "fun": lambda lam: lam.sum() - 1.0,
                                             "jac": lambda lam: np.ones(M)}],
                               options={"ftol": 1e-15, "maxiter": 1000})
    lam = np.clip(result.x, 0.0, None)
    support = np.flatnonzero(lam > 1e-5)
    return _newton_on_support(L, w, extra, lam / lam.sum(), support)


def _newton_on_support(L, w, extra, lam, support):
    k = len(support)
    A = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])  # λ_S = A x + e_k
    x = lam[support][:-1].copy()
    Ls, es = L[:, support], extra[support]

    def value_grad_hess(x):
        ls = A @ x
        ls[-1] += 1.0
        p = Ls @ ls
        value = w @ np.log(p) + es @ np.log(ls)
        g = (w / p) @ Ls + es / ls
        H = -(Ls * (w / p**2)[:, None]).T @ Ls - np.diag(es / ls**2)
        return value, A.T @ g, A.T @ H @ A, ls

    for _ in range(100):
        value, grad, hess, ls = value_grad_hess(x)
        if np.max(np.abs(grad)) < 1e-12 * w.sum():
            break
        step = np.linalg.solve(hess, -grad)
        t = 1.0
        while True:  # backtracking: stay inside the simplex and never go down
            candidate = A @ (x + t * step)
            candidate[-1] += 1.0
            if np.all(candidate > 0) and value_grad_hess(x + t * step)[0] >= value - 1e-12:
                break
            t /= 2
        x = x + t * step
    out = np.zeros(L.shape[1])
    out[support] = value_grad_hess(x)[3]
    return out


def posterior_ratio(L: np.ndarray, w: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return ((w / (L @ lam)) @ L) / w.sum()


def problem(seed: int, n: int = 400, M: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Random positive likelihoods plus a dominated column (half of column 0: weight 0 at the
    optimum, ratio 1/2) and a column no row supports (all zero)."""
    rng = np.random.default_rng(seed)
    L = rng.gamma(2.0, size=(n, M)) * rng.uniform(0.2, 1.0, M)
    L[rng.uniform(size=(n, M)) < 0.3] = 0.0  # sparse-ish: many rows ignore some models
    L[:, 0] += 0.05  # every row explained
    L = np.column_stack([L, 0.5 * L[:, 0], np.zeros(n)])
    return L, rng.uniform(0.5, 2.0, n)


TIGHT = dict(tol=1e-15, weights_tol=1e-13, max_iter=20000)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimum_equals_convex_solver_and_kkt_holds(seed):
    L, w = problem(seed)
    fitted = FixedMixture(**TIGHT).fit(L, sample_weight=w)
    reference = reference_optimum(L, w)
    np.testing.assert_allclose(fitted.weights_, reference, rtol=0, atol=1e-8)
    assert fitted.converged_
    assert fitted.weights_[-1] == 0.0  # the unsupported model: exactly zero
    assert fitted.weights_[-2] < 1e-10  # the dominated one
    ratio = posterior_ratio(L, w, fitted.weights_)
    positive = fitted.weights_ > 1e-8
    np.testing.assert_allclose(ratio[positive], 1.0, atol=1e-8)
    assert np.all(ratio[~positive] <= 1.0 + 1e-8)
    np.testing.assert_allclose(ratio[-2], 0.5 * ratio[0], rtol=1e-12)
    # The objective at the optimum is the one the reference weights give.
    objective = w @ np.log(L @ reference)
    np.testing.assert_allclose(fitted.history_[-1], objective, rtol=1e-12)


def test_plain_em_reaches_the_same_optimum():
    L, w = problem(3, n=200, M=4)
    reference = reference_optimum(L, w)
    fitted = FixedMixture(accelerate=None, **TIGHT).fit(L, sample_weight=w)
    np.testing.assert_allclose(fitted.weights_, reference, rtol=0, atol=1e-8)


def test_sparse_and_log_input_reach_the_same_optimum():
    L, w = problem(4)
    reference = reference_optimum(L, w)
    sparse = FixedMixture(**TIGHT).fit(sp.csr_matrix(L), sample_weight=w)
    np.testing.assert_allclose(sparse.weights_, reference, rtol=0, atol=1e-8)
    # Log-likelihoods 1000 below the likelihoods' scale: exp() underflows to 0 everywhere,
    # the per-row log-sum-exp does not.
    with np.errstate(divide="ignore"):
        log_L = np.log(L) - 1000.0
    assert np.all(np.exp(log_L) == 0.0)
    logged = FixedMixture(log=True, **TIGHT).fit(log_L, sample_weight=w)
    np.testing.assert_allclose(logged.weights_, reference, rtol=0, atol=1e-8)
    np.testing.assert_allclose(logged.history_[-1], w @ np.log(L @ reference) - 1000 * w.sum(),
                               rtol=1e-12)


@pytest.mark.parametrize("alpha", [1.5, 4.0])
def test_map_equals_convex_solver(alpha):
    L, w = problem(5, n=150, M=5)
    L = L[:, :5]  # without the dominated copy and the empty column: independent columns
    concentration = np.linspace(alpha, alpha + 2.0, L.shape[1])
    fitted = FixedMixture(prior=concentration, **TIGHT).fit(L, sample_weight=w)
    reference = reference_optimum(L, w, concentration)
    np.testing.assert_allclose(fitted.weights_, reference, rtol=0, atol=1e-8)
    # MAP stationarity: Σ w L_ij/p_i + (α_j − 1)/λ_j is the same for every j.
    stationarity = (w / (L @ reference)) @ L + (concentration - 1) / reference
    np.testing.assert_allclose(stationarity, stationarity.mean(), rtol=1e-8)


def test_exponentiated_gradient_agrees():
    """A second independent method: mirror ascent (exponentiated gradient) with a fixed step,
    run to convergence, on a problem with an interior optimum."""
    rng = np.random.default_rng(6)
    L = rng.gamma(3.0, size=(300, 4)) + 0.1
    w = np.ones(300)
    lam = np.full(4, 0.25)
    for _ in range(20000):
        gradient = posterior_ratio(L, w, lam)
        lam = lam * np.exp(0.5 * (gradient - 1.0))
        lam /= lam.sum()
    assert np.max(np.abs(posterior_ratio(L, w, lam) - 1.0)) < 1e-12
    fitted = FixedMixture(**TIGHT).fit(L)
    np.testing.assert_allclose(fitted.weights_, lam, rtol=0, atol=1e-8)
