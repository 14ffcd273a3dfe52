"""Mixture models for :func:`emkit.fit_em`: one generic mixture of any component family, and
the Gaussian mixture on it.

The mixture logic is written once: :class:`MixtureModel` makes a mixture of any
:class:`~emkit.families.base.ComponentFamily` (posteriors with log-weights and annealing, the
weight M-step, the log-weight coordinates of SQUAREM, sample weights, the family's start), so a
new mixture family is one module in ``emkit.families``. :class:`GaussianMixtureModel` is that
mixture over :class:`GaussianFamily` with the Gaussian's fast path (fused compiled posteriors,
blocks of rows, sorted patterns of missing values), labelled rows, re-seeding of degenerate
components and its richer initialisations:

E-step: posteriors r_ik ∝ π_k N(x_i | μ_k, Σ_k) and the weighted statistics of the Gaussian family.
M-step: π_k = Σ_i w_i r_ik / Σ_i w_i and the family's M-step.

Degenerate components (documented policy): every covariance gets ``reg_covar`` on its diagonal. A
component that is *empty* (its weight below 1e-8 of the total) or whose covariance is not positive
definite even so, is re-seeded at the worst-explained data point seen in the E-step (lowest
log-density), with the mean covariance of the healthy components and weight 1/K; the event is
recorded in the fit (``EMResult.events``). Parameters never become NaN.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from emkit.data.chunks import Batch, chunk_list, row_sample
from emkit.errors import DataError, ParameterError
from emkit.families import gaussian_missing as missing
from emkit.families import parsimonious
from emkit.families.base import (
    ComponentFamily,
    flatten_probabilities,
    log_weights,
    mixing_weights,
    unflatten_probabilities,
)
from emkit.families.gaussian import (
    GaussianFamily,
    GaussianParams,
    GaussianStats,
    covariances_from_precisions,
)
from emkit.models import clustering
from emkit.models.clustering import DEFAULT_INIT, INIT_METHODS

# A combined strategy: the random partitions it screens by short EM runs, and the
# deterministic one the survivor then meets in longer runs (see _best_after_short_runs).
# "auto": k-means starts are the more reliable on overlapping clusters (50k x 16, K=16: 16
# k-means starts miss the best maximum in 0 of 20 seeds, one k-means and 23 k-means++ in 1),
# k-means++ partitions the more varied; eight of each.
_COMBINED = {"auto": (("kmeans",) * 8 + ("k-means++",) * 8, "hierarchical"),
             "emEM": (("k-means++",) * 10, None)}
SCREENING_STEPS = 4
_FINAL_STEPS = 64
FINALISTS = 2
# The race of a grid's shared finalists: half as long. Over mclust's 14 × 9 grid on faithful,
# iris and penguins it picks the same finalists as 64 steps (16 do not); alone, a fit needs 64
# (penguins K=4 falls below mclust's maximum with 32).
SHARED_FINAL_STEPS = 32
_SHORT_RUN_TOL = 1e-6
# The most EM steps of the race's leader and mclust's start when they race on to their maxima
# (GaussianMixtureModel._best_after_short_runs); each stops on its own at _SHORT_RUN_TOL.
_TO_THE_END_STEPS = 1000
# Short runs rank starts; the winner's details are settled on all rows afterwards. 4,000 rows
# rank as well as 20,000 did on the benchmark suite (benchmarks/init.py) at a fifth of the cost.
_SHORT_RUN_MAX_ROWS = 4_000
# On a subsample of larger data the short runs only rank the starts: the winner's parameters are
# re-estimated on all rows from its posteriors at the fit's first step (from the winner on 4,000
# of 50,000 rows, that step gains ~16,000 nats), so converging it on the subsample is wasted.
# There the rounds start at 2 steps (2, 4, 8, not 4, 8, 16) and the race lasts up to 32. On the
# 50k × 16, K=16 benchmark this reaches the best maximum in 40 of 40 seeds (and in 30 of 30 with
# 3,000-row subsamples); rounds from 1 step missed it in 1 of 30 (2 of 30 from 3,000 rows).
_SUBSAMPLED_SCREENING_STEPS = 2
_SUBSAMPLED_FINAL_STEPS = 32
# Short runs of several starts share their passes up to this many rows × components.
_STACKED_MAX_WORK = 20_000
# The hierarchical start competes only where its agglomeration sees all rows or at least this
# many rows per cluster and dimension: from fewer (16 clusters in 16-D from 316 rows) its
# partitions are poor and its short run is wasted.
_AGGLOMERATION_ROWS_PER_CLUSTER_DIMENSION = 4
_AGGLOMERATION_BUDGET = 1e8
_EMPTY_FRACTION = 1e-8
_INIT_MAX_ROWS = 100_000


class MixtureParams(NamedTuple):
    weights: np.ndarray  # (K,) mixing weights π
    components: Any  # the family's parameters of the K components
    events: tuple = ()


class Prepared(NamedTuple):
    """Rows already read by the family (what :meth:`MixtureModel.prepare` makes of a chunk)."""

    data: Any
    sample_weight: np.ndarray | None


class MixtureModel:
    """Mixture of ``n_components`` components of one family, for :func:`emkit.fit_em`.

    E-step: r_ik ∝ π_k p(x_i | θ_k) (tempered to r_ik ∝ (π_k p(x_i | θ_k))^β when annealing), by
    the family's ``posteriors``; the statistics are the family's, with per-row, per-component
    weights w_i r_ik. M-step: π_k ∝ Σ_i w_i r_ik and the family's M-step. Everything about the
    components is the family's (:class:`~emkit.families.base.ComponentFamily`); this class
    holds the mixture, so a new mixture family is one family module.

    Parameters
    ----------
    family : ComponentFamily
    n_components : int
        K.
    """

    def __init__(self, family: ComponentFamily, n_components: int):
        if not (isinstance(n_components, (int, np.integer)) and n_components >= 1):
            raise ParameterError(f"n_components must be an integer >= 1, got {n_components!r}.")
        self.family = family
        self.n_components = int(n_components)

    def _params(self, weights: np.ndarray, components: Any, events: tuple = ()) -> Any:
        """The parameter value of this model (a subclass may keep a type of its own)."""
        return MixtureParams(weights, components, tuple(events))

    # ------------------------------------------------------------------ E-step
    def prepare(self, chunk: Any) -> list[Any]:
        """The engine's once-per-fit hook: the chunk's rows read (checked, converted) by the
        family once, instead of at every E-step."""
        if isinstance(chunk, Prepared):
            return [chunk]
        X, sample_weight = _rows_and_weights(chunk)
        return [Prepared(self.family.read(X), sample_weight)]

    def _read(self, chunk: Any) -> tuple[Any, np.ndarray | None]:
        if isinstance(chunk, Prepared):
            return chunk.data, chunk.sample_weight
        X, sample_weight = _rows_and_weights(chunk)
        return self.family.read(X), sample_weight

    def log_joint(self, params: MixtureParams, chunk: Any) -> np.ndarray:
        """log π_k + log p(x_i | θ_k), shape (n_rows, K)."""
        data, _ = self._read(chunk)
        return self.family.log_density(params.components, data) + log_weights(params.weights)

    def posteriors(self, params: MixtureParams, chunk: Any,
                   inverse_temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood (n_rows,) and posterior probabilities (n_rows, K)."""
        data, _ = self._read(chunk)
        return self.family.posteriors(params.components, data, log_weights(params.weights),
                                      inverse_temperature)

    def e_step(self, params: MixtureParams, chunk: Any,
               inverse_temperature: float = 1.0) -> tuple[Any, float]:
        data, w = self._read(chunk)
        if self.family.n_rows(data) == 0:
            empty = np.zeros((0, self.n_components))
            return self.family.statistics(params.components, data, empty), 0.0
        log_norm, resp = self.family.posteriors(params.components, data,
                                                log_weights(params.weights),
                                                inverse_temperature)
        if w is None:
            weighted = resp
            log_likelihood = float(log_norm.sum())
        else:
            weighted = resp * w[:, None]
            used = w > 0  # a row of weight 0 is a dropped row, even if its density is 0
            log_likelihood = float(w[used] @ log_norm[used])
        return self.family.statistics(params.components, data, weighted), log_likelihood

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: Any, params: MixtureParams) -> MixtureParams:
        components, events = self.family.m_step(stats, params.components)
        return self._params(mixing_weights(self.family.component_weights(stats)), components,
                            events)

    def expected_complete_log_likelihood(self, stats: Any, params: MixtureParams,
                                         ) -> float | None:
        """Q: the expected complete-data log-likelihood (plus log prior) of ``params`` under
        the E-step that made ``stats``, up to a constant; None if the family cannot say. The
        engine compares Q before and after an M-step: an M-step that lowers Q (``reg_covar``'s
        does near a collapsing component) may lower the log-likelihood by as much, and no
        more, and such a decrease is not a defect (generalised EM's inequality)."""
        component_part = getattr(self.family, "expected_log_density", None)
        if component_part is None:
            return None
        counts = self.family.component_weights(stats)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight_part = float(np.sum(np.where(counts > 0, counts * log_weights(params.weights),
                                                0.0)))
        return weight_part + component_part(params.components, stats) + self.log_prior(params)

    def log_prior(self, params: MixtureParams) -> float:
        return float(self.family.log_prior(params.components))

    # ------------------------------------------------------------------ engine hooks
    def n_samples(self, stats: Any) -> float:
        return float(self.family.component_weights(stats).sum())

    def flatten(self, params: MixtureParams) -> np.ndarray:
        """Log-weights (softmax back), then the family's coordinates."""
        return np.concatenate([flatten_probabilities(params.weights),
                               self.family.flatten(params.components)])

    def unflatten(self, vector: np.ndarray, template: MixtureParams) -> MixtureParams:
        K = self.n_components
        return self._params(unflatten_probabilities(vector[:K], template.weights),
                            self.family.unflatten(vector[K:], template.components))

    def n_parameters(self, n_features: int) -> int:
        return self.n_components - 1 + self.family.n_parameters(self.n_components, n_features)

    # ------------------------------------------------------------------ initialisation
    def init_params(self, data: Any, rng: np.random.Generator) -> MixtureParams:
        """The family's start from all chunks."""
        parts = [self._read(chunk) for chunk in chunk_list(data)]
        weights, components = self.family.init(parts, self.n_components, rng)
        return self._params(weights, components)


@dataclass(frozen=True)
class MixtureStats:
    """Component statistics plus the worst-explained rows seen (for re-seeding)."""

    components: GaussianStats
    worst_log_density: np.ndarray  # (m,) lowest per-row log-densities, ascending
    worst_rows: np.ndarray  # (m, D)

    def __add__(self, other: MixtureStats) -> MixtureStats:
        values = np.concatenate([self.worst_log_density, other.worst_log_density])
        rows = np.concatenate([self.worst_rows, other.worst_rows])
        keep = np.argsort(values, kind="stable")[: max(len(self.worst_log_density),
                                                       len(other.worst_log_density))]
        return MixtureStats(self.components + other.components, values[keep], rows[keep])

    def scaled(self, factor: float) -> MixtureStats:
        """Row weights multiplied by ``factor`` (the worst rows stay what they are)."""
        return MixtureStats(self.components.scaled(factor), self.worst_log_density,
                            self.worst_rows)


class SortedBlock(NamedTuple):
    """A block of rows sorted by their pattern of missing values, with its layout
    (``missing.COMPLETE`` for a block without NaN): what :meth:`GaussianMixtureModel.prepare`
    makes of data in memory, so that E-steps skip the search for NaN and patterns and work on
    contiguous rows."""

    batch: Batch
    rows: missing.RowLayout | missing.Complete


def as_batch(chunk: Any) -> Batch:
    """A chunk as a Batch of float arrays (an array chunk has unit weights and no labels)."""
    if isinstance(chunk, Batch):
        return chunk
    return Batch(np.asarray(chunk))


class GaussianMixtureModel(MixtureModel):
    """Mixture of ``n_components`` Gaussians (see the module docstring): the generic mixture
    over :class:`GaussianFamily`, with the Gaussian's fast path.

    Parameters
    ----------
    n_components, covariance_type, reg_covar, dtype
        As :class:`emkit.families.gaussian.GaussianFamily`.
    init_params : {"k-means++", "kmeans", "random", "random_from_data"}
        How ``init_params`` finds initial responsibilities.
    weights_init, means_init, precisions_init : arrays, optional
        Override the corresponding initial parameters (scikit-learn semantics).
    resp_init : array (n_samples, n_components), optional
        Initial responsibilities of the rows (of the concatenated chunks).
    block_rows : int, optional
        Rows per block of an E-step (bounds the memory of the rows × K posteriors).
    """

    def __init__(self, n_components: int, covariance_type: str = "full",
                 reg_covar: float = 1e-6, dtype=np.float64, init_params: str = DEFAULT_INIT,
                 weights_init=None, means_init=None, precisions_init=None, resp_init=None,
                 block_rows: int | None = None):
        if init_params not in INIT_METHODS:
            raise ParameterError(
                f"init_params must be one of {INIT_METHODS}, got {init_params!r}.")
        super().__init__(GaussianFamily(covariance_type, reg_covar, dtype), int(n_components))
        self.init_method = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.resp_init = resp_init
        self.block_rows = block_rows
        self.shared_starts: SharedStarts | None = None

    dtype = property(lambda self: self.family.dtype, doc="The floating type of the E-step.")

    # ------------------------------------------------------------------ E-step
    def log_joint(self, params: MixtureParams, X: np.ndarray) -> np.ndarray:
        """log π_k + log N(x_i | μ_k, Σ_k), shape (n_rows, K)."""
        return self.family.log_density(params.components, X, log_weights(params.weights))

    def posteriors(self, params: MixtureParams, X: np.ndarray,
                   inverse_temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood (n,) and posterior probabilities (n, K), block by block."""
        X = np.asarray(X)
        log_norm = np.empty(len(X))
        resp = np.empty((len(X), self.n_components), dtype=self.family.dtype)
        for block in self._blocks(len(X), X.shape[1]):
            log_norm[block], resp[block] = self.family.posteriors(
                params.components, X[block], log_weights(params.weights), inverse_temperature)
        return log_norm, resp

    def prepare(self, chunk: Any) -> list[Any]:
        """The chunk as blocks, each with its layout: rows with NaN sorted by their pattern of
        missing values (complete rows first), a block without NaN marked complete. The data do
        not change during a fit, so the patterns are found once instead of in every E-step (a
        scan for NaN alone costs 4% of a 200,000 × 16 iteration)."""
        X, sample_weight, labels = as_batch(chunk)
        X = np.asarray(X)
        if X.ndim != 2 or X.dtype.kind != "f":
            return [chunk]
        gaps = bool(np.isnan(X).any())
        blocks: list[Any] = []
        for block in self._blocks(len(X), X.shape[1]):
            # In the E-step's dtype once (a view when it is already so), not at every E-step.
            values = np.ascontiguousarray(X[block], dtype=self.family.dtype)
            order, rows = missing.sort_by_pattern(values) if gaps else (slice(None), None)

            def take(column, block=block, order=order):
                return None if column is None else np.asarray(column)[block][order]

            blocks.append(SortedBlock(Batch(values[order], take(sample_weight), take(labels)),
                                      missing.COMPLETE if rows is None else rows))
        return blocks

    def e_step(self, params: MixtureParams, chunk: Any,
               inverse_temperature: float = 1.0) -> tuple[MixtureStats, float]:
        if isinstance(chunk, SortedBlock):
            X, w, lab = chunk.batch
            return self._block_e_step(params, X, None if w is None else np.asarray(w, float),
                                      lab, inverse_temperature, chunk.rows)
        X, sample_weight, labels = as_batch(chunk)
        X = np.asarray(X)
        total: MixtureStats | None = None
        log_likelihood = 0.0
        for block in self._blocks(len(X), X.shape[1]):
            w = None if sample_weight is None else np.asarray(sample_weight[block], dtype=float)
            lab = None if labels is None else np.asarray(labels[block])
            stats, ll = self._block_e_step(params, X[block], w, lab, inverse_temperature)
            total = stats if total is None else total + stats
            log_likelihood += ll
        if total is None:  # an empty chunk
            total = self._empty_stats(params, X.shape[1])
        return total, log_likelihood

    def _block_e_step(self, params, X, w, labels, beta, rows=None):
        X = np.ascontiguousarray(X, dtype=self.family.dtype)
        if rows is None:  # where the NaN are, found once for both passes
            rows = missing.layout(X)
        elif rows is missing.COMPLETE:  # known from prepare
            rows = None
        layout = missing.COMPLETE if rows is None else rows  # the passes need not look again
        row_ll, resp = self.family.posteriors(params.components, X, log_weights(params.weights),
                                              beta, layout)
        if labels is not None:
            known = np.flatnonzero(labels >= 0)
            if len(known):  # a labelled row contributes log π_y N(x | y), its posterior is y
                resp[known] = 0.0
                resp[known, labels[known]] = 1.0
                row_ll[known] = self.log_joint(params, X[known])[np.arange(len(known)),
                                                                   labels[known]]
                # A row with nothing observed contributes nothing, labelled or not (its
                # statistics are empty too, so log π_y here would break monotonicity).
                if rows is not None:
                    row_ll[known[rows.empty[known]]] = 0.0
        if w is None:
            weighted, used = resp, None  # None: every row
            ll = float(np.sum(row_ll))
        else:
            weighted = resp * w.astype(resp.dtype)[:, None]
            used = w > 0
            ll = float(np.dot(w[used], row_ll[used]))
        components = self.family.statistics(params.components, X, weighted, layout)
        if rows is not None:
            used = ~rows.empty if used is None else used & ~rows.empty
        worst_values, worst_rows = _lowest_rows(row_ll, X, used, self.n_components)
        if rows is not None:  # re-seeding needs whole rows: gaps get the mean of the means
            worst_rows = np.where(np.isnan(worst_rows), params.components.means.mean(axis=0),
                                  worst_rows)
        return MixtureStats(components, worst_values, worst_rows), ll

    def _empty_stats(self, params, n_features) -> MixtureStats:
        K = self.n_components
        second_shape = (K, n_features, n_features) if self.family.covariance_type in (
            "full", "tied") else (K, n_features)
        comp = GaussianStats(np.zeros(K), np.zeros((K, n_features)), np.zeros(second_shape),
                             params.components.means)
        return MixtureStats(comp, np.empty(0), np.empty((0, n_features)))

    def _blocks(self, n_rows: int, n_features: int):
        # Bounds the memory of per-row arrays (rows × K); kernels block further for the cache.
        size = self.block_rows or max(1024, (1 << 22) // max(1, self.n_components))
        for start in range(0, n_rows, size):
            yield slice(start, min(start + size, n_rows))

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: MixtureStats, params: MixtureParams | None = None) -> MixtureParams:
        comp = stats.components
        total = float(comp.weight.sum())
        components, bad = self.family.estimate(comp, None if params is None
                                               else params.components)
        weights = mixing_weights(comp.weight)
        empty = comp.weight < _EMPTY_FRACTION * max(total, 1e-300)
        degenerate = bad | empty
        if not degenerate.any():
            return MixtureParams(weights, components)
        return self._reseed(components, weights, degenerate, comp.weight, stats)

    def expected_complete_log_likelihood(self, stats: MixtureStats, params: MixtureParams,
                                         ) -> float | None:
        return super().expected_complete_log_likelihood(stats.components, params)

    def _reseed(self, components, weights, degenerate, weight_sums, stats) -> MixtureParams:
        """Re-seed degenerate components at the worst-explained rows (see the module docstring)."""
        means = components.means.copy()
        cov = np.array(components.covariances, copy=True)
        kind = self.family.covariance_type
        healthy = ~degenerate
        n_features = means.shape[1]
        if kind == "tied":
            fallback = cov if healthy.any() else np.eye(n_features)
        elif healthy.any():
            fallback = np.average(cov[healthy], axis=0, weights=weights[healthy])
        else:
            fallback = np.eye(n_features) if kind == "full" else (
                np.ones(n_features) if kind == "diag" else 1.0)
        rows = stats.worst_rows
        events = []
        for i, k in enumerate(np.flatnonzero(degenerate)):
            if len(rows):
                means[k] = rows[i % len(rows)]
            if kind != "tied":
                cov[k] = fallback
            else:
                cov = fallback
            weights[k] = 1.0 / self.n_components
            events.append(f"component {k} was degenerate (weight {weight_sums[k]:.3g}); "
                          "re-seeded at a worst-explained data point")
        weights = weights / weights.sum()
        components, still_bad = self.family.with_covariances(means, cov)
        if still_bad.any():  # only if the fallback itself is unusable: start from unit variance
            unit = self.family.covariance_shape(self.n_components, n_features)
            base = np.broadcast_to(np.eye(n_features), unit) if kind in ("full", "tied") \
                else np.ones(unit)
            components, _ = self.family.with_covariances(means, np.array(base))
        return MixtureParams(weights, components, tuple(events))

    # ------------------------------------------------------------------ engine hooks
    def n_samples(self, stats: MixtureStats) -> float:
        return float(stats.components.weight.sum())

    # ------------------------------------------------------------------ initialisation
    def init_params(self, data: Any, rng: np.random.Generator) -> MixtureParams:
        if self._start_given():  # nothing to estimate: no pass over the data
            return self._apply_user_init(None)
        # The same rows, by global index, whatever holds the data (resp_init covers every row).
        sample_size = _INIT_MAX_ROWS if self.resp_init is None else None
        X, w, labels = _concatenate(row_sample(data, sample_size, rng))
        observed = X  # with its gaps, for the short EM runs
        if np.isnan(X).any():  # partitions need whole rows: gaps filled with the column means
            X = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
        n_rows = len(X)
        if self.resp_init is not None:
            resp = np.asarray(self.resp_init, dtype=float)
            if resp.shape != (n_rows, self.n_components):
                raise DataError(
                    f"resp_init has shape {resp.shape}, expected ({n_rows}, "
                    f"{self.n_components}) (rows × components).")
            return self._apply_user_init(self._params_from_resp(X, w, labels, resp, rng))
        method = self.init_method
        if self.weights_init is not None or self.means_init is not None or \
                self.precisions_init is not None:
            # The user's values override part of the start: one partition fills in the rest.
            method = "kmeans" if method in _COMBINED else method
        if method not in _COMBINED:
            resp = self._initial_responsibilities(method, X, w, rng)
            return self._apply_user_init(self._params_from_resp(X, w, labels, resp, rng))
        return self._best_after_short_runs(method, X, w, labels, observed, rng)

    def _start_given(self) -> bool:
        return (self.weights_init is not None and self.means_init is not None
                and self.precisions_init is not None)

    def _reseed_rows(self, n_rows, rng) -> np.ndarray:
        """The rows at which :meth:`_params_from_resp` re-seeds degenerate components."""
        return rng.permutation(n_rows)[: self.n_components]

    def _params_from_resp(self, X, w, labels, resp, rng, order=None) -> MixtureParams:
        """The M-step of hard or soft responsibilities of the rows X (labelled rows fixed);
        ``order``: the rows for re-seeding (drawn from ``rng`` if not given)."""
        if labels is not None:
            known = labels >= 0
            # A partition numbers its clusters arbitrarily: renumber them to agree best with
            # the labelled rows (an assignment problem), so that the labels extend them.
            agreement = np.zeros((self.n_components, self.n_components))
            np.add.at(agreement, labels[known], resp[known])
            _, order = linear_sum_assignment(-agreement)
            resp = resp[:, order]
            resp[known] = 0.0
            resp[known, labels[known]] = 1.0
        weighted = resp if w is None else resp * w[:, None]
        # Moments about the data's mean (the M-step moves each centre to its component's mean);
        # the compiled moments, not a matrix product, so that no BLAS threads wake up here.
        center = np.broadcast_to(np.average(X, axis=0, weights=w), (self.n_components,
                                                                    X.shape[1]))
        shape = self.family.covariance_shape(self.n_components, X.shape[1])
        placeholder, _ = self.family.with_covariances(
            np.array(center), np.ones(shape) if self.family.covariance_type in (
                "diag", "spherical") else np.broadcast_to(np.eye(X.shape[1]), shape))
        # In float64 whatever the E-step's dtype: float32 moments could give a start whose
        # smallest eigenvalue is below reg_covar, better than any M-step can reach again, and
        # the first iteration would then lower the objective.
        exact = GaussianFamily(self.family.model, self.family.reg_covar)
        comp = exact.statistics(placeholder, X.astype(np.float64), weighted)
        if order is None:
            order = self._reseed_rows(len(X), rng)
        return self.m_step(MixtureStats(comp, np.zeros(len(order)), X[order]))

    def _best_after_short_runs(self, method, X, w, labels, observed, rng) -> MixtureParams:
        """The start of a combined strategy: its partitions, ranked by short EM runs on (a
        subsample of) the rows.

        The random starts are screened by successive halving (Jamieson & Talwalkar 2016) of
        the emEM idea (Biernacki, Celeux & Govaert 2003): every start gets a few EM steps, the
        better half goes on for twice as many, and so on until one is left. For ``"auto"`` the
        survivor then meets the hierarchical start in longer runs: where EM from a partition
        ends is often decided late (a start that climbs slowly but far), and the two kinds of
        start win on different data."""
        subsampled = len(X) > _SHORT_RUN_MAX_ROWS
        if subsampled:  # partitions and runs alike on one subsample
            pick = np.sort(rng.choice(len(X), _SHORT_RUN_MAX_ROWS, replace=False))
            X, observed = X[pick], observed[pick]
            w = None if w is None else w[pick]
            labels = None if labels is None else labels[pick]
        batch = Batch(observed, w, labels)
        if self.shared_starts is not None and method == "auto":
            survivors, anchor = self._shared_finalists(X, w, rng, labels, batch)
            steps = SHARED_FINAL_STEPS
        else:
            survivors, anchor = self._finalists(method, X, w, labels, batch, rng, (
                _SUBSAMPLED_SCREENING_STEPS if subsampled else SCREENING_STEPS))
            steps = _SUBSAMPLED_FINAL_STEPS if subsampled else _FINAL_STEPS
        runs = self._short_runs(survivors + ([] if anchor is None else [anchor]), batch, steps,
                                ranked=False)
        leader = int(np.argmax([ll for _, ll in runs]))  # of equals, the earlier
        best = runs[leader][0]
        if anchor is not None and leader == len(runs) - 1 and not subsampled:
            # mclust's start leads: the fit starts from it as init_params="hierarchical" does,
            # so that the default ends where that fit ends. From the race's plain EM steps
            # SQUAREM can reach another maximum (iris VVE, K=5: −191.34 where the start itself
            # leads to −188.30; of 1,344 single fits of eight data sets, 5 end elsewhere: 3
            # higher by 2.7–3.0 nats, 2 lower by 0.8).
            best = anchor
        if anchor is not None and leader != len(runs) - 1 and not subsampled:
            # mclust's start (the hierarchical partition) lost the race, but a start behind
            # after the race often ends ahead: the two race on to their maxima (faithful VVV,
            # K=6: the leader, 4.4 nats ahead after 64 steps, ends at −1100.78; mclust's start
            # at −1094.76, after a plateau no extrapolation sees). So the default ends at least
            # where mclust's start leads. (On a subsample the runs only rank the starts.)
            # Each run stops once a step gains less than _SHORT_RUN_TOL per row: mclust's start
            # is taken where it ends higher by more than that; otherwise the leader, as the race
            # left it.
            (_, ahead_ll), (anchored, anchored_ll) = self._short_runs(
                [best, runs[-1][0]], batch, _TO_THE_END_STEPS, ranked=False)
            rows = len(X) if w is None else float(np.sum(w))
            if anchored_ll > ahead_ll + _SHORT_RUN_TOL * rows:
                best = anchored
        return MixtureParams(best.weights, best.components)

    def _shared_finalists(self, X, w, rng: np.random.Generator, labels=None,
                          batch: Batch | None = None,
                          ) -> tuple[list[MixtureParams], MixtureParams | None]:
        """The finalists of the default start when the screening is shared
        (:class:`SharedStarts`, set as ``shared_starts``), under this model's constraints: the
        screening's survivors and the anchor's start (None if not informative), which race for
        :data:`SHARED_FINAL_STEPS` EM steps. X: complete rows; w: row weights or None;
        ``labels`` and ``batch`` (the rows with their gaps) as in :meth:`init_params`."""
        batch = Batch(X, w, labels) if batch is None else batch
        survivors, anchor = self.shared_starts.finalists(self, X, w, labels, batch, rng)
        return ([self._params_from_resp(X, w, labels, resp, rng) for resp in survivors],
                None if anchor is None else self._params_from_resp(X, w, labels, anchor, rng))

    def _finalists(self, method, X, w, labels, batch, rng, steps: int = SCREENING_STEPS,
                   ) -> tuple[list[MixtureParams], MixtureParams | None]:
        """The survivors of the screening of the random partitions, and the anchor's start
        (None if not informative)."""
        survivors, anchor = self._screening(method, X, w, labels, batch, rng, steps)
        return survivors, None if anchor is None else self._params_from_resp(X, w, labels,
                                                                             anchor, rng)

    def _screening(self, method, X, w, labels, batch, rng, steps: int = SCREENING_STEPS,
                   ) -> tuple[list[MixtureParams], np.ndarray | None]:
        """The survivors of the random partitions' successive halving, and the anchor's
        partition (None if it is not informative here)."""
        starts, anchored = self.screening_entrants(method, X, w, labels, rng)
        runs = [(params, -np.inf) for params in starts]
        while len(runs) > FINALISTS:
            runs = self._short_runs([params for params, _ in runs], batch, steps)
            runs = runs[: halving_survivors(len(runs))]
            steps *= 2
        return [params for params, _ in runs], anchored

    def screening_entrants(self, method, X, w, labels, rng: np.random.Generator,
                           ) -> tuple[list[MixtureParams], np.ndarray | None]:
        """What a combined strategy (``"auto"``, ``"emEM"``) screens: the starts of its random
        partitions of the complete rows X, and its anchor's partition as responsibilities
        (None where the agglomeration is not informative)."""
        random_names, anchor = _COMBINED[method]
        if anchor == "hierarchical" and not self._agglomeration_informative(X, w):
            anchor = None
        # The anchor draws first (the rows a large data set's agglomeration sees): the fits of
        # a grid, one generator state for every K, then share one hierarchy, cut for each K,
        # as mclust's do.
        anchored = None if anchor is None else self._initial_responsibilities(anchor, X, w, rng)
        return self._starts(random_names, X, w, labels, rng), anchored

    def _short_runs(self, starts, batch, steps, ranked: bool = True,
                    ) -> list[tuple[MixtureParams, float]]:
        """Up to ``steps`` EM steps from each start (fewer once the log-likelihood per sample
        changes by less than 1e-6); (parameters, log-likelihood), best first (of equals the
        earlier start first, so the choice is deterministic), or in the starts' order."""
        if self._stackable(batch):
            runs = self._stacked_short_runs(starts, batch, steps)
        else:
            runs = []
            for params in starts:
                previous = -np.inf
                for step in range(steps):
                    stats, ll = self.e_step(params, batch)
                    n = max(self.n_samples(stats), 1e-300)
                    if step + 1 == steps or abs(ll - previous) / n < _SHORT_RUN_TOL:
                        break
                    params, previous = self.m_step(stats, params), ll
                runs.append((params, ll))
        if ranked:
            runs.sort(key=lambda item: -item[1])
        return runs

    def _stackable(self, batch) -> bool:
        """Whether short runs may share passes (see :meth:`_stacked_short_runs`): where a
        pass's fixed cost counts. On more rows the compiled E-step of one start at a time,
        which normalises the posteriors as it computes the densities, is the faster (4,000
        rows, K=16: ~15% less than stacked starts normalised by numpy)."""
        return (self.family.model in parsimonious.SEPARABLE and batch.labels is None
                and len(batch.X) * self.n_components <= _STACKED_MAX_WORK
                and not np.isnan(batch.X).any())

    def _stacked_short_runs(self, starts, batch, steps) -> list[tuple[MixtureParams, float]]:
        """:meth:`_short_runs` with all starts in one pass per step: where the covariance
        model estimates each component on its own, the K components of S starts are one
        mixture of S·K components whose posteriors are normalised within each start. On a few
        hundred rows a step's cost is mostly fixed, so S starts cost about what one does."""
        X = np.ascontiguousarray(batch.X, dtype=self.family.dtype)
        w = None if batch.sample_weight is None else np.asarray(batch.sample_weight, float)
        total = len(X) if w is None else max(float(w.sum()), 1e-300)
        used = None if w is None else w > 0  # a row of weight 0 counts not even if −inf
        K = self.n_components
        current = list(starts)
        previous = np.full(len(starts), -np.inf)
        running = list(range(len(starts)))
        finished: dict[int, tuple[MixtureParams, float]] = {}
        for step in range(steps):
            wide = _stacked_components([current[s].components for s in running])
            log_joint = self.family.log_density(
                wide, X, np.concatenate([log_weights(current[s].weights) for s in running]),
                missing.COMPLETE).reshape(len(X), len(running), K)
            row_ll, unnormalised, totals = _grouped_log_likelihood(log_joint)
            ll = row_ll.sum(axis=0) if w is None else w[used] @ row_ll[used]
            done = (step + 1 == steps) | (np.abs(ll - previous[running]) / total < _SHORT_RUN_TOL)
            for s, value, stop in zip(running, ll, done, strict=True):
                if stop:
                    finished[s] = (current[s], float(value))
            previous[running] = ll
            go_on = np.flatnonzero(~done)
            if not len(go_on):
                break
            resp = unnormalised[:, go_on]
            resp /= totals[:, go_on]
            if w is not None:
                resp *= w[:, None, None]
            running = [running[i] for i in go_on]
            wide = _stacked_components([current[s].components for s in running])
            stats = self.family.statistics(wide, X, resp.reshape(len(X), -1), missing.COMPLETE)
            estimated, bad = self.family.estimate(stats, wide)
            counts = stats.weight.reshape(len(running), K)
            bad = bad.reshape(len(running), K) | (
                counts < _EMPTY_FRACTION * counts.sum(axis=1, keepdims=True))
            for i, s in enumerate(running):
                if bad[i].any():  # re-seeding needs the E-step's worst rows: the plain step
                    current[s] = self.m_step(self.e_step(current[s], batch)[0], current[s])
                else:
                    current[s] = MixtureParams(mixing_weights(counts[i]), GaussianParams(
                        *(field[i * K:(i + 1) * K] for field in estimated)))
        return [finished[s] for s in range(len(starts))]

    def _starts(self, methods, X, w, labels, rng) -> list[MixtureParams]:
        """The start of each partition method in ``methods``, in order, with the same draws
        as one :meth:`_initial_responsibilities` and :meth:`_params_from_resp` after another;
        consecutive k-means or k-means++ runs are seeded together and take their Lloyd steps
        together (:func:`~emkit.models.clustering.kmeans_plusplus_runs`,
        :func:`~emkit.models.clustering.lloyd`)."""
        starts = []
        for method, group in itertools.groupby(methods):
            n_runs = len(list(group))
            if method not in ("kmeans", "k-means++") or n_runs == 1:
                starts += [self._params_from_resp(
                    X, w, labels, self._initial_responsibilities(method, X, w, rng), rng)
                    for _ in range(n_runs)]
                continue
            uniforms, orders = [], []
            for _ in range(n_runs):  # each run's draws: its seeds, then its start's rows
                uniforms.append(rng.random(clustering.seeding_draws(self.n_components)))
                orders.append(self._reseed_rows(len(X), rng))
            seeds = clustering.kmeans_plusplus_runs(X, self.n_components, np.stack(uniforms), w)
            assignments = (clustering.lloyd(X, seeds, w)[0] if method == "kmeans"
                           else clustering.nearest_of_runs(X, seeds))
            for assignment, order in zip(assignments, orders, strict=True):
                resp = np.zeros((len(X), self.n_components))
                resp[np.arange(len(X)), assignment] = 1.0
                starts.append(self._params_from_resp(X, w, labels, resp, rng, order))
        return starts

    def partition(self, method: str, X, w, rng: np.random.Generator) -> np.ndarray:
        """The hard partition (rows × K responsibilities of 0 and 1, or random soft ones for
        ``"random"``) that the start ``method`` makes of the complete rows X."""
        return self._initial_responsibilities(method, X, w, rng)

    def _initial_responsibilities(self, method, X, w, rng) -> np.ndarray:
        K, n_rows = self.n_components, len(X)
        if method == "random":
            resp = rng.uniform(size=(n_rows, K))
            return resp / resp.sum(axis=1, keepdims=True)
        if method == "kmeans":
            assignment, _ = clustering.kmeans(X, K, rng, w)
        elif method == "hierarchical":
            assignment = self._hierarchical_assignment(X, w, rng)
        else:
            if method == "k-means++":
                centers = clustering.kmeans_plusplus(X, K, rng, w)
            else:  # random_from_data
                candidates = np.flatnonzero(w > 0) if w is not None else np.arange(n_rows)
                centers = X[rng.choice(candidates, K, replace=False)]
            assignment, _ = clustering.nearest(X, centers)
        resp = np.zeros((n_rows, K))
        resp[np.arange(n_rows), assignment] = 1.0
        return resp

    def _agglomeration_informative(self, X, w) -> bool:
        n_rows = len(X) if w is None else int(np.count_nonzero(w > 0))
        limit = _agglomeration_limit(X.shape[1])
        return n_rows <= limit or limit >= (_AGGLOMERATION_ROWS_PER_CLUSTER_DIMENSION
                                            * self.n_components * X.shape[1])

    def _hierarchical_assignment(self, X, w, rng) -> np.ndarray:
        """Hierarchical agglomeration of (a subsample of) the rows; the other rows go to the
        nearest cluster mean in the scaled principal coordinates (Mahalanobis distance under
        the data's covariance)."""
        n_rows, n_features = X.shape
        limit = _agglomeration_limit(n_features)
        candidates = np.flatnonzero(w > 0) if w is not None else np.arange(n_rows)
        if len(candidates) <= limit:
            return clustering.hierarchical(X, self.n_components, w)
        pick = np.sort(rng.choice(candidates, limit, replace=False))
        sub = clustering.hierarchical(X[pick], self.n_components,
                                      None if w is None else w[pick])
        Z = clustering.scaled_principal_coordinates(X, w)
        means = np.array([Z[pick][sub == k].mean(axis=0) for k in range(self.n_components)])
        assignment = clustering.nearest(Z, means)[0]
        assignment[pick] = sub
        return assignment

    def _apply_user_init(self, params: MixtureParams | None) -> MixtureParams:
        """``params`` with what the user gave in its place (``params`` may be None when the
        user gave everything)."""
        if params is None and not self._start_given():
            raise AssertionError("a start needs estimated parameters unless all are given")
        given = (self.weights_init, self.means_init, self.precisions_init)
        if all(value is None for value in given):
            return params
        weights = (np.asarray(self.weights_init, dtype=float) if self.weights_init is not None
                   else params.weights)
        means = (np.asarray(self.means_init, dtype=float) if self.means_init is not None
                 else params.components.means)
        cov = (covariances_from_precisions(self.precisions_init, self.family.covariance_type)
               if self.precisions_init is not None else params.components.covariances)
        components, bad = self.family.with_covariances(means, cov)
        if bad.any():
            raise DataError("precisions_init is not positive definite for every component.")
        return MixtureParams(weights, components)


class SharedStarts:
    """The default start's screening, done once for fits of the same rows that differ only in
    the covariance model (``select_model``'s grid; mclust starts its whole grid from one
    agglomeration, for the same reason).

    Screening sixteen partitions by short EM runs is most of a small fit's cost. Here it runs
    once per number of components and layout, under the least constrained (separable, so
    stacked) model of that layout: VII for the spherical models, VVI for the diagonal ones,
    VVV for the others. Each covariance model then races the finalists, re-estimated under its
    own constraints: the survivors' posteriors and the hierarchical partition (mclust's
    start)."""

    def __init__(self):
        self._finalists: dict[tuple[int, str, bytes], list[np.ndarray]] = {}

    def finalists(self, model: GaussianMixtureModel, X, w, labels, batch,
                  rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Posteriors (rows × K) of the survivors of the screening of ``model``'s partitions
        of the rows X (screened the first time they are asked for with this K and layout), and
        the anchor's partition (None if not informative)."""
        # The separable model of the same layout: spherical, diagonal or general matrices.
        separable = {"spherical": "VII", "diag": "VVI"}.get(model.family.covariance_type, "VVV")
        key = (model.n_components, separable, hashlib.blake2b(
            np.ascontiguousarray(X).tobytes() + (b"" if w is None else w.tobytes())).digest())
        if key not in self._finalists:
            screen = GaussianMixtureModel(model.n_components, separable,
                                          model.family.reg_covar, model.dtype)
            survivors, anchor = screen._screening("auto", X, w, labels, batch, rng)
            self._finalists[key] = ([screen.posteriors(params, X)[1].astype(np.float64)
                                     for params in survivors], anchor)
        return self._finalists[key]


def halving_survivors(n_runs: int) -> int:
    """How many of ``n_runs`` short runs go on to the next round of successive halving."""
    return max(FINALISTS, (n_runs + 1) // 2)


def _agglomeration_limit(n_features: int) -> int:
    """Rows the hierarchical start agglomerates: its cost grows like n² (D³/6 + D²), and the
    subsample keeps it to a fraction of a second."""
    return int(np.clip(np.sqrt(_AGGLOMERATION_BUDGET / (60 + n_features**2 + n_features**3 / 6)),
                       200, 2000))


def _grouped_log_likelihood(log_joint: np.ndarray,
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For log π_k + log p(x | k) of several mixtures, (n_rows, S, K): each row's
    log-likelihood under each mixture (n_rows, S), and exp(log_joint − m) with its sums over k
    (n_rows, S, 1), m each row's maximum in each mixture: their ratio is the posteriors, left to
    the caller for the mixtures it still needs. One exp where log-sum-exp and posteriors take
    two: in the short runs of many starts this is as costly as the densities."""
    values = np.array(log_joint, dtype=np.float64)  # a copy: exponentiated in place
    top = values.max(axis=2, keepdims=True)
    top[~np.isfinite(top)] = 0.0  # a row no component explains: all −inf, log-likelihood −inf
    values -= top
    np.exp(values, out=values)
    totals = values.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        row_ll = np.log(totals[..., 0]) + top[..., 0]
    return row_ll, values, totals


def _stacked_components(parts: list[GaussianParams]) -> GaussianParams:
    """The components of several mixtures of a separable model as one list."""
    return GaussianParams(*(np.concatenate(field) for field in zip(*parts, strict=True)))


def _rows_and_weights(chunk: Any) -> tuple[Any, np.ndarray | None]:
    """A chunk's rows and row weights (None: all 1)."""
    if isinstance(chunk, Batch):
        w = None if chunk.sample_weight is None else np.asarray(chunk.sample_weight, float)
        return chunk.X, w
    return chunk, None


def _lowest_rows(row_ll, X, used, m):
    """The m rows (among ``used``; None: all) with the lowest log-density, ascending."""
    idx = np.arange(len(row_ll)) if used is None else np.flatnonzero(used)
    if len(idx) > m:
        idx = idx[np.argpartition(row_ll if used is None else row_ll[idx], m - 1)[:m]]
    idx = idx[np.argsort(row_ll[idx], kind="stable")]
    return row_ll[idx].astype(float), np.asarray(X[idx], dtype=float)


def _concatenate(chunks):
    """Rows, weights and labels of all chunks (None when no chunk has them)."""
    batches = [as_batch(c) for c in chunks]
    X = np.concatenate([np.asarray(b.X, dtype=float) for b in batches])
    has_w = any(b.sample_weight is not None for b in batches)
    has_labels = any(b.labels is not None for b in batches)
    w = np.concatenate([np.ones(len(b.X)) if b.sample_weight is None else
                        np.asarray(b.sample_weight, dtype=float) for b in batches]) if has_w \
        else None
    labels = np.concatenate([np.full(len(b.X), -1) if b.labels is None else
                             np.asarray(b.labels) for b in batches]) if has_labels else None
    return X, w, labels
