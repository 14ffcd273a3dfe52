"""Optimal mixture of fixed models: EM learns only the mixing weights.

The component densities p_1 … p_M are fixed; the data enter only through the n × M matrix of
likelihoods L_ij = p_j(x_i). EM maximises the concave objective

    F(λ) = Σ_i w_i log Σ_j λ_j L_ij  (+ log Dirichlet(λ | α) for MAP)

over the simplex (Gupta & Chen 2011, "Theory and use of the EM algorithm", §3.1):

    E-step:  p = L λ,  g = Lᵀ (w / p)          (two matrix-vector products)
    M-step:  λ_j ∝ λ_j g_j + α_j − 1

so an iteration costs two passes over L and never forms the n × M posterior matrix. Because F is
concave the fixed point is the global maximum, and its KKT conditions read: the mean posterior
ratio g_j / Σ_i w_i equals 1 where λ_j > 0 and is at most 1 where λ_j = 0. A model (column) that
explains no row gets weight 0 after the first M-step (without a prior).

Input forms
-----------
The E-step takes a :class:`LikelihoodMatrix` (made once by :func:`likelihood_matrix`, which
validates the input and scales every row by its largest entry so that nothing underflows: row i
stands for exp(log_scale_i) · matrix_i), or a dense array, a scipy.sparse matrix or an
:class:`emkit.data.Batch` of either (likelihoods, or log-likelihoods when the model was built with
``log=True``), which ``fit_em`` converts once per fit through the model's ``prepare`` hook (a
direct ``e_step`` call converts it every time).

Sparse matrices (rows × models, e.g. reads × transcripts in RNA-seq quantification, where each
read is compatible with a few transcripts) run through a compiled kernel that fuses both products
in one pass over the CSR arrays, split over threads by non-zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numba
import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln, xlogy

from emkit.data.chunks import Batch, chunk_list
from emkit.errors import DataError, ParameterError

# An extrapolated (SQUAREM) weight is kept at least this fraction of the plain EM point's weight:
# overshooting below zero stops there, and a weight EM keeps positive never becomes 0 (EM could
# not revive it).
_EXTRAPOLATION_FLOOR = 1e-3
# Below this many non-zeros one thread (about 3.5 ns per non-zero) is used. Threads halve the
# time on idle cores, but a parallel region waits until every thread is scheduled: on a busy
# machine that costs ~30 ms per pass (measured on a loaded 2-core machine), more than the
# whole pass below a few million non-zeros.
_PARALLEL_MIN_NNZ = 4_000_000


class FixedMixtureParams(NamedTuple):
    weights: np.ndarray  # (M,) mixing weights λ on the simplex


class FixedMixtureStats(NamedTuple):
    """Additive: the statistics of two chunks are the field-wise sums."""

    responsibility: np.ndarray  # (M,) Σ_i w_i r_ij with r_ij = λ_j L_ij / (L λ)_i
    weight: float  # Σ_i w_i


@dataclass(frozen=True)
class LikelihoodMatrix:
    """Validated likelihoods of n rows under M fixed models, ready for the E-step.

    Row i stands for the likelihoods exp(log_scale[i]) · matrix[i]: each row is divided by its
    largest entry, so the products L λ neither underflow nor overflow (log-likelihood input is
    turned into likelihoods row by row, a log-sum-exp done once).

    Attributes
    ----------
    matrix : ndarray of shape (n, M), float64, or scipy.sparse CSR matrix of shape (n, M)
        Non-negative, finite; every row of positive weight has a positive entry.
    log_scale : ndarray of shape (n,)
        Log of the factor each row was divided by.
    sample_weight : ndarray of shape (n,) or None
        Non-negative row weights (None: all 1).
    """

    matrix: Any
    log_scale: np.ndarray
    sample_weight: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(n_rows, n_models); also what makes the engine treat this as one chunk."""
        return self.matrix.shape

    # Cached: the E-step needs these at every iteration and the data do not change.
    @cached_property
    def weights_or_ones(self) -> np.ndarray:
        return np.ones(self.shape[0]) if self.sample_weight is None else self.sample_weight

    @cached_property
    def total_weight(self) -> float:
        return float(self.weights_or_ones.sum())

    @cached_property
    def log_constant(self) -> float:
        """Σ_i w_i log_scale_i: the part of the log-likelihood the scaling took out."""
        scale = self.log_scale
        if self.sample_weight is None:
            return float(scale.sum())
        used = self.sample_weight > 0  # a row of weight 0 contributes nothing, even −inf
        return float(self.sample_weight[used] @ scale[used])


# --------------------------------------------------------------------------- validation
def likelihood_matrix(X: Any, *, log: bool = False, sample_weight: np.ndarray | None = None,
                      require_explained: bool = True) -> LikelihoodMatrix:
    """Validate an n × M likelihood (or log-likelihood) matrix and scale its rows.

    Parameters
    ----------
    X : array-like of shape (n, M) or scipy.sparse matrix of shape (n, M)
        Likelihoods L_ij ≥ 0 of row i under model j; with ``log=True``, log-likelihoods
        (−inf for a likelihood of zero). Sparse input holds likelihoods: an absent entry is a
        likelihood of zero.
    log : bool
        Whether dense ``X`` holds log-likelihoods.
    sample_weight : ndarray of shape (n,), optional
        Row weights (already checked: finite, non-negative).
    require_explained : bool
        Raise when a row of positive weight has likelihood zero under every model (fitting needs
        this; scoring new rows does not: their log-likelihood is −inf).

    Raises
    ------
    DataError
        NaN, negative likelihoods, +inf, a wrong shape, sparse log-likelihoods, or (with
        ``require_explained``) rows that no model explains; the message says how many and what
        to do.
    """
    if sp.issparse(X):
        if log:
            raise DataError(
                "sparse input must hold likelihoods (an absent entry is a likelihood of zero), "
                "not log-likelihoods: pass log=False, or a dense array of log-likelihoods.")
        scaled, log_scale = _scale_sparse(X)
    else:
        dense = _dense_array(X)
        scaled, log_scale = _scale_log_dense(dense) if log else _scale_dense(dense)
    if sample_weight is not None and len(sample_weight) != scaled.shape[0]:
        raise DataError(f"sample_weight has {len(sample_weight)} entries for "
                        f"{scaled.shape[0]} rows.")
    data = LikelihoodMatrix(scaled, log_scale, sample_weight)
    if require_explained:
        check_explained(data)
    return data


def check_explained(data: LikelihoodMatrix) -> None:
    """Raise DataError when a row of positive weight has likelihood zero under every model."""
    unexplained = np.isneginf(data.log_scale)
    if data.sample_weight is not None:
        unexplained &= data.sample_weight > 0
    if not unexplained.any():
        return
    rows = np.flatnonzero(unexplained)
    shown = ", ".join(map(str, rows[:5])) + (", …" if len(rows) > 5 else "")
    raise DataError(
        f"{len(rows)} of {data.shape[0]} rows have likelihood zero under every model "
        f"(rows {shown}): no model explains them, so no mixture of these models can. "
        "Drop these rows (or give them sample_weight 0), add a model that explains them, or, "
        "if the likelihoods underflowed to 0, pass log-likelihoods (log=True).")


def _dense_array(X: Any) -> np.ndarray:
    try:
        array = np.asarray(X)
        if array.dtype.kind == "c":
            raise DataError("Complex data not supported: likelihoods are real numbers.")
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as error:
        raise DataError(f"the likelihood matrix must hold numbers: {error}.") from None
    if array.ndim != 2:
        raise DataError(f"the likelihood matrix must be 2-D (rows × models), got shape "
                        f"{array.shape}. Reshape your data: one row per sample, one column "
                        "per model.")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise DataError(f"the likelihood matrix has 0 feature(s) (shape={array.shape}) while a "
                        "minimum of 1 is required: give at least one row and one model.")
    return array


def _where(mask: np.ndarray) -> str:
    """'N entries (first at row i, model j)' for a boolean matrix mask."""
    first = np.argwhere(mask)[0]
    return f"{int(mask.sum())} entries (first at row {first[0]}, model {first[1]})"


def _scale_dense(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.isnan(L).any():
        raise DataError(f"the likelihood matrix contains NaN in {_where(np.isnan(L))}: "
                        "fix or drop these rows.")
    if (L < 0).any():
        raise DataError(f"the likelihood matrix has negative likelihoods in {_where(L < 0)}: "
                        "likelihoods are densities, never negative. If these are "
                        "log-likelihoods, pass log=True.")
    if np.isinf(L).any():
        raise DataError(f"the likelihood matrix has infinite likelihoods in "
                        f"{_where(np.isinf(L))}: pass finite values, or log-likelihoods "
                        "(log=True).")
    top = L.max(axis=1)
    with np.errstate(divide="ignore"):
        log_scale = np.log(top)
    divisor = np.where(top > 0, top, 1.0)
    return L / divisor[:, None], log_scale


def _scale_log_dense(log_L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.isnan(log_L).any():
        raise DataError(f"the log-likelihood matrix contains NaN in "
                        f"{_where(np.isnan(log_L))}: fix or drop these rows.")
    if np.isposinf(log_L).any():
        raise DataError(f"the log-likelihood matrix contains +inf in "
                        f"{_where(np.isposinf(log_L))}: a likelihood must be finite.")
    top = log_L.max(axis=1)  # −inf for a row no model explains
    shift = np.where(np.isfinite(top), top, 0.0)
    return np.exp(log_L - shift[:, None]), top


def _scale_sparse(X: Any) -> tuple[sp.csr_matrix, np.ndarray]:
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise DataError(f"the likelihood matrix must be 2-D (rows × models) with at least one "
                        f"row and one model, got shape {X.shape}.")
    try:
        csr = sp.csr_matrix(X, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as error:
        raise DataError(f"the sparse likelihood matrix must hold numbers: {error}.") from None
    csr.sum_duplicates()
    data = csr.data
    for bad, what, hint in ((np.isnan(data), "NaN", "fix or drop these rows"),
                            (data < 0, "negative likelihoods",
                             "likelihoods are densities, never negative"),
                            (np.isinf(data), "infinite likelihoods", "pass finite values")):
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
            raise DataError(f"the sparse likelihood matrix has {what} in {int(bad.sum())} "
                            f"entries (first at row {row}, model {csr.indices[k]}): {hint}.")
    top = _row_max(csr.indptr, data)
    with np.errstate(divide="ignore"):
        log_scale = np.log(top)
    divisor = np.where(top > 0, top, 1.0)
    csr.data = data / np.repeat(divisor, np.diff(csr.indptr))
    return csr, log_scale


def _row_max(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Largest entry of every CSR row (0 for an empty row)."""
    counts = np.diff(indptr)
    top = np.zeros(len(counts))
    nonempty = counts > 0
    if data.size:
        top[nonempty] = np.maximum.reduceat(data, indptr[:-1][nonempty])
    return top


def dirichlet_concentration(prior: Any, n_models: int) -> np.ndarray | None:
    """The Dirichlet concentration α (M,) from a scalar or an (M,) array; None for no prior.

    Raises ParameterError for α < 1: the MAP objective is then unbounded (log λ_j → −∞ with a
    negative coefficient), so no MAP estimate exists.
    """
    if prior is None:
        return None
    try:
        alpha = np.asarray(prior, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"prior must be a number or an array of numbers, got "
                             f"{prior!r:.60}.") from None
    if alpha.ndim == 0:
        alpha = np.full(n_models, float(alpha))
    if alpha.shape != (n_models,):
        raise ParameterError(f"prior has shape {alpha.shape}; it must be one concentration or "
                             f"one per model ({n_models},).")
    if not np.all(np.isfinite(alpha)) or np.any(alpha < 1.0):
        raise ParameterError(
            "prior (Dirichlet concentration) must be finite and >= 1: below 1 the posterior "
            "density is unbounded at the edge of the simplex, so no MAP estimate exists. "
            "1 is a flat prior (maximum likelihood); larger values shrink towards uniform.")
    return alpha


# --------------------------------------------------------------------------- the model
class FixedMixtureModel:
    """EM model of the mixing weights of M fixed models (see the module docstring).

    Parameters
    ----------
    log : bool, default False
        Whether array chunks hold log-likelihoods (a :class:`LikelihoodMatrix` is already
        scaled likelihoods).
    prior : float or ndarray of shape (M,), optional
        Dirichlet concentration α ≥ 1 for MAP estimation; None is maximum likelihood.
    weights_tol : float, optional
        With this set the fit converges only when, besides the objective, no weight moved by
        more than ``weights_tol`` in the last iteration (the ``params_converged`` hook of
        :func:`emkit.fit_em`): near a flat optimum the objective settles long before the
        weights do.
    """

    # The objective is concave in the weights (one optimum, or a flat set of them), so SQUAREM
    # may accept an extrapolation up to 1 nat below the EM point (the R SQUAREM default): the
    # steps it takes along the slowly converging directions are what make it fast here.
    squarem_slack = 1.0

    def __init__(self, *, log: bool = False, prior: Any = None,
                 weights_tol: float | None = None):
        self.log = bool(log)
        self.prior = prior
        self.weights_tol = weights_tol

    # ------------------------------------------------------------------ input
    def as_likelihoods(self, chunk: Any) -> LikelihoodMatrix:
        """A chunk as a :class:`LikelihoodMatrix` (converted and validated unless it is one)."""
        if isinstance(chunk, LikelihoodMatrix):
            return chunk
        X, weight = (chunk.X, chunk.sample_weight) if isinstance(chunk, Batch) else (chunk, None)
        if weight is not None:
            weight = np.asarray(weight, dtype=np.float64)
        return likelihood_matrix(X, log=self.log, sample_weight=weight)

    def prepare(self, chunk: Any) -> list[LikelihoodMatrix]:
        """Validate and scale an in-memory chunk once per fit (the engine's ``prepare`` hook),
        instead of at every E-step."""
        return [self.as_likelihoods(chunk)]

    # ------------------------------------------------------------------ E-step
    def e_step(self, params: FixedMixtureParams, chunk: Any) -> tuple[FixedMixtureStats, float]:
        """Statistics Σ_i w_i r_ij and the log-likelihood Σ_i w_i log (L λ)_i of one chunk.

        The log-likelihood is −inf when a row of positive weight gets likelihood zero under
        the mixture (possible only at weights with zeros, e.g. an extrapolated point).
        """
        data = self.as_likelihoods(chunk)
        weights = params.weights
        if weights.shape != (data.shape[1],):
            raise DataError(f"the likelihood matrix has {data.shape[1]} models (columns), the "
                            f"weights {len(weights)}.")
        row_weight = data.weights_or_ones
        if sp.issparse(data.matrix):
            gradient, log_likelihood = sparse_em_pass(data.matrix, weights, row_weight)
        else:
            gradient, log_likelihood = _dense_em_pass(data.matrix, weights, row_weight)
        if np.isfinite(log_likelihood):
            log_likelihood += data.log_constant
        return (FixedMixtureStats(weights * gradient, data.total_weight),
                float(log_likelihood))

    def posteriors(self, params: FixedMixtureParams, chunk: Any) -> tuple[np.ndarray, Any]:
        """Per-row log-likelihood (n,) and posteriors r_ij (n, M): dense for dense input, CSR
        for sparse input. A row no model explains has log-likelihood −inf and posteriors NaN."""
        data = chunk if isinstance(chunk, LikelihoodMatrix) else likelihood_matrix(
            chunk, log=self.log, require_explained=False)
        L, weights = data.matrix, params.weights
        mixture = L @ weights
        with np.errstate(divide="ignore", invalid="ignore"):
            row_log_likelihood = np.log(mixture) + data.log_scale
            if sp.issparse(L):
                resp = L.copy()
                resp.data = L.data * weights[L.indices] / np.repeat(mixture, np.diff(L.indptr))
            else:
                resp = L * weights / mixture[:, None]
        return row_log_likelihood, resp

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: FixedMixtureStats,
               params: FixedMixtureParams | None = None) -> FixedMixtureParams:
        numerator = stats.responsibility
        alpha = dirichlet_concentration(self.prior, len(numerator))
        if alpha is not None:
            numerator = numerator + (alpha - 1.0)
        total = numerator.sum()
        if not total > 0:
            raise DataError("no row has a positive weight: there is nothing to fit.")
        return FixedMixtureParams(numerator / total)

    def log_prior(self, params: FixedMixtureParams) -> float:
        """log Dirichlet(λ | α), normalising constant included; 0 without a prior."""
        alpha = dirichlet_concentration(self.prior, len(params.weights))
        if alpha is None:
            return 0.0
        return float(gammaln(alpha.sum()) - gammaln(alpha).sum()
                     + xlogy(alpha - 1.0, params.weights).sum())

    # ------------------------------------------------------------------ engine hooks
    def init_params(self, data: Any, rng: np.random.Generator) -> FixedMixtureParams:
        """A random interior point of the simplex (every weight at least 1/(2M)).

        The objective is concave, so any interior start reaches the same optimum; a start must
        not hold zeros, since EM never revives a zero weight.
        """
        n_models = {chunk.shape[1] for chunk in chunk_list(data)
                    for chunk in [chunk.X if isinstance(chunk, Batch) else chunk]}
        if len(n_models) != 1:
            raise DataError(f"the chunks have different numbers of models (columns): "
                            f"{sorted(n_models)}.")
        M = n_models.pop()
        return FixedMixtureParams(0.5 / M + 0.5 * rng.dirichlet(np.ones(M)))

    def n_samples(self, stats: FixedMixtureStats) -> float:
        return float(stats.weight)

    def params_converged(self, previous: FixedMixtureParams, params: FixedMixtureParams) -> bool:
        """True when no weight moved by more than ``weights_tol`` (always, when it is None)."""
        if self.weights_tol is None:
            return True
        return bool(np.max(np.abs(params.weights - previous.weights)) <= self.weights_tol)

    # SQUAREM runs in the weights themselves, not in log-weights. A weight heading for 0 at the
    # optimum decays geometrically under EM (λ_j ← λ_j g_j, g_j < 1): a contracting linear mode
    # in these coordinates, which SQUAREM's extrapolation is built for, but a drift that never
    # contracts in log coordinates, where it spoils the step length (measured: 4-5x fewer
    # iterations than log-weights on the benchmark's reads x transcripts problem).
    def flatten(self, params: FixedMixtureParams) -> np.ndarray:
        return np.array(params.weights, dtype=np.float64)

    def unflatten(self, vector: np.ndarray, template: FixedMixtureParams) -> FixedMixtureParams:
        """Weights from an extrapolated vector: each kept at least ``_EXTRAPOLATION_FLOOR``
        times the plain EM point's (``template``) weight, then normalised."""
        weights = np.maximum(vector, _EXTRAPOLATION_FLOOR * template.weights)
        return FixedMixtureParams(weights / weights.sum())


# --------------------------------------------------------------------------- passes
def _dense_em_pass(L: np.ndarray, weights: np.ndarray,
                   row_weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Lᵀ (w / L λ) and Σ_i w_i log (L λ)_i over the rows of positive weight."""
    mixture = L @ weights
    used = row_weight > 0
    if np.any(mixture[used] <= 0):
        return np.full(len(weights), np.nan), -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(used, row_weight / mixture, 0.0)
        log_likelihood = float(row_weight[used] @ np.log(mixture[used]))
    return ratio @ L, log_likelihood


def sparse_em_pass(L: sp.csr_matrix, weights: np.ndarray,
                   row_weight: np.ndarray) -> tuple[np.ndarray, float]:
    """As ``_dense_em_pass`` for a CSR matrix: one fused pass over its non-zeros."""
    n_parts = 1 if L.nnz < _PARALLEL_MIN_NNZ else numba.get_num_threads()
    if n_parts == 1:  # no parallel region: starting one waits for every thread to be scheduled
        gradient = np.zeros(len(weights))
        log_likelihood = _csr_rows(L.indptr, L.indices, L.data, weights, row_weight, 0,
                                   L.shape[0], gradient)
        return gradient, log_likelihood
    # Equal numbers of non-zeros per part, so that threads finish together.
    bounds = np.searchsorted(L.indptr, np.linspace(0, L.nnz, n_parts + 1)).astype(np.int64)
    bounds[0], bounds[-1] = 0, L.shape[0]
    return _csr_em_pass(L.indptr, L.indices, L.data, weights, row_weight, bounds)


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _csr_rows(indptr, indices, data, weights, row_weight, first, last, gradient):
    """Σ_i w_i log (L λ)_i over rows first..last−1, adding Lᵀ (w / L λ) of those rows to
    ``gradient``.

    Each row is read once: its dot product with λ, then (while it is in cache) its scatter of
    w_i / (L λ)_i. A row of positive weight with (L λ)_i = 0 makes the result −inf.
    """
    total = 0.0
    for i in range(first, last):
        w = row_weight[i]
        if w == 0.0:
            continue
        start, stop = indptr[i], indptr[i + 1]
        mixture = 0.0
        for k in range(start, stop):
            mixture += data[k] * weights[indices[k]]
        if mixture <= 0.0:
            total = -np.inf
            continue
        total += w * np.log(mixture)
        ratio = w / mixture
        for k in range(start, stop):
            gradient[indices[k]] += data[k] * ratio
    return total


@numba.njit(nogil=True, cache=True, parallel=True)
def _csr_em_pass(indptr, indices, data, weights, row_weight, bounds):
    """g = Lᵀ (w / L λ) and Σ w log(L λ) for L in CSR form, one part of the rows (given by
    ``bounds``) per thread, each scattering into its own copy of g (summed at the end).

    The row loop is a separate function: inlined into the prange body it compiles to code
    about twice as slow.
    """
    n_parts = len(bounds) - 1
    partial = np.zeros((n_parts, len(weights)))
    log_likelihood = np.zeros(n_parts)
    for p in numba.prange(n_parts):
        log_likelihood[p] = _csr_rows(indptr, indices, data, weights, row_weight, bounds[p],
                                      bounds[p + 1], partial[p])
    gradient = partial[0].copy()
    for p in range(1, n_parts):
        gradient += partial[p]
    return gradient, log_likelihood.sum()


__all__ = [
    "FixedMixtureModel",
    "FixedMixtureParams",
    "FixedMixtureStats",
    "LikelihoodMatrix",
    "check_explained",
    "dirichlet_concentration",
    "likelihood_matrix",
]
