"""Many small Gaussian mixtures fitted at once: one EM model whose parameters are G stacked
mixtures, for :func:`emkit.fit_em`.

Why one model through the one loop, and not a loop of its own: the engine (``fit_em``) stays the
only EM loop (docs/design.md). Its monitor judges one scalar objective, here the sum of the
groups' log-likelihoods, which cannot tell when *each* group has converged. So the per-group
rule lives in the parameters: every group carries its last objectives, and :meth:`m_step`
applies the estimator's rule to each group (the change and Aitken's estimate of the remaining
rise, both below ``tol`` per sample of that group, :func:`emkit.core.monitor.remaining_gain_rows`)
before stepping. A group that has converged is frozen (its parameters no longer change and its
E-step is skipped: its statistics are zero and its log-likelihood the one it was frozen with);
``params_converged`` tells the engine the fit is over once every group is frozen. Under plain
EM a group thus stops at the same iteration, with the same parameters, as
:class:`emkit.GaussianMixture` (``accelerate=None``) from the same start. Under SQUAREM each
group is a block of its own (:class:`emkit.core.accelerate.Blocks`: its own step length and
acceptance), judged at the end of each cycle on its own EM step and rate, as the monitor judges
an accelerated fit (:meth:`BatchedGaussianMixtureModel.judge_blocks`).

Layout: rows padded to a common length with rows of weight 0 (they add nothing to any sum),
parameters as (G, K, D) and (G, K, D, D) arrays, upper-triangular precision Cholesky factors
P (precision = P Pᵀ, as the Gaussian family), statistics centred at the current means (as
:class:`emkit.families.gaussian.GaussianStats`, so covariances suffer no cancellation). The
E-step is one compiled pass over the active groups' rows
(:mod:`emkit.kernels.batched_gaussian`; a numpy version with (G, K, N, D) temporaries was
memory-bound: 43 s of a 54 s fit of 10,000 groups × 200 rows in a profile). The M-step and
the convergence test are numpy operations on the stack of active groups (a stack of Cholesky
factorisations, one triangular solve). Only active groups are computed: late in a fit a few
slow groups are all that is left.

Covariance models: the groups may each follow one of mclust's 14 models (``models``, with the
"full" layout: every covariance stored as a matrix), their M-steps taken group by group in one
compiled loop or, in numpy, model by model on the stack of that model's groups
(:func:`emkit.kernels.parsimonious.covariances_of_models`), and
groups of fewer components are padded to K with components of weight 0 (``present``) that
take no part in anything — so one stack holds a whole grid of (model, K) fits on the same
rows, as :func:`emkit.select_model` fits mclust's grid.

Degenerate components: a component with (almost) no weight or a covariance that is not
positive definite keeps its previous parameters (the Gaussian family's rule,
:meth:`~emkit.families.gaussian.GaussianFamily.m_step`); :class:`emkit.GaussianMixture` re-seeds
such a component instead. The group is listed in ``degenerate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from emkit.core.monitor import em_step_remaining_gain_rows, remaining_gain_rows
from emkit.core.results import EMStep, EvaluatedPoint
from emkit.families import parsimonious
from emkit.families.base import unflatten_probabilities
from emkit.families.gaussian import NONLINEAR_MODELS, lower_triangle
from emkit.kernels import batched_gaussian as kernels
from emkit.kernels import parsimonious as parsimonious_kernels
from emkit.kernels import tiers

# L_ii / √Σ_ii below this: Σ counts as singular (the Gaussian family's test).
_MIN_PIVOT_RATIO = 1e-7
# A component whose weight is below this fraction of its group's carries no information.
_EMPTY_FRACTION = 1e-10


class GroupedRows:
    """The rows of G groups, padded: ``X`` (G, N, D), ``weight`` (G, N), 0 on padding rows;
    or, with ``n_groups``, the same rows for all of them: ``X`` (1, N, D) and ``weight`` (1, N)
    (a grid's fits, :meth:`shared`)."""

    def __init__(self, X: np.ndarray, weight: np.ndarray, n_groups: int | None = None):
        self.X = X
        self.weight = weight
        self.n_groups = len(X) if n_groups is None else n_groups
        self._shared = n_groups is not None

    @classmethod
    def shared(cls, X: np.ndarray, weight: np.ndarray, n_groups: int) -> GroupedRows:
        """``n_groups`` groups of the same rows X (N, D) with weights (N,)."""
        return cls(np.ascontiguousarray(X)[None], np.ascontiguousarray(weight)[None], n_groups)

    def take(self, groups: np.ndarray) -> GroupedRows:
        """The rows of the groups ``groups`` (indices)."""
        if self._shared:
            return GroupedRows(self.X, self.weight, len(groups))
        return GroupedRows(self.X[groups], self.weight[groups])

    @property
    def shape(self) -> tuple[int, ...]:  # one chunk for the engine
        return (self.n_groups,) + self.X.shape[1:]


class BatchedParams(NamedTuple):
    """G mixtures and the state of each group's convergence test."""

    weights: np.ndarray  # (G, K)
    means: np.ndarray  # (G, K, D)
    covariances: np.ndarray  # (G, K, D, D) full, (G, K, D) diag
    precisions_cholesky: np.ndarray  # like covariances
    active: np.ndarray  # (G,) bool: still iterating
    converged: np.ndarray  # (G,) bool
    n_iter: np.ndarray  # (G,) M-steps that led to these parameters
    recent: np.ndarray  # (G, WINDOW) last objectives, NaN before the first
    log_likelihood: np.ndarray  # (G,) at these parameters, for frozen groups
    degenerate: np.ndarray  # (G,) bool: a component kept its previous parameters
    rates: np.ndarray  # (G, RATE_MEMORY) EM's rate in the last SQUAREM cycles, NaN before
    step_max: np.ndarray  # (G,) SQUAREM's bound on the group's step length


@dataclass(frozen=True)
class BatchedStats:
    """Per-group statistics centred at the current means, and per-group log-likelihoods."""

    weight: np.ndarray  # (G, K)
    first: np.ndarray  # (G, K, D)
    second: np.ndarray  # (G, K, D, D) or (G, K, D)
    log_likelihood: np.ndarray  # (G,)

    def __add__(self, other: BatchedStats) -> BatchedStats:
        # One chunk per fit here; parts of the same groups at the same centres add directly.
        return BatchedStats(self.weight + other.weight, self.first + other.first,
                            self.second + other.second,
                            self.log_likelihood + other.log_likelihood)


class BatchedGaussianMixtureModel:
    """G independent Gaussian mixtures of K components ("full" or "diag") as one EM model.

    Parameters
    ----------
    n_components : int
    covariance_type : {"full", "diag"}
    reg_covar : float
        Added to the diagonal of every covariance after the M-step (as GaussianMixture).
    tol : float
        Per-group convergence threshold per sample (GaussianMixture's rule).
    n_samples : (G,) array
        Total weight of each group (``tol`` is per sample of the group).
    start : BatchedParams
        The starting point (``init_params`` returns it).
    decrease_rtol : float
        A group whose objective falls by more than this (relative) is not judged at that step.
    accelerated : bool
        The fit runs SQUAREM group by group (``fit_em(accelerate="squarem")``): groups are then
        judged at the end of each cycle (:meth:`judge_blocks`), not at every M-step.
    models : sequence of str, optional
        The mclust covariance model of each group (with ``covariance_type="full"``); by default
        every group's covariances are unconstrained.
    present : (G, K) bool array, optional
        The components each group has (the others pad it to K; see the module docstring).
    threads : bool
        Whether large stacks' E-steps may run on several threads (a threaded loop that costs
        seconds to compile the first time).
    """

    def __init__(self, n_components: int, covariance_type: str, reg_covar: float, tol: float,
                 n_samples: np.ndarray, start: BatchedParams, decrease_rtol: float = 1e-10,
                 accelerated: bool = False, models=None, present: np.ndarray | None = None,
                 threads: bool = True):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)
        self.tol = float(tol)
        self.group_samples = np.asarray(n_samples, dtype=float)
        self.start = start
        self.decrease_rtol = decrease_rtol
        self.accelerated = accelerated
        self.threads = threads
        G = len(self.group_samples)
        self.present = (np.ones((G, n_components), dtype=bool) if present is None
                        else np.asarray(present, dtype=bool))
        # mclust's names (scikit-learn's covariance types are aliases of four of them)
        models = np.asarray(["VVV"] * G if models is None else
                            [parsimonious.model_name(name) for name in models])
        if covariance_type != "full" and np.any(models != "VVV"):
            raise ValueError("covariance models other than VVV need the full layout")
        # Groups whose every M-step covariance is a scatter plus reg_covar·I (the constrained
        # models' need not be: a common shape can put a small component below it).
        self.floored = np.isin(models, ("VVV", "VVI"))
        # each group's model, as its position in parsimonious.MODELS
        self.codes = np.array([parsimonious.MODELS.index(model) for model in models],
                              dtype=np.int64).reshape(G)

    # ------------------------------------------------------------------ engine contract
    def init_params(self, data: GroupedRows, rng: np.random.Generator) -> BatchedParams:
        return self.start

    def e_step(self, params: BatchedParams, chunk: GroupedRows) -> tuple[BatchedStats, float]:
        """Statistics of the active groups (one compiled pass over their rows,
        :func:`emkit.kernels.batched_gaussian.e_step_groups`); a frozen group's statistics are
        zero and its log-likelihood the one it was frozen with."""
        G, K = params.weights.shape
        D = chunk.X.shape[2]
        full = self.covariance_type == "full"
        rows = np.flatnonzero(params.active)
        P = params.precisions_cholesky if full else params.precisions_cholesky[:, :, None, :]
        with np.errstate(divide="ignore"):  # an empty component has weight 0
            log_weights = np.log(params.weights)
        weight, first, second, log_likelihood = kernels.e_step_groups(
            chunk.X, chunk.weight, rows, log_weights, params.means, P, full, self.threads)
        if not full:
            second = second[:, :, 0, :]
        if rows.size == G:  # every group active: no scatter
            stats = BatchedStats(weight, first, second, log_likelihood)
        else:
            stats = BatchedStats(np.zeros((G, K)), np.zeros((G, K, D)),
                                 np.zeros((G,) + second.shape[1:]),
                                 np.where(params.active, 0.0, params.log_likelihood))
            stats.weight[rows], stats.first[rows] = weight, first
            stats.second[rows], stats.log_likelihood[rows] = second, log_likelihood
        return stats, float(stats.log_likelihood.sum())

    def m_step(self, stats: BatchedStats, params: BatchedParams) -> BatchedParams:
        """Judge each active group at the parameters the statistics were taken at, freeze
        those that converged, and step the others (only their rows are computed: late in a
        fit a few slow groups are all that is left)."""
        params = self.record(stats, params)
        rows = np.flatnonzero(params.active)
        if rows.size == 0:
            return params
        every = rows.size == len(params.active)  # (then no gathering and scattering)
        fields = (params.weights, params.means, params.covariances, params.precisions_cholesky)
        old = fields if every else tuple(field[rows] for field in fields)
        weights, means, cov, P, bad = self.estimate(
            stats if every else BatchedStats(stats.weight[rows], stats.first[rows],
                                             stats.second[rows], stats.log_likelihood[rows]),
            old[1], old[2], rows)
        stepped = [weights]
        for value, previous in zip((means, cov, P), old[1:], strict=True):
            # a component without weight or positive-definite covariance keeps its values
            stepped.append(np.where(bad.reshape(bad.shape + (1,) * (value.ndim - 2)), previous,
                                    value) if bad.any() else value)
        if not every:
            for position, (whole, part) in enumerate(zip(fields, stepped, strict=True)):
                stepped[position] = whole.copy()
                stepped[position][rows] = part
        n_iter = params.n_iter.copy()
        n_iter[rows] += 1
        degenerate = params.degenerate.copy()
        degenerate[rows] |= (bad & self.present[rows]).any(axis=1)
        return params._replace(weights=stepped[0], means=stepped[1], covariances=stepped[2],
                               precisions_cholesky=stepped[3], n_iter=n_iter,
                               degenerate=degenerate)

    def record(self, stats: BatchedStats, params: BatchedParams) -> BatchedParams:
        """Add each active group's objective to its window and, under plain EM, apply the
        convergence rule of :class:`emkit.core.monitor.ConvergenceMonitor` to it (no M-step;
        under SQUAREM, :meth:`judge_blocks` judges at the end of each cycle)."""
        rows = np.flatnonzero(params.active)
        objective = stats.log_likelihood[rows]
        recent = params.recent.copy()
        window = np.concatenate([recent[rows, 1:], objective[:, None]], axis=1)
        recent[rows] = window
        log_likelihood = params.log_likelihood.copy()
        log_likelihood[rows] = objective
        params = params._replace(recent=recent, log_likelihood=log_likelihood)
        if self.accelerated:
            return params
        with np.errstate(invalid="ignore"):  # groups with fewer than WINDOW points: NaN
            gain = remaining_gain_rows(window, self.decrease_rtol)
        return self._freeze(params, rows, window[:, -1] - window[:, -2], gain)

    def _freeze(self, params: BatchedParams, rows, change, gain) -> BatchedParams:
        """Freeze the groups ``rows`` whose last change and estimated remaining gain are both
        below ``tol`` per sample (and whose objective did not fall)."""
        objective = params.log_likelihood[rows]
        slack = self.decrease_rtol * np.maximum(1.0, np.abs(objective))
        limit = self.tol * self.group_samples[rows]
        with np.errstate(invalid="ignore"):
            done = ((self.tol > 0) & ~(change < -slack) & (np.abs(change) < limit)
                    & (gain < limit))
        active, converged = params.active.copy(), params.converged.copy()
        active[rows[done]] = False
        converged[rows[done]] = True
        return params._replace(active=active, converged=converged)

    # ------------------------------------------------------------------ SQUAREM, per group
    # Each group is a block of its own (emkit.core.accelerate.Blocks): its own step length, and
    # its extrapolation accepted or not on its own log-likelihood, as in a fit of that group
    # alone. Frozen groups do not move (their EM steps are zero, so their step length is 1).
    def flatten(self, params: BatchedParams) -> np.ndarray:
        """One row of unconstrained coordinates per group: log-weights, means, then the
        log-Cholesky factors of the covariances (full) or their logarithms (diag); every point
        of these coordinates is a valid mixture. Rows of frozen groups are 0 (within a SQUAREM
        cycle the same groups are frozen at every point, so theirs do not move)."""
        G, K, D = params.means.shape
        rows = np.flatnonzero(params.active)
        if self.covariance_type == "full":
            L = _cholesky(params.covariances[rows])
            diagonal = np.arange(D)
            L[..., diagonal, diagonal] = np.log(L[..., diagonal, diagonal])
            lower_rows, lower_cols = lower_triangle(D)
            covariance = L[..., lower_rows, lower_cols]
        else:
            covariance = np.log(params.covariances[rows])
        A, m = len(rows), K * covariance.shape[-1]
        coordinates = np.zeros((G, K + K * D + m))
        coordinates[rows] = np.concatenate(
            [np.log(np.maximum(params.weights[rows], 1e-300)),
             params.means[rows].reshape(A, K * D), covariance.reshape(A, m)], axis=1)
        return coordinates

    def unflatten(self, coordinates: np.ndarray, template: BatchedParams) -> BatchedParams:
        """The mixtures at ``coordinates`` (:meth:`flatten`'s) for the active groups; frozen
        groups, and groups with a covariance not above ``reg_covar``·I (or not positive
        definite in floating point), keep ``template``'s."""
        G, K, D = template.means.shape
        rows = np.flatnonzero(template.active)
        part = coordinates[rows]
        weights = unflatten_probabilities(part[:, :K], template.weights[rows])
        means = part[:, K:K + K * D].reshape(-1, K, D)
        rest = part[:, K + K * D:]
        if self.covariance_type == "full":
            L = np.zeros((len(rows), K, D, D))
            lower_rows, lower_cols = lower_triangle(D)
            L[..., lower_rows, lower_cols] = rest.reshape(len(rows), K, -1)
            diagonal = np.arange(D)
            L[..., diagonal, diagonal] = np.exp(L[..., diagonal, diagonal])
            covariances = L @ np.swapaxes(L, -1, -2)
        else:
            covariances = np.exp(rest).reshape(-1, K, D)
        weights = np.where(self.present[rows], weights, 0.0)
        covariances = self._project(covariances, template.covariances[rows], rows)
        P, bad = precision_cholesky(covariances, self.covariance_type)
        bad &= self.present[rows]
        # Every M-step's covariance of an unconstrained model is a scatter plus reg_covar·I.
        # An extrapolation below that floor (a component collapsing onto a few rows) lies
        # where no EM step can follow: the next step would lower the log-likelihood. Such a
        # group takes θ2 instead.
        if self.covariance_type == "full":  # (the compiled factorisation: no LAPACK calls)
            above = ~precision_cholesky(covariances - self.reg_covar * np.eye(D), "full",
                                        min_pivot_ratio=0.0)[1]
        else:
            above = np.all(covariances >= self.reg_covar, axis=-1)
        above |= ~self.present[rows] | ~self.floored[rows, None]
        valid = ~bad.any(axis=1) & above.all(axis=1) & np.isfinite(part).all(axis=1)
        rows, picked = rows[valid], valid
        fields = {}
        for name, value in (("weights", weights), ("means", means),
                            ("covariances", covariances), ("precisions_cholesky", P)):
            whole = getattr(template, name).copy()
            whole[rows] = value[picked]
            fields[name] = whole
        return template._replace(**fields)

    def block_objectives(self, point) -> np.ndarray:
        """Each group's log-likelihood at an evaluated point."""
        return point.stats.log_likelihood

    def merge_blocks(self, mask: np.ndarray, a: BatchedParams, b: BatchedParams) -> BatchedParams:
        """The mixtures of ``a`` for the groups in ``mask``, of ``b`` for the others (the rest
        of the state from ``b``)."""
        def pick(x, y):
            return np.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)

        return b._replace(weights=pick(a.weights, b.weights), means=pick(a.means, b.means),
                          covariances=pick(a.covariances, b.covariances),
                          precisions_cholesky=pick(a.precisions_cholesky,
                                                   b.precisions_cholesky))

    def merge_evaluated(self, mask: np.ndarray, point, params: BatchedParams, evaluate):
        """The evaluated mixtures of ``point`` for the groups in ``mask`` and of ``params`` for
        the others, from the E-step of the others alone (a group's statistics are its own; the
        skipped groups are passed as frozen, then given ``point``'s statistics)."""
        merged = self.merge_blocks(mask, point.params, params)
        part = evaluate(merged._replace(active=merged.active & ~mask))
        stats = BatchedStats(*(
            np.where(mask.reshape((-1,) + (1,) * (getattr(point.stats, name).ndim - 1)),
                     getattr(point.stats, name), getattr(part.stats, name))
            for name in ("weight", "first", "second", "log_likelihood")))
        total = float(stats.log_likelihood.sum())
        return EvaluatedPoint(merged, total, total, stats)

    def block_bounds(self, params: BatchedParams) -> np.ndarray:
        """Each group's SQUAREM step bound (it travels in the parameters, so that a stack
        shrunk to its running groups goes on exactly as the whole stack would)."""
        return params.step_max

    def with_block_bounds(self, params: BatchedParams, bounds: np.ndarray) -> BatchedParams:
        return params._replace(step_max=np.broadcast_to(bounds, params.step_max.shape).copy())

    def judge_blocks(self, point, steps: EMStep):
        """``point`` (a SQUAREM cycle's end) with the groups that converged frozen: the rule
        of :class:`emkit.core.monitor.ConvergenceMonitor` after an accelerated cycle, on each
        group's own cycle (``steps``, (G,) arrays): its EM step's gain and EM's rate, the
        slowest of the group's last ``RATE_MEMORY`` cycles, extrapolated."""
        params = point.params
        rows = np.flatnonzero(params.active)
        rates = params.rates.copy()
        rates[rows] = np.concatenate([rates[rows, 1:], steps.rate[rows, None]], axis=1)
        objective = point.stats.log_likelihood[rows]
        gain = em_step_remaining_gain_rows(
            EMStep(steps.gain[rows], np.nanmax(rates[rows], axis=1), steps.shortfall[rows]),
            objective, self.decrease_rtol)
        # the change from the cycle's EM point (the last objective recorded), or its EM step's
        change = np.maximum(np.abs(objective - params.recent[rows, -1]), steps.gain[rows])
        params = params._replace(rates=rates, log_likelihood=np.where(
            params.active, point.stats.log_likelihood, params.log_likelihood))
        return point._replace(params=self._freeze(params, rows, change, gain))

    def params_converged(self, previous: BatchedParams, params: BatchedParams) -> bool:
        return not params.active.any()

    def n_samples(self, stats: BatchedStats) -> float:
        return float(self.group_samples.sum())

    # ------------------------------------------------------------------ M-step
    def estimate(self, stats: BatchedStats, centers: np.ndarray,
                 previous: np.ndarray | None = None, rows: np.ndarray | None = None):
        """New parameters of the groups ``rows`` (default: all) from their statistics centred
        at ``centers`` (A, K, D), their covariances constrained by their models (the iterative
        M-steps start from ``previous``), and the (A, K) mask of components that carry no
        weight or whose covariance is not positive definite."""
        if rows is None:
            rows = np.arange(len(self.group_samples))
        present = self.present[rows]
        total = stats.weight.sum(axis=1, keepdims=True)
        weights = np.where(present, stats.weight / np.maximum(total, 1e-300), 0.0)
        safe = np.maximum(stats.weight, 10 * np.finfo(float).eps)
        shift = stats.first / safe[..., None]
        means = centers + shift
        D = means.shape[2]
        if self.covariance_type == "full":
            cov = stats.second / safe[..., None, None] - shift[..., :, None] * shift[..., None, :]
            cov = 0.5 * (cov + np.swapaxes(cov, -1, -2)) + self.reg_covar * np.eye(D)
        else:
            cov = stats.second / safe[..., None] - shift**2 + self.reg_covar
        cov = self._constrained(cov, stats.weight, previous, rows, present)
        P, bad = precision_cholesky(cov, self.covariance_type)
        bad |= stats.weight < _EMPTY_FRACTION * np.maximum(total, 1e-300)
        return weights, means, cov, P, bad & present

    def _constrained(self, scatter, counts, previous, rows, present, codes=None):
        """The covariances of the groups ``rows`` under their models (``codes``, positions in
        parsimonious.MODELS; default: the groups' own), from their regularised scatters
        (A, K, D, D) and counts (A, K), each model's iterative M-step starting from
        ``previous``; padding components get the identity (so that they stay finite).
        Compiled, every group's M-step in one loop; in numpy, model by model
        (:func:`emkit.kernels.parsimonious.covariances_of_models`)."""
        codes = self.codes[rows] if codes is None else codes
        if np.all(codes == _VVV):  # unconstrained: the scatters
            return scatter
        eye = np.eye(scatter.shape[-1])
        given = np.where(present[..., None, None], scatter, eye)
        counts = np.where(present, counts, 0.0)
        if previous is not None:
            previous = np.where(present[..., None, None], previous, eye)

        def model_by_model():
            for code in np.unique(codes[codes != _VVV]):
                at = np.flatnonzero(codes == code)
                given[at] = _stacked_full(parsimonious.MODELS[code], given[at], counts[at],
                                          None if previous is None else previous[at],
                                          present[at])
            return given

        out = parsimonious_kernels.covariances_of_models(
            codes, given, counts, previous, present, parsimonious.rounds(eye.shape[0]),
            parsimonious.ITERATION_TOL, parsimonious.MAX_ITERATIONS, parsimonious.MAX_SWEEPS,
            model_by_model)
        out[~present] = eye
        return out

    def _project(self, covariances, template, rows):
        """Extrapolated covariances of the groups ``rows`` back into the models whose shapes
        or orientations are not linear in SQUAREM's coordinates: each model's nearest, its
        M-step with the extrapolated matrices as the scatter and equal counts (as
        :meth:`emkit.families.gaussian.GaussianFamily.unflatten`)."""
        codes = self.codes[rows]
        codes = np.where(_NONLINEAR[codes], codes, _VVV)
        present = self.present[rows]
        with np.errstate(all="ignore"):
            return self._constrained(covariances, present.astype(float), template, rows,
                                     present, codes)


# Whether each model (by code) is one whose common shape or orientation is not linear in
# SQUAREM's coordinates (a lookup: np.isin costs more than a small stack's projection).
_NONLINEAR = np.isin(parsimonious.MODELS, NONLINEAR_MODELS)
_VVV = parsimonious.MODELS.index("VVV")


def _stacked_full(model, scatter, counts, previous, present):
    """:func:`~emkit.families.parsimonious.stacked_covariances` with every covariance, given
    and returned, as a (G, K, D, D) matrix."""
    kind = parsimonious.layout(model)
    G, K, D, _ = scatter.shape
    if kind in ("spherical", "diag"):
        variances = np.diagonal(scatter, axis1=2, axis2=3)
        before = None if previous is None else np.diagonal(previous, axis1=2, axis2=3)
        if before is not None and kind == "spherical":
            before = before[..., 0]
        result = parsimonious.stacked_covariances(model, variances, counts, before, present)
        if kind == "spherical":
            result = np.repeat(result[..., None], D, axis=2)
        return result[..., None] * np.eye(D)
    if kind == "tied":
        result = parsimonious.stacked_covariances(
            model, scatter, counts, None if previous is None else previous[:, 0], present)
        return np.repeat(result[:, None], K, axis=1)
    return parsimonious.stacked_covariances(model, scatter, counts, previous, present)


def precision_cholesky(covariances: np.ndarray, covariance_type: str,
                       min_pivot_ratio: float = _MIN_PIVOT_RATIO):
    """Upper-triangular factors P with P Pᵀ = Σ⁻¹ for a stack of covariances, and the mask of
    those that are not (numerically) positive definite: a Cholesky pivot below
    ``min_pivot_ratio`` times the root of its diagonal entry (their factor is the
    identity)."""
    if covariance_type == "diag":
        valid = np.isfinite(covariances) & (covariances > 0)
        P = np.where(valid, 1.0 / np.sqrt(np.where(valid, covariances, 1.0)), 1.0)
        return P, ~np.all(valid, axis=-1)
    shape, D = covariances.shape[:-2], covariances.shape[-1]
    matrices = np.ascontiguousarray(covariances, dtype=np.float64).reshape(-1, D, D)
    P, ok = np.empty_like(matrices), np.empty(len(matrices), dtype=np.bool_)
    arguments = (matrices, P, ok, np.empty((D, D)), float(min_pivot_ratio))
    if _FACTORS.use_compiled("d", len(matrices) * (D + 1) ** 3, arguments):
        kernels.precision_factors(*arguments)
        return P.reshape(covariances.shape), ~ok.reshape(shape)
    return _FACTORS.run_numpy(_precision_cholesky_numpy, covariances, min_pivot_ratio)


def _precision_cholesky_numpy(covariances: np.ndarray, min_pivot_ratio: float):
    """:func:`precision_cholesky` of full covariances in numpy."""
    D = covariances.shape[-1]
    diagonal = np.diagonal(covariances, axis1=-2, axis2=-1)
    eye = np.eye(D)
    ok = np.all(np.isfinite(covariances), axis=(-2, -1)) & np.all(diagonal > 0, axis=-1)
    lower = _cholesky(np.where(ok[..., None, None], covariances, eye))
    pivots = np.diagonal(lower, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok &= np.all(pivots / np.sqrt(np.where(ok[..., None], diagonal, 1.0))
                     >= min_pivot_ratio, axis=-1)  # (False where a pivot is NaN)
    lower = np.where(ok[..., None, None], lower, eye)
    return np.swapaxes(_inverse_lower(lower), -1, -2), ~ok  # P = L⁻ᵀ


# The compiled factorisation costs about half a second to compile; in numpy a stack of a few
# matrices costs ~50 µs of calls, which a fit of a grid pays at every pass (tiers' rule).
_FACTORS = tiers.TwoForms(kernels.precision_factors, 2e6, 0.5)

# From this many matrices on, a stack is factorised entry by entry across the stack (a few
# numpy operations per entry) rather than by LAPACK matrix by matrix: 20,000 2 × 2 matrices
# take 2 ms so against 26 ms; a few dozen, 0.1 ms against 0.04.
_ENTRYWISE_MIN_MATRICES = 100


def _cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of symmetric matrices (..., D, D); NaN in the factor of
    a matrix that is not positive definite."""
    D = A.shape[-1]
    if A[..., 0, 0].size < _ENTRYWISE_MIN_MATRICES:
        try:
            return np.linalg.cholesky(A)
        except np.linalg.LinAlgError:  # find the failing matrices one by one
            lower = np.full_like(A, np.nan)
            for index in np.ndindex(A.shape[:-2]):
                try:
                    lower[index] = np.linalg.cholesky(A[index])
                except np.linalg.LinAlgError:
                    pass
            return lower
    L = np.zeros_like(A)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(D):
            L[..., j, j] = np.sqrt(A[..., j, j] - _dot(L[..., j, :j], L[..., j, :j]))
            for i in range(j + 1, D):
                L[..., i, j] = (A[..., i, j] - _dot(L[..., i, :j], L[..., j, :j])) / L[..., j, j]
    return L


def _inverse_lower(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of invertible lower-triangular matrices (..., D, D)."""
    D = L.shape[-1]
    if L[..., 0, 0].size < _ENTRYWISE_MIN_MATRICES:
        return np.tril(np.linalg.solve(L, np.broadcast_to(np.eye(D), L.shape)))
    Z = np.zeros_like(L)
    for j in range(D):  # column j by forward substitution
        Z[..., j, j] = 1.0 / L[..., j, j]
        for i in range(j + 1, D):
            Z[..., i, j] = -_dot(L[..., i, j:i], Z[..., j:i, j]) / L[..., i, i]
    return Z


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...k,...k->...", a, b)
