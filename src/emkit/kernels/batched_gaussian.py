"""The compiled E-step of many small Gaussian mixtures at once
(:mod:`emkit.models.batched_gaussian`).

One pass over each group's rows computes, for every row, the log-densities of the K components
(whitening by the upper-triangular precision factor: D(D+1)/2 multiply-adds per component, or D
for a diagonal one), their log-sum-exp and posteriors, and adds the posterior-weighted moments
centred at the current means — no (G, K, N, D) temporaries, which made the numpy version
memory-bound. Groups are spread over threads (``prange``); rows of weight 0 (the padding that
makes ragged groups one array) are skipped.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from emkit.kernels import tiers

_LOG_2PI = math.log(2.0 * math.pi)


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _group(X, w, log_weights, means, P, full, weight, first, second):
    """E-step of one group: fills weight (K,), first (K, D), second (K, D, D) and returns the
    weighted log-likelihood. P is (K, D, D) upper triangular (full) or (K, 1, D) (diag)."""
    N, D = X.shape
    K = means.shape[0]
    constants = np.empty(K)
    for k in range(K):
        log_det = 0.0
        for d in range(D):
            log_det += math.log(P[k, d, d] if full else P[k, 0, d])
        constants[k] = log_weights[k] + log_det - 0.5 * D * _LOG_2PI
    diff = np.empty((K, D))
    joint = np.empty(K)
    log_likelihood = 0.0
    for n in range(N):
        wn = w[n]
        if wn == 0.0:
            continue
        top = -np.inf
        for k in range(K):
            for d in range(D):
                diff[k, d] = X[n, d] - means[k, d]
            squared = 0.0
            if full:
                for e in range(D):
                    y = 0.0
                    for d in range(e + 1):
                        y += diff[k, d] * P[k, d, e]
                    squared += y * y
            else:
                for d in range(D):
                    y = diff[k, d] * P[k, 0, d]
                    squared += y * y
            joint[k] = constants[k] - 0.5 * squared
            if joint[k] > top:
                top = joint[k]
        total = 0.0
        for k in range(K):
            joint[k] = math.exp(joint[k] - top)
            total += joint[k]
        log_likelihood += wn * (top + math.log(total))
        for k in range(K):
            r = wn * joint[k] / total
            weight[k] += r
            for d in range(D):
                rd = r * diff[k, d]
                first[k, d] += rd
                if full:
                    for e in range(d + 1):
                        second[k, d, e] += rd * diff[k, e]
                else:
                    second[k, 0, d] += rd * diff[k, d]
    if full:
        for k in range(K):
            for d in range(D):
                for e in range(d):
                    second[k, e, d] = second[k, d, e]
    return log_likelihood


@numba.njit(nogil=True, cache=True)
def _groups_serial(X, w, rows, log_weights, means, P, full, weight, first, second,
                   log_likelihood):
    for a in range(rows.shape[0]):
        g = rows[a]
        log_likelihood[a] = _group(X[g], w[g], log_weights[g], means[g], P[g], full,
                                   weight[a], first[a], second[a])


@numba.njit(nogil=True, cache=True, parallel=True)
def _groups_parallel(X, w, rows, log_weights, means, P, full, weight, first, second,
                     log_likelihood):
    for a in numba.prange(rows.shape[0]):
        g = rows[a]
        log_likelihood[a] = _group(X[g], w[g], log_weights[g], means[g], P[g], full,
                                   weight[a], first[a], second[a])


# Below this many rows in all, starting threads costs more than the work.
_PARALLEL_MIN_ROWS = 65_536
# numpy below this work (rows × K × (D + 1)², the dense Gaussian kernels' unit): there the
# (A, K, N, D) temporaries are small and numpy is a few times slower than the loop, where
# compiling the serial and the threaded loops costs about three seconds (tiers' rule).
_GROUPS = tiers.TwoForms(_groups_serial, 2**23, 3.0)


def e_step_groups(X, w, rows, log_weights, means, P, full):
    """Statistics of the groups ``rows`` (A,) of X (G, N, D) with row weights w (G, N):
    weight (A, K), first (A, K, D), second (A, K, D, D) full or (A, K, 1, D) diag, centred at
    ``means`` (G, K, D), and the weighted log-likelihood (A,). ``log_weights`` (G, K); P is
    (G, K, D, D) upper triangular or (G, K, 1, D) for diagonal covariances."""
    A = rows.shape[0]
    K, D = means.shape[1], means.shape[2]
    out = (np.zeros((A, K)), np.zeros((A, K, D)), np.zeros((A, K, P.shape[2], D)), np.zeros(A))
    arguments = (X, w, rows, log_weights, means, P, bool(full), *out)
    if not _GROUPS.use_compiled(X.dtype.char, A * X.shape[1] * K * (D + 1) ** 2, arguments):
        return _GROUPS.run_numpy(_e_step_groups_numpy, X, w, rows, log_weights, means, P,
                                 bool(full))
    if A * X.shape[1] >= _PARALLEL_MIN_ROWS:
        _groups_parallel(*arguments)
        # the groups still running late in such a fit are fewer: compiled too, not numpy
        _GROUPS.keep_compiled(X.dtype.char)
    else:
        _groups_serial(*arguments)
    return out


def _e_step_groups_numpy(X, w, rows, log_weights, means, P, full):
    """:func:`e_step_groups` in numpy, all groups, components and rows at once."""
    X, w, means, P = X[rows], w[rows], means[rows], P[rows]
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
