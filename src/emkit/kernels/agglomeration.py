"""Compiled loop of model-based hierarchical agglomeration (unconstrained Gaussian clusters),
mclust's ``hcVVV`` criterion and merge order.

The criterion (Banfield & Raftery 1993; Fraley 1998) is the classification likelihood of a
partition under Gaussian clusters with free covariances. mclust regularises each cluster's
term inside the logarithm (``hcVVV``, with its α and β):

    T(n, W) = n log( det(W / n) + β (tr W + α) / n ),   det(W / n) taken as 0 for n ≤ D,

so that singletons (T = log αβ), small clusters and clusters on a line have finite terms, and
the term of a large cluster is its log-determinant. Every stage merges the pair whose merge
increases Σ T least:

    Δ(i, j) = T(n_ij, W_ij) − T(n_i, W_i) − T(n_j, W_j),
    W_ij = W_i + W_j + (n_i n_j / n_ij) (μ_i − μ_j)(μ_i − μ_j)ᵀ.

Clusters occupy slots 0 … m−1 as in mclust: a merge of the slots i < j puts the new cluster
in slot i and moves the last slot into slot j. Of equal costs, the pair that comes last in
the order (0,1), (0,2), (1,2), (0,3), … is merged (mclust's rule). Equal costs are common
(duplicated rows: every pair of equal rows costs −2 log 2), and this rule makes the merges,
and so the partitions, mclust's.

The pair costs live in a dense matrix; after a merge only the new cluster's row is computed
(one Cholesky factorisation per other cluster). Each cluster remembers its cheapest partner;
when that partner is merged away or moved, the old cost is kept as a lower bound and the row
is searched again only if it comes first.

The same algorithm is also written in numpy (the costs of a new cluster against all others at
once): for small problems the interpreter's per-merge overhead costs milliseconds where
compiling the loop costs seconds, so :mod:`emkit.kernels.tiers` runs it until the compiled loop
is in numba's cache or has paid for itself. Both agree merge for merge.
"""

from __future__ import annotations

import numba
import numpy as np

from emkit.kernels import tiers

_OPTS = dict(nogil=True, cache=True)


@numba.njit(**_OPTS)
def _log_det(S, n_features):
    """log det of a symmetric S from its lower triangle by Cholesky, in place (S is
    scratch); −inf where S is not (numerically) positive definite: det taken as 0."""
    total = 0.0
    for j in range(n_features):
        d = S[j, j]
        for k in range(j):
            d -= S[j, k] * S[j, k]
        if not d > 0.0:
            return -np.inf
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
def _term(log_det, n, trace, lam, beta):
    """T(n, W) = n log(det(W / n) + β (tr W + α) / n) from log det(W / n) (−inf: 0)."""
    ridge = np.log(beta * (trace + lam) / n)
    return n * (max(log_det, ridge) + np.log1p(np.exp(-abs(log_det - ridge))))


@numba.njit(**_OPTS)
def _merge_cost(i, j, counts, sums, scatters, own, lam, beta, scratch, diff):
    n_i, n_j = counts[i], counts[j]
    n = n_i + n_j
    D = sums.shape[1]
    for a in range(D):
        diff[a] = sums[i, a] / n_i - sums[j, a] / n_j
    factor = n_i * n_j / n
    trace = 0.0
    for a in range(D):
        fa = factor * diff[a]
        for b in range(a + 1):
            scratch[a, b] = scatters[i, a, b] + scatters[j, a, b] + fa * diff[b]
        trace += scratch[a, a]
    log_det = -np.inf
    if n > D:
        inv_n = 1.0 / n
        for a in range(D):
            for b in range(a + 1):
                scratch[a, b] *= inv_n
        log_det = _log_det(scratch, D)
    return _term(log_det, n, trace, lam, beta) - own[i] - own[j]


@numba.njit(**_OPTS)
def _best_partner(i, m, cost):
    """The cheapest partner of slot i among slots 0 … m−1 (of equal costs the highest slot,
    the pair mclust merges first) and its cost."""
    best, partner = np.inf, -1
    for k in range(m):
        if k != i and cost[i, k] <= best:
            best, partner = cost[i, k], k
    return best, partner


@numba.njit(**_OPTS)
def _position(a, b):
    """The place of the pair of slots {a, b} in mclust's order (0,1), (0,2), (1,2), (0,3), …"""
    if a > b:
        a, b = b, a
    return b * (b - 1) // 2 + a


def agglomerate(X, weights, lam, beta, n_target):
    """Merge the rows of X (each a singleton cluster of weight ``weights[i]`` > 0) down to
    ``n_target`` clusters under mclust's hcVVV criterion with its α = ``lam`` and β = ``beta``.
    Returns the merges in order, (N − n_target, 2): a row of each of the two clusters merged
    (:func:`cut` gives the partition after any number of them). A deterministic function of the
    rows and their order, as mclust's.

    The arrays are made here, not in the compiled loop: every numpy constructor used there is
    compiled too, which cost a first fit in a new environment about a second.
    """
    N, D = X.shape
    merges = np.zeros((N - n_target, 2), dtype=np.int64)
    arguments = (X, weights.copy(), X * weights[:, None], np.zeros((N, D, D)), np.empty(N),
                 np.full((N, N), np.inf), np.empty(N), np.empty(N, dtype=np.int64),
                 np.zeros(N, dtype=np.bool_), np.arange(N), merges, np.empty((D, D)),
                 np.empty(D), float(lam), float(beta), int(n_target))
    if _MERGE_ALL.use_compiled("r", N**2 * (D**3 / 6 + D**2 + 60), arguments):
        _merge_all(*arguments)
    else:
        _MERGE_ALL.run_numpy(_merge_all_numpy, X, weights, float(lam), float(beta), int(n_target),
                             merges)
    return merges


def cut(merges: np.ndarray, n_rows: int, n_clusters: int) -> np.ndarray:
    """The cluster (0 … n_clusters−1, numbered in the order of their first rows) of each of
    ``n_rows`` rows after the first n_rows − n_clusters of ``merges`` (:func:`agglomerate`'s)."""
    root = np.arange(n_rows)

    def find(row):
        while root[row] != row:
            root[row] = root[root[row]]
            row = root[row]
        return row

    for a, b in merges[: n_rows - n_clusters]:
        ra, rb = find(a), find(b)
        root[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(row) for row in range(n_rows)])
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)  # roots: first rows


@numba.njit(**_OPTS)
def _merge_all(X, counts, sums, scatters, own, cost, best, partner, stale, rows, merges, scratch,
               diff, lam, beta, n_target):
    """The loop of :func:`agglomerate`, on its arrays: ``counts`` (the weights), ``sums``
    (X × weights), ``scatters`` (zeros), ``cost`` (+inf), ``stale`` (False) and ``rows`` (0 …
    N−1: a row of each slot's cluster) initialised, the others scratch. Writes the merges
    (a row of each cluster merged) into ``merges``."""
    N, D = X.shape
    for i in range(N):
        own[i] = _term(-np.inf, counts[i], 0.0, lam, beta)
    # Two singletons: W_ij = f d dᵀ, of rank one (det 0 unless D = 1), tr W_ij = f |d|².
    for i in range(N):
        for j in range(i + 1, N):
            d2 = 0.0
            for a in range(D):
                delta = X[i, a] - X[j, a]
                d2 += delta * delta
            n = counts[i] + counts[j]
            f = counts[i] * counts[j] / n
            log_det = -np.inf
            if D == 1 and n > 1.0:
                log_det = np.log(f * d2 / n)
            cost[i, j] = _term(log_det, n, f * d2, lam, beta) - own[i] - own[j]
            cost[j, i] = cost[i, j]
    m = N  # the clusters are the slots 0 … m−1
    for i in range(m):
        best[i], partner[i] = _best_partner(i, m, cost)
    big = N * N  # stale[k]: best[k] only a lower bound, partner[k] unknown
    while m > n_target:
        while True:  # the first pair; a stale row is re-evaluated and the search repeated
            i = m  # none yet (a variable, not the constant −1: numba would compile the call
            # below once more, for the literal)
            lowest, latest = np.inf, -1
            for k in range(m):
                place = big if stale[k] else _position(k, partner[k])
                if best[k] < lowest or (best[k] == lowest and place > latest):
                    lowest, latest, i = best[k], place, k
            if i == m or not stale[i]:
                break
            best[i], partner[i] = _best_partner(i, m, cost)
            stale[i] = False
        if i == m:  # only infinite costs left (cannot happen with α, β > 0)
            break
        j = partner[i]
        if j < i:
            i, j = j, i
        # Merge j into slot i: scatter about the new mean by the parallel-axis rule.
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
                scratch[a, b] = scatters[i, a, b]
            trace += scratch[a, a]
        log_det = -np.inf
        if n > D:
            for a in range(D):
                for b in range(a + 1):
                    scratch[a, b] /= n
            log_det = _log_det(scratch, D)
        own[i] = _term(log_det, n, trace, lam, beta)
        merges[N - m, 0], merges[N - m, 1] = rows[i], rows[j]
        # The last slot moves into slot j; the rows that knew it by its old slot, and its
        # own row, are searched again (their pairs' places changed).
        last = m - 1
        if j != last:
            counts[j] = counts[last]
            own[j] = own[last]
            for a in range(D):
                sums[j, a] = sums[last, a]
                for b in range(D):
                    scatters[j, a, b] = scatters[last, a, b]
            for k in range(m):
                cost[j, k] = cost[last, k]
                cost[k, j] = cost[k, last]
            cost[j, j] = np.inf
            best[j], partner[j], stale[j] = best[last], partner[last], True
            for k in range(last):
                if partner[k] == last:
                    partner[k], stale[k] = j, True
            rows[j] = rows[last]
        m -= 1
        for k in range(m):
            if k != i:
                c = _merge_cost(i, k, counts, sums, scatters, own, lam, beta, scratch, diff)
                cost[i, k] = c
                cost[k, i] = c
        best[i], partner[i] = _best_partner(i, m, cost)
        stale[i] = False
        for k in range(m):
            if k == i:
                continue
            c = cost[i, k]
            if c < best[k] or (c == best[k] and not stale[k]
                               and _position(k, i) > _position(k, partner[k])):
                # below a bound on all of k's other costs, or equal and first: exact
                best[k], partner[k], stale[k] = c, i, False
            elif partner[k] == i or partner[k] == j:
                # k's cheapest partner changed or is gone; the old minimum stays a lower bound
                # (k's other costs did not change), re-evaluated only when it comes first.
                stale[k] = True


# numpy below this work (rows² × the D × D work of one merge cost), about half a second of
# numpy (1,074 rows, D = 4: 0.45–0.55 s, the compiled loop 0.11 s); compiling the loop with
# its callees takes about two seconds.
_MERGE_ALL = tiers.TwoForms(_merge_all, 1e8, 2.0)


def _merge_all_numpy(X, weights, lam, beta, n_target, merges):
    """:func:`_merge_all` in numpy, on the same inputs and in the same order of floating-point
    operations (the forms agree merge for merge); writes the merges into ``merges``.

    Vectors run over clusters, not over matrix entries: a cluster's scatter is its D(D+1)/2
    lower-triangle entries, one row each of ``scatters`` (entries × slots), so that the costs
    of a new cluster against all m others are a few dozen operations on m-vectors and a
    Cholesky factorisation written out entry by entry (LAPACK's per-matrix overhead on m small
    matrices cost three times as much)."""
    N, D = X.shape
    lower = _LowerTriangle(D)
    counts = weights.astype(np.float64)
    sums = np.ascontiguousarray((X * weights[:, None]).T)  # features × slots
    scatters = np.zeros((lower.size, N))
    own = _terms(np.full(N, -np.inf), counts, np.zeros(N), lam, beta)
    cost = _singleton_costs(X, counts, own, lam, beta)
    slots = np.arange(N)
    partner = N - 1 - np.argmin(cost[:, ::-1], axis=1)  # of equal costs, the highest slot
    best = cost[slots, partner]
    stale = np.zeros(N, dtype=bool)
    rows = np.arange(N)  # a row of each slot's cluster
    scratch = np.zeros((D, D))
    big = N * N
    m = N
    with np.errstate(invalid="ignore", divide="ignore"):  # see _LowerTriangle.log_det
        while m > n_target:
            while True:  # the first pair; a stale row is re-evaluated and the search repeated
                lowest = best[:m].min()
                if not np.isfinite(lowest):  # only infinite costs left (cannot happen)
                    return
                tied = np.flatnonzero(best[:m] == lowest)
                place = np.where(stale[tied], big, _positions(tied, partner[tied]))
                i = int(tied[np.argmax(place)])
                if not stale[i]:
                    break
                partner[i] = m - 1 - np.argmin(cost[i, m - 1::-1])
                best[i], stale[i] = cost[i, partner[i]], False
            i, j = sorted((i, int(partner[i])))
            # Merge j into slot i: scatter about the new mean by the parallel-axis rule.
            n = counts[i] + counts[j]
            delta = sums[:, i] / counts[i] - sums[:, j] / counts[j]
            scaled = counts[i] * counts[j] / n * delta
            scatters[:, i] += scatters[:, j] + scaled[lower.rows] * delta[lower.cols]
            sums[:, i] += sums[:, j]
            counts[i] = n
            # One matrix: the compiled loop's own functions, interpreted, are the quickest.
            entries = scatters[:, i]
            scratch[lower.rows, lower.cols] = entries
            log_det = -np.inf
            if n > D:
                scratch[lower.rows, lower.cols] /= n
                log_det = _log_det.py_func(scratch, D)
            own[i] = _term.py_func(log_det, n, lower.trace(entries), lam, beta)
            merges[N - m] = rows[i], rows[j]
            last = m - 1
            if j != last:  # the last slot moves into slot j
                for array in (counts, own, best, partner):
                    array[j] = array[last]
                sums[:, j] = sums[:, last]
                scatters[:, j] = scatters[:, last]
                cost[j, :m] = cost[last, :m]
                cost[:m, j] = cost[:m, last]
                cost[j, j] = np.inf
                stale[j] = True
                moved = np.flatnonzero(partner[:last] == last)
                partner[moved], stale[moved] = j, True
                rows[j] = rows[last]
            m -= 1
            others = np.arange(m)
            others = others[others != i]
            # The costs of merging i with each other cluster k (_merge_cost over all k).
            n_k = counts[others]
            n_ik = counts[i] + n_k
            diff = sums[:, i, None] / counts[i] - sums[:, others] / n_k
            scaled = counts[i] * n_k / n_ik * diff
            S = scatters[:, i, None] + scatters[:, others] + scaled[lower.rows] * diff[lower.cols]
            trace = lower.trace(S)
            log_det = np.where(n_ik > D, lower.log_det(S * (1.0 / n_ik)), -np.inf)
            row = _terms(log_det, n_ik, trace, lam, beta) - own[i] - own[others]
            cost[i, others] = cost[others, i] = row
            partner[i] = m - 1 - np.argmin(cost[i, m - 1::-1])
            best[i], stale[i] = cost[i, partner[i]], False
            first = (row < best[others]) | ((row == best[others]) & ~stale[others] & (
                _positions(others, np.full(len(others), i)) > _positions(others,
                                                                         partner[others])))
            best[others[first]], partner[others[first]] = row[first], i
            stale[others[first]] = False
            lost = ~first & ((partner[others] == i) | (partner[others] == j))
            stale[others[lost]] = True


def _positions(a, b):
    """:func:`_position` of the pairs (a[k], b[k])."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    return high * (high - 1) // 2 + low


def _terms(log_det, n, trace, lam, beta):
    """:func:`_term` of arrays."""
    ridge = np.log(beta * (trace + lam) / n)
    return n * (np.maximum(log_det, ridge) + np.log1p(np.exp(-np.abs(log_det - ridge))))


def _singleton_costs(X, counts, own, lam, beta):
    """The merge costs of every pair of singletons (+inf on the diagonal), as the compiled
    loop computes them. In blocks of rows that fit the cache, into buffers made once: fresh
    memory for rows² temporaries costs more here than the arithmetic on it."""
    N, D = X.shape
    cost = np.empty((N, N))
    block = max(1, 8192 // N)
    d2, n, f, term = (np.empty((block, N)) for _ in range(4))
    for start in range(0, N, block):
        stop = min(start + block, N)
        rows = slice(start, stop)
        d2_, n_, f_, term_ = (buffer[: stop - start] for buffer in (d2, n, f, term))
        d2_[...] = 0.0
        for a in range(D):
            np.subtract(X[rows, a, None], X[None, :, a], out=term_)
            np.square(term_, out=term_)
            d2_ += term_
        np.add(counts[rows, None], counts[None, :], out=n_)
        np.multiply(counts[rows, None], counts[None, :], out=f_)
        f_ /= n_
        np.multiply(f_, d2_, out=d2_)  # tr W_ij = f |d|²
        if D == 1:
            with np.errstate(divide="ignore"):  # equal rows: det 0, log −inf
                log_det = np.where(n_ > 1.0, np.log(d2_ / n_), -np.inf)
        else:
            log_det = np.full_like(n_, -np.inf)
        out = cost[rows]
        out[...] = _terms(log_det, n_, d2_, lam, beta)
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

    def trace(self, S):
        """The trace of each matrix, summed in the compiled loop's order."""
        total = 0.0
        for p in self.diagonal:
            total = total + S[p]
        return total

    def log_det(self, S):
        """log det of each matrix (a column of S) by Cholesky, entry by entry as
        :func:`_log_det`; −inf where one is not positive definite (a pivot ≤ 0 makes the sum
        NaN or −inf). Call under ``np.errstate(invalid=..., divide="ignore")``."""
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
        return np.where(np.isfinite(total), total, -np.inf)
