"""Compiled loops for Gaussian densities and weighted moments.

Rows are processed in blocks of ``_BLOCK`` rows, transposed on the fly to (features × rows) so that
the inner loops run over contiguous rows and vectorise (SIMD across rows). Triangular precision
factors are used as such: whitening a row costs D(D+1)/2 multiply-adds per component, not D².
Within a block, sums run in the data's precision; across blocks they are accumulated in float64.

Large inputs are split into one contiguous part per thread; small ones run serially, because
starting threads costs more than the work. No kernel calls BLAS, so nothing here competes with
numpy's own threads.
"""

from __future__ import annotations

import numba
import numpy as np

_BLOCK = 256
_PARALLEL_MIN_ROWS = 8192
_SERIAL = dict(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
_PARALLEL = dict(nogil=True, cache=True, parallel=True)


def _n_parts(n_rows: int) -> int:
    if n_rows < _PARALLEL_MIN_ROWS:
        return 1
    return max(1, min(numba.get_num_threads(), n_rows // _BLOCK))


def _part_bounds(n_rows, n_parts):
    return [(n_rows * p) // n_parts for p in range(n_parts + 1)]


# --------------------------------------------------------------------------- log-densities
@numba.njit(**_SERIAL)
def _transpose_block(X, start, stop, out):
    for b in range(stop - start):
        for d in range(X.shape[1]):
            out[d, b] = X[start + b, d]


@numba.njit(**_SERIAL)
def _triangular_rows(X, means, factors, constants, out, first, last):
    n_features = X.shape[1]
    n_components = means.shape[0]
    xt = np.empty((n_features, _BLOCK), dtype=X.dtype)
    xc = np.empty((n_features, _BLOCK), dtype=X.dtype)
    acc = np.empty(_BLOCK, dtype=X.dtype)
    squared = np.empty(_BLOCK, dtype=X.dtype)
    for start in range(first, last, _BLOCK):
        stop = min(start + _BLOCK, last)
        rows = stop - start
        _transpose_block(X, start, stop, xt)
        for k in range(n_components):
            for d in range(n_features):
                mu = means[k, d]
                for b in range(rows):
                    xc[d, b] = xt[d, b] - mu
            squared[:rows] = 0.0
            for j in range(n_features):  # y_j = Σ_{i ≤ j} (x_i − μ_i) P_ij, P upper triangular
                c = factors[k, 0, j]
                for b in range(rows):
                    acc[b] = xc[0, b] * c
                for i in range(1, j + 1):
                    c = factors[k, i, j]
                    for b in range(rows):
                        acc[b] += xc[i, b] * c
                for b in range(rows):
                    squared[b] += acc[b] * acc[b]
            for b in range(rows):
                out[start + b, k] = constants[k] - 0.5 * squared[b]


@numba.njit(**_PARALLEL)
def _triangular_parallel(X, means, factors, constants, out, bounds):
    for p in numba.prange(len(bounds) - 1):
        _triangular_rows(X, means, factors, constants, out, bounds[p], bounds[p + 1])


def triangular_log_density(X, means, factors, constants):
    """out[b, k] = constants[k] − ½ ‖(x_b − μ_k)ᵀ P_k‖² with upper-triangular P_k (K, D, D).

    With ``constants`` = log π_k + log det P_k − D/2 log 2π this is the log joint density of a
    full-covariance mixture. All arrays share X's dtype.
    """
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    n_parts = _n_parts(len(X))
    if n_parts == 1:
        _triangular_rows(X, means, factors, constants, out, 0, len(X))
    else:
        _triangular_parallel(X, means, factors, constants, out,
                             np.array(_part_bounds(len(X), n_parts)))
    return out


@numba.njit(**_SERIAL)
def _diagonal_rows(X, means, scales, constants, out, first, last):
    n_features = X.shape[1]
    n_components = means.shape[0]
    xt = np.empty((n_features, _BLOCK), dtype=X.dtype)
    squared = np.empty(_BLOCK, dtype=X.dtype)
    for start in range(first, last, _BLOCK):
        stop = min(start + _BLOCK, last)
        rows = stop - start
        _transpose_block(X, start, stop, xt)
        for k in range(n_components):
            squared[:rows] = 0.0
            for d in range(n_features):
                mu = means[k, d]
                s = scales[k, d]
                for b in range(rows):
                    z = (xt[d, b] - mu) * s
                    squared[b] += z * z
            for b in range(rows):
                out[start + b, k] = constants[k] - 0.5 * squared[b]


@numba.njit(**_PARALLEL)
def _diagonal_parallel(X, means, scales, constants, out, bounds):
    for p in numba.prange(len(bounds) - 1):
        _diagonal_rows(X, means, scales, constants, out, bounds[p], bounds[p + 1])


def diagonal_log_density(X, means, scales, constants):
    """out[b, k] = constants[k] − ½ Σ_d ((x_bd − μ_kd) · s_kd)² (s = 1/σ: diagonal precision √)."""
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    n_parts = _n_parts(len(X))
    if n_parts == 1:
        _diagonal_rows(X, means, scales, constants, out, 0, len(X))
    else:
        _diagonal_parallel(X, means, scales, constants, out,
                           np.array(_part_bounds(len(X), n_parts)))
    return out


# --------------------------------------------------------------------------- moments
@numba.njit(**_SERIAL)
def _moment_rows(X, weights, centers, full, weight_sum, first_sum, second_sum, first, last):
    """Adds Σ w, Σ w (x − c) and Σ w (x − c)(x − c)ᵀ (or its diagonal) of rows [first, last)."""
    n_features = X.shape[1]
    n_components = weights.shape[1]
    xt = np.empty((n_features, _BLOCK), dtype=X.dtype)
    xc = np.empty((n_features, _BLOCK), dtype=X.dtype)
    wx = np.empty((n_features, _BLOCK), dtype=X.dtype)
    zero = np.zeros(1, dtype=X.dtype)[0]  # within-block sums in X's precision (SIMD width)
    for start in range(first, last, _BLOCK):
        stop = min(start + _BLOCK, last)
        rows = stop - start
        _transpose_block(X, start, stop, xt)
        for k in range(n_components):
            total = 0.0
            for b in range(rows):
                total += weights[start + b, k]
            weight_sum[k] += total
            if total == 0.0:
                continue
            for d in range(n_features):
                c = centers[k, d]
                s = zero
                for b in range(rows):
                    v = xt[d, b] - c
                    xc[d, b] = v
                    wv = v * weights[start + b, k]
                    wx[d, b] = wv
                    s += wv
                first_sum[k, d] += s
            if not full:
                for d in range(n_features):
                    s = zero
                    for b in range(rows):
                        s += wx[d, b] * xc[d, b]
                    second_sum[k, d, 0] += s
                continue
            for i in range(n_features):
                j = i
                while j + 3 < n_features:  # four columns share each load of wx[i]
                    t0 = t1 = t2 = t3 = zero
                    for b in range(rows):
                        a = wx[i, b]
                        t0 += a * xc[j, b]
                        t1 += a * xc[j + 1, b]
                        t2 += a * xc[j + 2, b]
                        t3 += a * xc[j + 3, b]
                    second_sum[k, i, j] += t0
                    second_sum[k, i, j + 1] += t1
                    second_sum[k, i, j + 2] += t2
                    second_sum[k, i, j + 3] += t3
                    j += 4
                while j < n_features:
                    t0 = zero
                    for b in range(rows):
                        t0 += wx[i, b] * xc[j, b]
                    second_sum[k, i, j] += t0
                    j += 1


@numba.njit(**_PARALLEL)
def _moment_parallel(X, weights, centers, full, weight_sum, first_sum, second_sum, bounds):
    for p in numba.prange(len(bounds) - 1):
        _moment_rows(X, weights, centers, full, weight_sum[p], first_sum[p], second_sum[p],
                     bounds[p], bounds[p + 1])


def weighted_moments(X, weights, centers, full=True):
    """Weighted moments of rows about per-component centres, accumulated in float64.

    Parameters
    ----------
    X : (n, D) array;  weights : (n, K) array of X's dtype;  centers : (K, D) array of X's dtype
    full : bool
        Second moments as (K, D, D) matrices (True) or only their diagonals (K, D).

    Returns
    -------
    weight_sum (K,), first (K, D) = Σ w (x − c), second (K, D, D) or (K, D).
    """
    n_rows, n_features = X.shape
    n_components = weights.shape[1]
    n_parts = _n_parts(n_rows)
    width = n_features if full else 1
    weight_sum = np.zeros((n_parts, n_components))
    first = np.zeros((n_parts, n_components, n_features))
    second = np.zeros((n_parts, n_components, n_features, width))
    if n_parts == 1:
        _moment_rows(X, weights, centers, full, weight_sum[0], first[0], second[0], 0, n_rows)
    else:
        _moment_parallel(X, weights, centers, full, weight_sum, first, second,
                         np.array(_part_bounds(n_rows, n_parts)))
    weight_sum, first, second = weight_sum.sum(0), first.sum(0), second.sum(0)
    if not full:
        return weight_sum, first, second[:, :, 0]
    upper = np.triu(np.ones((n_features, n_features), dtype=bool), 1)
    second = np.where(upper, second, np.swapaxes(second, 1, 2))  # mirror the upper triangle
    return weight_sum, first, second


# --------------------------------------------------------------------------- posteriors
@numba.njit(**_SERIAL)
def _normalize_rows(log_joint, inverse_temperature, log_norm, posterior, first, last):
    n_components = log_joint.shape[1]
    for b in range(first, last):
        top = -np.inf
        for k in range(n_components):
            if log_joint[b, k] > top:
                top = log_joint[b, k]
        if not np.isfinite(top):
            log_norm[b] = top
            for k in range(n_components):
                posterior[b, k] = 1.0 / n_components
            continue
        total = 0.0
        for k in range(n_components):
            shifted = log_joint[b, k] - top
            # exp(−40) < 2⁻⁵⁷: below float64 resolution next to the top term (which is 1).
            e = np.exp(shifted) if shifted > -40.0 else 0.0
            posterior[b, k] = e
            total += e
        log_norm[b] = top + np.log(total)
        if inverse_temperature != 1.0:  # annealing: posteriors ∝ joint^β
            total = 0.0
            for k in range(n_components):
                e = np.exp(inverse_temperature * (log_joint[b, k] - top))
                posterior[b, k] = e
                total += e
        scale = 1.0 / total
        for k in range(n_components):
            posterior[b, k] = posterior[b, k] * scale


@numba.njit(**_PARALLEL)
def _normalize_parallel(log_joint, inverse_temperature, log_norm, posterior, bounds):
    for p in numba.prange(len(bounds) - 1):
        _normalize_rows(log_joint, inverse_temperature, log_norm, posterior, bounds[p],
                        bounds[p + 1])


def normalize_log_rows(log_joint, inverse_temperature=1.0):
    """Row-wise log-sum-exp and posteriors.

    Returns ``log_norm[b] = log Σ_k exp(log_joint[b, k])`` (float64) and
    ``posterior[b, k] ∝ exp(β · log_joint[b, k])`` (β = inverse temperature; 1 is plain EM).
    Rows whose joint density is zero everywhere get log_norm = −inf and a uniform posterior.
    """
    n_rows = log_joint.shape[0]
    log_norm = np.empty(n_rows)
    posterior = np.empty_like(log_joint)
    n_parts = _n_parts(n_rows)
    if n_parts == 1:
        _normalize_rows(log_joint, float(inverse_temperature), log_norm, posterior, 0, n_rows)
    else:
        _normalize_parallel(log_joint, float(inverse_temperature), log_norm, posterior,
                            np.array(_part_bounds(n_rows, n_parts)))
    return log_norm, posterior
