"""mclust's grid — a Gaussian mixture for every (covariance model, K) on the same rows —
fitted as one stack (:func:`fit_grid`, what :func:`emkit.select_model` runs for it).

Fitted one at a time, each of the grid's fits is a few hundred small EM passes, and on data of
a few hundred rows a pass's cost is almost all fixed (Python, numpy calls): the 126 fits of
faithful took 5–7 s, mclust's Fortran 0.6 s. Stacked, one pass serves every fit: the fits are
the groups of one :class:`~emkit.models.batched_gaussian.BatchedGaussianMixtureModel` (each
with its own covariance model; fits of fewer components padded to the largest K), and every
fit's M-step runs in one compiled loop per pass (in numpy: each covariance model once for all
its fits, :func:`emkit.kernels.parsimonious.covariances_of_models`).

The starts are ``GaussianMixture``'s default start in a grid (``SharedStarts``), every stage
in one stack: for each K, the sixteen k-means and k-means++ partitions are screened by
successive halving under the separable model of each layout; each fit's finalists (its
layout's two survivors and the hierarchical partition, re-estimated under its own model) race
for ``SHARED_FINAL_STEPS`` EM steps. The winner is fitted to convergence by SQUAREM fit by fit
(each its own step length and convergence test, :class:`emkit.core.accelerate.Blocks`), in the
same stack as the starts its neighbours give it — the partitions of the two best fits of its K
by BIC after the race, re-estimated under its own model (:func:`_neighbour_starts`) — and each
fit keeps the best maximum. ``init_params="hierarchical"`` starts each fit from the
hierarchical partition alone (mclust's start), with the same neighbours. On more than
:data:`GRID_MAX_ROWS` rows all of this runs on a subsample, and each fit's best maximum there
goes on to all rows.

A fit in which a component lost all its weight or its positive-definite covariance is left to
the caller (``None``): ``GaussianMixture`` re-seeds such a component, the stack only keeps its
previous parameters.
"""

from __future__ import annotations

import numpy as np

from emkit.core.engine import seed_sequence
from emkit.estimators.base import FitOutcome
from emkit.estimators.batched import fit_stack, stack_params, take
from emkit.families.gaussian import GaussianFamily
from emkit.families.parsimonious import as_matrices, in_layout, layout
from emkit.families.parsimonious import n_parameters as parsimonious_parameters
from emkit.models.batched_gaussian import (
    BatchedGaussianMixtureModel,
    BatchedStats,
    GroupedRows,
    precision_cholesky,
)
from emkit.models.mixture import (
    FINALISTS,
    SCREENING_STEPS,
    SHARED_FINAL_STEPS,
    GaussianMixtureModel,
    MixtureParams,
    halving_survivors,
)

__all__ = ["fit_grid", "GRID_MAX_ROWS"]

#: The most rows a grid's starts are chosen on: on more, every stage up to each fit's best
#: maximum runs on a subsample of this many rows, and only that maximum goes on to all rows.
GRID_MAX_ROWS = 4_000
# From this many rows on, the stacks' E-steps run on all cores (see _Grid.run).
_THREADED_MIN_ROWS = 1_000
# The most elements of a (mixtures, K, rows, D) temporary of _Grid.posteriors (16 MB).
_POSTERIOR_CHUNK = 2**21
# The race stops a start early once its log-likelihood per sample changes by less than this
# (GaussianMixtureModel's short runs).
_RACE_TOL = 1e-6


def fit_grid(X: np.ndarray, sample_weight: np.ndarray | None, cells: list[tuple[str, int]],
             *, random_state=None, reg_covar: float = 1e-6, tol: float = 1e-6,
             max_iter: int = 1000, accelerate: str | None = "squarem",
             init_params: str = "auto") -> list:
    """Fitted :class:`emkit.GaussianMixture` of every (covariance model, K) of ``cells``, in
    their order, on the complete float64 rows X with optional row weights; ``None`` for a fit
    the caller must run on its own (a component degenerated). The other arguments are
    ``GaussianMixture``'s (``init_params``: "auto" or "hierarchical").

    Above :data:`GRID_MAX_ROWS` rows the whole grid runs on a subsample of that many rows, and
    each fit's maximum there goes on to all rows (one more stack): as a single fit ranks its
    starts on a subsample, but with every start of the grid. 12,000 rows of four clusters in
    4-D: 19–21 s, where one fit at a time took 34–44 s, and every cell at least mclust's."""
    n_features = X.shape[1]
    n_samples = float(len(X) if sample_weight is None else sample_weight.sum())
    K_max = max(K for _, K in cells)
    grid = _Grid(X, sample_weight, K_max, reg_covar)
    options = dict(tol=tol, max_iter=max_iter, accelerate=accelerate)
    if len(X) <= GRID_MAX_ROWS:
        final, ok = _best_maxima(grid, cells, random_state, init_params, **options)
    else:
        final, ok = _on_a_subsample(grid, cells, random_state, init_params, **options)
    settings = dict(random_state=random_state, reg_covar=reg_covar, init_params=init_params,
                    **options)
    return [_estimator(final, g, model_name, K, n_features, n_samples, settings) if ok[g]
            else None for g, (model_name, K) in enumerate(cells)]


def _best_maxima(grid: _Grid, cells, random_state, init_params, tol, max_iter, accelerate):
    """The stack of each fit's best maximum from all its starts, and which fits have one (no
    start, or only degenerate ones: not)."""
    owners, models, resp, anchored = _entrants(grid, cells, random_state, init_params)
    if len(np.unique(owners)) < len(cells):  # a fit without a start (no informative one)
        return None, np.zeros(len(cells), dtype=bool)
    race, present, valid = grid.from_responsibilities(resp, models)
    # The starts of a fit race; a fit of one start is only evaluated (no steps: from its start
    # it goes on as a fit alone would). Their log-likelihoods choose the neighbours below.
    race = grid.run(race, models, present, _RACE_TOL,
                    SHARED_FINAL_STEPS - 1 if len(owners) > len(cells) else 0, None)
    winners = _best_of(owners, np.where(valid, race.log_likelihood, -np.inf), len(cells))
    start = _take_start(race, winners)
    start = start._replace(log_likelihood=race.log_likelihood[winners])
    more, more_starts, more_present, more_valid = _neighbour_starts(
        grid, cells, start, present[winners], valid[winners])
    # With each winner, in the same stack: mclust's start (the hierarchical partition; ahead
    # after the race is not ahead at the end) where it lost the race, and the starts its
    # neighbours' partitions give it.
    anchors = np.flatnonzero(anchored & valid)
    entries = np.concatenate([winners, anchors[~np.isin(anchors, winners)]])
    fit_owners = np.concatenate([owners[entries], more])
    fit_models = np.array([cells[cell][0] for cell in fit_owners])
    fits = grid.run(_concatenated(_take_start(race, entries), more_starts), fit_models,
                    np.concatenate([present[entries], more_present]), tol, max_iter, accelerate)
    ok = np.concatenate([valid[entries], more_valid]) & ~fits.degenerate
    score = np.where(ok, fits.log_likelihood, -np.inf)
    best = _best_of(fit_owners, score, len(cells))
    return take(fits, best), np.isfinite(score[best])


def _on_a_subsample(grid: _Grid, cells, random_state, init_params, tol, max_iter,
                    accelerate):
    """:func:`_best_maxima` on :data:`GRID_MAX_ROWS` rows drawn at random, each fit's maximum
    then converged on all rows."""
    rng = np.random.default_rng(seed_sequence(random_state))
    pick = np.sort(rng.choice(len(grid.X), GRID_MAX_ROWS, replace=False))
    sub = _Grid(grid.X[pick], None if grid.w is None else grid.w[pick], grid.K_max,
                grid.reg_covar)
    ranked, ok = _best_maxima(sub, cells, random_state, init_params, tol, max_iter,
                              accelerate)
    fits = np.flatnonzero(ok)
    if not fits.size:
        return ranked, ok
    K = np.array([K for _, K in cells])[fits]
    final = grid.run(_take_start(ranked, fits), np.array([cells[g][0] for g in fits]),
                     np.arange(grid.K_max) < K[:, None], tol, max_iter, accelerate)
    position = np.zeros(len(cells), dtype=int)  # each fit's place in the stack (if it has one)
    position[fits] = np.arange(fits.size)
    ok[fits] &= ~final.degenerate
    return take(final, position), ok


def _best_of(owners: np.ndarray, score: np.ndarray, n_fits: int) -> np.ndarray:
    """For each fit, the index of its highest-scoring entry (of equals, the earlier)."""
    return np.array([np.flatnonzero(owners == fit)[np.argmax(score[owners == fit])]
                     for fit in range(n_fits)])


# The fits of one K (the best by BIC after the race) whose partitions every fit of that K is
# also started from. With mclust's start converged in every cell as well, two leave no cell of
# benchmarks/mclust_models.py's seven data sets below mclust, where one or none leave banknote
# EEV,8 4.1 below, and they raise the summed BIC gain over mclust (faithful 715 → 832, iris
# 2809 → 3539), for about a third more fits in the final stack (a quarter more time).
_DONORS = 2


def _neighbour_starts(grid: _Grid, cells, raced, present, valid):
    """More starts for the fits: the partitions (posteriors) of the best fits of each K by
    BIC after the race, of the best fit of K + 1 with two components merged
    (:func:`merged_posteriors`) and of the best fit of K − 1 with one split
    (:func:`split_posteriors`), each re-estimated under the model of every fit of that K that
    partitions the rows otherwise. A maximum one covariance model reaches is often the way to
    another model's best, and one with a component more or fewer the way to a better maximum:
    on the benchmark's eight data sets the merged starts raise 106 cells (by up to 649 nats,
    wreath EEV,5) and the split ones 98 more (up to 149, wreath VVV,7), lowering none, for
    about a third more time. Returns the owning fit of each start, the stacked starts, their
    components and which are valid."""
    n_features = grid.X.shape[1]
    models = np.array([name for name, _ in cells])
    ks = np.array([K for _, K in cells])
    n_parameters = np.array([parsimonious_parameters(name, K, n_features) for name, K in cells])
    bic = -2.0 * raced.log_likelihood + n_parameters * np.log(grid.n_samples)
    donors = {K: [int(c) for c in np.flatnonzero((ks == K) & valid)[
        np.argsort(bic[(ks == K) & valid], kind="stable")][:_DONORS]] for K in set(ks)}
    posteriors = grid.posteriors(raced, present)
    partitions = posteriors.argmax(axis=2)
    # and the best fit of K + 1 with its two most overlapping components merged
    merged = {K: np.pad(merged_posteriors(posteriors[donors[K + 1][0], :, :K + 1]),
                        ((0, 0), (0, grid.K_max - K)))
              for K in set(ks) if donors.get(K + 1)}
    # and the best fit of K − 1 with its most spread component split
    split = {K: np.pad(split_posteriors(grid.X, posteriors[donors[K - 1][0], :, :K - 1]),
                       ((0, 0), (0, grid.K_max - K)))
             for K in set(ks) if donors.get(K - 1)}
    owners, resp = [], []
    for cell, K in enumerate(ks):
        for donor in ([posteriors[d] for d in donors[K]] + ([merged[K]] if K in merged else [])
                      + ([split[K]] if K in split else [])):
            # a donor that partitions the rows as the fit does leads back to the same maximum
            if not _same_partition(donor.argmax(axis=1), partitions[cell]):
                owners.append(cell)
                resp.append(donor)
    if not owners:
        empty = np.zeros(0, dtype=int)
        return empty, _take_start(raced, empty), present[empty], valid[empty]
    owners = np.array(owners)
    starts, started, ok = grid.from_responsibilities(np.array(resp), models[owners])
    return owners, starts, started, ok


def merged_posteriors(resp: np.ndarray) -> np.ndarray:
    """Posteriors (n, K) with one component fewer: the two that share the most rows merged, by
    their posteriors' overlap Σ_i r_ia r_ib / √(n_a n_b) (1 for two identical columns, 0 for
    components that never share a row); the merged one takes the first's place."""
    counts = resp.sum(axis=0)
    overlap = (resp.T @ resp) / np.sqrt(np.maximum(np.outer(counts, counts), 1e-300))
    np.fill_diagonal(overlap, -np.inf)
    a, b = sorted(np.unravel_index(np.argmax(overlap), overlap.shape))
    merged = np.delete(resp, b, axis=1)
    merged[:, a] += resp[:, b]
    return merged


def split_posteriors(X: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """Posteriors (n, K) with one component more: the most spread component (the largest
    count × variance along its principal axis) split in two at its mean, across that axis; the
    rows beyond the mean go to the new last component."""
    counts = resp.sum(axis=0)
    means = (resp.T @ X) / np.maximum(counts, 1e-300)[:, None]
    centred = X[None] - means[:, None]  # (K, n, D)
    scatters = (centred * resp.T[..., None]).transpose(0, 2, 1) @ centred
    values, vectors = np.linalg.eigh(scatters)  # the scatter's top value: count × variance
    k = int(np.argmax(values[:, -1]))
    beyond = centred[k] @ vectors[k, :, -1] > 0
    split = np.concatenate([resp, np.where(beyond, resp[:, k], 0.0)[:, None]], axis=1)
    split[beyond, k] = 0.0
    return split


def _concatenated(a, b):
    """Two stacks as one."""
    return a._replace(**{name: np.concatenate([getattr(a, name), getattr(b, name)])
                         for name in a._fields})


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings of the rows (small non-negative integers) are the same partition
    (up to the labels' names): every label of one meets exactly one label of the other."""
    width = int(b.max()) + 1
    meets = np.bincount(a * width + b, minlength=(int(a.max()) + 1) * width).reshape(-1, width) > 0
    return bool(np.all(meets.sum(axis=1) <= 1) and np.all(meets.sum(axis=0) <= 1))


def _entrants(grid: _Grid, cells, random_state, init_params: str):
    """The starts that race for each fit, as GaussianMixture's default start in a grid
    (:class:`~emkit.models.mixture.SharedStarts`) chooses them: for each K, sixteen k-means
    and k-means++ partitions screened by successive halving under the separable model of each
    layout (VII, VVI, VVV) — every screening of the grid in one stack — and the two survivors
    of a fit's layout with the hierarchical partition; with ``init_params="hierarchical"``,
    that partition alone (mclust's start). Returns the owning cell of each entrant, its
    model, its responsibilities (entrants, rows, K_max), and whether it is the hierarchical
    partition's."""
    separable_of = {"spherical": "VII", "diag": "VVI", "tied": "VVV", "full": "VVV"}
    layouts = sorted({separable_of[layout(name)] for name, _ in cells})
    survivors, anchors = {}, {}
    screened, screened_models, keys = [], [], []
    for K in sorted({K for _, K in cells}):
        # the generator of a GaussianMixture's one start (fit_em's first spawned seed)
        rng = np.random.default_rng(seed_sequence(random_state).spawn(1)[0])
        model = GaussianMixtureModel(K, "VVV", grid.reg_covar)
        if init_params == "hierarchical":
            anchors[K] = model.partition("hierarchical", grid.X, grid.w, rng)
            continue
        starts, anchors[K] = model.screening_entrants("auto", grid.X, grid.w, None, rng)
        for separable in layouts:  # the same partitions, estimated under each layout
            for start in starts:
                screened.append(_in_model(start, separable))
                screened_models.append(separable)
                keys.append((K, separable))
    if not screened:  # the hierarchical partitions alone
        return _anchored_entrants(grid, cells, anchors)
    models = np.array(screened_models)
    params, present = _stack(screened, models, grid.K_max, grid.X.shape[1])
    keys_array = np.array([f"{K}:{name}" for K, name in keys])
    running = np.arange(len(screened))
    steps = SCREENING_STEPS
    while True:
        counts = {key: np.count_nonzero(keys_array[running] == key)
                  for key in dict.fromkeys(keys_array[running])}
        if max(counts.values()) <= FINALISTS:
            break
        part = grid.run(_take_start(params, running), models[running], present[running],
                        _RACE_TOL, steps - 1, None)
        params = _put_start(params, running, part)
        kept = []
        for key in counts:  # the better half of each screening (of equals, the earlier)
            members = running[keys_array[running] == key]
            order = np.argsort(-params.log_likelihood[members], kind="stable")
            kept.append(members[np.sort(order[:halving_survivors(len(members))])])
        running = np.concatenate(kept)
        steps *= 2
    posteriors = grid.posteriors(_take_start(params, running), present[running])
    for position, g in enumerate(running):
        survivors.setdefault(keys[g], []).append(posteriors[position])
    return _anchored_entrants(grid, cells, anchors, {
        cell: survivors[K, separable_of[layout(name)]] for cell, (name, K) in enumerate(cells)})


def _anchored_entrants(grid: _Grid, cells, anchors, survivors=None):
    """Each fit's entrants: its screening's survivors (posteriors) and its K's hierarchical
    partition (where informative); see :func:`_entrants`."""
    owners, entrant_models, resp, anchored = [], [], [], []
    for cell, (name, K) in enumerate(cells):
        screened = [] if survivors is None else survivors[cell]
        finalists = screened + ([] if anchors[K] is None else [_padded(anchors[K], grid.K_max)])
        for position, posterior in enumerate(finalists):
            owners.append(cell)
            entrant_models.append(name)
            resp.append(posterior)
            anchored.append(position >= len(screened))
    return np.array(owners), np.array(entrant_models), np.array(resp), np.array(anchored)


class _Grid:
    """The rows of a grid and the stacked passes over them."""

    def __init__(self, X: np.ndarray, w: np.ndarray | None, K_max: int, reg_covar: float):
        self.X, self.w, self.K_max, self.reg_covar = X, w, K_max, float(reg_covar)
        self.weight = np.ones(len(X)) if w is None else w
        self.n_samples = float(self.weight.sum())

    def rows(self, groups: int) -> GroupedRows:
        """The rows of every group of a stack: the same rows, held once."""
        return GroupedRows.shared(self.X, self.weight, groups)

    def run(self, start, models, present, tol, max_iter, accelerate):
        """EM on a stack (:func:`~emkit.estimators.batched.fit_stack`)."""
        G = len(models)
        # The stack shrinks to its running fits as they converge (each fit's path is the same
        # either way). Threads only on many rows: on a few hundred the E-steps are a small
        # share of a grid's time, and compiling the threaded loop took 12 of a new
        # environment's first 17 s; on 4,000 rows they are 70% of 30 s.
        return fit_stack(self.rows(G), start, np.full(G, self.n_samples), self.K_max, "full",
                         self.reg_covar, tol, max_iter, accelerate, models, present,
                         threads=len(self.X) >= _THREADED_MIN_ROWS)

    def posteriors(self, params, present) -> np.ndarray:
        """Each mixture's posterior probabilities of the rows, (G, n, K_max), computed for a
        few mixtures at a time (their (g, K, n, D) temporaries: 145 MB for the whole grid on
        4,000 rows in 4-D)."""
        G, K, D = params.means.shape
        step = max(1, _POSTERIOR_CHUNK // (K * len(self.X) * D))
        resp = np.empty((G, len(self.X), K))
        for start in range(0, G, step):
            part = slice(start, start + step)
            diff = self.X[None, None] - params.means[part, :, None]  # (g, K, n, D)
            whitened = diff @ params.precisions_cholesky[part]
            log_det = np.log(np.diagonal(params.precisions_cholesky[part], axis1=2,
                                         axis2=3)).sum(axis=2)
            with np.errstate(divide="ignore"):
                log_weights = np.where(present[part], np.log(params.weights[part]), -np.inf)
            joint = (log_weights + log_det)[..., None] - 0.5 * np.sum(whitened**2, axis=3)
            joint -= joint.max(axis=1, keepdims=True)
            chunk = np.exp(joint)
            chunk /= chunk.sum(axis=1, keepdims=True)
            resp[part] = np.swapaxes(chunk, 1, 2)
        return resp

    def from_responsibilities(self, resp: np.ndarray, models):
        """The stacked mixtures of one M-step from responsibilities (G, n, K_max) under each
        one's model, the (G, K_max) mask of their components, and which came out valid (a
        start with a component of no weight or no positive-definite covariance is not)."""
        G, n, K = resp.shape
        present = resp.sum(axis=1) > 0
        weighted = resp * self.weight[None, :, None]
        center = np.average(self.X, axis=0, weights=self.weight)
        centred = self.X - center
        weight = weighted.sum(axis=1)
        by_component = np.swapaxes(weighted, 1, 2)  # (G, K, n): sums over rows as matmuls
        first = by_component @ centred
        outer = (centred[:, :, None] * centred[:, None, :]).reshape(n, -1)
        second = (by_component @ outer).reshape(G, K, len(center), len(center))
        centers = np.broadcast_to(center, (G, K, len(center)))
        model = BatchedGaussianMixtureModel(K, "full", self.reg_covar, 0.0,
                                            np.full(G, self.n_samples), None, models=models,
                                            present=present)
        weights, means, cov, P, bad = model.estimate(BatchedStats(weight, first, second,
                                                                  np.zeros(G)), centers)
        eye = np.eye(len(center))
        cov = np.where(present[..., None, None], cov, eye)
        P = np.where(present[..., None, None], P, eye)
        means = np.where(present[..., None], means, 0.0)
        return stack_params(weights, means, cov, P), present, ~bad.any(axis=1)


def _stack(starts: list[MixtureParams], models, K_max: int, n_features: int):
    """The stacked parameters of mixtures given in their models' layouts, padded to K_max
    components (weight 0, mean 0, identity covariance), and the (G, K_max) mask of the
    components each has."""
    G, D = len(starts), n_features
    weights = np.zeros((G, K_max))
    means = np.zeros((G, K_max, D))
    covariances = np.broadcast_to(np.eye(D), (G, K_max, D, D)).copy()
    for g, (start, model_name) in enumerate(zip(starts, models, strict=True)):
        K = len(start.weights)
        weights[g, :K] = start.weights
        means[g, :K] = start.components.means
        covariances[g, :K] = as_matrices(start.components.covariances, model_name, K, D)
    P, _ = precision_cholesky(covariances, "full")
    present = np.arange(K_max) < np.array([len(start.weights) for start in starts])[:, None]
    return stack_params(weights, means, covariances, P), present


def _in_model(start: MixtureParams, model_name: str) -> MixtureParams:
    """A start estimated under VVV from a partition, as the same partition's start under the
    separable model ``model_name`` of another layout: VVI keeps the diagonals (each a
    component's variance plus reg_covar), VII their mean."""
    if model_name == "VVV":
        return start
    variances = np.diagonal(start.components.covariances, axis1=1, axis2=2)
    covariances = variances if model_name == "VVI" else variances.mean(axis=1)
    components, _ = GaussianFamily(model_name).with_covariances(start.components.means,
                                                                covariances)
    return MixtureParams(start.weights, components)


def _padded(resp: np.ndarray, K_max: int) -> np.ndarray:
    return np.pad(resp, ((0, 0), (0, K_max - resp.shape[1])))


def _take_start(params, rows):
    """The mixtures ``rows`` of a stack, as a new start (every group active)."""
    return stack_params(params.weights[rows], params.means[rows], params.covariances[rows],
                        params.precisions_cholesky[rows])


def _put_start(params, rows, part):
    """``params`` with the mixtures ``rows`` replaced by ``part`` (and its log-likelihoods)."""
    fields = {name: getattr(params, name).copy() for name in
              ("weights", "means", "covariances", "precisions_cholesky", "log_likelihood")}
    for name, value in fields.items():
        value[rows] = getattr(part, name)
    return params._replace(**fields)


def _estimator(final, g: int, model_name: str, K: int, n_features: int, n_samples: float,
               settings: dict):
    """The fitted GaussianMixture of group ``g`` of the final stack."""
    from emkit.estimators.gaussian_mixture import GaussianMixture

    mixture = GaussianMixture(K, covariance_type=model_name, **settings)
    family = GaussianFamily(model_name, settings["reg_covar"])
    components, _ = family.with_covariances(
        final.means[g, :K], in_layout(final.covariances[g, :K], model_name))
    history = final.recent[g][np.isfinite(final.recent[g])]
    mixture.n_features_in_ = n_features
    mixture._store_result(FitOutcome(
        params=MixtureParams(final.weights[g, :K], components),
        objective=float(final.log_likelihood[g]), n_samples=n_samples,
        converged=bool(final.converged[g]), n_iter=int(final.n_iter[g]), history=history))
    return mixture
