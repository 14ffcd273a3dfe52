"""Weighted k-means of many small groups at once, and the statistics of the partitions it finds:
the k-means start of :func:`emkit.fit_gaussian_mixtures`.

Every group runs :func:`emkit.models.clustering.kmeans`'s rule on its own rows: greedy
k-means++ seeds (the first row drawn ∝ weight, each next of 2 + ⌊log K⌋ candidates drawn
∝ weight × squared distance to the nearest seed, the one lowering the weighted sum of squared
distances most kept), then Lloyd's steps until no label changes or the centres move by less
than ``tol`` times the group's mean column variance (an empty cluster moves to the row worst
served). The random draws come in as uniform numbers, so both forms here give the same seeds
from the same generator.

Two forms (:mod:`emkit.kernels.tiers`): numpy, all groups at once (every Lloyd step a few
(G, N, K) arrays and a bincount per column: no compilation, and fast enough for a few small
groups); and compiled, one group after another, a Lloyd step being one pass over the group's
rows for their nearest centres and one for the sums of the next centres, with no temporaries
(10,000 groups × 200 rows, K=2: 0.85 s → 0.11 s a start on one thread). Many groups run in
parts on a few Python threads (the loop releases the GIL), which spares compiling a second,
``parallel=True`` twin of the loop (about 2.5 s more in a new environment). The forms agree to
rounding, and in practice to the bit: the distances, sums and ties (the first nearest centre
wins, as ``argmin``) are computed in the same order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from emkit.kernels import tiers


def seeding_trials(n_clusters: int) -> int:
    """Candidates drawn for each k-means++ seed after the first: 2 + ⌊log K⌋. A group's
    uniform numbers are one for the first seed, then this many for each next one."""
    return 2 + int(np.log(n_clusters))


# ---------------------------------------------------------------------- compiled
@numba.njit(nogil=True, cache=True)
def _kmeans_range(X, w, uniforms, n_trials, tol, max_iter, full, start, stop, labels,
                  centers, weight, first, second):
    """k-means of the groups start … stop−1 into ``labels`` and ``centers``, and the statistics
    of their partitions into ``weight``, ``first`` and ``second`` (zeros on entry): per group,
    greedy k-means++ seeds, Lloyd's steps (each one pass over the rows) and one pass for the
    statistics. One function of plain loops, with no helpers and no slice assignments: numba
    compiles it in a fraction of the time those take."""
    N, D = X.shape[1], X.shape[2]
    K = centers.shape[1]
    closest = np.empty(N)  # squared distance to the nearest seed so far
    mass = np.empty(N)
    cumulative = np.empty(N)
    closer = np.empty((n_trials, N))
    picks = np.empty(n_trials, dtype=np.intp)
    totals = np.empty(K)
    sums = np.empty((K, D))
    new = np.empty((K, D))
    taken = np.empty(N, dtype=np.bool_)
    diff = np.empty(D)
    mean = np.empty(D)
    for g in range(start, stop):
        # The group's threshold on the squared shift of its centres: tol × the mean of its
        # columns' weighted variances.
        total = 0.0
        for d in range(D):
            mean[d] = 0.0
        for n in range(N):
            total += w[g, n]
            for d in range(D):
                mean[d] += w[g, n] * X[g, n, d]
        variance = 0.0
        for d in range(D):
            mean[d] /= total
            spread = 0.0
            for n in range(N):
                term = X[g, n, d] - mean[d]
                spread += w[g, n] * (term * term)
            variance += spread / total
        threshold = tol * (variance / D)
        # Seeds: the first drawn ∝ weight; each next the best of n_trials candidates drawn
        # ∝ weight × closest (∝ weight if every row is already a seed).
        for n in range(N):
            closest[n] = np.inf
        for k in range(K):
            positive = False
            for n in range(N):
                mass[n] = w[g, n] * closest[n] if k > 0 else w[g, n]
                if mass[n] > 0.0:
                    positive = True
            running = 0.0
            for n in range(N):
                running += mass[n] if positive else w[g, n]
                cumulative[n] = running
            best = 0
            best_potential = np.inf
            for t in range(n_trials if k > 0 else 1):
                # the row drawn: the number of running sums ≤ u × total (searchsorted, right)
                u = uniforms[g, 1 + (k - 1) * n_trials + t] if k > 0 else uniforms[g, 0]
                target = u * cumulative[N - 1]
                pick = 0
                while pick < N - 1 and cumulative[pick] <= target:
                    pick += 1
                picks[t] = pick
                potential = 0.0
                for n in range(N):
                    distance = 0.0
                    for d in range(D):
                        term = X[g, n, d] - X[g, pick, d]
                        distance += term * term
                    closer[t, n] = distance if distance < closest[n] else closest[n]
                    potential += w[g, n] * closer[t, n]
                if potential < best_potential:  # the first of equal candidates, as argmin
                    best = t
                    best_potential = potential
            for d in range(D):
                centers[g, k, d] = X[g, picks[best], d]
            for n in range(N):
                closest[n] = closer[best, n]
        # Lloyd's steps. Step 0 labels the rows by the seeds; each step finds each row's
        # nearest centre (the first of equal ones, as argmin), then the next centres.
        shift = 0.0
        n_empty = 0
        for step in range(max_iter + 1):
            changed = step == 0
            for n in range(N):
                nearest = 0
                smallest = np.inf
                for k in range(K):
                    distance = 0.0
                    for d in range(D):
                        term = X[g, n, d] - centers[g, k, d]
                        distance += term * term
                    if distance < smallest:
                        nearest = k
                        smallest = distance
                if labels[g, n] != nearest:
                    changed = True
                labels[g, n] = nearest
            # a group stops when no label changed or its centres barely moved
            if step == max_iter or (step > 0 and (not changed or (shift <= threshold
                                                                   and n_empty == 0))):
                break
            # the weights and sums of each centre's rows, for the next centres (a loop of its
            # own: the chain of additions does not hold up the distances)
            for k in range(K):
                totals[k] = 0.0
                for d in range(D):
                    sums[k, d] = 0.0
            for n in range(N):
                if w[g, n] != 0.0:  # padding adds nothing
                    k = labels[g, n]
                    totals[k] += w[g, n]
                    for d in range(D):
                        sums[k, d] += w[g, n] * X[g, n, d]
            n_empty = 0
            for k in range(K):
                if totals[k] <= 0.0:
                    n_empty += 1
                for d in range(D):
                    new[k, d] = centers[g, k, d] if totals[k] <= 0.0 else sums[k, d] / totals[k]
            # rare: an empty cluster moves to the row worst served by its centre (rows of
            # weight 0 count as served exactly), the next empty one to the next worst row,
            # ties to the first row
            for n in range(N):
                taken[n] = False
            for k in range(K):
                if totals[k] > 0.0:
                    continue
                worst = -1
                largest = 0.0
                for n in range(N):
                    served = 0.0
                    if w[g, n] > 0.0:
                        for d in range(D):
                            term = X[g, n, d] - centers[g, labels[g, n], d]
                            served += term * term
                    if not taken[n] and (worst < 0 or served > largest):
                        worst = n
                        largest = served
                taken[worst] = True
                for d in range(D):
                    new[k, d] = X[g, worst, d]
            shift = 0.0
            for k in range(K):
                for d in range(D):
                    term = new[k, d] - centers[g, k, d]
                    shift += term * term
                    centers[g, k, d] = new[k, d]
        # The statistics of the partition about its centres: weight, first and second
        # moments ((K, D, D), or (K, 1, D) diagonal).
        for n in range(N):
            if w[g, n] == 0.0:
                continue
            k = labels[g, n]
            weight[g, k] += w[g, n]
            for a in range(D):
                diff[a] = X[g, n, a] - centers[g, k, a]
            for a in range(D):
                weighted = diff[a] * w[g, n]
                first[g, k, a] += weighted
                if full:
                    for b in range(a + 1):
                        second[g, k, a, b] += weighted * diff[b]
                else:
                    second[g, k, 0, a] += weighted * diff[a]
        if full:
            for k in range(K):
                for a in range(D):
                    for b in range(a):
                        second[g, k, b, a] = second[g, k, a, b]


# Below this many rows in all, starting threads costs more than the work.
_PARALLEL_MIN_ROWS = 65_536
# numpy below this work (rows × K × (D + 1), ~70 ns each in numpy for a whole k-means run): a fit
# runs three k-means starts, which at this size take numpy about what compiling the loop costs,
# about two seconds (tiers' rule).
_KMEANS = tiers.TwoForms(_kmeans_range, 2**23, 2.0)


def kmeans_groups(X: np.ndarray, weight: np.ndarray, n_clusters: int, uniforms: np.ndarray,
                  tol: float, max_iter: int, full: bool
                  ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """k-means of every group of X (G, N, D) with row weights ``weight`` (G, N) (0 on padding
    rows, never drawn as seeds), and the statistics of the partitions it finds.

    ``uniforms`` (G, 1 + (n_clusters − 1) × :func:`seeding_trials`) are each group's uniform
    numbers on [0, 1) for its seeds; a group stops after ``max_iter`` Lloyd steps, when no
    label changes, or when its squared centre shift (summed over the centres) is at most
    ``tol`` times the mean of its columns' weighted variances and no cluster was empty.

    Returns
    -------
    labels : (G, N) each row's cluster
    centers : (G, n_clusters, D)
    statistics : weight (G, K), first (G, K, D) and second (G, K, D, D) (``full``) or
        (G, K, D) moments of each cluster's rows about its centre
    """
    G, N, D = X.shape
    K = int(n_clusters)
    labels = np.zeros((G, N), dtype=np.intp)
    centers = np.empty((G, K, D))
    statistics = (np.zeros((G, K)), np.zeros((G, K, D)), np.zeros((G, K, D if full else 1, D)))
    arguments = (X, weight, uniforms, seeding_trials(K), float(tol), int(max_iter), bool(full))
    outputs = (labels, centers, *statistics)
    key = X.dtype.char
    if not _KMEANS.use_compiled(key, G * N * K * (D + 1), (*arguments, 0, G, *outputs)):
        labels, centers = _KMEANS.run_numpy(_kmeans_numpy, X, weight, K, uniforms, tol,
                                            int(max_iter))
        return labels, centers, _KMEANS.run_numpy(_partition_numpy, X, weight, labels, centers,
                                                  bool(full))
    # Many groups: in parts on threads (the loop releases the GIL), a few parts per thread so
    # that the threads finish together when some groups need more steps than others.
    threads = numba.get_num_threads() if G * N >= _PARALLEL_MIN_ROWS else 1
    if threads == 1:
        _kmeans_range(*arguments, 0, G, *outputs)
    else:
        bounds = np.linspace(0, G, 4 * threads + 1).astype(np.intp)
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(lambda part: _kmeans_range(*arguments, bounds[part],
                                                         bounds[part + 1], *outputs),
                              range(len(bounds) - 1)):
                pass  # (map raises a part's error here)
    _KMEANS.keep_compiled(key)
    return labels, centers, statistics if full else statistics[:2] + (statistics[2][:, :, 0],)


# ---------------------------------------------------------------------- numpy
def _kmeans_numpy(X, weight, K, uniforms, tol, max_iter):
    """:func:`kmeans_groups` in numpy, every group at once."""
    G, N, D = X.shape
    total = weight.sum(axis=1)
    mean = np.einsum("gn,gnd->gd", weight, X) / total[:, None]
    variance = np.einsum("gn,gnd->gd", weight, (X - mean[:, None]) ** 2) / total[:, None]
    threshold = tol * variance.mean(axis=1)
    centers = _kmeans_plusplus(X, weight, K, uniforms)
    labels = _squared_distances(X, centers).argmin(axis=2)
    rows = np.arange(G)  # the groups still running (Lloyd's steps on them only)
    for _ in range(max_iter):
        if rows.size == 0:
            break
        x, w, c, old = X[rows], weight[rows], centers[rows], labels[rows]
        cell = (np.arange(len(rows))[:, None] * K + old).ravel()  # (group, cluster) per row
        size = len(rows) * K
        totals = np.bincount(cell, weights=w.ravel(), minlength=size).reshape(-1, K)
        sums = np.stack([np.bincount(cell, weights=(w * x[..., d]).ravel(), minlength=size)
                         for d in range(D)], axis=-1).reshape(-1, K, D)
        empty = totals <= 0
        new = np.where(empty[..., None], c, sums / np.where(empty, 1.0, totals)[..., None])
        for i in np.flatnonzero(empty.any(axis=1)):  # rare: re-seed empty clusters
            served = _squared_distances(x[i:i + 1], c[i:i + 1])[0, np.arange(N), old[i]]
            worst = np.argsort(-served * (w[i] > 0), kind="stable")[: int(empty[i].sum())]
            new[i, empty[i]] = x[i, worst]
        shift = np.sum((new - c) ** 2, axis=(1, 2))
        centers[rows] = new
        fresh = _squared_distances(x, new).argmin(axis=2)
        labels[rows] = fresh
        # a group stops when no label changes or its centres barely moved
        settled = (np.all(fresh == old, axis=1)
                   | ((shift <= threshold[rows]) & ~empty.any(axis=1)))
        rows = rows[~settled]
    return labels, centers


def _squared_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(G, N, K) squared distances of every row to its group's centres."""
    total = np.zeros(X.shape[:2] + centers.shape[1:2])
    term = np.empty_like(total)
    for d in range(X.shape[2]):  # one feature at a time, in place: no (G, N, K, D) temporary
        np.subtract(X[:, :, d, None], centers[:, None, :, d], out=term)
        total += np.square(term, out=term)
    return total


def _kmeans_plusplus(X, weight, K, uniforms) -> np.ndarray:
    """Greedy k-means++ seeds (G, K, D) of every group from its ``uniforms``."""
    G, N, D = X.shape
    groups = np.arange(G)
    n_trials = seeding_trials(K)
    centers = np.empty((G, K, D))
    centers[:, 0] = X[groups, _draw_numpy(weight, uniforms[:, :1])[:, 0]]
    closest = np.sum((X - centers[:, :1]) ** 2, axis=2)
    for k in range(1, K):
        mass = weight * closest
        mass = np.where(mass.sum(axis=1, keepdims=True) > 0, mass, weight)
        candidates = _draw_numpy(mass, uniforms[:, 1 + (k - 1) * n_trials:1 + k * n_trials])
        seeds = X[groups[:, None], candidates]  # (G, T, D)
        closer = np.minimum(closest[:, :, None], _squared_distances(X, seeds))  # (G, N, T)
        best = np.einsum("gn,gnt->gt", weight, closer).argmin(axis=1)
        centers[:, k] = seeds[groups, best]
        closest = closer[groups, :, best]
    return centers


def _draw_numpy(mass: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Row indices (G, T) drawn per group with probability ∝ ``mass`` (G, N) from uniforms."""
    cumulative = np.cumsum(mass, axis=1)
    targets = uniforms * cumulative[:, -1:]
    picks = np.sum(cumulative[:, None, :] <= targets[:, :, None], axis=2)  # searchsorted, right
    return np.minimum(picks, mass.shape[1] - 1)


def _partition_numpy(X, weight, labels, centers, full):
    """:func:`partition_statistics` in numpy: summed per (group, cluster) by bincount over all
    rows at once, no (G, K, N, D) temporary of rows × every cluster."""
    G, N, D = X.shape
    K = centers.shape[1]
    cell = (np.arange(G)[:, None] * K + labels).ravel()  # (group, cluster) of every row

    def per_cell(values):
        return np.bincount(cell, weights=values.ravel(), minlength=G * K).reshape(G, K)

    diff = X - np.take_along_axis(centers, labels[..., None], axis=1)  # about its own centre
    weighted = diff * weight[..., None]
    first = np.stack([per_cell(weighted[..., a]) for a in range(D)], axis=-1)
    if not full:
        second = np.stack([per_cell(weighted[..., a] * diff[..., a]) for a in range(D)], axis=-1)
    else:
        second = np.empty((G, K, D, D))
        for a in range(D):
            for b in range(a + 1):
                second[..., a, b] = second[..., b, a] = per_cell(weighted[..., a] * diff[..., b])
    return per_cell(weight), first, second
