"""Compiled loops for Gaussian densities and statistics.

Each kernel fuses the element-wise work around a BLAS product so that the (rows × components ×
features) intermediates are touched once while they are in cache. Rows are split across threads;
sums over rows are accumulated per thread in float64 and added at the end.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)


@numba.njit(parallel=True, **_JIT)
def squared_norms_by_component(whitened, offsets, n_components):
    """out[b, k] = Σ_d (whitened[b, k·D + d] − offsets[k·D + d])², D = columns / n_components.

    ``whitened`` = X @ [P_1 … P_K] for precision Cholesky factors P_k, ``offsets`` = [μ_k P_k]:
    the result is the Mahalanobis distance of each row to each component.
    """
    n_rows, width = whitened.shape
    n_features = width // n_components
    out = np.empty((n_rows, n_components), dtype=whitened.dtype)
    for b in numba.prange(n_rows):
        for k in range(n_components):
            total = 0.0
            base = k * n_features
            for d in range(n_features):
                diff = whitened[b, base + d] - offsets[base + d]
                total += diff * diff
            out[b, k] = total
    return out


@numba.njit(parallel=True, **_JIT)
def weighted_deviations(weights, X, centers):
    """out[b, k·D + d] = weights[b, k] · (X[b, d] − centers[k, d]), for one product Zᵀ X."""
    n_rows, n_components = weights.shape
    n_features = X.shape[1]
    out = np.empty((n_rows, n_components * n_features), dtype=X.dtype)
    for b in numba.prange(n_rows):
        for k in range(n_components):
            w = weights[b, k]
            base = k * n_features
            for d in range(n_features):
                out[b, base + d] = w * (X[b, d] - centers[k, d])
    return out


@numba.njit(parallel=True, **_JIT)
def diagonal_squared_norms(X, means, precisions):
    """out[b, k] = Σ_d ((X[b, d] − means[k, d]) · precisions[k, d])² (diagonal precision √)."""
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    out = np.empty((n_rows, n_components), dtype=X.dtype)
    for b in numba.prange(n_rows):
        for k in range(n_components):
            total = 0.0
            for d in range(n_features):
                z = (X[b, d] - means[k, d]) * precisions[k, d]
                total += z * z
            out[b, k] = total
    return out


@numba.njit(**_JIT)
def weighted_squared_deviations(weights, X, centers):
    """out[k, d] = Σ_b weights[b, k] · (X[b, d] − centers[k, d])², accumulated in float64."""
    n_rows, n_components = weights.shape
    n_features = X.shape[1]
    out = np.zeros((n_components, n_features))
    for b in range(n_rows):
        for k in range(n_components):
            w = np.float64(weights[b, k])
            if w == 0.0:
                continue
            for d in range(n_features):
                z = np.float64(X[b, d]) - centers[k, d]
                out[k, d] += w * z * z
    return out


@numba.njit(parallel=True, **_JIT)
def normalize_log_rows(log_joint, inverse_temperature):
    """Row-wise log-sum-exp and posteriors.

    Returns ``log_norm[b] = log Σ_k exp(log_joint[b, k])`` and
    ``posterior[b, k] ∝ exp(β · log_joint[b, k])`` (β = inverse temperature; 1 is plain EM).
    Rows whose joint density is zero everywhere get log_norm = −inf and a uniform posterior.
    """
    n_rows, n_components = log_joint.shape
    log_norm = np.empty(n_rows)
    posterior = np.empty((n_rows, n_components), dtype=log_joint.dtype)
    for b in numba.prange(n_rows):
        top = -np.inf
        for k in range(n_components):
            if log_joint[b, k] > top:
                top = log_joint[b, k]
        if top == -np.inf or not np.isfinite(top):
            log_norm[b] = top
            for k in range(n_components):
                posterior[b, k] = 1.0 / n_components
            continue
        total = 0.0
        for k in range(n_components):
            total += np.exp(np.float64(log_joint[b, k]) - top)
        log_norm[b] = top + np.log(total)
        scaled_total = 0.0
        for k in range(n_components):
            e = np.exp(inverse_temperature * (np.float64(log_joint[b, k]) - top))
            posterior[b, k] = e
            scaled_total += e
        for k in range(n_components):
            posterior[b, k] = posterior[b, k] / scaled_total
    return log_norm, posterior
