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


@numba.njit(parallel=True, **_JIT)
def full_log_density(X, stacked_precisions, offsets, constants, block_rows):
    """out[b, k] = constants[k] − ½ ‖(x_b − μ_k)ᵀ P_k‖² for K full-covariance components.

    ``stacked_precisions`` = [P_1 … P_K] (D × K·D) and ``offsets`` = [μ_1 P_1 … μ_K P_K]: each block
    of rows is whitened for all components by one BLAS product, reduced while it is in cache.
    Blocks run in parallel; BLAS should be single-threaded meanwhile (see ``single_threaded_blas``).
    """
    n_rows, n_features = X.shape
    n_components = constants.shape[0]
    out = np.empty((n_rows, n_components), dtype=X.dtype)
    n_blocks = (n_rows + block_rows - 1) // block_rows
    for block in numba.prange(n_blocks):
        start = block * block_rows
        stop = min(start + block_rows, n_rows)
        whitened = np.dot(X[start:stop], stacked_precisions)
        for b in range(stop - start):
            for k in range(n_components):
                total = 0.0
                base = k * n_features
                for d in range(n_features):
                    diff = whitened[b, base + d] - offsets[base + d]
                    total += diff * diff
                out[start + b, k] = constants[k] - 0.5 * total
    return out


@numba.njit(parallel=True, **_JIT)
def full_second_moments(X, weights, centers, block_rows, n_threads):
    """Σ_b weights[b, k] (x_b − c_k) x_bᵀ for every k, shape (K, D, D), accumulated in float64.

    Per block, the weighted deviations of all components form one (rows × K·D) matrix whose
    product with the block's rows is a single BLAS call with a long inner dimension.
    """
    n_rows, n_features = X.shape
    n_components = weights.shape[1]
    width = n_components * n_features
    n_blocks = (n_rows + block_rows - 1) // block_rows
    # One accumulator per thread (not per block): little memory to zero and to add up.
    n_parts = max(1, min(n_threads, n_blocks))
    partial = np.zeros((n_parts, width, n_features))
    for part in numba.prange(n_parts):
        for block in range(part, n_blocks, n_parts):
            start = block * block_rows
            stop = min(start + block_rows, n_rows)
            # Built transposed so that both BLAS operands are C-contiguous.
            deviations = np.empty((width, stop - start), dtype=X.dtype)
            for k in range(n_components):
                for d in range(n_features):
                    row = k * n_features + d
                    for b in range(stop - start):
                        deviations[row, b] = weights[start + b, k] * (
                            X[start + b, d] - centers[k, d])
            partial[part] += np.dot(deviations, X[start:stop])
    total = np.zeros((width, n_features))
    for part in range(n_parts):
        total += partial[part]
    return total.reshape((n_components, n_features, n_features))
