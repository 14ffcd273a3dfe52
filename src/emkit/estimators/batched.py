"""Many small Gaussian mixtures in one call: :func:`fit_gaussian_mixtures`.

One Gaussian mixture per group of a grouped table (a column of group ids) or per array of a
list, fitted together: the groups are padded to a common length with rows of weight 0 and
stacked, and EM runs on the stack through the one loop (:func:`emkit.fit_em` with
:class:`emkit.models.batched_gaussian.BatchedGaussianMixtureModel`), every step a numpy operation
on all groups at once. SQUAREM accelerates each group on its own (its own step length, its
extrapolations accepted on its own log-likelihood: :class:`emkit.core.accelerate.Blocks`), and
each group follows :class:`emkit.GaussianMixture`'s convergence rule on its own and stops
changing when it has converged; with ``accelerate=None`` (plain EM) a group's fit is, from the
same start, the one ``GaussianMixture(accelerate=None)`` gives.

The result is a compact :class:`GroupMixtures` (stacked (G, K, …) arrays: ten thousand
estimator objects cost more to build than the fit), whose :meth:`GroupMixtures.estimator`
returns a fitted :class:`emkit.GaussianMixture` of any group, for ``predict``, ``score``,
``sample`` or ``save``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from emkit.core.engine import fit_em, seed_sequence
from emkit.core.monitor import RATE_MEMORY, WINDOW
from emkit.errors import ConvergenceWarning, DataError, ParameterError
from emkit.estimators.base import FitOutcome
from emkit.families.gaussian import GaussianParams
from emkit.kernels import batched_kmeans as kmeans_kernels
from emkit.models.batched_gaussian import (
    BatchedGaussianMixtureModel,
    BatchedParams,
    BatchedStats,
    GroupedRows,
    precision_cholesky,
)
from emkit.models.mixture import MixtureParams

__all__ = ["fit_gaussian_mixtures", "GroupMixtures"]

_COVARIANCE_TYPES = ("full", "diag")
# k-means starts per group; the one whose mixture has the highest log-likelihood is kept.
_KMEANS_STARTS = 3
# A stack of at least this many groups shrinks to its running groups once half have converged
# (each shrink costs an E-step of the running groups, to start the loop again).
_SHRINK_MIN_GROUPS = 16


class GroupMixtures:
    """Fitted Gaussian mixtures of G groups, stacked in the order of ``groups_``.

    Attributes
    ----------
    groups_ : (G,) the group ids, sorted (0 … G−1 for a list of arrays)
    weights_ : (G, K)
    means_ : (G, K, D)
    covariances_, precisions_cholesky_ : (G, K, D, D) full, (G, K, D) diag
    converged_ : (G,) bool
    n_iter_ : (G,) int — M-steps of each group, as ``GaussianMixture.n_iter_``
    lower_bound_ : (G,) final log-likelihood per sample of each group
    n_samples_ : (G,) total weight of each group's rows
    degenerate_ : (G,) bool — a component had no weight or no positive-definite covariance
        and kept its previous parameters (``GaussianMixture`` re-seeds such a component)
    """

    def __init__(self, groups, params: BatchedParams, n_samples, covariance_type, reg_covar,
                 tol, max_iter):
        self.groups_ = groups
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        self.converged_ = params.converged
        self.n_iter_ = params.n_iter
        self.n_samples_ = n_samples
        self.lower_bound_ = params.log_likelihood / n_samples
        self.degenerate_ = params.degenerate
        self.covariance_type = covariance_type
        self._settings = dict(reg_covar=reg_covar, tol=tol, max_iter=max_iter)
        self._recent = params.recent

    def __len__(self) -> int:
        return len(self.groups_)

    def index(self, group) -> int:
        """Position of ``group`` (an id of ``groups_``) in the stacked arrays."""
        position = int(np.searchsorted(self.groups_, group))
        if position >= len(self.groups_) or self.groups_[position] != group:
            raise ParameterError(f"no group {group!r} was fitted; the groups are groups_.")
        return position

    def estimator(self, group):
        """The fitted :class:`emkit.GaussianMixture` of ``group`` (an id of ``groups_``).

        Its ``history_`` holds the group's last (up to six) objectives, the ones its
        convergence was judged on."""
        from emkit.estimators.gaussian_mixture import GaussianMixture

        g = self.index(group)
        K, D = self.means_.shape[1:]
        mixture = GaussianMixture(K, covariance_type=self.covariance_type, **self._settings)
        history = self._recent[g][np.isfinite(self._recent[g])]
        mixture.n_features_in_ = D
        # FitOutcome is the base's record of a fit that did not come from the estimator's own
        # fit_em call: it sets the parameters and the fitted attributes as ``fit`` does.
        mixture._store_result(FitOutcome(
            params=MixtureParams(self.weights_[g], GaussianParams(
                self.means_[g], self.covariances_[g], self.precisions_cholesky_[g])),
            objective=float(self.lower_bound_[g] * self.n_samples_[g]),
            n_samples=float(self.n_samples_[g]), converged=bool(self.converged_[g]),
            n_iter=int(self.n_iter_[g]), history=history))
        return mixture


def fit_gaussian_mixtures(
    X: Any,
    groups: Any = None,
    n_components: int = 1,
    *,
    covariance_type: str = "full",
    tol: float = 1e-6,
    reg_covar: float = 1e-6,
    max_iter: int = 1000,
    accelerate: str | None = "squarem",
    sample_weight: Any = None,
    random_state: Any = None,
    weights_init: Any = None,
    means_init: Any = None,
    precisions_init: Any = None,
) -> GroupMixtures:
    """Fit one Gaussian mixture of ``n_components`` per group, all groups at once.

    Parameters
    ----------
    X : array (n_rows, D) with ``groups``, or a list of arrays (n_i, D), one per group
    groups : array (n_rows,), optional
        The group id of each row of ``X`` (any sortable ids: a column of a table).
    n_components : int
    covariance_type : {"full", "diag"}
    tol, reg_covar, max_iter : as :class:`emkit.GaussianMixture` (``tol`` per sample of each
        group, judged per group)
    accelerate : {"squarem", None}
        SQUAREM group by group (the default: on 10,000 groups of 200 rows, a third of plain
        EM's M-steps, and no group left hundreds of iterations behind the others), or plain EM.
    sample_weight : array (n_rows,) or list of arrays, optional
        Non-negative row weights; an integer weight counts a row that many times.
    random_state : None, int, Generator or RandomState
        Seeds the k-means starts: weighted Lloyd's algorithm from greedy k-means++ seeds, as
        ``GaussianMixture(init_params="kmeans")``, three times per group, the start of the
        highest log-likelihood kept. The draws of a group depend on its place
        among the sorted ids, not on the order of the rows of other groups.
    weights_init, means_init, precisions_init : arrays (G, K), (G, K, D), and (G, K, D, D)
        full or (G, K, D) diag, optional
        A given start for every group (all three together), in the order of the sorted ids.

    Returns
    -------
    GroupMixtures
        Stacked fitted parameters; ``.estimator(group)`` gives a fitted GaussianMixture.

    Raises
    ------
    DataError
        A group has fewer rows (of positive weight) than ``n_components`` or than 2, or the
        data hold NaN or infinity; the message names the group.
    """
    if covariance_type not in _COVARIANCE_TYPES:
        raise ParameterError(f"covariance_type must be one of {_COVARIANCE_TYPES} for batched "
                             f"fits, got {covariance_type!r}; fit 'tied' or 'spherical' "
                             "mixtures one at a time with emkit.GaussianMixture.")
    if not (isinstance(n_components, (int, np.integer)) and n_components >= 1):
        raise ParameterError(f"n_components must be an integer >= 1, got {n_components!r}.")
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 0):
        raise ParameterError(f"max_iter must be an integer >= 0, got {max_iter!r}.")
    if accelerate not in ("squarem", None):
        raise ParameterError(f"accelerate must be 'squarem' or None, got {accelerate!r}.")
    if not (tol >= 0 and reg_covar >= 0):
        raise ParameterError("tol and reg_covar must be >= 0.")
    ids, data = _grouped_rows(X, groups, sample_weight)
    K = int(n_components)
    n_rows = (data.weight > 0).sum(axis=1)
    too_small = np.flatnonzero(n_rows < max(K, 2))
    if too_small.size:
        g = too_small[0]
        raise DataError(
            f"group {ids[g].item()!r} has {n_rows[g]} row(s) of positive weight, too few for "
            f"n_components={K} (a mixture needs at least max(n_components, 2) rows; "
            f"{too_small.size} group(s) in all): drop or merge such groups, or use fewer "
            "components.")
    n_samples = data.weight.sum(axis=1)
    given = [value is not None for value in (weights_init, means_init, precisions_init)]
    if any(given):
        if not all(given):
            raise ParameterError("give weights_init, means_init and precisions_init together "
                                 "(one start for every group), or none of them.")
        start = _given_start(weights_init, means_init, precisions_init, covariance_type,
                             len(ids), K, data.X.shape[2])
    else:
        start = _kmeans_start(data, K, covariance_type, reg_covar,
                              np.random.default_rng(seed_sequence(random_state)))
    params = fit_stack(data, start, n_samples, K, covariance_type, reg_covar, tol, max_iter,
                        accelerate)
    if max_iter > 0 and tol > 0 and not params.converged.all():
        missing = np.flatnonzero(~params.converged)
        warnings.warn(f"EM did not converge in {max_iter} iterations for {missing.size} of "
                      f"{len(ids)} groups (the first: {ids[missing[0]].item()!r}); raise "
                      "max_iter or tol.", ConvergenceWarning, stacklevel=2)
    return GroupMixtures(ids, params, n_samples, covariance_type, reg_covar, tol, max_iter)


def fit_stack(data: GroupedRows, start: BatchedParams, n_samples, K, covariance_type,
              reg_covar, tol, max_iter, accelerate, models=None,
              present: np.ndarray | None = None, shrink: bool = True,
              threads: bool = True) -> BatchedParams:
    """EM on the stack of groups from ``start`` until every group has converged or
    ``max_iter`` passes are spent.

    Once at most half of a large stack's groups are still running, the fit stops (a callback
    of the one loop), the stack shrinks to the running groups, and EM goes on from where they
    stood: every step then costs what the running groups cost, not all groups' bookkeeping
    (10,000 groups, 2 x 2: ~8 ms a SQUAREM cycle for the stack's arrays, while the last groups
    run for hundreds of iterations; on a grid of 14 × 9 mixtures of 200 rows in 6-D, ~15% of
    the time). The stack stops at the end of a SQUAREM cycle, and each group's convergence
    state and step bound travel in its parameters, so every group's fit is bit for bit the
    same either way. ``models`` and ``present``: each group's covariance model and components
    (:class:`~emkit.models.batched_gaussian.BatchedGaussianMixtureModel`); ``shrink=False``
    keeps the whole stack; ``threads=False`` keeps the E-steps on one thread."""
    params, rows, spent = start, np.arange(len(start.weights)), 0
    # Where the callback stopped the fit. A fit stopped early returns its best point, which is
    # not this one where an M-step that is not an exact maximiser (an iterative one's, or
    # reg_covar's) lowered the stack's log-likelihood a little since: going on from the best
    # point would repeat the same steps, and the same stop, until the passes were spent.
    stopped_at = []

    def half_converged(info) -> bool:  # at a cycle's end: the fit goes on from there exactly
        running = np.count_nonzero(info.params.active)
        stop = (shrink and info.boundary and len(rows) >= _SHRINK_MIN_GROUPS
                and 2 * running <= len(rows))
        if stop:
            stopped_at.append(info.params)
        return stop

    while True:
        model = BatchedGaussianMixtureModel(
            K, covariance_type, reg_covar, tol, n_samples[rows], take(params, rows),
            accelerated=accelerate == "squarem",
            models=None if models is None else np.asarray(models)[rows],
            present=None if present is None else present[rows], threads=threads)
        part = data.take(rows)
        result = fit_em(model, part, max_iter=max_iter - spent, tol=tol, xtol=None,
                        accelerate=accelerate, warn_not_converged=False,
                        callbacks=(half_converged,))
        spent += result.n_iter
        if not result.stopped_by_callback:  # converged, or the passes are spent
            return _put(params, rows, model.record(result.stats, result.params))
        params = _put(params, rows, stopped_at[-1])
        rows = rows[stopped_at[-1].active]


def take(params: BatchedParams, rows) -> BatchedParams:
    """The groups ``rows`` of a stack."""
    return BatchedParams(*(field[rows] for field in params))


def _put(params: BatchedParams, rows, part: BatchedParams) -> BatchedParams:
    """``params`` with the groups ``rows`` replaced by ``part``."""
    fields = []
    for whole, piece in zip(params, part, strict=True):
        whole = whole.copy()
        whole[rows] = piece
        fields.append(whole)
    return BatchedParams(*fields)


# ---------------------------------------------------------------------- data
def _grouped_rows(X, groups, sample_weight) -> tuple[np.ndarray, GroupedRows]:
    """Sorted group ids and the padded rows (padding has weight 0)."""
    if groups is None:
        if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
            raise DataError("pass X with a column of group ids (groups=...), or a list of "
                            "arrays, one per group.")
        arrays = [_rows(x, f"group {i}") for i, x in enumerate(X)]
        if not arrays:
            raise DataError("no groups: X is an empty list.")
        weights = (_weights(sample_weight, sum(len(a) for a in arrays))
                   if sample_weight is None or np.ndim(sample_weight[0]) == 0
                   else np.concatenate([np.asarray(w, dtype=float) for w in sample_weight]))
        rows = None
    else:
        rows = _rows(X, "X")
        labels = np.asarray(groups)
        if labels.shape != (len(rows),):
            raise DataError(f"groups must hold one id per row of X: shape ({len(rows)},), got "
                            f"{labels.shape}.")
        weights = _weights(sample_weight, len(rows))
    n_rows = sum(len(a) for a in arrays) if groups is None else len(rows)
    if len(weights) != n_rows:
        raise DataError(f"sample_weight has {len(weights)} entries for {n_rows} rows.")
    dims = {a.shape[1] for a in arrays} if groups is None else {rows.shape[1]}
    if len(dims) != 1:
        raise DataError(f"every group needs the same columns; got {sorted(dims)} columns.")
    if groups is None:  # already one array per group, in order: pad each into place
        lengths = [len(a) for a in arrays]
        padded = np.zeros((len(arrays), max(lengths), dims.pop()))
        padded_weight = np.zeros(padded.shape[:2])
        for i, (array, start) in enumerate(zip(arrays, np.cumsum([0] + lengths[:-1]),
                                               strict=True)):
            padded[i, :len(array)] = array
            padded_weight[i, :len(array)] = weights[start:start + len(array)]
        return np.arange(len(arrays)), GroupedRows(padded, padded_weight)
    ids, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # groups in id order, rows in their order
    counts = np.bincount(inverse, minlength=len(ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_groups = inverse[order]
    position = np.arange(len(order)) - starts[sorted_groups]
    padded = np.zeros((len(ids), counts.max(), rows.shape[1]))
    padded_weight = np.zeros((len(ids), counts.max()))
    padded[sorted_groups, position] = rows[order]
    padded_weight[sorted_groups, position] = weights[order]
    return ids, GroupedRows(padded, padded_weight)


def _rows(x, name) -> np.ndarray:
    try:
        array = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must hold numbers: {error}.") from None
    if array.ndim != 2:
        raise DataError(f"{name} must be 2-D (rows × features), got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} contains NaN or infinity: drop or impute those rows first.")
    return array


def _weights(sample_weight, n_rows) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n_rows)
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape != (n_rows,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise DataError(f"sample_weight must be {n_rows} finite non-negative numbers.")
    return weights


# ---------------------------------------------------------------------- starts
def _given_start(weights, means, precisions, covariance_type, G, K, D) -> BatchedParams:
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    precisions = np.asarray(precisions, dtype=float)
    cov_shape = (G, K, D, D) if covariance_type == "full" else (G, K, D)
    for name, value, shape in (("weights_init", weights, (G, K)),
                               ("means_init", means, (G, K, D)),
                               ("precisions_init", precisions, cov_shape)):
        if value.shape != shape:
            raise ParameterError(f"{name} has shape {value.shape}, expected {shape} (groups, "
                                 "components, features).")
    covariances = (np.linalg.inv(precisions) if covariance_type == "full" else 1.0 / precisions)
    P, bad = precision_cholesky(covariances, covariance_type)
    if bad.any():
        raise ParameterError("precisions_init must be positive definite for every component "
                             f"(group {int(np.argwhere(bad)[0][0])} is not).")
    return stack_params(weights, means, covariances, P)


def stack_params(weights, means, covariances, P) -> BatchedParams:
    """A stack of G mixtures at the start of a fit (every group active)."""
    G = len(weights)
    return BatchedParams(weights, means, covariances, P, active=np.ones(G, dtype=bool),
                         converged=np.zeros(G, dtype=bool), n_iter=np.zeros(G, dtype=np.intp),
                         recent=np.full((G, WINDOW), np.nan), log_likelihood=np.zeros(G),
                         degenerate=np.zeros(G, dtype=bool),
                         rates=np.full((G, RATE_MEMORY), np.nan), step_max=np.ones(G))


def _kmeans_start(data: GroupedRows, K, covariance_type, reg_covar, rng) -> BatchedParams:
    """Each group's best of ``_KMEANS_STARTS`` k-means starts (one M-step from the partition,
    as GaussianMixture's "kmeans" start), ranked by their log-likelihood: one start falls into a
    poor local maximum now and then (K=3, diag: 22 of 500 groups below scikit-learn's with one
    start, pulling the mean below its), and a start costs a fraction of the fit."""
    G = len(data.X)
    model = BatchedGaussianMixtureModel(K, covariance_type, reg_covar, 0.0, np.ones(G), None)
    best = None
    for _ in range(_KMEANS_STARTS):
        _, centers, statistics = batched_kmeans(data.X, data.weight, K, rng,
                                                full=covariance_type == "full")
        stats = BatchedStats(*statistics, np.zeros(G))
        start = stack_params(*model.estimate(stats, centers)[:4])
        log_likelihood = model.e_step(start, data)[0].log_likelihood
        if best is None:
            best, best_ll = start, log_likelihood
            continue
        better = log_likelihood > best_ll
        best = best._replace(**{
            name: np.where(better.reshape((G,) + (1,) * (getattr(start, name).ndim - 1)),
                           getattr(start, name), getattr(best, name))
            for name in ("weights", "means", "covariances", "precisions_cholesky")})
        best_ll = np.maximum(log_likelihood, best_ll)
    return best


def batched_kmeans(X: np.ndarray, weight: np.ndarray, K: int, rng: np.random.Generator,
                   max_iter: int = 300, tol: float = 1e-4, full: bool = True):
    """Weighted k-means of every group at once (:func:`emkit.models.clustering.kmeans`'s rule,
    per group: Lloyd from greedy k-means++ seeds; a group stops when no label changes or its
    centres move by less than ``tol`` times its mean column variance; an empty cluster moves to
    the row worst served). Returns labels (G, N), centres (G, K, D) and the statistics of each
    cluster's rows about its centre: weight (G, K), first (G, K, D) and second (G, K, D, D),
    or (G, K, D) unless ``full`` (:func:`emkit.kernels.batched_kmeans.kmeans_groups`)."""
    G = len(X)
    # The seeds' uniform numbers, taken as the seeding draws them: (G, 1) for the first seed,
    # then (G, trials) for each next one.
    trials = kmeans_kernels.seeding_trials(K)
    uniforms = np.concatenate([rng.uniform(size=(G, 1))]
                              + [rng.uniform(size=(G, trials)) for _ in range(1, K)], axis=1)
    return kmeans_kernels.kmeans_groups(X, weight, K, uniforms, tol, max_iter, full)
