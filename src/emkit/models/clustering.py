"""Hard partitions of rows, used as starting points of EM: k-means and model-based hierarchical
agglomeration.

- :func:`kmeans` — Lloyd's algorithm from k-means++ seeds (Arthur & Vassilvitskii 2007), weighted;
  the starting point scikit-learn's ``GaussianMixture`` and hmmlearn's ``GaussianHMM`` use.
- :func:`hierarchical` — agglomeration under the classification likelihood of Gaussian clusters
  with free covariances (Banfield & Raftery 1993; Fraley 1998), the starting point of mclust's
  ``Mclust``: deterministic, and good at elongated or unequal clusters where k-means cuts across
  them. Run on the data in scaled principal-component coordinates (mclust's ``hcUse = "SVD"``) and
  on a subsample for large data, since it costs O(n² D³).
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from emkit.errors import DataError, NumericalError
from emkit.kernels.batched_kmeans import seeding_trials

#: How a Gaussian mixture (or the emissions of a Gaussian HMM) is started: see
#: :class:`emkit.GaussianMixture`. Kept here, in a module without compiled code, so that the
#: command line can offer them without loading the models.
INIT_METHODS = ("auto", "kmeans", "hierarchical", "emEM", "k-means++", "random",
                "random_from_data")
DEFAULT_INIT = "auto"


def kmeans_plusplus(X: np.ndarray, n_clusters: int, rng: np.random.Generator,
                    sample_weight: np.ndarray | None = None) -> np.ndarray:
    """k-means++ seeds (Arthur & Vassilvitskii 2007): ``n_clusters`` rows of X, the first drawn
    with probability ∝ weight, each next one ∝ weight × squared distance to the nearest seed so
    far. Greedy, as is usual: of 2 + ⌊log k⌋ such draws the one that lowers the weighted sum of
    squared distances most is kept. Rows of weight 0 are never drawn. Shape (n_clusters, D)."""
    uniforms = rng.random((1, seeding_draws(n_clusters)))
    return kmeans_plusplus_runs(X, n_clusters, uniforms, sample_weight)[0]


def seeding_draws(n_clusters: int) -> int:
    """How many uniform numbers one :func:`kmeans_plusplus` draws: one for the first seed and
    2 + ⌊log k⌋ candidates for each next one."""
    return 1 + (n_clusters - 1) * seeding_trials(n_clusters)


def kmeans_plusplus_runs(X: np.ndarray, n_clusters: int, uniforms: np.ndarray,
                         sample_weight: np.ndarray | None = None) -> np.ndarray:
    """:func:`kmeans_plusplus` of several independent runs at once, run r drawing by the
    uniform numbers ``uniforms[r]`` on [0, 1) (:func:`seeding_draws` of them; taken from the
    generator in one piece, they are the numbers its draws one at a time would give). The
    distances of the rows to every run's candidates are one matrix product: on a few thousand
    rows, sixteen runs cost little more than one. Shape (n_runs, n_clusters, D)."""
    X = np.asarray(X, dtype=float)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    n_runs, n_rows, n_features = len(uniforms), len(X), X.shape[1]
    n_trials = seeding_trials(n_clusters)
    runs = np.arange(n_runs)
    squared_norms = np.einsum("ij,ij->i", X, X)
    centers = np.empty((n_runs, n_clusters, n_features))
    first = _draw_runs(np.broadcast_to(w, (n_runs, n_rows)), uniforms[:, :1])[:, 0]
    centers[:, 0] = X[first]
    closest = _squared_distances(X, squared_norms, centers[:, 0]).T  # (n_runs, n_rows)
    for k in range(1, n_clusters):
        mass = w * closest
        nothing = ~(mass.sum(axis=1) > 0)  # every row already a seed: draw by weight alone
        mass[nothing] = w
        candidates = _draw_runs(mass, uniforms[:, 1 + (k - 1) * n_trials:1 + k * n_trials])
        distances = _squared_distances(X, squared_norms, X[candidates.ravel()])
        closer = np.minimum(closest.T[:, :, None],
                            distances.reshape(n_rows, n_runs, n_trials))  # (rows, runs, trials)
        best = np.argmin((w @ closer.reshape(n_rows, -1)).reshape(n_runs, n_trials), axis=1)
        centers[:, k] = X[candidates[runs, best]]
        closest = closer[:, runs, best].T
    return centers


def _draw_runs(mass: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Row indices drawn with replacement with probability ∝ ``mass[r]`` (≥ 0, not all 0) for
    each run r, one for each of its uniform numbers (n_runs, size); a row of mass 0 is never
    drawn."""
    cumulative = np.cumsum(mass, axis=1)
    targets = uniforms * cumulative[:, -1:]
    picks = np.stack([np.searchsorted(cumulative[r], targets[r], side="right")
                      for r in range(len(mass))])
    return np.minimum(picks, mass.shape[1] - 1)


def _squared_distances(X: np.ndarray, squared_norms: np.ndarray,
                       centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of the rows to the centres, (n_rows, n_centres)."""
    d2 = X @ (-2.0 * centers.T)  # the same numbers as −2 (X Cᵀ), in place from here
    d2 += squared_norms[:, None]
    d2 += np.einsum("ij,ij->i", centers, centers)
    return np.maximum(d2, 0.0, out=d2)


def nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre of each row and the squared distance to it."""
    d2 = _squared_distances(X, np.einsum("ij,ij->i", X, X), centers)
    labels = d2.argmin(axis=1)
    return labels, d2[np.arange(len(X)), labels]


def kmeans(X: np.ndarray, n_clusters: int, rng: np.random.Generator,
           sample_weight: np.ndarray | None = None, *, max_iter: int = 300,
           tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means by Lloyd's algorithm from k-means++ seeds.

    Stops when no assignment changes, or when the centres move by less than ``tol`` times the mean
    variance of the columns (squared shift summed over centres, scikit-learn's rule). An empty
    cluster is moved to the row farthest from its centre.

    Returns
    -------
    labels : (n_rows,) int
    centers : (n_clusters, D)
    """
    centers = kmeans_plusplus(X, n_clusters, rng, sample_weight)
    labels, centers = lloyd(X, centers[None], sample_weight, max_iter=max_iter, tol=tol)
    return labels[0], centers[0]


def lloyd(X: np.ndarray, centers: np.ndarray, sample_weight: np.ndarray | None = None, *,
          max_iter: int = 300, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's steps of :func:`kmeans` for several independent runs from their initial
    centres (n_runs, K, D), taken together: the distances of the rows to the centres of every
    running run are one matrix product, which on a few hundred rows costs about what one run's
    does. Each run stops by its own rule and ends where it would alone. Returns labels
    (n_runs, n_rows) and centres (n_runs, K, D)."""
    X = np.asarray(X, dtype=float)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    centers = np.array(centers, dtype=float)
    n_runs, K = centers.shape[:2]
    n_rows = len(X)
    threshold = tol * float(np.mean(np.var(X, axis=0)))
    squared_norms = np.einsum("ij,ij->i", X, X)
    weighted = X * w[:, None]
    labels = np.full((n_runs, n_rows), -1)
    running = np.arange(n_runs)
    for _ in range(max_iter):
        if not len(running):
            break
        new_labels, d2 = _nearest_of_runs(X, squared_norms, centers[running])
        changed = np.any(new_labels != labels[running], axis=1)
        labels[running] = new_labels
        running, new_labels, d2 = running[changed], new_labels[changed], d2[changed]
        if not len(running):
            break
        # Sums per (run, cluster): one bincount per column over the runs' stacked indices
        # (each bin adds its rows in order, so the sums are those of one run at a time).
        index = (new_labels + (np.arange(len(running)) * K)[:, None]).ravel()
        size = len(running) * K
        totals = np.bincount(index, weights=np.tile(w, len(running)), minlength=size)
        sums = np.stack([np.bincount(index, weights=np.tile(weighted[:, d], len(running)),
                                     minlength=size) for d in range(X.shape[1])], axis=1)
        totals, sums = totals.reshape(-1, K), sums.reshape(-1, K, X.shape[1])
        empty = totals <= 0
        old = centers[running]
        new_centers = np.where(empty[..., None], old,
                               sums / np.where(empty, 1.0, totals)[..., None])
        for i in np.flatnonzero(empty.any(axis=1)):  # re-seed empty clusters at the rows
            worst = np.argsort(-(d2[i] * (w > 0)), kind="stable")[: int(empty[i].sum())]
            new_centers[i, empty[i]] = X[worst]  # worst served
        shift = np.sum((new_centers - old) ** 2, axis=(1, 2))
        centers[running] = new_centers
        settled = (shift <= threshold) & ~empty.any(axis=1)
        if settled.any():  # stopped by the shift: the labels of the final centres
            labels[running[settled]] = _nearest_of_runs(X, squared_norms,
                                                         new_centers[settled])[0]
        running = running[~settled]
    return labels, centers


def nearest_of_runs(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """:func:`nearest` for the centres (n_runs, K, D) of several runs: the index of each row's
    nearest centre in every run, (n_runs, n_rows)."""
    X = np.asarray(X, dtype=float)
    return _nearest_of_runs(X, np.einsum("ij,ij->i", X, X), centers)[0]


def _nearest_of_runs(X: np.ndarray, squared_norms: np.ndarray,
                     centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For centres (R, K, D) of R runs: each row's nearest centre in every run, (R, n_rows), and
    the squared distance to it, (R, n_rows)."""
    R, K, D = centers.shape
    d2 = _squared_distances(X, squared_norms, centers.reshape(R * K, D)).reshape(len(X), R, K)
    labels = d2.argmin(axis=2)
    closest = np.take_along_axis(d2, labels[..., None], axis=2)[..., 0]
    return labels.T, closest.T


def scaled_principal_coordinates(X: np.ndarray,
                                 sample_weight: np.ndarray | None = None) -> np.ndarray:
    """The rows standardised, rotated to their principal axes and divided by the square root of
    each axis' singular value: the spread of the axes is evened out without the minor axes
    (often noise) becoming as large as the major ones (mclust's ``hcUse = "SVD"``, with R's
    standard deviations: divided by n − 1, weights counted as row repetitions). Directions
    without variance are dropped."""
    w = np.ones(len(X)) if sample_weight is None else sample_weight
    centred = X - np.average(X, axis=0, weights=w)
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.sqrt(np.average(centred**2, axis=0, weights=w)
                        * (len(w) / max(len(w) - 1, 1)))
    if not np.all(np.isfinite(scale)):
        raise NumericalError("the variance of the data overflows float64: check the data for "
                             "extreme values, or rescale them.")
    if not np.any(scale > 0):
        raise DataError("the rows are all identical: there is nothing to cluster.")
    standard = centred[:, scale > 0] / scale[scale > 0]
    root = np.sqrt(w * len(w) / w.sum())[:, None]  # weights as row repetitions
    _, singular, axes = np.linalg.svd(standard * root, full_matrices=False)
    keep = singular > singular[0] * 1e-10
    return standard @ axes[keep].T / np.sqrt(singular[keep])


# The merges of the last hierarchies built, by their rows, weights, α and β (the starts of a grid
# over K, or of GaussianMixture fits with several K, agglomerate the same rows).
_HIERARCHIES: dict[tuple, np.ndarray] = {}
_HIERARCHIES_KEPT = 4
_HIERARCHIES_LOCK = threading.Lock()


def _hierarchy(X: np.ndarray, counts: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The merges of :func:`hierarchical`'s agglomeration of all the rows X (weights
    ``counts``, as row repetitions) down to one cluster (:func:`emkit.kernels.agglomeration.
    agglomerate`)."""
    from emkit.kernels.agglomeration import agglomerate

    key = (hashlib.blake2b(np.ascontiguousarray(X).tobytes() + counts.tobytes()).digest(),
           X.shape, alpha, beta)
    merges = _HIERARCHIES.get(key)
    if merges is None:
        Z = scaled_principal_coordinates(X, counts)
        spread = float(np.average(np.sum(Z**2, axis=1), weights=counts)) / Z.shape[1]
        merges = agglomerate(np.ascontiguousarray(Z), counts, alpha * spread, beta, 1)
        with _HIERARCHIES_LOCK:  # fits in several threads
            while len(_HIERARCHIES) >= _HIERARCHIES_KEPT:
                del _HIERARCHIES[next(iter(_HIERARCHIES))]  # the oldest
            _HIERARCHIES[key] = merges
    return merges


def hierarchical(X: np.ndarray, n_clusters: int, sample_weight: np.ndarray | None = None,
                 *, alpha: float = 1.0, beta: float = 1.0) -> np.ndarray:
    """Model-based hierarchical agglomeration of the rows into ``n_clusters`` clusters
    (unconstrained Gaussian clusters; see :mod:`emkit.kernels.agglomeration`).

    Starting from one cluster per row, every stage merges the two clusters whose merge decreases
    the classification likelihood least: mclust's ``hc(modelName="VVV", use="SVD")``, whose
    partitions (``hclass``) it gives on the rows in the same order (iris, Old Faithful and the
    penguins, K = 2 … 9: tests/reference/test_mclust_hierarchical.py; where mclust's differ,
    a bug in its stored factors is the cause, docs/design.md). A cluster of n_k rows
    with scatter W_k counts n_k log(det(W_k / n_k) + β (tr W_k + α t) / n_k), t the mean
    variance per coordinate of all rows, so that clusters with fewer rows than dimensions have
    a finite likelihood (Fraley 1998's α and β). Works on :func:`scaled_principal_coordinates`.
    Deterministic. Costs O(n² D³): pass a subsample of large data.

    Returns the cluster (0 … n_clusters−1) of each row; rows of zero weight go to the cluster
    with the nearest mean. The whole hierarchy is built once for the last few data sets seen,
    so partitions of the same rows into other numbers of clusters (a grid over K) are cuts of
    it.
    """
    from emkit.kernels.agglomeration import cut

    X = np.asarray(X, dtype=float)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    used = w > 0
    if int(used.sum()) < n_clusters:
        raise DataError(f"{int(used.sum())} rows of positive weight cannot form {n_clusters} "
                        "clusters.")
    counts = w[used] / w[used].mean()  # weights as row repetitions, n = number of rows
    labels_used = cut(_hierarchy(X[used], counts, float(alpha), float(beta)), len(counts),
                      int(n_clusters))
    if used.all():
        return labels_used
    means = np.array([X[used][labels_used == k].mean(axis=0) for k in range(n_clusters)])
    labels = np.empty(len(X), dtype=np.int64)
    labels[used] = labels_used
    labels[~used] = nearest(X[~used], means)[0]
    return labels
