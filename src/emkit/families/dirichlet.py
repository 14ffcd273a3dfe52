"""The Dirichlet family and its compound, the Dirichlet-multinomial (Pólya) distribution.

Everything the compound-Dirichlet models share lives here:

- :func:`dirichlet_map`: the Dirichlet maximum-likelihood (or, with a Gamma prior on λ = log α,
  maximum a posteriori) estimate from *mean-log statistics* Σ_i w_i log q_ij. Newton's method with
  the Hessian n ψ'(α₀) 11ᵀ − diag(n ψ'(α_j) + η/α_j²), a diagonal plus a rank-one matrix, so each
  step is O(categories) by the Sherman–Morrison formula (Minka 2000, "Estimating a Dirichlet
  distribution", §1). A step is taken only where the objective rises (halved steps otherwise),
  or, in the quadratic region, where the rise is below what round-off can resolve; so the M-step
  of EM never lowers the objective, from any start.
- :func:`dirichlet_fixed_point`: Minka's fixed point α_j ← ψ⁻¹(ψ(α₀) + s̄_j) with
  :func:`inverse_digamma`; slower, used as an independent check of the Newton solver.
- :class:`CountHistogram` / :func:`count_histogram`: weighted "counts of counts" per component,
  the additive statistics from which the Dirichlet-multinomial likelihood of a component is
  exact; :func:`polya_map` maximises it (Newton, diagonal-plus-rank-one Hessian again, with
  Minka's fixed point as fallback), :func:`polya_fixed_point` runs Minka's fixed point alone
  (his §2, extended by the prior), and :func:`mean_log_sums` gives the latent-probability EM's
  statistics E[log q_ij] from the same histograms.
- The hot loops (ψ, ψ', lnΓ differences over distinct (category, count) pairs, the Newton
  iterations) are compiled with numba. Those a Dirichlet-multinomial mixture fit calls also have
  a numpy form (:mod:`emkit.kernels.tiers` picks one: numpy on small inputs until the compiled
  form is in numba's cache or has paid for its compilation), so a first small fit in a new
  environment compiles nothing.
- Densities: :func:`dirichlet_logpdf`, :func:`dirichlet_multinomial_logpmf` (including the
  multinomial coefficient), and the log prior :func:`log_prior_log_alpha`.

The prior is the one of Holmes, Harris & Quince (2012, PLoS ONE 7(2): e30126): α = e^λ with
α ~ Gamma(shape η, rate ν), written as a density of λ:
log p(λ) = η log ν − lnΓ(η) + η λ − ν e^λ per component and category.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from scipy.special import digamma, gammaln, polygamma

from emkit.errors import DataError, ParameterError
from emkit.families.base import FamilyDefaults
from emkit.kernels import tiers

__all__ = [
    "GammaPrior",
    "SparseCounts",
    "check_counts",
    "check_proportions",
    "sparse_counts",
    "inverse_digamma",
    "dirichlet_map",
    "dirichlet_objective",
    "dirichlet_fixed_point",
    "polya_fixed_point",
    "dirichlet_logpdf",
    "dirichlet_multinomial_logpmf",
    "log_prior_log_alpha",
    "mean_log_sums",
    "CountHistogram",
    "count_histogram",
    "polya_objective",
    "polya_map",
    "polya_map_components",
    "CompoundDirichletStats",
    "DirichletFamily",
    "DirichletMultinomialFamily",
]

_EULER = 0.5772156649015329
#: The largest α_j a fit returns. Without a prior the likelihood can grow without bound as α → ∞
#: (a mixture component collapsing onto one row, counts with no over-dispersion); beyond this a
#: Dirichlet is a point mass for every practical purpose, and the objective stays accurate.
ALPHA_MAX = 1e7


class GammaPrior(NamedTuple):
    """α ~ Gamma(shape, rate), i.e. λ = log α with density ∝ exp(shape λ − rate e^λ)."""

    shape: float = 0.1
    rate: float = 0.1


@dataclass(frozen=True, eq=False)
class SparseCounts:
    """A count matrix (n_rows, n_categories) stored by its non-zero entries, row by row.

    Zero counts add nothing to the sums of lnΓ(α + x) − lnΓ(α) and ψ(α + x) − ψ(α), so the
    Dirichlet-multinomial computations only visit the non-zero entries. Build it with
    :func:`sparse_counts`; it passes as one chunk to :func:`emkit.fit_em` (it has a ``shape``).
    """

    indptr: np.ndarray  # (n_rows + 1,) start of each row's entries
    rows: np.ndarray  # (nnz,) row of each entry
    columns: np.ndarray  # (nnz,) category of each entry
    values: np.ndarray  # (nnz,) the counts, float64
    totals: np.ndarray  # (n_rows,) N_i = Σ_j x_ij
    log_coefficient: np.ndarray  # (n_rows,) log (N_i! / Π_j x_ij!), the multinomial coefficient
    n_categories: int
    # The distinct (category, count) pairs and row totals: lnΓ and ψ are evaluated once per
    # distinct value, not once per entry (on the twins data 2848 pairs for 7819 entries).
    entry_pair: np.ndarray  # (nnz,) index of each entry's pair
    pair_columns: np.ndarray  # (n_pairs,) category j of each pair
    pair_values: np.ndarray  # (n_pairs,) count c ≥ 1 of each pair
    total_index: np.ndarray  # (n_rows,) index of each row's total in total_values
    total_values: np.ndarray  # (n_totals,) the distinct row totals

    @property
    def n_rows(self) -> int:
        return len(self.totals)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_categories)

    def take(self, rows: np.ndarray) -> SparseCounts:
        """The rows ``rows`` (indices or a boolean mask) as new SparseCounts."""
        return sparse_counts(self.dense()[rows])

    def dense(self) -> np.ndarray:
        """The count matrix (n_rows, n_categories)."""
        X = np.zeros((self.n_rows, self.n_categories))
        X[self.rows, self.columns] = self.values
        return X


def check_counts(X: np.ndarray, what: str = "counts") -> np.ndarray:
    """``X`` as a float64 matrix of non-negative integer counts with positive row totals and at
    least two categories; raises :class:`emkit.errors.DataError` saying what is wrong."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"{what} must be a 2-D array (samples × categories), got "
                        f"{X.ndim} dimension(s).")
    if X.shape[1] < 2:
        raise DataError(f"{what} need at least two categories (columns), got {X.shape[1]}: a "
                        "Dirichlet-multinomial of one category is a constant.")
    if not np.all(np.isfinite(X)):
        raise DataError(f"{what} contain NaN or infinity: counts must be finite.")
    if np.any(X < 0):
        i, j = np.argwhere(X < 0)[0]
        raise DataError(f"{what} must be non-negative: row {i}, column {j} is {X[i, j]:g}.")
    fractional = X != np.round(X)
    if np.any(fractional):
        i, j = np.argwhere(fractional)[0]
        raise DataError(f"{what} must be whole numbers: row {i}, column {j} is {X[i, j]:g}. "
                        "Pass raw counts, not proportions or normalised values.")
    empty = np.flatnonzero(X.sum(axis=1) == 0)
    if len(empty):
        raise DataError(f"{len(empty)} row(s) have a total count of zero (first: row "
                        f"{empty[0]}): they carry no information; drop them.")
    return X


def check_proportions(P: np.ndarray, what: str = "proportions") -> np.ndarray:
    """``P`` as a float64 matrix of rows on the open simplex (positive entries summing to 1)."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2:
        raise DataError(f"{what} must be a 2-D array (samples × categories), got "
                        f"{P.ndim} dimension(s).")
    if P.shape[1] < 2:
        raise DataError(f"{what} need at least two categories (columns), got {P.shape[1]}.")
    if not np.all(np.isfinite(P)):
        raise DataError(f"{what} contain NaN or infinity.")
    if np.any(P <= 0):
        i, j = np.argwhere(P <= 0)[0]
        raise DataError(f"{what} must be strictly positive (a Dirichlet density is zero or "
                        f"infinite on the boundary): row {i}, column {j} is {P[i, j]:g}. "
                        "Replace zeros by a small pseudo-proportion and renormalise, or model "
                        "the counts with DirichletMultinomial.")
    sums = P.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise DataError(f"each row of {what} must sum to 1: row {bad[0]} sums to "
                        f"{sums[bad[0]]:.8g}. Divide each row by its total.")
    return P / sums[:, None]


def sparse_counts(X: np.ndarray) -> SparseCounts:
    """The non-zero entries of a (checked) count matrix, row by row."""
    X = np.asarray(X, dtype=np.float64)
    rows, columns = np.nonzero(X)
    indptr = np.zeros(len(X) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(X)), out=indptr[1:])
    values = X[rows, columns]
    totals = X.sum(axis=1)
    # Row sums of lnΓ(x + 1) through the row pointers (every row has an entry: totals > 0).
    cumulative = np.concatenate([[0.0], np.cumsum(gammaln(values + 1.0))])
    log_coefficient = gammaln(totals + 1.0) - (cumulative[indptr[1:]] - cumulative[indptr[:-1]])
    keys, entry_pair = np.unique(values.astype(np.int64) * X.shape[1] + columns,
                                 return_inverse=True)
    total_values, total_index = np.unique(totals, return_inverse=True)
    return SparseCounts(indptr, rows.astype(np.int64), columns.astype(np.int64), values, totals,
                        log_coefficient, X.shape[1], entry_pair.astype(np.int64).ravel(),
                        keys % X.shape[1], (keys // X.shape[1]).astype(np.float64),
                        total_index.astype(np.int64).ravel(), total_values)


@dataclass(frozen=True, eq=False)
class CountHistogram:
    """Weighted histograms of the counts, per component: additive statistics from which the
    Dirichlet-multinomial log-likelihood of each component, as a function of α_k, is exact.

    Σ_i w_i r_ik log DM(x_i | α_k) = n_k lnΓ(α_k0) − Σ_t T_kt lnΓ(α_k0 + t)
    + Σ_(j,c) R_k,(j,c) [lnΓ(α_kj + c) − lnΓ(α_kj)] + const,

    with R_k,(j,c) = Σ_{i: x_ij = c} w_i r_ik and T_kt = Σ_{i: N_i = t} w_i r_ik (Minka's "counts of
    counts"). Two histograms add over the union of their (j, c) pairs and totals.
    """

    weight: np.ndarray  # (K,) n_k = Σ_i w_i r_ik
    pair_columns: np.ndarray  # (U,) category j of each pair, sorted by (c, j)
    pair_values: np.ndarray  # (U,) count c ≥ 1
    pair_weight: np.ndarray  # (K, U) R_k,(j,c)
    total_values: np.ndarray  # (T,) distinct row totals, sorted
    total_weight: np.ndarray  # (K, T) T_kt

    def __add__(self, other: CountHistogram) -> CountHistogram:
        n_categories = int(max(self.pair_columns.max(initial=0),
                               other.pair_columns.max(initial=0))) + 1
        pair_keys = [h.pair_values.astype(np.int64) * n_categories + h.pair_columns
                     for h in (self, other)]
        keys, pair_weight = _merge(pair_keys, [self.pair_weight, other.pair_weight])
        totals, total_weight = _merge([self.total_values, other.total_values],
                                      [self.total_weight, other.total_weight])
        return CountHistogram(self.weight + other.weight, keys % n_categories,
                              (keys // n_categories).astype(np.float64), pair_weight, totals,
                              total_weight)

    def scaled(self, factor: float) -> CountHistogram:
        """The histograms of the same rows with every row weight multiplied by ``factor``: the
        weights scale, the keys (categories, counts, totals) stay (used by online EM)."""
        return CountHistogram(self.weight * factor, self.pair_columns, self.pair_values,
                              self.pair_weight * factor, self.total_values,
                              self.total_weight * factor)


def _merge(keys: list[np.ndarray], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Union of sorted unique keys, with the (K, ·) weights of equal keys added."""
    union, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    merged = np.zeros((weights[0].shape[0], len(union)))
    start = 0
    for key, weight in zip(keys, weights, strict=True):
        merged[:, inverse[start:start + len(key)]] += weight  # keys unique within each part
        start += len(key)
    return union, merged


def count_histogram(counts: SparseCounts, weighted_resp: np.ndarray) -> CountHistogram:
    """The :class:`CountHistogram` of ``counts`` with per-row, per-component weights w_i r_ik
    (shape (n_rows, K))."""
    weighted_resp = np.ascontiguousarray(weighted_resp, dtype=np.float64)
    arguments = (counts.indptr, counts.entry_pair, counts.total_index, weighted_resp,
                 len(counts.pair_values), len(counts.total_values))
    work = weighted_resp.shape[1] * (len(counts.values) + counts.n_rows)
    if _HISTOGRAM.use_compiled(None, work, arguments):
        pair_weight, total_weight = _histogram_kernel(*arguments)
    else:
        pair_weight, total_weight = _HISTOGRAM.run_numpy(_histogram_numpy, counts.rows,
                                                         *arguments[1:])
    return CountHistogram(weighted_resp.sum(axis=0), counts.pair_columns, counts.pair_values,
                          pair_weight, counts.total_values, total_weight)


# ------------------------------------------------------------------------------ special functions
def inverse_digamma(y: np.ndarray, n_newton: int = 5) -> np.ndarray:
    """x with ψ(x) = y, elementwise (Minka 2000, appendix C).

    The start, exp(y) + 1/2 for y ≥ −2.22 and −1/(y + γ) below, is within a few percent, and
    Newton's method on ψ converges quadratically from there: five steps give full precision.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.where(y >= -2.22, np.exp(np.minimum(y, 700.0)) + 0.5, -1.0 / (y + _EULER))
    for _ in range(n_newton):
        x = x - (digamma(x) - y) / polygamma(1, x)
    return x


# ------------------------------------------------------------------------------ Dirichlet M-step
def dirichlet_objective(alpha: np.ndarray, sum_log: np.ndarray, weight: float,
                        prior: GammaPrior | None = None) -> float:
    """n lnΓ(α₀) − n Σ lnΓ(α_j) + Σ_j (α_j − 1) S_j (+ the log prior of λ = log α).

    The expected complete-data log-likelihood of one Dirichlet component whose rows have total
    weight n and mean-log sums S_j = Σ_i w_i E[log q_ij] (shape (n_categories,)).
    """
    value = weight * (gammaln(alpha.sum()) - gammaln(alpha).sum()) + float(
        (alpha - 1.0) @ sum_log)
    if prior is not None:
        value += log_prior_log_alpha(alpha, prior)
    return float(value)


def dirichlet_map(sum_log: np.ndarray, weight: float, alpha_start: np.ndarray,
                  prior: GammaPrior | None = None, *, rtol: float = 1e-7,
                  max_iter: int = 200) -> np.ndarray:
    """Maximise :func:`dirichlet_objective` over α > 0 by Newton's method.

    Parameters
    ----------
    sum_log : ndarray of shape (n_categories,)
        S_j = Σ_i w_i E[log q_ij].
    weight : float
        n = Σ_i w_i.
    alpha_start : ndarray of shape (n_categories,)
        Where to start (EM passes the current α, so a step never lowers the objective).
    prior : GammaPrior or None
        Gamma(shape η, rate ν) prior on α (a density on λ = log α); None for maximum likelihood.
    rtol : float
        Stop after a full Newton step that moved no α_j by more than this fraction: Newton's
        method converges quadratically, so the error left is about rtol² (1e-14 by default).

    Returns
    -------
    ndarray of shape (n_categories,)
        Never lower in objective than ``alpha_start``.
    """
    shape, rate = (0.0, 0.0) if prior is None else (float(prior.shape), float(prior.rate))
    arguments = (np.ascontiguousarray(sum_log, dtype=np.float64), float(weight),
                 np.ascontiguousarray(alpha_start, dtype=np.float64), shape, rate,
                 float(rtol), int(max_iter))
    if not _NEWTON.use_compiled(None, arguments[0].size * 64, arguments):
        return _NEWTON.run_numpy(_newton_numpy, *arguments)
    return _newton(*arguments)


def dirichlet_fixed_point(sum_log: np.ndarray, weight: float, alpha_start: np.ndarray, *,
                          rtol: float = 1e-13, max_iter: int = 100_000) -> np.ndarray:
    """Maximum-likelihood Dirichlet α by Minka's fixed point α_j ← ψ⁻¹(ψ(α₀) + S_j / n).

    Each step maximises a lower bound of the objective, so it increases monotonically; linear
    convergence, so it is slower than :func:`dirichlet_map`. No prior.
    """
    mean_log = np.asarray(sum_log, dtype=np.float64) / weight
    alpha = np.array(alpha_start, dtype=np.float64)
    for _ in range(max_iter):
        new = inverse_digamma(digamma(alpha.sum()) + mean_log)
        moved = np.max(np.abs(new - alpha) / alpha)
        alpha = new
        if moved < rtol:
            break
    return alpha


# ------------------------------------------------------------------------------ densities
def log_prior_log_alpha(alpha: np.ndarray, prior: GammaPrior) -> float:
    """Σ log p(λ) with λ = log α: η log ν − lnΓ(η) + η λ − ν e^λ summed over all entries."""
    alpha = np.asarray(alpha, dtype=np.float64)
    constant = prior.shape * math.log(prior.rate) - math.lgamma(prior.shape)
    return float(alpha.size * constant + np.sum(prior.shape * np.log(alpha) - prior.rate * alpha))


def dirichlet_logpdf(P: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """log Dir(p_i | α_k), shape (n_rows, n_components) for ``alpha`` (n_components, J)
    (or (n_rows,) for ``alpha`` of shape (J,))."""
    alpha = np.asarray(alpha, dtype=np.float64)
    squeeze = alpha.ndim == 1
    alpha = np.atleast_2d(alpha)
    log_p = np.log(P)
    value = (gammaln(alpha.sum(axis=1)) - gammaln(alpha).sum(axis=1)
             + log_p @ (alpha - 1.0).T)
    return value[:, 0] if squeeze else value


def dirichlet_multinomial_logpmf(counts: SparseCounts | np.ndarray,
                                 alpha: np.ndarray) -> np.ndarray:
    """log DM(x_i | α_k) including the multinomial coefficient N_i! / Π x_ij!.

    log DM = log N! − Σ log x_j! + lnΓ(α₀) − lnΓ(α₀ + N) + Σ_j [lnΓ(α_j + x_j) − lnΓ(α_j)].

    Returns shape (n_rows, n_components) for ``alpha`` (n_components, J), (n_rows,) for (J,).
    """
    if not isinstance(counts, SparseCounts):
        counts = sparse_counts(counts)
    alpha = np.asarray(alpha, dtype=np.float64)
    squeeze = alpha.ndim == 1
    alpha = np.atleast_2d(alpha)
    value = _log_dm_without_coefficient(counts, alpha) + \
        counts.log_coefficient[:, None]
    return value[:, 0] if squeeze else value


def _log_dm_without_coefficient(counts: SparseCounts, alpha: np.ndarray) -> np.ndarray:
    """lnΓ(α₀) − lnΓ(α₀ + N_i) + Σ_j [lnΓ(α_kj + x_ij) − lnΓ(α_kj)], shape (n_rows, K)."""
    alpha = np.ascontiguousarray(np.atleast_2d(alpha), dtype=np.float64)
    out = np.empty((counts.n_rows, alpha.shape[0]))
    arguments = (counts.indptr, counts.entry_pair, counts.pair_columns, counts.pair_values,
                 counts.total_index, counts.total_values, alpha, out)
    work = alpha.shape[0] * (len(counts.pair_values) + len(counts.total_values)
                             + len(counts.values))
    if not _LOG_DM.use_compiled(None, work, arguments):
        return _LOG_DM.run_numpy(_log_dm_numpy, counts.rows, *arguments[1:-1])
    _log_dm_kernel(*arguments)
    return out


def mean_log_sums(histogram: CountHistogram, alpha: np.ndarray) -> np.ndarray:
    """S_kj = Σ_i w_i r_ik E[log q_ij], E[log q_ij] = ψ(α_kj + x_ij) − ψ(α_k0 + N_i) (the mean of
    log q_i under its posterior Dir(α_k + x_i)), from the histogram; shape (K, J)."""
    alpha = np.ascontiguousarray(np.atleast_2d(alpha), dtype=np.float64)
    arguments = (alpha, histogram.weight, histogram.pair_columns, histogram.pair_values,
                 histogram.pair_weight, histogram.total_values, histogram.total_weight)
    work = alpha.shape[0] * (alpha.shape[1] + histogram.pair_values.size
                             + histogram.total_values.size)
    if not _MEAN_LOG.use_compiled(None, work, arguments):
        return _MEAN_LOG.run_numpy(_mean_log_numpy, *arguments)
    return _mean_log_kernel(*arguments)


def polya_objective(alpha: np.ndarray, histogram: CountHistogram, k: int = 0,
                    prior: GammaPrior | None = None) -> float:
    """Σ_i w_i r_ik [log DM(x_i | α) − log multinomial coefficient] (+ the log prior of λ = log α)
    from component ``k`` of ``histogram``."""
    shape, rate = (0.0, 0.0) if prior is None else (float(prior.shape), float(prior.rate))
    arguments = (np.ascontiguousarray(alpha, dtype=np.float64), float(histogram.weight[k]),
                 histogram.pair_columns, histogram.pair_values, histogram.pair_weight[k],
                 histogram.total_values, histogram.total_weight[k], shape, rate)
    if _OBJECTIVE.use_compiled(None, _polya_work(histogram, alpha), arguments):
        value = _polya_objective(*arguments)
    else:
        value = _OBJECTIVE.run_numpy(_polya_objective_numpy, *arguments)
    if prior is not None:  # the kernel leaves out the prior's constant
        value += np.size(alpha) * (prior.shape * math.log(prior.rate) - math.lgamma(prior.shape))
    return float(value)


def polya_map(histogram: CountHistogram, alpha_start: np.ndarray, k: int = 0,
              prior: GammaPrior | None = None, *, method: str = "newton", rtol: float = 1e-7,
              max_iter: int = 500) -> np.ndarray:
    """Maximise :func:`polya_objective` of component ``k`` over α, starting at ``alpha_start``.

    ``method="newton"``: Newton's method with the Hessian z 11ᵀ + diag(d), z = n ψ'(α₀) −
    Σ_t T_t ψ'(α₀ + t) > 0 and d_j = Σ_c R_jc [ψ'(α_j + c) − ψ'(α_j)] − η/α_j² < 0, an O(J)
    Sherman–Morrison solve; where that Hessian is not negative definite (the Dirichlet-multinomial
    likelihood is not concave everywhere), or a halved step still does not ascend, one step of
    Minka's fixed point instead. ``method="fixed-point"``: Minka's fixed point only,
    α_j ← (α_j Σ_c R_jc [ψ(α_j + c) − ψ(α_j)] + η) / (Σ_t T_t [ψ(α₀ + t) − ψ(α₀)] + ν),
    each step the maximiser of a lower bound (Minka 2000, §2), so monotone.
    Either way the objective never decreases from ``alpha_start``.
    """
    if method not in ("newton", "fixed-point"):
        raise ValueError(f"method must be 'newton' or 'fixed-point', got {method!r}")
    shape, rate = (0.0, 0.0) if prior is None else (float(prior.shape), float(prior.rate))
    alpha, _ = _maximise(histogram, np.array(alpha_start, dtype=np.float64), k, shape, rate,
                         float(rtol), int(max_iter), method == "newton")
    return alpha


def polya_map_components(histogram: CountHistogram, alpha: np.ndarray, active: np.ndarray,
                         prior: GammaPrior | None = None, *, rtol: float = 1e-7,
                         max_iter: int = 500) -> np.ndarray:
    """:func:`polya_map` (Newton) for every component k with ``active[k]`` (serially: on a
    shared two-core machine, threads per component ran slower than one); ``alpha`` has shape
    (K, J), inactive components keep theirs. The loop over components is Python's: a compiled
    one saved microseconds per M-step and cost a second of compilation in a new environment."""
    shape, rate = (0.0, 0.0) if prior is None else (float(prior.shape), float(prior.rate))
    out = np.array(alpha, dtype=np.float64)
    for k in np.flatnonzero(active):
        out[k], _ = _maximise(histogram, out[k], int(k), shape, rate, float(rtol), int(max_iter),
                              True)
    return out


def _polya_work(histogram: CountHistogram, alpha: np.ndarray) -> int:
    """The size of one Pólya objective or M-step iteration: pairs + totals + categories."""
    return len(histogram.pair_values) + len(histogram.total_values) + np.size(alpha)


def _maximise(histogram, alpha, k, shape, rate, rtol, max_iter, newton):
    """``_polya_maximise`` on component ``k``, compiled or in numpy (:mod:`emkit.kernels.tiers`)."""
    arguments = (alpha, float(histogram.weight[k]), histogram.pair_columns,
                 histogram.pair_values, histogram.pair_weight[k], histogram.total_values,
                 histogram.total_weight[k], shape, rate, rtol, max_iter, newton)
    if _MAXIMISE.use_compiled(None, _polya_work(histogram, alpha), arguments):
        return _polya_maximise(*arguments)
    return _MAXIMISE.run_numpy(_polya_maximise_numpy, *arguments)


class PolyaFit(NamedTuple):
    alpha: np.ndarray  # (n_categories,)
    objective: float  # weighted log-likelihood (with coefficient) + log prior
    history: np.ndarray  # objective after every step, the start first
    n_iter: int
    converged: bool


def polya_fixed_point(counts: SparseCounts | np.ndarray, alpha_start: np.ndarray,
                      sample_weight: np.ndarray | None = None,
                      prior: GammaPrior | None = None, *, tol: float = 1e-10,
                      max_iter: int = 100_000, xtol: float | None = None) -> PolyaFit:
    """Maximise the Dirichlet-multinomial likelihood (+ log prior) by Minka's fixed point alone
    (:func:`polya_map` with ``method="fixed-point"``, one step at a time to record the objective).

    Stops when the change of the objective per unit of sample weight, and its estimated remaining
    rise, are below ``tol`` (:class:`emkit.core.monitor.ConvergenceMonitor`, the test every EM fit
    uses), and, with ``xtol``, when the estimated remaining change of every log α is below ``xtol``.
    """
    from emkit.core.engine import ConvergenceMonitor
    if not isinstance(counts, SparseCounts):
        counts = sparse_counts(check_counts(counts))
    w = np.ones(counts.n_rows) if sample_weight is None else np.asarray(sample_weight, float)
    histogram = count_histogram(counts, w[:, None])
    if prior is None and np.any(np.bincount(histogram.pair_columns,
                                            weights=histogram.pair_weight[0],
                                            minlength=counts.n_categories) == 0):
        raise DataError("a category has no counts in any row (of positive weight), so its "
                        "maximum-likelihood α is 0: drop it, or use the Gamma prior.")
    coefficient = float(w @ counts.log_coefficient)
    alpha = np.array(alpha_start, dtype=np.float64)
    monitor = ConvergenceMonitor(tol, max(float(w.sum()), 1e-300), xtol=xtol)
    monitor.record(polya_objective(alpha, histogram, 0, prior) + coefficient)
    converged = False
    n_iter = 0
    while n_iter < max_iter and not converged:
        n_iter += 1
        previous, alpha = alpha, polya_map(histogram, alpha, 0, prior, method="fixed-point",
                                           max_iter=1)
        step = float(np.max(np.abs(np.log(alpha) - np.log(previous))))
        converged = monitor.record(polya_objective(alpha, histogram, 0, prior) + coefficient,
                                   param_step=step)
    history = np.asarray(monitor.history)
    return PolyaFit(alpha, history[-1], history, n_iter, converged)


# ------------------------------------------------------------------------------ compiled loops
# ψ, ψ' and the Newton M-step run millions of times in a fit on short vectors, where scipy's
# per-call overhead dominates; these loops do the same arithmetic without it.
_JIT = dict(nogil=True, cache=True)


@numba.njit(**_JIT)
def _digamma(x):
    """ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10, then the asymptotic
    series ln x − 1/(2x) − Σ B₂ₙ/(2n x²ⁿ) to x⁻¹⁴ (error below 1e-16 there)."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (
        1.0 / 240 - inv2 * (1.0 / 132 - inv2 * (691.0 / 32760 - inv2 / 12))))))
    return result + math.log(x) - 0.5 / x - series


@numba.njit(**_JIT)
def _trigamma(x):
    """ψ'(x) for x > 0: ψ'(x) = ψ'(x + 1) + 1/x² up to x ≥ 10, then
    1/x + 1/(2x²) + Σ B₂ₙ/x²ⁿ⁺¹ to x⁻¹⁵."""
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv * (1.0 + inv * (0.5 + inv * (1.0 / 6 - inv2 * (1.0 / 30 - inv2 * (
        1.0 / 42 - inv2 * (1.0 / 30 - inv2 * (5.0 / 66 - inv2 * 691.0 / 2730)))))))
    return result + series


@numba.njit(**_JIT)
def _digamma_trigamma(x):
    """(ψ(x), ψ'(x)) with one shared recurrence (as :func:`_digamma` and :func:`_trigamma`)."""
    psi = 0.0
    psi1 = 0.0
    while x < 10.0:
        inv = 1.0 / x
        psi -= inv
        psi1 += inv * inv
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    psi += math.log(x) - 0.5 * inv - inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (
        1.0 / 252 - inv2 * (1.0 / 240 - inv2 * (1.0 / 132 - inv2 * (691.0 / 32760
                                                                     - inv2 / 12))))))
    psi1 += inv * (1.0 + inv * (0.5 + inv * (1.0 / 6 - inv2 * (1.0 / 30 - inv2 * (
        1.0 / 42 - inv2 * (1.0 / 30 - inv2 * (5.0 / 66 - inv2 * 691.0 / 2730)))))))
    return psi, psi1


_STIRLING_FROM = 20.0


@numba.njit(**_JIT)
def _lgamma_difference(a, c, lgamma_a):
    """lnΓ(a + c) − lnΓ(a) for a > 0, c ≥ 0, given lgamma_a = lnΓ(a) (used only below
    ``_STIRLING_FROM``). For large a the two lnΓ are huge and nearly equal; Stirling's series,
    (a − ½) log1p(c/a) + c log(a + c) − c + τ(a + c) − τ(a) with
    τ(x) = 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷), keeps full relative precision there
    (truncation below 2e-15 for a ≥ 20)."""
    if a < _STIRLING_FROM:
        return math.lgamma(a + c) - lgamma_a
    x = a + c
    return (a - 0.5) * math.log1p(c / a) + c * math.log(x) - c + _stirling_tail_compiled(x) \
        - _stirling_tail_compiled(a)


def _stirling_tail(x):
    """τ(x) of :func:`_lgamma_difference` (scalars compiled, or arrays in numpy)."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 / 1680)))


_stirling_tail_compiled = numba.njit(**_JIT)(_stirling_tail)


def _lgamma_difference_numpy(a, c, lgamma_a):
    """:func:`_lgamma_difference` elementwise over arrays of one shape, same arithmetic (scipy's
    lnΓ below ``_STIRLING_FROM``, Stirling's series above)."""
    small = a < _STIRLING_FROM
    if small.all():
        return gammaln(a + c) - lgamma_a
    if not small.any():
        return _stirling_difference(a, c)
    out = np.empty(a.shape)
    out[small] = gammaln(a[small] + c[small]) - lgamma_a[small]
    out[~small] = _stirling_difference(a[~small], c[~small])
    return out


def _stirling_difference(a, c):
    x = a + c
    return (a - 0.5) * np.log1p(c / a) + c * np.log(x) - c + _stirling_tail(x) - _stirling_tail(a)


def _digamma_trigamma_numpy(x):
    """:func:`_digamma_trigamma` elementwise over an array of x > 0: the recurrence's terms
    1/(x + m), m = 0 … 9, for the entries below 10 at once (x + m < 10 only), then the series."""
    x = np.asarray(x, dtype=np.float64)
    low = x < 10.0
    if not low.any():
        return _psi_series(x)
    shifted = x[low, None] + _SHIFTS
    inv = 1.0 / shifted
    inv[shifted >= 10.0] = 0.0
    x = x.copy()
    x[low] += np.count_nonzero(inv, axis=1)  # the first x + m ≥ 10 (for x > 0, m ≤ 10)
    psi, psi1 = _psi_series(x)
    psi[low] -= inv.sum(axis=1)
    psi1[low] += (inv * inv).sum(axis=1)
    return psi, psi1


_SHIFTS = np.arange(10.0)


def _psi_series(x):
    """(ψ(x), ψ'(x)) for x ≥ 10 by the asymptotic series of :func:`_digamma_trigamma`."""
    inv = 1.0 / x
    inv2 = inv * inv
    psi = np.log(x) - 0.5 * inv - inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (
        1.0 / 252 - inv2 * (1.0 / 240 - inv2 * (1.0 / 132 - inv2 * (691.0 / 32760
                                                                     - inv2 / 12))))))
    psi1 = inv * (1.0 + inv * (0.5 + inv * (1.0 / 6 - inv2 * (1.0 / 30 - inv2 * (
        1.0 / 42 - inv2 * (1.0 / 30 - inv2 * (5.0 / 66 - inv2 * 691.0 / 2730)))))))
    return psi, psi1


@numba.njit(**_JIT)
def _objective(alpha, sum_log, weight, shape, rate):
    """dirichlet_objective without the prior's constant (it does not move the maximiser)."""
    alpha0 = 0.0
    value = 0.0
    for j in range(alpha.size):
        alpha0 += alpha[j]
        value += -weight * math.lgamma(alpha[j]) + (alpha[j] - 1.0) * sum_log[j]
        if shape > 0.0:
            value += shape * math.log(alpha[j]) - rate * alpha[j]
    return value + weight * math.lgamma(alpha0)


def _accepts(value, current, t, gain, relative):
    """The line search of the Newton M-steps: the full step when it ascends, or when its
    predicted gain (half of ``gain`` = g · step) is below the objective's round-off (the
    quadratic region, where comparing objectives says nothing); otherwise a halved step that
    really ascends. Accepting "equal" objectives would let round-off decide where a flat
    maximum ends. Written once for both forms of the iteration."""
    return value > current or (t == 1.0 and 0.0 <= 0.5 * gain < 1e-13 * (abs(current) + 1.0)
                               and relative < 1e-3)


_accepts_compiled = numba.njit(**_JIT)(_accepts)


@numba.njit(**_JIT)
def _newton(sum_log, weight, alpha, shape, rate, rtol, max_iter):
    """The Newton iteration of :func:`dirichlet_map` (see there) on one component."""
    J = alpha.size
    alpha = alpha.copy()
    gradient = np.empty(J)
    d = np.empty(J)
    step = np.empty(J)
    candidate = np.empty(J)
    current = _objective(alpha, sum_log, weight, shape, rate)
    for _ in range(max_iter):
        alpha0 = 0.0
        for j in range(J):
            alpha0 += alpha[j]
        psi0 = _digamma(alpha0)
        z = weight * _trigamma(alpha0)
        sum_g_over_d = 0.0
        sum_inv_d = 0.0
        for j in range(J):
            gradient[j] = weight * (psi0 - _digamma(alpha[j])) + sum_log[j]
            d[j] = -weight * _trigamma(alpha[j])
            if shape > 0.0:
                gradient[j] += shape / alpha[j] - rate
                d[j] -= shape / (alpha[j] * alpha[j])
            sum_g_over_d += gradient[j] / d[j]
            sum_inv_d += 1.0 / d[j]
        # Hessian = diag(d) + z 11ᵀ (d < 0 < z): Sherman–Morrison gives the step in O(J).
        # (the denominator cancels to 0 for a component collapsing onto one row, whose α grows
        # without bound: then the diagonal step, which the line search below still checks)
        denominator = 1.0 / z + sum_inv_d if z > 0.0 else 0.0
        b = sum_g_over_d / denominator if denominator != 0.0 else 0.0
        relative = 0.0
        gain = 0.0  # g · step: twice the increase the quadratic model predicts
        for j in range(J):
            step[j] = -(gradient[j] - b) / d[j]
            gain += gradient[j] * step[j]
            relative = max(relative, abs(step[j]) / alpha[j])
        if relative == 0.0:
            break
        # Halved steps until one is accepted (_accepts).
        t = 1.0
        accepted = False
        while t > 1e-6:
            positive = True
            for j in range(J):
                candidate[j] = min(alpha[j] + t * step[j], ALPHA_MAX)
                if not candidate[j] > 0.0:
                    positive = False
            if positive:
                value = _objective(candidate, sum_log, weight, shape, rate)
                if _accepts_compiled(value, current, t, gain, relative):
                    accepted = True
                    break
            t *= 0.5
        if not accepted:  # no ascent left that round-off can see: α is the maximiser
            break
        for j in range(J):  # (a loop: slice assignment compiles numba's string formatting)
            alpha[j] = candidate[j]
        current = value
        if t == 1.0 and relative < rtol:
            break
    return alpha


def _objective_numpy(alpha, sum_log, weight, shape, rate):
    """``_objective`` in numpy."""
    value = float(np.sum(-weight * gammaln(alpha) + (alpha - 1.0) * sum_log))
    if shape > 0.0:
        value += float(np.sum(shape * np.log(alpha) - rate * alpha))
    return value + weight * float(gammaln(np.cumsum(alpha)[-1]))


def _newton_numpy(sum_log, weight, alpha, shape, rate, rtol, max_iter):
    """``_newton`` in numpy: the same steps, line search and stopping rules."""
    alpha = alpha.copy()
    current = _objective_numpy(alpha, sum_log, weight, shape, rate)
    for _ in range(max_iter):
        psi, psi1 = _digamma_trigamma_numpy(np.concatenate([np.cumsum(alpha)[-1:], alpha]))
        z = weight * float(psi1[0])  # α₀ first, then the α_j
        psi, psi1, psi0 = psi[1:], psi1[1:], float(psi[0])
        gradient = weight * (psi0 - psi) + sum_log
        d = -weight * psi1
        if shape > 0.0:
            gradient = gradient + shape / alpha - rate
            d = d - shape / (alpha * alpha)
        denominator = 1.0 / z + float(np.sum(1.0 / d)) if z > 0.0 else 0.0
        b = float(np.sum(gradient / d)) / denominator if denominator != 0.0 else 0.0
        step = -(gradient - b) / d
        gain = float(gradient @ step)
        relative = float(np.max(np.abs(step) / alpha))
        if relative == 0.0:
            break
        t, accepted = 1.0, False
        while t > 1e-6:
            candidate = np.minimum(alpha + t * step, ALPHA_MAX)
            if (candidate > 0.0).all():
                value = _objective_numpy(candidate, sum_log, weight, shape, rate)
                if _accepts(value, current, t, gain, relative):
                    accepted = True
                    break
            t *= 0.5
        if not accepted:
            break
        alpha, current = candidate, value
        if t == 1.0 and relative < rtol:
            break
    return alpha


@numba.njit(**_JIT)
def _log_dm_kernel(indptr, entry_pair, pair_columns, pair_values, total_index, total_values,
                   alpha, out):
    """out[i, k] = lnΓ(α_k0) − lnΓ(α_k0 + N_i) + Σ_{j: x_ij > 0} [lnΓ(α_kj + x_ij) − lnΓ(α_kj)],
    with lnΓ evaluated once per distinct (j, c) pair and total."""
    K, J = alpha.shape
    U = pair_values.size
    T = total_values.size
    pair_table = np.empty((K, U))
    total_table = np.empty((K, T))
    lgamma_alpha = np.empty(J)
    for k in range(K):
        alpha0 = 0.0
        for j in range(J):
            alpha0 += alpha[k, j]
            lgamma_alpha[j] = math.lgamma(alpha[k, j]) if alpha[k, j] < _STIRLING_FROM else 0.0
        lgamma0 = math.lgamma(alpha0) if alpha0 < _STIRLING_FROM else 0.0
        for t in range(T):
            total_table[k, t] = -_lgamma_difference(alpha0, total_values[t], lgamma0)
        for u in range(U):
            j = pair_columns[u]
            pair_table[k, u] = _lgamma_difference(alpha[k, j], pair_values[u], lgamma_alpha[j])
    for i in range(len(total_index)):
        for k in range(K):
            s = total_table[k, total_index[i]]
            for e in range(indptr[i], indptr[i + 1]):
                s += pair_table[k, entry_pair[e]]
            out[i, k] = s


def _log_dm_numpy(rows, entry_pair, pair_columns, pair_values, total_index, total_values,
                  alpha):
    """What ``_log_dm_kernel`` writes to ``out``, in numpy (``rows``: each entry's row)."""
    K = alpha.shape[0]
    alpha0 = np.cumsum(alpha, axis=1)[:, -1]  # summed in order, as the loop does
    lgamma_alpha = gammaln(alpha)
    total_table = -_lgamma_difference_numpy(
        *np.broadcast_arrays(alpha0[:, None], total_values, gammaln(alpha0)[:, None]))
    pair_table = _lgamma_difference_numpy(alpha[:, pair_columns],
                                          np.broadcast_to(pair_values, (K, pair_values.size)),
                                          lgamma_alpha[:, pair_columns])
    out = np.empty((total_index.size, K))
    for k in range(K):
        out[:, k] = total_table[k, total_index] + np.bincount(
            rows, weights=pair_table[k, entry_pair], minlength=total_index.size)
    return out


@numba.njit(**_JIT)
def _histogram_kernel(indptr, entry_pair, total_index, weighted_resp, n_pairs, n_totals):
    K = weighted_resp.shape[1]
    pair_weight = np.zeros((K, n_pairs))
    total_weight = np.zeros((K, n_totals))
    for i in range(len(total_index)):
        for k in range(K):
            r = weighted_resp[i, k]
            total_weight[k, total_index[i]] += r
            for e in range(indptr[i], indptr[i + 1]):
                pair_weight[k, entry_pair[e]] += r
    return pair_weight, total_weight


def _histogram_numpy(rows, entry_pair, total_index, weighted_resp, n_pairs, n_totals):
    """``_histogram_kernel`` in numpy (``rows``: each entry's row); the same sums in the same
    order, so the same numbers."""
    K = weighted_resp.shape[1]
    pair_weight = np.empty((K, n_pairs))
    total_weight = np.empty((K, n_totals))
    for k in range(K):
        r = weighted_resp[:, k]
        pair_weight[k] = np.bincount(entry_pair, weights=r[rows], minlength=n_pairs)
        total_weight[k] = np.bincount(total_index, weights=r, minlength=n_totals)
    return pair_weight, total_weight


@numba.njit(**_JIT)
def _mean_log_kernel(alpha, weight, pair_columns, pair_values, pair_weight, total_values,
                     total_weight):
    """S_kj = n_k ψ(α_kj) − Σ_t T_kt ψ(α_k0 + t) + Σ_c R_k,(j,c) [ψ(α_kj + c) − ψ(α_kj)]."""
    K, J = alpha.shape
    out = np.empty((K, J))
    for k in range(K):
        alpha0 = 0.0
        for j in range(J):
            alpha0 += alpha[k, j]
        totals_term = 0.0
        for t in range(total_values.size):
            if total_weight[k, t] != 0.0:
                totals_term += total_weight[k, t] * _digamma(alpha0 + total_values[t])
        psi = np.empty(J)
        for j in range(J):
            psi[j] = _digamma(alpha[k, j])
            out[k, j] = weight[k] * psi[j] - totals_term
        for u in range(pair_values.size):
            r = pair_weight[k, u]
            if r != 0.0:
                j = pair_columns[u]
                out[k, j] += r * (_digamma(alpha[k, j] + pair_values[u]) - psi[j])
    return out


def _mean_log_numpy(alpha, weight, pair_columns, pair_values, pair_weight, total_values,
                    total_weight):
    """``_mean_log_kernel`` in numpy."""
    K, J = alpha.shape
    psi_totals = _digamma_trigamma_numpy(np.cumsum(alpha, axis=1)[:, -1:] + total_values)[0]
    psi = _digamma_trigamma_numpy(alpha)[0]
    out = weight[:, None] * psi - np.sum(total_weight * psi_totals, axis=1, keepdims=True)
    if pair_values.size:
        shifted = _digamma_trigamma_numpy(alpha[:, pair_columns] + pair_values)[0]
        terms = pair_weight * (shifted - psi[:, pair_columns])
        for k in range(K):
            out[k] += np.bincount(pair_columns, weights=terms[k], minlength=J)
    return out


@numba.njit(**_JIT)
def _polya_objective(alpha, weight, pair_columns, pair_values, pair_weight, total_values,
                     total_weight, shape, rate):
    # Σ_t T_t [lnΓ(α₀) − lnΓ(α₀ + t)] + Σ_(j,c) R_jc [lnΓ(α_j + c) − lnΓ(α_j)] (Σ_t T_t = n),
    # each difference computed without cancellation (_lgamma_difference).
    alpha0 = 0.0
    value = 0.0
    lgamma_alpha = np.empty(alpha.size)
    for j in range(alpha.size):
        alpha0 += alpha[j]
        lgamma_alpha[j] = math.lgamma(alpha[j]) if alpha[j] < _STIRLING_FROM else 0.0
        if shape > 0.0:
            value += shape * math.log(alpha[j]) - rate * alpha[j]
    for u in range(pair_values.size):
        r = pair_weight[u]
        if r != 0.0:
            j = pair_columns[u]
            value += r * _lgamma_difference(alpha[j], pair_values[u], lgamma_alpha[j])
    lgamma0 = math.lgamma(alpha0) if alpha0 < _STIRLING_FROM else 0.0
    for t in range(total_values.size):
        if total_weight[t] != 0.0:
            value -= total_weight[t] * _lgamma_difference(alpha0, total_values[t], lgamma0)
    return value


@numba.njit(**_JIT)
def _polya_maximise(alpha, weight, pair_columns, pair_values, pair_weight, total_values,
                    total_weight, shape, rate, rtol, max_iter, newton):
    """The iteration of :func:`polya_map` (see there); returns (α, number of steps)."""
    J = alpha.size
    alpha = alpha.copy()
    A = np.empty(J)  # Σ_c R_jc [ψ(α_j + c) − ψ(α_j)]
    d = np.empty(J)  # the Hessian's diagonal part
    column_weight = np.zeros(J)
    for u in range(pair_values.size):
        column_weight[pair_columns[u]] += pair_weight[u]
    candidate = np.empty(J)
    step = np.empty(J)
    current = _polya_objective(alpha, weight, pair_columns, pair_values, pair_weight,
                               total_values, total_weight, shape, rate)
    n_steps = 0
    for _ in range(max_iter):
        n_steps += 1
        alpha0 = 0.0
        for j in range(J):
            alpha0 += alpha[j]
        psi, psi1 = _digamma_trigamma(alpha0)
        B = -weight * psi  # Σ_t T_t [ψ(α₀ + t) − ψ(α₀)]
        z = weight * psi1
        for t in range(total_values.size):
            if total_weight[t] != 0.0:
                psi, psi1 = _digamma_trigamma(alpha0 + total_values[t])
                B += total_weight[t] * psi
                z -= total_weight[t] * psi1
        for j in range(J):
            psi, psi1 = _digamma_trigamma(alpha[j])
            A[j] = -column_weight[j] * psi
            d[j] = -column_weight[j] * psi1 - shape / (alpha[j] * alpha[j])
        for u in range(pair_values.size):
            r = pair_weight[u]
            if r != 0.0:
                j = pair_columns[u]
                psi, psi1 = _digamma_trigamma(alpha[j] + pair_values[u])
                A[j] += r * psi
                d[j] += r * psi1
        accepted = False
        relative = 0.0
        if newton:
            sum_g_over_d = 0.0
            sum_inv_d = 0.0
            definite = True
            for j in range(J):
                if not d[j] < 0.0:
                    definite = False
                    break
                sum_g_over_d += (A[j] - B + shape / alpha[j] - rate) / d[j]
                sum_inv_d += 1.0 / d[j]
            # diag(d) + z 11ᵀ is negative definite iff 1 + z Σ 1/d_j > 0 (d < 0 < z).
            if definite and z > 0.0 and 1.0 + z * sum_inv_d > 0.0:
                b = sum_g_over_d / (1.0 / z + sum_inv_d)
                gain = 0.0  # g · step: twice the increase the quadratic model predicts
                for j in range(J):
                    gradient_j = A[j] - B + shape / alpha[j] - rate
                    step[j] = -(gradient_j - b) / d[j]
                    gain += gradient_j * step[j]
                    relative = max(relative, abs(step[j]) / alpha[j])
                positive = True
                for j in range(J):
                    candidate[j] = alpha[j] + step[j]
                    positive &= candidate[j] > 0.0
                if positive:
                    # A predicted gain below the objective's round-off cannot be verified (and
                    # "equal" objectives would accept any tiny step): in the quadratic region
                    # the full Newton step is right. Otherwise it must really ascend.
                    # (A negative or a large "gain" is no quadratic region: H is nearly
                    # singular there and round-off decides the step.)
                    if 0.0 <= 0.5 * gain < 1e-13 * (abs(current) + 1.0) and relative < 1e-3:
                        accepted = True
                        value = current + 0.5 * gain
                    else:
                        value = _polya_objective(candidate, weight, pair_columns, pair_values,
                                                 pair_weight, total_values, total_weight, shape,
                                                 rate)
                        accepted = value > current
                t = 0.5
                while not accepted and t > 1e-6:  # halving; if that fails, the fixed point
                    positive = True
                    for j in range(J):
                        candidate[j] = alpha[j] + t * step[j]
                        if not candidate[j] > 0.0:
                            positive = False
                    if positive:
                        value = _polya_objective(candidate, weight, pair_columns, pair_values,
                                                 pair_weight, total_values, total_weight, shape,
                                                 rate)
                        if value > current:
                            accepted = True
                            relative = 1.0  # a damped step: not converged yet
                            break
                    t *= 0.5
        if not accepted:  # Minka's fixed point: maximises a lower bound, never decreases
            if not B + rate > 0.0:
                break  # an empty component without a prior: nothing to fit
            relative = 0.0
            for j in range(J):
                candidate[j] = max((alpha[j] * A[j] + shape) / (B + rate), 1e-100)
                relative = max(relative, abs(candidate[j] - alpha[j]) / alpha[j])
            # The step maximises a lower bound that touches the objective at α, so it cannot
            # decrease it beyond round-off; round-off "decreases" are accepted (rejecting them
            # would stall the iteration on a flat ridge), real ones end it: they come from α
            # running off to ∞ (a component without over-dispersion, whose maximum-likelihood
            # α is infinite), where the arithmetic of the bound breaks down.
            value = _polya_objective(candidate, weight, pair_columns, pair_values, pair_weight,
                                     total_values, total_weight, shape, rate)
            if not value >= current - 1e-12 * (abs(current) + 1.0):
                break
        for j in range(J):  # (a loop: slice assignment compiles numba's string formatting)
            alpha[j] = candidate[j]
        current = value
        # A small Newton step means quadratic convergence: done. A small fixed-point step does
        # not (its convergence is linear and can be slow), so it must be far smaller.
        if relative < (rtol if accepted else 1e-15):
            break
    return alpha, n_steps


# Counts below this enter the numpy forms through lnΓ(a + c) − lnΓ(a) = Σ_{m<c} log(a + m) and
# its derivatives, gathered per category (Minka 2000, §2): a (categories × _SMALL_COUNTS) table
# in place of ψ and ψ' at every small pair, which is most of a numpy step's cost otherwise.
_SMALL_COUNTS = 16


class _PolyaTerms(NamedTuple):
    """One component's histogram as the numpy forms of the Pólya objective and M-step use it:
    pairs of non-zero weight split at ``_SMALL_COUNTS``."""

    tail: np.ndarray  # (J, _SMALL_COUNTS − 1) G_jm = Σ_{m < c < _SMALL_COUNTS} R_jc
    shifts: np.ndarray  # (_SMALL_COUNTS − 1,) m = 0, 1, …
    columns: np.ndarray  # the larger counts' pairs: category j,
    values: np.ndarray  # count c,
    weight: np.ndarray  # and R_jc
    column_weight: np.ndarray  # (J,) Σ_c R_jc over the larger counts
    total_values: np.ndarray  # totals t of non-zero weight
    total_weight: np.ndarray  # and their T_t


def _polya_terms(n_categories, pair_columns, pair_values, pair_weight, total_values,
                 total_weight) -> _PolyaTerms:
    small = (pair_values < _SMALL_COUNTS) & (pair_weight != 0.0)
    large = (pair_values >= _SMALL_COUNTS) & (pair_weight != 0.0)
    counts = np.bincount(pair_columns[small] * _SMALL_COUNTS + pair_values[small].astype(np.int64),
                         weights=pair_weight[small], minlength=n_categories * _SMALL_COUNTS)
    # tail[j, m] = Σ_{c > m} counts[j, c]: reversed cumulative sums, shifted by one
    tail = np.cumsum(counts.reshape(n_categories, _SMALL_COUNTS)[:, :0:-1], axis=1)[:, ::-1]
    columns = pair_columns[large]
    weight = pair_weight[large]
    totals = total_weight != 0.0
    return _PolyaTerms(np.ascontiguousarray(tail), np.arange(_SMALL_COUNTS - 1.0), columns,
                       pair_values[large], weight,
                       np.bincount(columns, weights=weight, minlength=n_categories),
                       total_values[totals], total_weight[totals])


def _polya_objective_numpy(alpha, weight, pair_columns, pair_values, pair_weight, total_values,
                           total_weight, shape, rate):
    """``_polya_objective`` in numpy."""
    terms = _polya_terms(alpha.size, pair_columns, pair_values, pair_weight, total_values,
                         total_weight)
    return _terms_objective(alpha, terms, shape, rate)


def _terms_objective(alpha, terms: _PolyaTerms, shape, rate):
    """``_polya_objective`` from :func:`_polya_terms`."""
    alpha0 = np.cumsum(alpha)[-1]  # summed in order, as the loop does
    value = float(np.sum(shape * np.log(alpha) - rate * alpha)) if shape > 0.0 else 0.0
    value += float(np.sum(terms.tail * np.log(alpha[:, None] + terms.shifts)))
    value += terms.weight @ _lgamma_difference_numpy(alpha[terms.columns], terms.values,
                                                     gammaln(alpha)[terms.columns])
    size = terms.total_values.size
    value -= terms.total_weight @ _lgamma_difference_numpy(
        np.full(size, alpha0), terms.total_values, np.full(size, gammaln(alpha0)))
    return float(value)


def _polya_maximise_numpy(alpha, weight, pair_columns, pair_values, pair_weight, total_values,
                          total_weight, shape, rate, rtol, max_iter, newton):
    """``_polya_maximise`` in numpy: the same iteration and decisions, each step's sums over
    pairs and totals at once (the small counts' through :class:`_PolyaTerms`' table)."""
    J = alpha.size
    terms = _polya_terms(J, pair_columns, pair_values, pair_weight, total_values, total_weight)
    T = terms.total_values.size
    alpha = alpha.copy()
    current = _terms_objective(alpha, terms, shape, rate)
    n_steps = 0
    for _ in range(max_iter):
        n_steps += 1
        alpha0 = np.cumsum(alpha)[-1]
        # ψ and ψ' at α₀, at α₀ + t for every total, at α_j, and at α_j + c for the larger c
        psi, psi1 = _digamma_trigamma_numpy(np.concatenate(
            ([alpha0], alpha0 + terms.total_values, alpha, alpha[terms.columns] + terms.values)))
        B = -weight * psi[0] + terms.total_weight @ psi[1:T + 1]
        z = weight * psi1[0] - terms.total_weight @ psi1[1:T + 1]
        inv = 1.0 / (alpha[:, None] + terms.shifts)  # Σ_{m<c} 1/(α_j + m) = ψ(α_j + c) − ψ(α_j)
        small = terms.tail * inv
        A = small.sum(axis=1) - terms.column_weight * psi[T + 1:T + 1 + J] + np.bincount(
            terms.columns, weights=terms.weight * psi[T + 1 + J:], minlength=J)
        d = -(small * inv).sum(axis=1) - terms.column_weight * psi1[T + 1:T + 1 + J] \
            - shape / (alpha * alpha) + np.bincount(
                terms.columns, weights=terms.weight * psi1[T + 1 + J:], minlength=J)
        accepted = False
        relative = 0.0
        if newton and np.all(d < 0.0):
            gradient = A - B + shape / alpha - rate
            sum_inv_d = float(np.sum(1.0 / d))
            # diag(d) + z 11ᵀ is negative definite iff 1 + z Σ 1/d_j > 0 (d < 0 < z).
            if z > 0.0 and 1.0 + z * sum_inv_d > 0.0:
                b = float(np.sum(gradient / d)) / (1.0 / z + sum_inv_d)
                step = -(gradient - b) / d
                gain = float(gradient @ step)
                relative = float(np.max(np.abs(step) / alpha))
                candidate = alpha + step
                if np.all(candidate > 0.0):
                    if 0.0 <= 0.5 * gain < 1e-13 * (abs(current) + 1.0) and relative < 1e-3:
                        accepted = True
                        value = current + 0.5 * gain
                    else:
                        value = _terms_objective(candidate, terms, shape, rate)
                        accepted = value > current
                t = 0.5
                while not accepted and t > 1e-6:
                    candidate = alpha + t * step
                    if np.all(candidate > 0.0):
                        value = _terms_objective(candidate, terms, shape, rate)
                        if value > current:
                            accepted = True
                            relative = 1.0
                            break
                    t *= 0.5
        if not accepted:
            if not B + rate > 0.0:
                break
            candidate = np.maximum((alpha * A + shape) / (B + rate), 1e-100)
            relative = float(np.max(np.abs(candidate - alpha) / alpha))
            value = _terms_objective(candidate, terms, shape, rate)
            if not value >= current - 1e-12 * (abs(current) + 1.0):
                break
        alpha = candidate
        current = value
        if relative < (rtol if accepted else 1e-15):
            break
    return alpha, n_steps


# Each compiled entry point a fit calls, with its numpy form (emkit.kernels.tiers): numpy on
# small inputs until the compiled form is in numba's cache or its numpy time has paid for
# compiling. The last argument: seconds that compiling the loop with its callees took in a new
# environment (numba 0.68, 2 cores). Work, and what set the size from which the compiled form
# always runs:
# - M-step, per Newton step: pairs + totals + categories. On twins (3240) a numpy step takes
#   about 0.3 ms, 2–4× the compiled one, mostly fixed costs; at 16k a fit's few thousand steps
#   cost as much more in numpy as compiling does.
# - objective: the same units, one evaluation.
# - log-densities: K × (pairs + totals + entries), about 25 ns each in numpy, 5× the loop; from
#   10⁶ a hundred E-steps cost more than compiling.
# - histograms: K × (entries + rows); numpy's bincount is as fast as the loop at any size.
_MAXIMISE = tiers.TwoForms(_polya_maximise, 1 << 14, 2.0)
_NEWTON = tiers.TwoForms(_newton, 1 << 14, 1.0)
_MEAN_LOG = tiers.TwoForms(_mean_log_kernel, 1 << 16, 0.6)
_OBJECTIVE = tiers.TwoForms(_polya_objective, 1 << 16, 0.8)
_LOG_DM = tiers.TwoForms(_log_dm_kernel, 1 << 20, 0.7)
_HISTOGRAM = tiers.TwoForms(_histogram_kernel, 1 << 26, 0.5)


# ------------------------------------------------------------------------------ the families
class CompoundDirichletStats(NamedTuple):
    """Statistics of Dirichlet components (proportions). Additive: the field-wise sum of two
    chunks' statistics is the statistic of both."""

    weight: np.ndarray  # (K,) n_k = Σ_i w_i r_ik
    sum_log: np.ndarray  # (K, J) S_kj = Σ_i w_i r_ik E[log q_ij]


# A component with less than this share of the total weight and no prior keeps its α: α does
# not enter the expected log-likelihood then, so keeping it is a maximiser (and no solve on zeros).
_EMPTY_FRACTION = 1e-12
LATENT = ("components", "probabilities")


class _DirichletComponentsFamily(FamilyDefaults):
    """What both Dirichlet families share: parameters are α (K, J) > 0, the optional Gamma
    prior on λ = log α, SQUAREM in λ, and the start."""

    def __init__(self, prior: GammaPrior | None = None):
        if prior is not None and not (prior.shape > 0 and prior.rate > 0):
            raise ParameterError(f"the Gamma prior needs shape > 0 and rate > 0, got {prior}.")
        self.prior = prior

    def component_weights(self, stats) -> np.ndarray:
        return stats.weight

    def _active(self, stats) -> np.ndarray:
        return (stats.weight > _EMPTY_FRACTION * float(stats.weight.sum())) | (
            self.prior is not None)

    def _dirichlet_m_step(self, stats: CompoundDirichletStats,
                          alpha: np.ndarray) -> tuple[np.ndarray, tuple]:
        alpha = alpha.copy()
        for k in np.flatnonzero(self._active(stats)):
            alpha[k] = dirichlet_map(stats.sum_log[k], float(stats.weight[k]), alpha[k],
                                     self.prior)
        return alpha, ()

    def log_prior(self, alpha: np.ndarray) -> float:
        return 0.0 if self.prior is None else log_prior_log_alpha(alpha, self.prior)

    def flatten(self, alpha: np.ndarray) -> np.ndarray:
        return np.log(alpha).ravel()

    def unflatten(self, vector: np.ndarray, template: np.ndarray) -> np.ndarray:
        alpha = np.exp(vector).reshape(template.shape)
        if not np.all((alpha > 0) & np.isfinite(alpha)):
            raise FloatingPointError("α outside (0, ∞)")
        return alpha

    def n_parameters(self, n_components: int, n_features: int) -> int:
        return n_components * n_features

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Hard clusters from k-means++ seeds on the proportions, each cluster's α from the
        method of moments, jittered so that every start differs (even with one component)."""
        P = np.concatenate([self.proportions(data) for data, _ in parts])
        w = np.concatenate([np.ones(self.n_rows(data)) if weights is None else weights
                            for data, weights in parts])
        keep = w > 0
        P, w = P[keep], w[keep]
        K = n_components
        if len(P) < K:
            raise DataError(f"{K} components need at least {K} rows of positive weight, got "
                            f"{len(P)}.")
        if K == 1:
            assignment = np.zeros(len(P), dtype=int)
        else:
            from sklearn.cluster import kmeans_plusplus

            centres, _ = kmeans_plusplus(P, K, random_state=int(rng.integers(0, 2**31 - 1)),
                                         sample_weight=w)
            # Nearest centre by plain numpy: sklearn's pairwise_distances_argmin costs ~50 ms of
            # dispatch per call here, more than a whole EM fit of the twins data.
            distances = (np.einsum("ij,ij->i", P, P)[:, None] - 2.0 * P @ centres.T
                         + np.einsum("kj,kj->k", centres, centres))
            assignment = distances.argmin(axis=1)
        alpha = np.empty((K, P.shape[1]))
        weights = np.empty(K)
        for k in range(K):
            members = assignment == k
            if not members.any():  # k-means++ seeds are rows, so this is a tie: use all rows
                members = np.ones(len(P), dtype=bool)
            alpha[k] = _moment_alpha(P[members], w[members])
            weights[k] = w[members].sum()
        alpha *= np.exp(0.1 * rng.standard_normal(alpha.shape))
        return weights / weights.sum(), alpha


def _moment_alpha(P: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A rough Dirichlet α from the weighted mean and variance of proportions (Minka 2000, §1):
    mean m_j, precision s from m_j (1 − m_j) / var_j = s + 1 (median over categories)."""
    total = w.sum()
    mean = (w @ P + 1e-3) / (total + 1e-3 * P.shape[1])  # a pseudo-count keeps every α_j > 0
    variance = w @ (P - mean) ** 2 / total
    ratio = mean * (1 - mean) / np.maximum(variance, 1e-12)
    precision = float(np.clip(np.median(ratio) - 1.0, 0.5, 1e4)) if len(P) > 1 else 1.0
    return mean * precision


class DirichletFamily(_DirichletComponentsFamily):
    """K Dirichlet components over rows on the simplex (the
    :class:`~emkit.families.base.ComponentFamily` contract). Rows are read as log p; the
    statistics are n_k and Σ_i w_i r_ik log p_ij, the M-step :func:`dirichlet_map`."""

    def read(self, P) -> np.ndarray:
        P = np.asarray(P)
        if P.ndim == 2 and len(P) == 0:
            return np.zeros((0, max(P.shape[1], 2)))
        return np.log(check_proportions(P))

    def log_density(self, alpha: np.ndarray, log_p: np.ndarray) -> np.ndarray:
        return (gammaln(alpha.sum(axis=1)) - gammaln(alpha).sum(axis=1)
                + log_p @ (alpha - 1.0).T)

    def statistics(self, alpha: np.ndarray, log_p: np.ndarray,
                   weights: np.ndarray) -> CompoundDirichletStats:
        return CompoundDirichletStats(weights.sum(axis=0), weights.T @ log_p)

    def m_step(self, stats: CompoundDirichletStats,
               alpha: np.ndarray) -> tuple[np.ndarray, tuple]:
        return self._dirichlet_m_step(stats, alpha)

    def proportions(self, log_p: np.ndarray) -> np.ndarray:
        return np.exp(log_p)


class DirichletMultinomialFamily(_DirichletComponentsFamily):
    """K Dirichlet-multinomial (Pólya) components over count vectors (the
    :class:`~emkit.families.base.ComponentFamily` contract). Rows are read as
    :class:`SparseCounts`; the statistics are :class:`CountHistogram`. ``latent`` chooses the
    M-step: ``"components"`` maximises each component's weighted Dirichlet-multinomial
    likelihood exactly (:func:`polya_map_components`); ``"probabilities"`` is the Dirichlet MLE
    from the mean-log statistics at the E-step's α (:func:`mean_log_sums`)."""

    def __init__(self, prior: GammaPrior | None = None, latent: str = "components"):
        super().__init__(prior)
        if latent not in LATENT:
            raise ParameterError(f"latent must be one of {LATENT}, got {latent!r}.")
        self.latent = latent

    def read(self, X) -> SparseCounts:
        if isinstance(X, SparseCounts):  # converted and checked once already
            return X
        X = np.asarray(X)
        if X.ndim == 2 and len(X) == 0:
            return sparse_counts(np.zeros((0, max(X.shape[1], 2))))
        return sparse_counts(check_counts(X))

    def n_rows(self, counts: SparseCounts) -> int:
        return counts.n_rows

    def log_density(self, alpha: np.ndarray, counts: SparseCounts) -> np.ndarray:
        return _log_dm_without_coefficient(counts, alpha) + counts.log_coefficient[:, None]

    def statistics(self, alpha: np.ndarray, counts: SparseCounts,
                   weights: np.ndarray) -> CountHistogram:
        return count_histogram(counts, weights)

    def m_step(self, stats: CountHistogram, alpha: np.ndarray) -> tuple[np.ndarray, tuple]:
        if self.latent == "probabilities":
            # E[log q_ij] under the posterior at the E-step's α (the α passed in with the stats).
            return self._dirichlet_m_step(
                CompoundDirichletStats(stats.weight, mean_log_sums(stats, alpha)), alpha)
        # All components in one compiled call; an empty component keeps its α (no prior).
        return polya_map_components(stats, alpha, self._active(stats), self.prior), ()

    def proportions(self, counts: SparseCounts) -> np.ndarray:
        P = np.zeros((counts.n_rows, counts.n_categories))
        P[counts.rows, counts.columns] = counts.values / counts.totals[counts.rows]
        return P
