"""Compiled loops for Gaussian densities and weighted moments.

Rows are processed in blocks of ``_BLOCK`` rows, transposed on the fly to (features × rows) so that
the inner loops run over contiguous rows and vectorise (SIMD across rows). Triangular precision
factors are used as such: whitening a row costs D(D+1)/2 multiply-adds per component, not D².
Within a block, sums run in the data's precision; across blocks they are accumulated in float64.

Large inputs are split into one contiguous part per thread; small ones run serially, because
starting threads costs more than the work. No kernel calls BLAS, so nothing here competes with
numpy's own threads.

Each kernel a small fit calls also has a numpy form of the same arithmetic (all components at
once; in float64). :mod:`emkit.kernels.tiers` picks the form: numpy on small inputs until the
compiled form is in numba's cache or has paid for its compilation, so a first small fit in a new
environment compiles nothing. Work is counted as rows × K × (D + 1)²; the compiled loops are
5–15× faster than numpy at any size, and from ``NUMPY_MAX_WORK`` on they always run.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg import lapack

from emkit.kernels import tiers
from emkit.kernels.fastmath import exp_nonpositive

_BLOCK = 256
_PARALLEL_MIN_ROWS = 8192
# Fused multiply-adds everywhere; reassociation only where a sum over rows must vectorise (the
# moments): it would break the Cody–Waite reduction of fastmath.exp_nonpositive.
_SERIAL = dict(nogil=True, cache=True, fastmath={"contract"})
_REDUCING = dict(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
_PARALLEL = dict(nogil=True, cache=True, parallel=True)
# Work (rows × K × (D + 1)²) from which the compiled loops always run: a numpy call takes about
# 1 ms per 10⁶ units (5–15× the compiled loop's), so a few hundred calls at this size cost about
# what compiling does; the numpy forms' (K, rows, D) temporaries stay below 64 MB.
NUMPY_MAX_WORK = 1 << 23


def _work(n_rows, n_components, n_features):
    return n_rows * n_components * (n_features + 1) ** 2


def any_nan(X) -> bool:
    """Whether the 2-D array X holds a NaN."""
    if _work(X.shape[0], 1, X.shape[1]) < NUMPY_MAX_WORK:
        return bool(np.isnan(X).any())  # as fast as the loop on small X, and never compiled
    return _any_nan(np.ascontiguousarray(X))


@numba.njit(**_SERIAL)
def _any_nan(X):
    """any_nan of a C-contiguous X: one read of X, no temporary arrays (rows with a NaN are rare
    or absent in most data, so the scan usually runs to the end)."""
    for i in range(X.shape[0]):
        total = 0.0
        for j in range(X.shape[1]):
            total += X[i, j]  # NaN propagates; inf - inf is NaN too, but inf is refused earlier
        if total != total:
            for j in range(X.shape[1]):
                if X[i, j] != X[i, j]:
                    return True
    return False


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
def _emit_block(joint, rows, start, beta, normalize, top, total, out, log_norm):
    """Write a block's log joint densities joint[k, b] to out[start + b, k], or (normalize) the
    log-sum-exp over k to log_norm and the posteriors ∝ exp(β · joint) to out.

    Loops run over rows (contiguous), so they vectorise; a row whose joint density is zero for
    every component gets log_norm = −inf and a uniform posterior.
    """
    n_components = joint.shape[0]
    if not normalize:
        for b in range(rows):
            for k in range(n_components):
                out[start + b, k] = joint[k, b]
        return
    # ``top`` (X's dtype) and ``total`` (float64, so that row log-likelihoods keep full
    # precision) are scratch rows of length _BLOCK.
    for b in range(rows):
        top[b] = joint[0, b]
    for k in range(1, n_components):
        for b in range(rows):
            top[b] = max(top[b], joint[k, b])
    for b in range(rows):
        if not np.isfinite(top[b]):
            top[b] = 0.0  # every term is −inf (or the block holds NaN): handled below
        total[b] = 0.0
    for k in range(n_components):
        for b in range(rows):
            shifted = np.float64(joint[k, b] - top[b])
            # exp(−40) < 2⁻⁵⁷ is below float64 resolution next to the top term (which is 1);
            # exact zeros avoid slow subnormal arithmetic and let the M-step skip the row.
            e = exp_nonpositive(max(shifted, -40.0))
            e = e if shifted > -40.0 else 0.0
            joint[k, b] = e
            total[b] += e
    for b in range(rows):
        log_norm[start + b] = top[b] + np.log(total[b])
    if beta != 1.0:  # annealing: posteriors ∝ joint^β, i.e. (joint / max)^β
        for b in range(rows):
            total[b] = 0.0
        for k in range(n_components):
            for b in range(rows):
                e = joint[k, b] ** beta
                joint[k, b] = e
                total[b] += e
    for b in range(rows):
        if total[b] > 0.0:
            scale = 1.0 / total[b]
            for k in range(n_components):
                out[start + b, k] = joint[k, b] * scale
        else:
            for k in range(n_components):
                out[start + b, k] = 1.0 / n_components


@numba.njit(**_SERIAL)
def _joint_rows(log_joint, beta, normalize, out, log_norm, first, last):
    n_components = log_joint.shape[1]
    joint = np.empty((n_components, _BLOCK), dtype=log_joint.dtype)
    top = np.empty(_BLOCK, dtype=log_joint.dtype)
    total = np.empty(_BLOCK)
    for start in range(first, last, _BLOCK):
        stop = min(start + _BLOCK, last)
        _transpose_block(log_joint, start, stop, joint)
        # ``normalize`` (always True) comes from Python: a literal True here would compile
        # _emit_block once more, for the literal
        _emit_block(joint, stop - start, start, beta, normalize, top, total, out, log_norm)


@numba.njit(**_PARALLEL)
def _joint_parallel(log_joint, beta, normalize, out, log_norm, bounds):
    for p in numba.prange(len(bounds) - 1):
        _joint_rows(log_joint, beta, normalize, out, log_norm, bounds[p], bounds[p + 1])


def _normalize_numpy(joint, beta):
    """What ``_emit_block`` computes with normalize, for all rows at once in numpy."""
    top = joint.max(axis=1)
    top[~np.isfinite(top)] = 0.0
    shifted = (joint - top[:, None]).astype(np.float64, copy=False)
    # exact zeros below exp(−40) (and for NaN), as in _emit_block
    e = np.where(shifted > -40.0, np.exp(np.maximum(shifted, -40.0)), 0.0)
    total = e.sum(axis=1)
    positive = total > 0.0
    log_norm = np.full(len(total), -np.inf)
    np.log(total, out=log_norm, where=positive)
    log_norm += top
    if beta != 1.0:
        e = e**beta
        total = e.sum(axis=1)
        positive = total > 0.0
    out = np.full(joint.shape, 1.0 / joint.shape[1], dtype=joint.dtype)
    out[positive] = e[positive] / total[positive, None]
    return log_norm, out


def posteriors_from_joint(log_joint, inverse_temperature=1.0):
    """(log Σ_k exp joint[b, k], posteriors ∝ exp(β · joint)) of a precomputed (n, K) log joint
    density, with the same numerics as the fused density kernels."""
    log_joint = np.ascontiguousarray(log_joint)
    out = np.empty_like(log_joint)
    log_norm = np.empty(len(log_joint))
    arguments = (log_joint, float(inverse_temperature), True, out, log_norm, 0, len(log_joint))
    if not _JOINT.use_compiled(log_joint.dtype.char, _work(*log_joint.shape, 0), arguments):
        return _JOINT.run_numpy(_normalize_numpy, log_joint, float(inverse_temperature))
    n_parts = _n_parts(len(log_joint))
    if n_parts == 1:
        _joint_rows(*arguments)
    else:
        _joint_parallel(log_joint, float(inverse_temperature), True, out, log_norm,
                        np.array(_part_bounds(len(log_joint), n_parts)))
    return log_norm, out


# (the last argument: seconds that compiling the loop with its callees took in a new environment)
_JOINT = tiers.TwoForms(_joint_rows, NUMPY_MAX_WORK, 1.0)


@numba.njit(**_SERIAL)
def _triangular_rows(X, means, factors, constants, beta, normalize, out, log_norm, first, last):
    n_features = X.shape[1]
    n_components = means.shape[0]
    joint = np.empty((n_components, _BLOCK), dtype=X.dtype)
    top = np.empty(_BLOCK, dtype=X.dtype)
    total = np.empty(_BLOCK)
    xt = np.empty((n_features, _BLOCK), dtype=X.dtype)
    xc = np.empty((n_features, _BLOCK), dtype=X.dtype)
    acc = np.empty(_BLOCK, dtype=X.dtype)
    squared = np.empty(_BLOCK, dtype=X.dtype)
    for start in range(first, last, _BLOCK):
        stop = min(start + _BLOCK, last)
        rows = stop - start
        _transpose_block(X, start, stop, xt)
        for k in range(n_components):
            if n_features == 4:
                _joint_4(xt, means[k], factors[k], constants[k], rows, joint[k])
                continue
            for d in range(n_features):
                mu = means[k, d]
                for b in range(rows):
                    xc[d, b] = xt[d, b] - mu
            squared[:rows] = 0.0
            for j in range(n_features):  # y_j = Σ_{i ≤ j} (x_i − μ_i) P_ij, P upper triangular
                i = 0
                # P_ij = 0 for i > j, so rounding the terms up to a multiple of four is exact.
                n_terms = min(n_features, (j + 4) // 4 * 4)
                if n_terms == 4:  # (D ≤ 4, or j < 4) one pass, y_j squared at once: no acc
                    c0 = factors[k, 0, j]
                    c1 = factors[k, 1, j]
                    c2 = factors[k, 2, j]
                    c3 = factors[k, 3, j]
                    for b in range(rows):
                        y = xc[0, b] * c0 + xc[1, b] * c1 + xc[2, b] * c2 + xc[3, b] * c3
                        squared[b] += y * y
                    continue
                acc[:rows] = 0.0
                while i + 4 <= n_terms:  # four terms per pass: one load and store of acc, not four
                    c0 = factors[k, i, j]
                    c1 = factors[k, i + 1, j]
                    c2 = factors[k, i + 2, j]
                    c3 = factors[k, i + 3, j]
                    for b in range(rows):
                        acc[b] += (xc[i, b] * c0 + xc[i + 1, b] * c1
                                   + xc[i + 2, b] * c2 + xc[i + 3, b] * c3)
                    i += 4
                while i < n_terms:
                    c0 = factors[k, i, j]
                    for b in range(rows):
                        acc[b] += xc[i, b] * c0
                    i += 1
                for b in range(rows):
                    squared[b] += acc[b] * acc[b]
            for b in range(rows):
                joint[k, b] = constants[k] - 0.5 * squared[b]
        _emit_block(joint, rows, start, beta, normalize, top, total, out, log_norm)


@numba.njit(inline="always", **_SERIAL)
def _joint_4(xt, mean, factor, constant, n_rows, out):
    """What the loop of :func:`_triangular_rows` computes for one component at D = 4 (the
    same operations in the same order, so the same bits), in one pass over the rows with
    everything in registers: an HMM's frames are often this narrow, where the general loop's
    passes over its work rows cost more than the arithmetic."""
    m0, m1, m2, m3 = mean[0], mean[1], mean[2], mean[3]
    p00 = factor[0, 0]
    p01, p11 = factor[0, 1], factor[1, 1]
    p02, p12, p22 = factor[0, 2], factor[1, 2], factor[2, 2]
    p03, p13, p23, p33 = factor[0, 3], factor[1, 3], factor[2, 3], factor[3, 3]
    for b in range(n_rows):
        x0 = xt[0, b] - m0
        x1 = xt[1, b] - m1
        x2 = xt[2, b] - m2
        x3 = xt[3, b] - m3
        y = x0 * p00
        squared = y * y
        y = x0 * p01 + x1 * p11
        squared += y * y
        y = x0 * p02 + x1 * p12 + x2 * p22
        squared += y * y
        y = x0 * p03 + x1 * p13 + x2 * p23 + x3 * p33
        squared += y * y
        out[b] = constant - 0.5 * squared


@numba.njit(**_PARALLEL)
def _triangular_parallel(X, means, factors, constants, beta, normalize, out, log_norm, bounds):
    for p in numba.prange(len(bounds) - 1):
        _triangular_rows(X, means, factors, constants, beta, normalize, out, log_norm,
                         bounds[p], bounds[p + 1])


def triangular_log_density(X, means, factors, constants, posteriors=False,
                           inverse_temperature=1.0):
    """joint[b, k] = constants[k] − ½ ‖(x_b − μ_k)ᵀ P_k‖² with upper-triangular P_k (K, D, D).

    With ``constants`` = log π_k + log det P_k − D/2 log 2π this is the log joint density of a
    full-covariance mixture. All arrays share X's dtype. Returns ``joint``, or with
    ``posteriors=True`` the pair (log Σ_k exp joint[b, k], posteriors) computed block by block
    while the block is in cache (see ``_emit_block``).
    """
    return _run_rows(_triangular_rows, _triangular_parallel, X, means, factors, constants,
                     posteriors, inverse_temperature)


def _run_rows(serial, parallel, X, means, parameters, constants, posteriors, beta):
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    log_norm = np.empty(X.shape[0] if posteriors else 0)
    n_parts = _n_parts(len(X))
    arguments = (X, means, parameters, constants, float(beta), posteriors, out, log_norm, 0,
                 len(X))
    work = _work(len(X), len(means), X.shape[1])
    forms = _DENSITY_FORMS[serial]
    if not forms.use_compiled(X.dtype.char, work, arguments):
        return forms.run_numpy(_density_numpy, X, means, parameters, constants, posteriors, beta)
    if n_parts == 1:
        serial(*arguments)
    else:
        parallel(X, means, parameters, constants, float(beta), posteriors, out, log_norm,
                 np.array(_part_bounds(len(X), n_parts)))
    return (log_norm, out) if posteriors else out


def _density_numpy(X, means, parameters, constants, posteriors, beta):
    """The density kernels in numpy, all components at once, (K, rows, D), in float64 whatever
    X's dtype (small inputs: precision costs nothing here), the result in X's dtype. Triangular
    factors (K, D, D) and diagonal scales (K, D) are told apart by rank."""
    centred = X[None, :, :] - means[:, None, :].astype(np.float64)
    parameters = parameters.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):  # as the loops: inf and NaN, no warning
        whitened = centred @ parameters if parameters.ndim == 3 else centred * parameters[:, None]
        joint = constants - 0.5 * np.einsum("knd,knd->nk", whitened, whitened)
    joint = joint.astype(X.dtype, copy=False)
    return _normalize_numpy(joint, float(beta)) if posteriors else joint


@numba.njit(**_SERIAL)
def _diagonal_rows(X, means, scales, constants, beta, normalize, out, log_norm, first, last):
    n_features = X.shape[1]
    n_components = means.shape[0]
    joint = np.empty((n_components, _BLOCK), dtype=X.dtype)
    top = np.empty(_BLOCK, dtype=X.dtype)
    total = np.empty(_BLOCK)
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
                joint[k, b] = constants[k] - 0.5 * squared[b]
        _emit_block(joint, rows, start, beta, normalize, top, total, out, log_norm)


@numba.njit(**_PARALLEL)
def _diagonal_parallel(X, means, scales, constants, beta, normalize, out, log_norm, bounds):
    for p in numba.prange(len(bounds) - 1):
        _diagonal_rows(X, means, scales, constants, beta, normalize, out, log_norm, bounds[p],
                       bounds[p + 1])


def diagonal_log_density(X, means, scales, constants, posteriors=False, inverse_temperature=1.0):
    """joint[b, k] = constants[k] − ½ Σ_d ((x_bd − μ_kd) · s_kd)² (s = 1/σ: diagonal precision
    √); ``posteriors`` as in :func:`triangular_log_density`."""
    return _run_rows(_diagonal_rows, _diagonal_parallel, X, means, scales, constants,
                     posteriors, inverse_temperature)


_DENSITY_FORMS = {serial: tiers.TwoForms(serial, NUMPY_MAX_WORK, 2.0)
                  for serial in (_triangular_rows, _diagonal_rows)}


# --------------------------------------------------------------------------- moments
@numba.njit(**_REDUCING)
def _moment_rows(X, weights, centers, full, weight_sum, first_sum, second_sum, first, last):
    """Adds Σ w, Σ w (x − c) and Σ w (x − c)(x − c)ᵀ (or its diagonal) of rows [first, last)."""
    n_features = X.shape[1]
    n_components = weights.shape[1]
    xt = np.empty((n_features, _BLOCK), dtype=X.dtype)
    xc = np.empty((n_features, _BLOCK), dtype=X.dtype)
    wx = np.empty((n_features, _BLOCK), dtype=X.dtype)
    wt = np.empty((n_components, _BLOCK), dtype=weights.dtype)
    index = np.empty(_BLOCK, dtype=np.int64)
    zero = np.zeros(1, dtype=X.dtype)[0]  # within-block sums in X's precision (SIMD width)
    for start in range(first, last, _BLOCK):
        stop = min(start + _BLOCK, last)
        rows = stop - start
        _transpose_block(X, start, stop, xt)
        _transpose_block(weights, start, stop, wt)
        for k in range(n_components):
            # Posteriors are often exactly zero (far components underflow): only the rows with
            # a positive weight are gathered, so well-separated clusters cost little. They are
            # counted first, branch-free (a loop that vectorises): dense weights (an HMM's
            # posteriors) skip the gathering.
            used = 0
            total = 0.0
            for b in range(rows):
                total += wt[k, b]
                used += wt[k, b] != 0.0
            weight_sum[k] += total
            if used == 0:
                continue
            if used < rows:
                used = 0
                for b in range(rows):
                    if wt[k, b] != 0.0:
                        index[used] = b
                        used += 1
            for d in range(n_features):
                c = centers[k, d]
                s = zero
                if used == rows:  # every row (dense posteriors): contiguous loads vectorise
                    for b in range(rows):
                        v = xt[d, b] - c
                        xc[d, b] = v
                        wv = v * wt[k, b]
                        wx[d, b] = wv
                        s += wv
                else:
                    for u in range(used):
                        b = index[u]
                        v = xt[d, b] - c
                        xc[d, u] = v
                        wv = v * wt[k, b]
                        wx[d, u] = wv
                        s += wv
                first_sum[k, d] += s
            rows_k = used
            if not full:
                for d in range(n_features):
                    s = zero
                    for b in range(rows_k):
                        s += wx[d, b] * xc[d, b]
                    second_sum[k, d, 0] += s
                continue
            if n_features == 4:  # (an HMM's frames, often) the upper triangle in one pass
                _upper_moments_4(wx, xc, rows_k, zero, second_sum[k])
                continue
            for i in range(n_features):
                # From a multiple of four below i (the extra lower-triangle sums are discarded by
                # the caller), so that the columns come in groups of four or eight.
                j = i - i % 4
                while j + 7 < n_features:  # eight columns share each load of wx[i]
                    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = zero
                    for b in range(rows_k):
                        a = wx[i, b]
                        t0 += a * xc[j, b]
                        t1 += a * xc[j + 1, b]
                        t2 += a * xc[j + 2, b]
                        t3 += a * xc[j + 3, b]
                        t4 += a * xc[j + 4, b]
                        t5 += a * xc[j + 5, b]
                        t6 += a * xc[j + 6, b]
                        t7 += a * xc[j + 7, b]
                    second_sum[k, i, j] += t0
                    second_sum[k, i, j + 1] += t1
                    second_sum[k, i, j + 2] += t2
                    second_sum[k, i, j + 3] += t3
                    second_sum[k, i, j + 4] += t4
                    second_sum[k, i, j + 5] += t5
                    second_sum[k, i, j + 6] += t6
                    second_sum[k, i, j + 7] += t7
                    j += 8
                while j + 3 < n_features:
                    t0 = t1 = t2 = t3 = zero
                    for b in range(rows_k):
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
                    for b in range(rows_k):
                        t0 += wx[i, b] * xc[j, b]
                    second_sum[k, i, j] += t0
                    j += 1


@numba.njit(inline="always", **_REDUCING)
def _upper_moments_4(wx, xc, n_rows, zero, second):
    """second[i, j] += Σ_b wx[i, b] xc[j, b] for i ≤ j < 4: the ten sums of the upper triangle
    in one pass over the rows (ten registers), where the general loop makes four passes and
    sixteen sums."""
    t00 = t01 = t02 = t03 = t11 = t12 = t13 = t22 = t23 = t33 = zero
    for b in range(n_rows):
        x0, x1, x2, x3 = xc[0, b], xc[1, b], xc[2, b], xc[3, b]
        w0, w1, w2, w3 = wx[0, b], wx[1, b], wx[2, b], wx[3, b]
        t00 += w0 * x0
        t01 += w0 * x1
        t02 += w0 * x2
        t03 += w0 * x3
        t11 += w1 * x1
        t12 += w1 * x2
        t13 += w1 * x3
        t22 += w2 * x2
        t23 += w2 * x3
        t33 += w3 * x3
    second[0, 0] += t00
    second[0, 1] += t01
    second[0, 2] += t02
    second[0, 3] += t03
    second[1, 1] += t11
    second[1, 2] += t12
    second[1, 3] += t13
    second[2, 2] += t22
    second[2, 3] += t23
    second[3, 3] += t33


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
    arguments = (X, weights, centers, full, weight_sum[0], first[0], second[0], 0, n_rows)
    if not _MOMENTS.use_compiled(X.dtype.char, _work(n_rows, n_components, n_features),
                                 arguments):
        return _MOMENTS.run_numpy(_moments_numpy, X, weights, centers, full)
    if n_parts == 1:
        _moment_rows(*arguments)
    else:
        _moment_parallel(X, weights, centers, full, weight_sum, first, second,
                         np.array(_part_bounds(n_rows, n_parts)))
    weight_sum, first, second = weight_sum.sum(0), first.sum(0), second.sum(0)
    if not full:
        return weight_sum, first, second[:, :, 0]
    upper = np.triu(np.ones((n_features, n_features), dtype=bool), 1)
    second = np.where(upper, second, np.swapaxes(second, 1, 2))  # mirror the upper triangle
    return weight_sum, first, second


_MOMENTS = tiers.TwoForms(_moment_rows, NUMPY_MAX_WORK, 1.2)


def _moments_numpy(X, weights, centers, full):
    """weighted_moments in numpy, all components at once, in float64 (the compiled loops sum
    each block in X's precision, but blocks in float64: over a whole small input, float32 sums
    would lose more)."""
    X = X.astype(np.float64, copy=False)
    weights = weights.astype(np.float64, copy=False)
    centred = X[None, :, :] - centers.astype(np.float64)[:, None, :]  # (K, rows, D)
    with np.errstate(over="ignore", invalid="ignore"):  # as the loops: inf and NaN, no warning
        weighted = weights.T[:, :, None] * centred
        first = weighted.sum(axis=1)
        if not full:
            return weights.sum(axis=0), first, np.einsum("knd,knd->kd", weighted, centred)
        second = np.swapaxes(weighted, 1, 2) @ centred
    # exactly symmetric, as the compiled loops' (their upper triangle, mirrored)
    upper = np.triu(np.ones(second.shape[1:], dtype=bool), 1)
    return weights.sum(axis=0), first, np.where(upper, second, np.swapaxes(second, 1, 2))


# --------------------------------------------------------------------------- missing values
# Rows with NaN, grouped by pattern (see emkit.families.gaussian_missing for the formulas): the
# rows of pattern p are order[starts[p]:starts[p + 1]], its observed coordinates observed[p].
# Each pattern factorises Σ_oo once per component; patterns run in parallel.
#
# The numpy forms (below each entry point) loop over patterns in Python, all components at once.
# Work is rows × K × (D + 1)² plus _PATTERN_WORK per pattern: measured, numpy takes 1–4 ns per
# unit on the rows (the gathers and small solves cost more than the dense kernels' 1 ns) and
# 50–70 µs (density) or 100–180 µs (moments) per pattern whatever K, i.e. about 2¹⁵ units; the
# compiled loops are 10–70× faster. From _MISSING_MAX_WORK on (a numpy call of about 10 ms, so
# that a few hundred E-steps cost what compiling does) the compiled loops always run.
_PATTERN_WORK = 1 << 15
_MISSING_MAX_WORK = 1 << 22
_LOG_2PI_CONST = float(np.log(2.0 * np.pi))


@numba.njit(**_SERIAL)
def _observed_factor(cov, obs, L):
    """Lower Cholesky factor of cov[obs][:, obs], written into L[:n, :n] (n = len(obs)).

    Written out (no LAPACK call) because the matrices are tiny and there is one per pattern and
    component. Raises when the block is not positive definite.
    """
    n = len(obs)
    for j in range(n):
        s = cov[obs[j], obs[j]]
        for t in range(j):
            s -= L[j, t] * L[j, t]
        if not s > 0.0:
            raise np.linalg.LinAlgError("covariance block is not positive definite")
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            s = cov[obs[i], obs[j]]
            for t in range(j):
                s -= L[i, t] * L[j, t]
            L[i, j] = s / L[j, j]
    return L


@numba.njit(**_SERIAL)
def _whiten_columns(L, z, n_rows):
    """Solve L Z = Z in place for lower-triangular L, one column per row (rows vectorise)."""
    n = L.shape[0]
    for i in range(n):
        for j in range(i):
            c = L[i, j]
            for r in range(n_rows):
                z[i, r] -= c * z[j, r]
        inverse = 1.0 / L[i, i]
        for r in range(n_rows):
            z[i, r] *= inverse


@numba.njit(**_SERIAL)
def _gather_observed(X, rows, obs, out):
    """out[i, r] = X[rows[r], obs[i]]: a pattern's observed values, one row per coordinate."""
    for r in range(len(rows)):
        for i in range(len(obs)):
            out[i, r] = X[rows[r], obs[i]]


@numba.njit(**_SERIAL)
def _pattern_log_density(X, rows, obs, means, covs, out):
    n_components = means.shape[0]
    n_obs, n_rows = len(obs), len(rows)
    if n_obs == 0:
        for r in rows:
            for k in range(n_components):
                out[r, k] = 0.0
        return
    values = np.empty((n_obs, n_rows))
    _gather_observed(X, rows, obs, values)
    z = np.empty((n_obs, n_rows))
    squared = np.empty(n_rows)
    L = np.empty((n_obs, n_obs))
    for k in range(n_components):
        _observed_factor(covs[k], obs, L)
        log_det = 0.0
        for i in range(n_obs):
            log_det += 2.0 * np.log(L[i, i])
        for i in range(n_obs):
            mu = means[k, obs[i]]
            for r in range(n_rows):
                z[i, r] = values[i, r] - mu
        _whiten_columns(L, z, n_rows)
        squared[:] = 0.0
        for i in range(n_obs):
            for r in range(n_rows):
                squared[r] += z[i, r] * z[i, r]
        constant = -0.5 * (n_obs * _LOG_2PI_CONST + log_det)
        for r in range(n_rows):
            out[rows[r], k] = constant - 0.5 * squared[r]


@numba.njit(**_SERIAL)
def _log_density_patterns(X, order, starts, observed, means, covs, out, first, last):
    for p in range(first, last):
        obs = np.flatnonzero(observed[p])
        _pattern_log_density(X, order[starts[p]:starts[p + 1]], obs, means, covs, out)


@numba.njit(**_PARALLEL)
def _log_density_patterns_parallel(X, order, starts, observed, means, covs, out):
    for p in numba.prange(len(starts) - 1):
        _log_density_patterns(X, order, starts, observed, means, covs, out, p, p + 1)


def missing_log_density(X, order, starts, observed, means, covs):
    """Marginal log N(x_o | μ_k,o, Σ_k,oo) of every row (0 for rows with nothing observed)."""
    out = np.empty((X.shape[0], means.shape[0]))
    n_patterns = len(starts) - 1
    arguments = (X, order, starts, observed, means, covs, out, 0, n_patterns)
    work = _missing_work(len(order), n_patterns, *means.shape)
    if not _MISSING_DENSITY.use_compiled(means.dtype.char + covs.dtype.char, work, arguments):
        return _MISSING_DENSITY.run_numpy(_missing_log_density_numpy, X, order, starts, observed,
                                          means, covs)
    if _n_parts(len(order)) == 1:
        _log_density_patterns(*arguments)
    else:
        _log_density_patterns_parallel(X, order, starts, observed, means, covs, out)
    return out


# (compile seconds in a new environment, the loop with its callees; thresholds: _PATTERN_WORK)
_MISSING_DENSITY = tiers.TwoForms(_log_density_patterns, _MISSING_MAX_WORK, 1.5)


def _missing_log_density_numpy(X, order, starts, observed, means, covs):
    """missing_log_density in numpy: pattern by pattern, all components at once."""
    means, covs = means.astype(np.float64, copy=False), covs.astype(np.float64, copy=False)
    out = np.zeros((X.shape[0], means.shape[0]))
    for p in range(len(starts) - 1):
        obs = np.flatnonzero(observed[p])
        if len(obs) == 0:
            continue  # nothing observed: density 1 under every component
        rows = order[starts[p]:starts[p + 1]]
        L = _observed_factors(covs[:, obs[:, None], obs])
        log_det = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        constant = -0.5 * (len(obs) * _LOG_2PI_CONST + log_det)
        with np.errstate(over="ignore", invalid="ignore"):  # as the loops: inf, no warning
            deviation = X[rows[:, None], obs].T[None] - means[:, obs, None]  # (K, n_obs, rows)
            z = np.linalg.solve(L, deviation)
            out[rows] = (constant[:, None] - 0.5 * np.einsum("kir,kir->kr", z, z)).T
    return out


def _observed_factors(blocks):
    """Lower Cholesky factors of a stack of blocks Σ_oo (one per component), raising as
    :func:`_observed_factor` does when one is not positive definite."""
    try:
        L = np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not (np.diagonal(L, axis1=1, axis2=2) > 0.0).all():
        raise np.linalg.LinAlgError("covariance block is not positive definite")
    return L


def _missing_work(n_rows, n_patterns, n_components, n_features):
    return n_rows * n_components * (n_features + 1) ** 2 + n_patterns * _PATTERN_WORK


@numba.njit(**_REDUCING)
def _pattern_moments(X, rows, obs, mis, means, covs, weights, centers, full, weight_sum,
                     first_sum, second_sum):
    n_components, n_features = means.shape
    n_obs, n_mis, n_rows = len(obs), len(mis), len(rows)
    values = np.empty((n_obs, n_rows))
    _gather_observed(X, rows, obs, values)
    deviation = np.empty((n_features, n_rows))  # completed row − centre, one row per coordinate
    weighted = np.empty((n_features, n_rows))
    w = np.empty(n_rows)
    L = np.empty((n_obs, n_obs))
    regression = np.empty((n_obs, n_mis))
    for k in range(n_components):
        total = 0.0
        for r in range(n_rows):
            w[r] = weights[rows[r], k]
            total += w[r]
        if total == 0.0:
            continue
        weight_sum[k] += total
        _observed_factor(covs[k], obs, L)
        # regression = Σ_oo⁻¹ Σ_om by two triangular solves (the columns of Σ_om at once)
        for i in range(n_obs):
            for j in range(n_mis):
                regression[i, j] = covs[k, obs[i], mis[j]]
        _whiten_columns(L, regression, n_mis)
        for i in range(n_obs - 1, -1, -1):  # back substitution with Lᵀ
            for t in range(i + 1, n_obs):
                c = L[t, i]
                for j in range(n_mis):
                    regression[i, j] -= c * regression[t, j]
            inverse = 1.0 / L[i, i]
            for j in range(n_mis):
                regression[i, j] *= inverse
        # observed coordinates: x − c; missing ones: μ_m + Σ_i (x_i − μ_i) regression[i] − c_m
        for j in range(n_mis):
            base = means[k, mis[j]] - centers[k, mis[j]]
            for r in range(n_rows):
                deviation[mis[j], r] = base
        for i in range(n_obs):
            mu, c = means[k, obs[i]], centers[k, obs[i]]
            for r in range(n_rows):
                deviation[obs[i], r] = values[i, r] - c
            for j in range(n_mis):
                b = regression[i, j]
                for r in range(n_rows):
                    deviation[mis[j], r] += (values[i, r] - mu) * b
        for f in range(n_features):
            s = 0.0
            for r in range(n_rows):
                weighted[f, r] = w[r] * deviation[f, r]
                s += weighted[f, r]
            first_sum[k, f] += s
        for f in range(n_features):
            for g in range(f if full else f, f + 1 if not full else n_features):
                s = 0.0
                for r in range(n_rows):
                    s += weighted[f, r] * deviation[g, r]
                if full:
                    second_sum[k, f, g] += s
                    if g != f:
                        second_sum[k, g, f] += s
                else:
                    second_sum[k, f, 0] += s
        for a in range(n_mis):  # + total · conditional covariance Σ_mm − Σ_mo regression
            for b in range(n_mis):
                if not full and a != b:
                    continue
                s = covs[k, mis[a], mis[b]]
                for i in range(n_obs):
                    s -= covs[k, mis[a], obs[i]] * regression[i, b]
                if full:
                    second_sum[k, mis[a], mis[b]] += total * s
                else:
                    second_sum[k, mis[a], 0] += total * s


@numba.njit(**_SERIAL)
def _moment_patterns(X, order, starts, observed, means, covs, weights, centers, full,
                     weight_sum, first_sum, second_sum, first, last):
    for p in range(first, last):
        obs = np.flatnonzero(observed[p])
        if len(obs) == 0:
            continue  # an empty row carries no information
        mis = np.flatnonzero(~observed[p])
        _pattern_moments(X, order[starts[p]:starts[p + 1]], obs, mis, means, covs, weights,
                         centers, full, weight_sum[p], first_sum[p], second_sum[p])


@numba.njit(**_PARALLEL)
def _moment_patterns_parallel(X, order, starts, observed, means, covs, weights, centers, full,
                              weight_sum, first_sum, second_sum):
    for p in numba.prange(len(starts) - 1):
        _moment_patterns(X, order, starts, observed, means, covs, weights, centers, full,
                         weight_sum, first_sum, second_sum, p, p + 1)


def missing_moments(X, order, starts, observed, means, covs, weights, centers, full):
    """Σ w, Σ w (x̂ − c) and Σ w [(x̂ − c)(x̂ − c)ᵀ + C] (or diagonals, shape (K, D, 1)) over rows
    with NaN, accumulated per pattern (patterns run in parallel) and then added."""
    n_patterns = len(starts) - 1
    n_components, n_features = means.shape
    width = n_features if full else 1
    work = _missing_work(len(order), n_patterns, n_components, n_features)
    weight_sum = np.zeros((n_patterns, n_components))
    first_sum = np.zeros((n_patterns, n_components, n_features))
    second_sum = np.zeros((n_patterns, n_components, n_features, width))
    arguments = (X, order, starts, observed, means, covs, weights, centers, full, weight_sum,
                 first_sum, second_sum)
    key = means.dtype.char + covs.dtype.char + weights.dtype.char + centers.dtype.char
    if not _MISSING_MOMENTS.use_compiled(key, work, arguments + (0, n_patterns)):
        return _MISSING_MOMENTS.run_numpy(_missing_moments_numpy, X, order, starts, observed,
                                          means, covs, weights, centers, full)
    if _n_parts(len(order)) == 1:
        _moment_patterns(*arguments, 0, n_patterns)
    else:
        _moment_patterns_parallel(*arguments)
    return weight_sum.sum(axis=0), first_sum.sum(axis=0), second_sum.sum(axis=0)


_MISSING_MOMENTS = tiers.TwoForms(_moment_patterns, _MISSING_MAX_WORK, 2.5)


def _missing_moments_numpy(X, order, starts, observed, means, covs, weights, centers, full):
    """missing_moments in numpy: pattern by pattern, all components with a positive weight at
    once (as in the loops, the others are neither factorised nor counted)."""
    means, covs = means.astype(np.float64, copy=False), covs.astype(np.float64, copy=False)
    centers = centers.astype(np.float64, copy=False)
    n_components, n_features = means.shape
    weight_sum = np.zeros(n_components)
    first_sum = np.zeros((n_components, n_features))
    second_sum = np.zeros((n_components, n_features, n_features if full else 1))
    for p in range(len(starts) - 1):
        obs = np.flatnonzero(observed[p])
        if len(obs) == 0:
            continue  # an empty row carries no information
        mis = np.flatnonzero(~observed[p])
        rows = order[starts[p]:starts[p + 1]]
        w = weights[rows].T  # (K, rows)
        total = w.sum(axis=1)
        k = np.flatnonzero(total != 0.0)
        if len(k) == 0:
            continue
        w = w[k]
        cov = covs[k]
        L = _observed_factors(cov[:, obs[:, None], obs])
        cross = cov[:, obs[:, None], mis]  # Σ_om
        # regression = Σ_oo⁻¹ Σ_om by two triangular solves, as in the loops
        regression = np.linalg.solve(np.swapaxes(L, 1, 2), np.linalg.solve(L, cross))
        # + total · conditional covariance C = Σ_mm − Σ_mo regression on the missing block
        conditional = (cov[:, mis[:, None], mis] - np.swapaxes(cross, 1, 2) @ regression)
        conditional *= total[k, None, None]
        values = X[rows[:, None], obs][None]  # (1, rows, n_obs)
        deviation = np.empty((len(k), len(rows), n_features))  # completed row − centre
        with np.errstate(over="ignore", invalid="ignore"):  # as the loops: inf, no warning
            deviation[:, :, obs] = values - centers[k][:, None, obs]
            deviation[:, :, mis] = ((means[k] - centers[k])[:, None, mis]
                                    + (values - means[k][:, None, obs]) @ regression)
            weighted = w[:, :, None] * deviation
            if full:
                second = np.swapaxes(weighted, 1, 2) @ deviation
                second[:, mis[:, None], mis] += conditional
            else:
                second = np.einsum("krd,krd->kd", weighted, deviation)
                second[:, mis] += np.diagonal(conditional, axis1=1, axis2=2)
                second = second[:, :, None]
        weight_sum[k] += total[k]
        first_sum[k] += weighted.sum(axis=1)
        second_sum[k] += second
    return weight_sum, first_sum, second_sum


def precision_cholesky_factors(covariances, min_ratio):
    """Upper-triangular P_k with P_k P_kᵀ = Σ_k⁻¹ for a stack (K, D, D) of covariances, and a
    mask of the components whose Σ_k is not numerically positive definite (their P_k is the
    identity).

    Σ = L Lᵀ (Cholesky), P = L⁻ᵀ. A pivot L_ii below ``min_ratio`` · √Σ_ii means coordinate i is
    a linear function of the others to working precision, so Σ counts as singular (a scale-free
    test). The compiled loop does this for all K matrices at once (LAPACK calls per small matrix
    cost more than the arithmetic); before it is compiled, one LAPACK call per matrix does.
    """
    covariances = np.ascontiguousarray(covariances, dtype=np.float64)
    if not covariances.flags.writeable:  # one specialisation: writable arrays only
        covariances = covariances.copy()
    n_components, n_features = covariances.shape[:2]
    work = n_components * n_features**3
    if _FACTORS.use_compiled("d", work, (covariances, float(min_ratio))):
        return _precision_factors_compiled(covariances, float(min_ratio))
    return _FACTORS.run_numpy(_precision_factors_lapack, covariances, float(min_ratio))


def _precision_factors_lapack(covariances, min_ratio):
    """:func:`precision_cholesky_factors` by one LAPACK call per matrix."""
    n_components, n_features = covariances.shape[:2]
    diagonal = np.diagonal(covariances, axis1=1, axis2=2)
    bad = ~(np.isfinite(covariances).all(axis=(1, 2)) & (diagonal > 0.0).all(axis=1))
    P = np.zeros_like(covariances)
    pivots = np.zeros((n_components, n_features))
    for k in np.flatnonzero(~bad):
        lower, info = lapack.dpotrf(covariances[k], lower=1, clean=1)
        if info == 0:
            pivots[k] = np.diagonal(lower)
            inverse, info = lapack.dtrtri(lower, lower=1)
            P[k] = inverse.T
        bad[k] = info != 0
    with np.errstate(invalid="ignore"):
        bad |= ~(pivots >= min_ratio * np.sqrt(np.abs(diagonal))).all(axis=1)
    bad |= ~np.isfinite(P).all(axis=(1, 2))
    P[bad] = np.eye(n_features)
    return P, bad


@numba.njit(**_SERIAL)
def _precision_factors_compiled(covariances, min_ratio):
    """:func:`precision_cholesky_factors` in one compiled loop."""
    K, D = covariances.shape[0], covariances.shape[1]
    P = np.zeros((K, D, D))
    bad = np.zeros(K, dtype=np.bool_)
    L = np.empty((D, D))
    for k in range(K):
        S = covariances[k]
        ok = True
        for j in range(D):
            if not (np.isfinite(S[j, j]) and S[j, j] > 0.0):
                ok = False
                break
            d = S[j, j]
            for m in range(j):
                d -= L[j, m] * L[j, m]
            if not d > 0.0 or np.sqrt(d) < min_ratio * np.sqrt(S[j, j]):
                ok = False
                break
            d = np.sqrt(d)
            L[j, j] = d
            for i in range(j + 1, D):
                s = S[i, j]
                for m in range(j):
                    s -= L[i, m] * L[j, m]
                L[i, j] = s / d
        if ok:
            # Inverse of the lower factor, column by column (forward substitution); P = L⁻ᵀ.
            for c in range(D):
                for i in range(c, D):
                    s = 1.0 if i == c else 0.0
                    for m in range(c, i):
                        s -= L[i, m] * P[k, c, m]
                    value = s / L[i, i]
                    if not np.isfinite(value):
                        ok = False
                    P[k, c, i] = value
        if not ok:
            bad[k] = True
            for i in range(D):
                for j in range(D):
                    P[k, i, j] = 1.0 if i == j else 0.0
    return P, bad


# Factor work is K·D³; the compiled loop always runs from 4,096, where a LAPACK call per matrix
# costs more than the arithmetic.
_FACTORS = tiers.TwoForms(_precision_factors_compiled, 4096, 0.5)
