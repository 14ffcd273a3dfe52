"""The compiled E-step of many small Gaussian mixtures at once
(:mod:`emkit.models.batched_gaussian`).

One pass over each group's rows, in blocks of rows, computes for every row the log-densities of
the K components (whitening by the upper-triangular precision factor: D(D+1)/2 multiply-adds per
component, or D for a diagonal one), their log-sum-exp and posteriors, and adds the
posterior-weighted moments centred at the current means — no (G, K, N, D) temporaries, which
made the numpy version memory-bound. Groups are spread over threads (``prange``); rows of weight
0 (the padding that makes ragged groups one array) count for nothing.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from emkit.kernels import tiers
from emkit.kernels.fastmath import exp_nonpositive

_LOG_2PI = math.log(2.0 * math.pi)


# Rows per block of one group's E-step: its temporaries, (K, D, _ROWS), stay in cache, and the
# loops over a block's rows are long enough to run in SIMD lanes (128 rather than 64: 5% less
# time in 2-D and 6-D).
_ROWS = 128


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _group(X, w, log_weights, means, P, full, weight, first, second):
    """E-step of one group: adds to weight (K,), first (K, D), second (K, D, D) and returns the
    weighted log-likelihood. P is (K, D, D) upper triangular (full) or (K, 1, D) (diag).

    Block by block of rows, every inner loop runs over the block's rows (the loops over
    components and features, a few steps each, outside): densities, log-sum-exp (a polynomial
    exp, :func:`emkit.kernels.fastmath.exp_nonpositive`) and moments all vectorise, 2-2.5x
    faster than a loop over rows with the small loops inside."""
    N, D = X.shape
    K = means.shape[0]
    while K > 1 and log_weights[K - 1] == -np.inf:  # trailing components of weight 0 (the
        K -= 1  # padding of mixtures of fewer components): their statistics stay 0
    constants = np.empty(K)
    for k in range(K):
        log_det = 0.0
        for d in range(D):
            log_det += math.log(P[k, d, d] if full else P[k, 0, d])
        constants[k] = log_weights[k] + log_det - 0.5 * D * _LOG_2PI
    joint = np.empty((K, _ROWS))  # log π_k p(x | k), then exp(that − the row's maximum)
    diff = np.empty((K, D, _ROWS))  # rows about each component's mean, feature by feature
    columns = np.empty((D, _ROWS))  # the block's rows, feature by feature
    y = np.empty(_ROWS)
    top = np.empty(_ROWS)
    scale = np.empty(_ROWS)  # the row's weight over its sum of exp(joint − top); 0: skipped
    r = np.empty(_ROWS)
    log_likelihood = 0.0
    for start in range(0, N, _ROWS):
        B = min(_ROWS, N - start)
        # Transposed once per block, so that the loops below read features contiguously
        # (strided reads of X for every component cost a fifth of the time).
        for i in range(B):
            for d in range(D):
                columns[d, i] = X[start + i, d]
        for k in range(K):
            for d in range(D):
                m = means[k, d]
                for i in range(B):
                    diff[k, d, i] = columns[d, i] - m
            for i in range(B):
                joint[k, i] = 0.0
            for e in range(D):  # y_e = Σ_{d ≤ e} diff_d P_de (P upper triangular)
                if full:
                    p = P[k, 0, e]
                    for i in range(B):
                        y[i] = diff[k, 0, i] * p
                    for d in range(1, e + 1):
                        p = P[k, d, e]
                        for i in range(B):
                            y[i] += diff[k, d, i] * p
                else:
                    p = P[k, 0, e]
                    for i in range(B):
                        y[i] = diff[k, e, i] * p
                for i in range(B):
                    joint[k, i] += y[i] * y[i]
            c = constants[k]
            for i in range(B):
                joint[k, i] = c - 0.5 * joint[k, i]
        top[:B] = joint[0, :B]
        for k in range(1, K):
            for i in range(B):
                top[i] = max(top[i], joint[k, i])
        scale[:B] = 0.0
        for k in range(K):
            for i in range(B):
                joint[k, i] = exp_nonpositive(joint[k, i] - top[i])
                scale[i] += joint[k, i]
        for i in range(B):
            wn = w[start + i]
            if wn != 0.0:  # rows of weight 0 (padding) count not even if their density is 0
                log_likelihood += wn * (top[i] + math.log(scale[i]))
                scale[i] = wn / scale[i]
            else:
                scale[i] = 0.0
        for k in range(K):
            for i in range(B):
                r[i] = joint[k, i] * scale[i] if scale[i] != 0.0 else 0.0
            _add_moments(diff[k], r, B, full, k, weight, first, second)
    if full:
        for k in range(K):
            for d in range(D):
                for e in range(d):
                    second[k, e, d] = second[k, d, e]
    return log_likelihood


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _add_moments(diff, r, B, full, k, weight, first, second):
    """Adds the first B rows' posterior-weighted moments about component k's mean (``diff``
    (D, _ROWS), posteriors ``r``) to weight[k], first[k] and second[k] (its lower triangle).
    Reassociated, so that each sum runs in several SIMD lanes."""
    D = diff.shape[0]
    total = 0.0
    for i in range(B):
        total += r[i]
    weight[k] += total
    for d in range(D):
        total = 0.0
        for i in range(B):
            total += r[i] * diff[d, i]
        first[k, d] += total
        for e in range(d + 1) if full else range(d, d + 1):
            total = 0.0
            for i in range(B):
                total += r[i] * diff[d, i] * diff[e, i]
            if full:
                second[k, d, e] += total
            else:
                second[k, 0, d] += total


@numba.njit(nogil=True, cache=True)
def _groups_serial(X, w, rows, log_weights, means, P, full, weight, first, second,
                   log_likelihood):
    shared = X.shape[0] == 1  # one set of rows for every group
    for a in range(rows.shape[0]):
        g = rows[a]
        source = 0 if shared else g
        log_likelihood[a] = _group(X[source], w[source], log_weights[g], means[g], P[g], full,
                                   weight[a], first[a], second[a])


@numba.njit(nogil=True, cache=True, parallel=True)
def _groups_parallel(X, w, rows, log_weights, means, P, full, weight, first, second,
                     log_likelihood):
    shared = X.shape[0] == 1  # one set of rows for every group
    for a in numba.prange(rows.shape[0]):
        g = rows[a]
        source = 0 if shared else g
        log_likelihood[a] = _group(X[source], w[source], log_weights[g], means[g], P[g], full,
                                   weight[a], first[a], second[a])


# Below this work (rows × K × (D + 1)², ~1 ns each), starting threads costs more than the
# work saves: 400 fits of 150 rows and ~5 components in 4-D are 7.5 million, and threads take a
# tenth off a grid's time on two cores; the last few fits of a stack run serially.
_PARALLEL_MIN_WORK = 2**19
_parallel_looked_up: dict = {}  # the data's dtype: whether _groups_parallel is ready for it


def _parallel_ready(arguments) -> bool:
    """Whether the threaded loop can run without compiling (looked up once per dtype)."""
    key = arguments[0].dtype.char
    if key not in _parallel_looked_up:
        _parallel_looked_up[key] = tiers.is_compiled(_groups_parallel, arguments)
    return _parallel_looked_up[key]
# numpy below this work (rows × K × (D + 1)², the dense Gaussian kernels' unit): there the
# (A, K, N, D) temporaries are small and numpy is a few times slower than the loop, where
# compiling the serial and the threaded loops costs about three seconds (tiers' rule).
_GROUPS = tiers.TwoForms(_groups_serial, 2**23, 3.0)


def e_step_groups(X, w, rows, log_weights, means, P, full, threads=True):
    """Statistics of the groups ``rows`` (A,) of X (G, N, D) with row weights w (G, N), or
    of X (1, N, D) and w (1, N) when every group has the same rows (a grid's fits: one copy of
    the rows in memory, not G): weight (A, K), first (A, K, D), second (A, K, D, D) full or
    (A, K, 1, D) diag, centred at ``means`` (G, K, D), and the weighted log-likelihood (A,).
    ``log_weights`` (G, K); P is (G, K, D, D) upper triangular or (G, K, 1, D) for diagonal
    covariances. ``threads=False`` compiles no threaded loop (that costs 5–8 s): a large stack
    then runs on threads only where the threaded loop is already compiled or in numba's
    cache."""
    P = np.ascontiguousarray(P)  # one compiled signature whatever P's layout
    A = rows.shape[0]
    K, D = means.shape[1], means.shape[2]
    out = (np.zeros((A, K)), np.zeros((A, K, D)), np.zeros((A, K, P.shape[2], D)), np.zeros(A))
    arguments = (X, w, rows, log_weights, means, P, bool(full), *out)
    work = A * X.shape[1] * K * (D + 1) ** 2
    if not _GROUPS.use_compiled(X.dtype.char, work, arguments):
        return _GROUPS.run_numpy(_e_step_groups_numpy, X, w, rows, log_weights, means, P,
                                 bool(full))
    if work >= _PARALLEL_MIN_WORK and (threads or _parallel_ready(arguments)):
        _groups_parallel(*arguments)
        # the groups still running late in such a fit are fewer: compiled too, not numpy
        _GROUPS.keep_compiled(X.dtype.char)
    else:
        _groups_serial(*arguments)
    return out


def _e_step_groups_numpy(X, w, rows, log_weights, means, P, full):
    """:func:`e_step_groups` in numpy, all groups, components and rows at once."""
    source = rows if len(X) > 1 else np.zeros_like(rows)  # one set of rows for all
    X, w, means, P = X[source], w[source], means[rows], P[rows]
    D = X.shape[2]
    diff = X[:, None, :, :] - means[:, :, None, :]  # (A, K, N, D)
    if full:  # y_e = Σ_{d ≤ e} diff_d P_de: P is upper triangular
        whitened = diff @ P
        log_det = np.log(np.diagonal(P, axis1=2, axis2=3)).sum(axis=2)
    else:
        whitened = diff * P  # P (A, K, 1, D) broadcasts over the rows
        log_det = np.log(P[:, :, 0, :]).sum(axis=2)
    constants = log_weights[rows] + log_det - 0.5 * D * _LOG_2PI
    joint = constants[:, :, None] - 0.5 * np.einsum("aknd,aknd->akn", whitened, whitened)
    top = joint.max(axis=1, keepdims=True)
    scaled = np.exp(joint - top)
    total = scaled.sum(axis=1, keepdims=True)
    used = w > 0  # padding rows (weight 0) count not even if their density is 0
    row_log_likelihood = np.where(used, top[:, 0] + np.log(total[:, 0]), 0.0)
    r = (w[:, None, :] * scaled) / total  # (A, K, N)
    weighted = r[:, :, :, None] * diff
    first = weighted.sum(axis=2)
    if full:
        second = np.swapaxes(weighted, 2, 3) @ diff
    else:
        second = np.einsum("aknd,aknd->akd", weighted, diff)[:, :, None, :]
    return r.sum(axis=2), first, second, (w * row_log_likelihood).sum(axis=1)


@numba.njit(nogil=True, cache=True)
def precision_factors(C, P, ok, L, min_pivot_ratio):
    """For each matrix C[m] (M, D, D; its lower triangle is read) the upper-triangular P[m]
    with P Pᵀ = C⁻¹, and ok[m]: whether C[m] is finite and numerically positive definite —
    every Cholesky pivot L_jj at least ``min_pivot_ratio`` times √C_jj (the Gaussian family's
    test); P[m] is the identity where it is not. L (D, D) is scratch. The numpy form,
    :func:`emkit.models.batched_gaussian.precision_cholesky`'s, costs tens of microseconds
    of calls on a stack of a few matrices, at every pass of a fit."""
    M, D = C.shape[0], C.shape[1]
    for m in range(M):
        good = True
        for a in range(D):
            if not C[m, a, a] > 0.0:
                good = False
            for b in range(D):
                if not np.isfinite(C[m, a, b]):
                    good = False
        if good:
            for j in range(D):
                d = C[m, j, j]
                for k in range(j):
                    d -= L[j, k] * L[j, k]
                d = np.sqrt(d) if d > 0.0 else 0.0
                if not d >= min_pivot_ratio * np.sqrt(C[m, j, j]) or d == 0.0:
                    good = False
                    break
                L[j, j] = d
                for i in range(j + 1, D):
                    s = C[m, i, j]
                    for k in range(j):
                        s -= L[i, k] * L[j, k]
                    L[i, j] = s / d
        ok[m] = good
        for a in range(D):
            for b in range(D):
                P[m, a, b] = 0.0
            if not good:
                P[m, a, a] = 1.0
        if not good:
            continue
        # P = L⁻ᵀ: column j of L⁻¹ by forward substitution, stored as row j of P.
        for j in range(D):
            P[m, j, j] = 1.0 / L[j, j]
            for i in range(j + 1, D):
                s = 0.0
                for k in range(j, i):
                    s += L[i, k] * P[m, j, k]
                P[m, j, i] = -s / L[i, i]
