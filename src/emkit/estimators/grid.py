"""mclust's grid — a Gaussian mixture for every (covariance model, K) on the same rows —
fitted as one stack (:func:`fit_grid`, what :func:`emkit.select_model` runs for it).

Fitted one at a time, each of the grid's fits is a few hundred small EM passes, and on data of
a few hundred rows a pass's cost is almost all fixed (Python, numpy calls): 126 fits of
faithful took 5–7 s, mclust's Fortran 0.6 s. Stacked, one pass serves every fit: the fits are
the groups of one :class:`~emkit.models.batched_gaussian.BatchedGaussianMixtureModel` (each
with its own covariance model; fits of fewer components padded to the largest K), and the
M-step of each covariance model runs once per pass for all its fits
(:func:`emkit.families.parsimonious.stacked_covariances`).

Each fit starts as ``GaussianMixture`` starts in a grid (``SharedStarts``): the finalists of
the screening shared by the fits of one K, re-estimated under the fit's own model, race for
``SHARED_FINAL_STEPS`` EM steps — here all the races of the grid in one stack — and the winner
is fitted to convergence, by SQUAREM fit by fit (each its own step length and convergence
test, :class:`emkit.core.accelerate.Blocks`).

A fit in which a component lost all its weight or its positive-definite covariance is left to
the caller (``None``): ``GaussianMixture`` re-seeds such a component, the stack only keeps its
previous parameters.
"""

from __future__ import annotations

import numpy as np

from emkit.core.engine import seed_sequence
from emkit.estimators.base import FitOutcome
from emkit.estimators.batched import fit_stack, stack_params
from emkit.families.gaussian import GaussianFamily
from emkit.families.parsimonious import layout
from emkit.models.batched_gaussian import GroupedRows, precision_cholesky
from emkit.models.mixture import (
    SHARED_FINAL_STEPS,
    GaussianMixtureModel,
    MixtureParams,
    SharedStarts,
)

__all__ = ["fit_grid", "GRID_MAX_ROWS"]

#: The most rows a grid is stacked for: beyond, a pass's cost is the rows', not its fixed
#: part, and the stack's copies of the rows (one per fit and start) grow large.
GRID_MAX_ROWS = 4_000
# The race stops a start early once its log-likelihood per sample changes by less than this
# (GaussianMixtureModel's short runs).
_RACE_TOL = 1e-6


def fit_grid(X: np.ndarray, sample_weight: np.ndarray | None, cells: list[tuple[str, int]],
             *, random_state=None, reg_covar: float = 1e-6, tol: float = 1e-6,
             max_iter: int = 1000, accelerate: str | None = "squarem") -> list:
    """Fitted :class:`emkit.GaussianMixture` of every (covariance model, K) of ``cells``, in
    their order, on the complete float64 rows X (n ≤ :data:`GRID_MAX_ROWS`) with optional
    row weights; ``None`` for a fit the caller must run on its own (a component degenerated).
    The other arguments are ``GaussianMixture``'s."""
    n_rows, n_features = X.shape
    n_samples = float(n_rows if sample_weight is None else sample_weight.sum())
    shared = SharedStarts()
    owners, entrants = [], []
    for cell, (model_name, K) in enumerate(cells):
        model = GaussianMixtureModel(K, model_name, reg_covar)
        model.shared_starts = shared
        # the generator of a GaussianMixture's one start (fit_em's first spawned seed)
        rng = np.random.default_rng(seed_sequence(random_state).spawn(1)[0])
        for start in model.shared_finalists(X, sample_weight, rng):
            owners.append(cell)
            entrants.append((model_name, start))
    owners = np.array(owners)
    K_max = max(K for _, K in cells)
    models = np.array([name for name, _ in entrants])
    race, present = _stack([start for _, start in entrants], models, K_max, n_features)
    race = fit_stack(_rows(X, sample_weight, len(entrants)), race,
                     np.full(len(entrants), n_samples), K_max, "full", reg_covar, _RACE_TOL,
                     SHARED_FINAL_STEPS - 1, None, models, present)
    # each fit's winner: the highest log-likelihood (of equals, the earlier start)
    winners = np.array([np.flatnonzero(owners == cell)[np.argmax(
        race.log_likelihood[owners == cell])] for cell in range(len(cells))])
    start = stack_params(race.weights[winners], race.means[winners],
                         race.covariances[winners], race.precisions_cholesky[winners])
    final = fit_stack(_rows(X, sample_weight, len(cells)), start,
                      np.full(len(cells), n_samples), K_max, "full", reg_covar, tol, max_iter,
                      accelerate, models[winners], present[winners])
    settings = dict(random_state=random_state, reg_covar=reg_covar, tol=tol,
                    max_iter=max_iter, accelerate=accelerate)
    return [None if final.degenerate[g] else
            _estimator(final, g, model_name, K, n_features, n_samples, settings)
            for g, (model_name, K) in enumerate(cells)]


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
        covariances[g, :K] = _as_matrices(start.components.covariances, layout(model_name), K, D)
    P, _ = precision_cholesky(covariances, "full")
    present = np.arange(K_max) < np.array([len(start.weights) for start in starts])[:, None]
    return stack_params(weights, means, covariances, P), present


def _as_matrices(covariances: np.ndarray, kind: str, K: int, D: int) -> np.ndarray:
    """Covariances in a layout (see :func:`~emkit.families.parsimonious.layout`) as (K, D, D)."""
    if kind == "spherical":
        return covariances[:, None, None] * np.eye(D)
    if kind == "diag":
        return covariances[:, :, None] * np.eye(D)
    if kind == "tied":
        return np.repeat(covariances[None], K, axis=0)
    return covariances


def _in_layout(matrices: np.ndarray, kind: str) -> np.ndarray:
    """(K, D, D) covariances in a layout: the inverse of :func:`_as_matrices`."""
    if kind == "spherical":
        return matrices[:, 0, 0].copy()
    if kind == "diag":
        return np.diagonal(matrices, axis1=1, axis2=2).copy()
    if kind == "tied":
        return matrices[0].copy()
    return matrices


def _rows(X: np.ndarray, sample_weight: np.ndarray | None, copies: int) -> GroupedRows:
    """The rows once per group of a stack."""
    weight = np.ones(len(X)) if sample_weight is None else sample_weight
    return GroupedRows(np.ascontiguousarray(np.broadcast_to(X, (copies,) + X.shape)),
                       np.ascontiguousarray(np.broadcast_to(weight, (copies, len(X)))))


def _estimator(final, g: int, model_name: str, K: int, n_features: int, n_samples: float,
               settings: dict):
    """The fitted GaussianMixture of group ``g`` of the final stack."""
    from emkit.estimators.gaussian_mixture import GaussianMixture

    mixture = GaussianMixture(K, covariance_type=model_name, **settings)
    family = GaussianFamily(model_name, settings["reg_covar"])
    components, _ = family.with_covariances(
        final.means[g, :K], _in_layout(final.covariances[g, :K], family.covariance_type))
    history = final.recent[g][np.isfinite(final.recent[g])]
    mixture.n_features_in_ = n_features
    mixture._store_result(FitOutcome(
        params=MixtureParams(final.weights[g, :K], components),
        objective=float(final.log_likelihood[g]), n_samples=n_samples,
        converged=bool(final.converged[g]), n_iter=int(final.n_iter[g]), history=history))
    return mixture
