"""Compiled loop of model-based hierarchical agglomeration (unconstrained Gaussian clusters).

The criterion (Banfield & Raftery 1993; Fraley 1998) is the classification likelihood of a
partition under Gaussian clusters with free covariances: up to constants, −2 log L_C =
Σ_k n_k log det(S_k / n_k), with S_k = W_k + λ I the cluster's scatter W_k about its mean,
regularised so that singletons and small clusters have a finite determinant (Fraley's α-term).
Every stage merges the pair whose merge increases the criterion least:

    Δ(i, j) = n_ij log det(S_ij / n_ij) − n_i log det(S_i / n_i) − n_j log det(S_j / n_j),
    W_ij = W_i + W_j + (n_i n_j / n_ij) (μ_i − μ_j)(μ_i − μ_j)ᵀ.

The pair costs live in a dense matrix; after a merge only the new cluster's row is recomputed
(one Cholesky factorisation per other cluster). Each cluster remembers its cheapest partner; when
that partner is merged away the old cost is kept as a lower bound and the row is searched again
only if it comes first.

The same algorithm is also written in numpy (the costs of a new cluster against all others at
once): for small problems the interpreter's per-merge overhead costs milliseconds where compiling
the loop costs seconds, so :mod:`emkit.kernels.tiers` runs it until the compiled loop is in
numba's cache or has paid for itself. Both break ties by the lowest index and agree merge for
merge.
"""

from __future__ import annotations

import numba
import numpy as np

from emkit.kernels import tiers

_OPTS = dict(nogil=True, cache=True)


@numba.njit(**_OPTS)
def _log_det_regularised(S, n_features):
    """log det of a symmetric positive definite S by Cholesky, in place (S is scratch)."""
    total = 0.0
    for j in range(n_features):
        d = S[j, j]
        for k in range(j):
            d -= S[j, k] * S[j, k]
        if d <= 0.0:
            return np.inf
        d = np.sqrt(d)
        S[j, j] = d
        total += np.log(d)
        for i in range(j + 1, n_features):
            s = S[i, j]
            for k in range(j):
                s -= S[i, k] * S[j, k]
            S[i, j] = s / d
    return 2.0 * total


@numba.njit(**_OPTS)
def _merge_cost(i, j, counts, sums, scatters, own, lam, beta, scratch, diff):
    n_i, n_j = counts[i], counts[j]
    n = n_i + n_j
    D = sums.shape[1]
    for a in range(D):
        diff[a] = sums[i, a] / n_i - sums[j, a] / n_j
    factor = n_i * n_j / n
    inv_n = 1.0 / n
    trace = 0.0
    for a in range(D):
        fa = factor * diff[a]
        for b in range(a + 1):
            scratch[a, b] = (scatters[i, a, b] + scatters[j, a, b] + fa * diff[b]) * inv_n
        trace += scratch[a, a]
    ridge = (lam + beta * trace) * inv_n
    for a in range(D):
        scratch[a, a] += ridge
    return n * _log_det_regularised(scratch, D) - own[i] - own[j]


@numba.njit(**_OPTS)
def _best_partner(i, active, cost, n_clusters):
    best, partner = np.inf, -1
    for k in range(n_clusters):
        if k != i and active[k]:
            c = cost[i, k]
            if c < best:
                best, partner = c, k
    return best, partner


def agglomerate(X, weights, lam, beta, n_target):
    """Merge the rows of X (each a singleton cluster of weight ``weights[i]`` > 0) down to
    ``n_target`` clusters; returns the cluster index (0 … n_target−1) of each row, numbered in
    the order of their first rows.

    Ties are broken by the lowest index, so the result is a deterministic function of the rows.
    The arrays are made here, not in the compiled loop: every numpy constructor used there is
    compiled too, which cost a first fit in a new environment about a second.
    """
    N, D = X.shape
    owner = np.arange(N)  # cluster of each row (index of its surviving representative)
    arguments = (X, weights.copy(), X * weights[:, None], np.zeros((N, D, D)), np.empty(N),
                 np.full((N, N), np.inf), np.ones(N, dtype=np.bool_), np.empty(N),
                 np.empty(N, dtype=np.int64), np.zeros(N, dtype=np.bool_), owner,
                 np.empty((D, D)), np.empty(D), float(lam), float(beta), int(n_target))
    if _MERGE_ALL.use_compiled("d", N**2 * (D**3 / 6 + D**2 + 60), arguments):
        _merge_all(*arguments)
    else:
        _MERGE_ALL.run_numpy(_merge_all_numpy, X, weights, float(lam), float(beta), int(n_target),
                             owner)
    # A cluster's representative is its lowest row: numbering representatives in order numbers
    # the clusters in the order of their first rows.
    return np.unique(owner, return_inverse=True)[1].astype(np.int64)


@numba.njit(**_OPTS)
def _merge_all(X, counts, sums, scatters, own, cost, active, best, partner, stale, owner,
               scratch, diff, lam, beta, n_target):
    """The loop of :func:`agglomerate`, on its arrays: ``counts`` (the weights), ``sums``
    (X × weights), ``scatters`` (zeros), ``cost`` (+inf), ``active`` (True), ``stale`` (False)
    and ``owner`` (0 … N−1) initialised, the others scratch. Leaves each row's representative
    in ``owner``."""
    N, D = X.shape
    for i in range(N):
        own[i] = counts[i] * D * np.log(lam / counts[i])
    # Two singletons: S_ij/n = (λI + f d dᵀ)/n, whose log det has a closed form.
    for i in range(N):
        for j in range(i + 1, N):
            d2 = 0.0
            for a in range(D):
                delta = X[i, a] - X[j, a]
                d2 += delta * delta
            n = counts[i] + counts[j]
            f = counts[i] * counts[j] / n
            ridge = lam + beta * f * d2 / n
            cost[i, j] = n * (D * np.log(ridge / n) + np.log1p(f * d2 / ridge)) - own[i] - own[j]
            cost[j, i] = cost[i, j]
    # cost is symmetric, so that every search reads a row
    for i in range(N):
        best[i], partner[i] = _best_partner(i, active, cost, N)
    n_active = N  # stale[k]: best[k] only a lower bound, partner[k] unknown
    while n_active > n_target:
        while True:  # the cheapest row; a stale one is re-evaluated and the search repeated
            i = N  # none yet (a variable, not the constant −1: numba would compile the call
            # below once more, for the literal)
            lowest = np.inf
            for k in range(N):
                if active[k] and best[k] < lowest:
                    lowest, i = best[k], k
            if i == N or not stale[i]:
                break
            best[i], partner[i] = _best_partner(i, active, cost, N)
            stale[i] = False
        if i == N:  # only infinite costs left (cannot happen with λ > 0)
            break
        j = partner[i]
        if j < i:
            i, j = j, i
        # Merge j into i: scatter about the new mean by the parallel-axis rule.
        n_i, n_j = counts[i], counts[j]
        n = n_i + n_j
        factor = n_i * n_j / n
        for a in range(D):
            da = sums[i, a] / n_i - sums[j, a] / n_j
            for b in range(D):
                db = sums[i, b] / n_i - sums[j, b] / n_j
                scatters[i, a, b] += scatters[j, a, b] + factor * da * db
        for a in range(D):
            sums[i, a] += sums[j, a]
        counts[i] = n
        trace = 0.0
        for a in range(D):
            for b in range(a + 1):
                scratch[a, b] = scatters[i, a, b] / n
            trace += scratch[a, a]
        for a in range(D):
            scratch[a, a] += (lam + beta * trace) / n
        own[i] = n * _log_det_regularised(scratch, D)
        active[j] = False
        n_active -= 1
        for r in range(N):
            if owner[r] == j:
                owner[r] = i
        for k in range(N):
            if active[k] and k != i:
                c = _merge_cost(i, k, counts, sums, scatters, own, lam, beta, scratch, diff)
                cost[i, k] = c
                cost[k, i] = c
        best[i], partner[i] = _best_partner(i, active, cost, N)
        stale[i] = False
        for k in range(N):
            if not active[k] or k == i:
                continue
            c = cost[i, k]
            if c < best[k]:  # below a bound on all of k's other costs: exact
                best[k], partner[k], stale[k] = c, i, False
            elif partner[k] == i or partner[k] == j:
                # k's cheapest partner changed or is gone; the old minimum stays a lower bound
                # (k's other costs did not change), re-evaluated only when it comes first.
                stale[k] = True


# numpy below this work (rows² × the D × D work of one merge cost), about half a second of
# numpy (1,074 rows, D = 4: 0.45–0.55 s, the compiled loop 0.11 s); compiling the loop with
# its callees takes about two seconds.
_MERGE_ALL = tiers.TwoForms(_merge_all, 1e8, 2.0)


def _merge_all_numpy(X, weights, lam, beta, n_target, owner):
    """:func:`_merge_all` in numpy, on the same inputs and in the same order of floating-point
    operations (the forms agree merge for merge); leaves each row's representative in
    ``owner``.

    Vectors run over clusters, not over matrix entries: a cluster's scatter is its D(D+1)/2
    lower-triangle entries, one row each of ``scatters`` (entries × clusters), so that the
    costs of a new cluster against all m others are a few dozen operations on m-vectors and a
    Cholesky factorisation written out entry by entry (LAPACK's per-matrix overhead on m small
    matrices cost three times as much)."""
    N, D = X.shape
    lower = _LowerTriangle(D)
    counts = weights.astype(np.float64)
    sums = np.ascontiguousarray((X * weights[:, None]).T)  # features × clusters
    scatters = np.zeros((lower.size, N))
    own = counts * D * np.log(lam / counts)
    cost = _singleton_costs(X, counts, own, lam, beta)
    active = np.ones(N, dtype=bool)
    partner = np.argmin(cost, axis=1)  # the first of equal costs: the lowest index
    best = cost[np.arange(N), partner]  # +inf once a cluster is merged away
    stale = np.zeros(N, dtype=bool)
    scratch = np.zeros((D, D))
    with np.errstate(invalid="ignore", divide="ignore"):  # see _LowerTriangle.log_det
        for _ in range(N - n_target):
            while True:  # the cheapest row; a stale one is re-evaluated and the search repeated
                i = int(np.argmin(best))
                if not stale[i]:
                    break
                partner[i] = np.argmin(cost[i])
                best[i], stale[i] = cost[i, partner[i]], False
            if not np.isfinite(best[i]):  # only infinite costs left (cannot happen with λ > 0)
                break
            i, j = sorted((i, int(partner[i])))
            # Merge j into i: scatter about the new mean by the parallel-axis rule.
            n = counts[i] + counts[j]
            delta = sums[:, i] / counts[i] - sums[:, j] / counts[j]
            scaled = counts[i] * counts[j] / n * delta
            scatters[:, i] += scatters[:, j] + scaled[lower.rows] * delta[lower.cols]
            sums[:, i] += sums[:, j]
            counts[i] = n
            # One matrix: the compiled loop's own function, interpreted, is the quickest.
            entries = scatters[:, i] / n
            scratch[lower.rows, lower.cols] = entries
            scratch[lower.diagonal_entries] += (lam + beta * lower.trace(entries)) / n
            own[i] = n * _log_det_regularised.py_func(scratch, D)
            active[j] = False
            best[j] = np.inf
            owner[owner == j] = i
            cost[j, :] = cost[:, j] = np.inf
            others = np.flatnonzero(active)
            others = others[others != i]
            # The costs of merging i with each other cluster k (_merge_cost over all k).
            n_k = counts[others]
            n_ik = counts[i] + n_k
            inv = 1.0 / n_ik
            diff = sums[:, i, None] / counts[i] - sums[:, others] / n_k
            scaled = counts[i] * n_k / n_ik * diff
            S = (scatters[:, i, None] + scatters[:, others]
                 + scaled[lower.rows] * diff[lower.cols]) * inv
            ridge = (lam + beta * lower.trace(S)) * inv
            for p in lower.diagonal:
                S[p] += ridge
            row = n_ik * lower.log_det(S) - own[i] - own[others]
            cost[i, others] = cost[others, i] = row
            partner[i] = np.argmin(cost[i])
            best[i], stale[i] = cost[i, partner[i]], False
            below = row < best[others]  # below a bound on all of k's other costs: exact
            best[others[below]], partner[others[below]] = row[below], i
            stale[others[below]] = False
            lost = ~below & ((partner[others] == i) | (partner[others] == j))
            stale[others[lost]] = True


def _singleton_costs(X, counts, own, lam, beta):
    """The merge costs of every pair of singletons (+inf on the diagonal), as the compiled
    loop computes them. In blocks of rows that fit the cache, into buffers made once: fresh
    memory for rows² temporaries costs more here than the arithmetic on it."""
    N, D = X.shape
    cost = np.empty((N, N))
    block = max(1, 8192 // N)
    d2, n, f, ridge, term = (np.empty((block, N)) for _ in range(5))
    for start in range(0, N, block):
        stop = min(start + block, N)
        rows = slice(start, stop)
        d2_, n_, f_, ridge_, term_ = (buffer[: stop - start] for buffer in (d2, n, f, ridge, term))
        d2_[...] = 0.0
        for a in range(D):
            np.subtract(X[rows, a, None], X[None, :, a], out=term_)
            np.square(term_, out=term_)
            d2_ += term_
        np.add(counts[rows, None], counts[None, :], out=n_)
        np.multiply(counts[rows, None], counts[None, :], out=f_)
        f_ /= n_
        np.multiply(beta, f_, out=ridge_)  # λ + β f d² / n, left to right
        ridge_ *= d2_
        ridge_ /= n_
        ridge_ += lam
        np.multiply(f_, d2_, out=term_)  # n (D log(ridge / n) + log1p(f d² / ridge))
        term_ /= ridge_
        np.log1p(term_, out=term_)
        out = cost[rows]
        np.divide(ridge_, n_, out=out)
        np.log(out, out=out)
        out *= D
        out += term_
        out *= n_
        out -= own[rows, None]
        out -= own[None, :]
    # The compiled loop subtracts the lower index's own term first and mirrors the pair: so
    # here (identical anyway where all weights are equal).
    if np.ptp(own) > 0:
        upper = np.triu_indices(N, 1)
        cost.T[upper] = cost[upper]
    np.fill_diagonal(cost, np.inf)
    return cost


class _LowerTriangle:
    """Symmetric D × D matrices as their lower-triangle entries, one row per entry
    (entries × matrices), and the entry-by-entry arithmetic the compiled loop does on them."""

    def __init__(self, D):
        self.D = D
        self.rows, self.cols = np.tril_indices(D)
        self.size = len(self.rows)
        self.index = {(int(a), int(b)): p for p, (a, b) in enumerate(
            zip(self.rows, self.cols, strict=True))}
        self.diagonal = [self.index[a, a] for a in range(D)]
        self.diagonal_entries = (np.arange(D), np.arange(D))

    def trace(self, S):
        """The trace of each matrix, summed in the compiled loop's order."""
        total = 0.0
        for p in self.diagonal:
            total = total + S[p]
        return total

    def log_det(self, S):
        """log det of each matrix (a column of S) by Cholesky, entry by entry as
        :func:`_log_det_regularised`; +inf where one is not positive definite (a pivot ≤ 0
        makes the sum NaN or −inf). Call under ``np.errstate(invalid=..., divide="ignore")``."""
        entry, D = self.index, self.D
        L = {}
        total = 0.0
        for j in range(D):
            d = S[entry[j, j]]
            for k in range(j):
                d = d - L[j, k] * L[j, k]
            d = np.sqrt(d)
            total = total + np.log(d)
            for i in range(j + 1, D):
                s = S[entry[i, j]]
                for k in range(j):
                    s = s - L[i, k] * L[j, k]
                L[i, j] = s / d
        total = 2.0 * total
        return np.where(np.isfinite(total), total, np.inf)
