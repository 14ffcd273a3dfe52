"""Gaussian components and rows with missing values (NaN), missing at random.

For a row with observed coordinates o and missing coordinates m, and a component N(μ, Σ):

- its density is the marginal N(x_o | μ_o, Σ_oo);
- the missing coordinates have the conditional distribution N(x̂_m, C) with
  x̂_m = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) and C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om;
- the exact E-step statistics use the completed row x̂ = (x_o, x̂_m) and add C to the second
  moment of the missing block: E[(x − c)(x − c)ᵀ | x_o] = (x̂ − c)(x̂ − c)ᵀ + [0 0; 0 C].

Rows are grouped by their pattern of missing coordinates, so Σ_oo is factorised once per pattern
and component, not once per row. A row with no observed value has density 1 (log 0) under every
component and contributes no statistics: it carries no information.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy import linalg

from emkit.kernels import gaussian as kernels

if TYPE_CHECKING:
    from emkit.families.gaussian import GaussianFamily, GaussianParams

_LOG_2PI = math.log(2.0 * math.pi)


def pattern_index(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct patterns of X: ``observed`` (P, D) bool, and ``order``, ``starts`` such that
    the rows of pattern p are ``order[starts[p]:starts[p + 1]]``."""
    missing = np.isnan(X)
    if len(X) == 0:
        return np.ones((0, X.shape[1]), dtype=bool), np.zeros(0, dtype=np.intp), np.zeros(1, int)
    packed = np.packbits(missing, axis=1)  # one key per row: its bit pattern
    if packed.shape[1] <= 8:
        keys = np.zeros((len(X), 8), dtype=np.uint8)
        keys[:, : packed.shape[1]] = packed
        keys = keys.view(np.uint64).ravel()
    else:  # more than 64 columns: rank the distinct byte strings
        keys = np.unique(packed, axis=0, return_inverse=True)[1].ravel()
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
    patterns = missing[order[starts[:-1]]]
    return ~patterns, order, starts


class RowLayout(NamedTuple):
    """Where the NaN are in a block of rows, shared by the density and the statistics passes.

    ``complete`` and ``incomplete`` index the rows of the block: index arrays in general, slices
    when the rows are sorted (complete rows first, then pattern by pattern; see
    :func:`sort_by_pattern`)."""

    complete: np.ndarray | slice  # rows without NaN
    incomplete: np.ndarray | slice  # rows with NaN
    values: np.ndarray  # X[incomplete] as float64
    observed: np.ndarray  # (P, D) observed coordinates of each pattern
    order: np.ndarray  # rows of pattern p (into ``values``): order[starts[p]:starts[p + 1]]
    starts: np.ndarray
    empty: np.ndarray  # bool (n,): rows with nothing observed

    @property
    def n_complete(self) -> int:
        if isinstance(self.complete, slice):
            return self.complete.stop - self.complete.start
        return len(self.complete)


class Complete:
    """The type of :data:`COMPLETE` (data known to have no NaN)."""

    def __repr__(self) -> str:
        return "COMPLETE"


# Passed as ``rows``: data known to have no NaN, so the scan that ``rows=None`` asks for is
# skipped (data that stay the same over a fit are scanned once, not in every E-step).
COMPLETE = Complete()


def known_layout(X: np.ndarray, rows: RowLayout | Complete | None) -> RowLayout | None:
    """``rows`` if given (None for :data:`COMPLETE`), else the layout of X."""
    if rows is None:
        return layout(X)
    return None if rows is COMPLETE else rows


def layout(X: np.ndarray) -> RowLayout | None:
    """The missingness layout of X, or None when X has no NaN."""
    if X.ndim == 2 and X.dtype.kind == "f" and not kernels.any_nan(X):
        return None
    nan = np.isnan(X)
    has_nan = nan.any(axis=1)
    if not has_nan.any():
        return None
    incomplete = np.flatnonzero(has_nan)
    values = np.asarray(X[incomplete], dtype=np.float64)
    observed, order, starts = pattern_index(values)
    return RowLayout(np.flatnonzero(~has_nan), incomplete, values, observed, order, starts,
                     nan.all(axis=1))


def sort_by_pattern(X: np.ndarray) -> tuple[np.ndarray, RowLayout | None]:
    """A permutation of the rows of X (complete rows first, then the incomplete rows pattern by
    pattern) and the layout of ``X[permutation]``, whose row sets are slices; the layout is None
    when X has no NaN (and the permutation the identity)."""
    rows = layout(X)
    if rows is None:
        return np.arange(len(X)), None
    permutation = np.concatenate([rows.complete, rows.incomplete[rows.order]])
    n_complete = len(rows.complete)
    sorted_rows = RowLayout(slice(0, n_complete), slice(n_complete, len(X)),
                            rows.values[rows.order], rows.observed,
                            np.arange(len(rows.order)), rows.starts, rows.empty[permutation])
    return permutation, sorted_rows


def missingness_groups(X: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(observed mask of length D, row indices) for every distinct pattern of NaN in X."""
    observed, order, starts = pattern_index(X)
    for p in range(len(observed)):
        yield observed[p], order[starts[p]:starts[p + 1]]


def full_covariances(family: GaussianFamily, params: GaussianParams) -> np.ndarray:
    """Every component's covariance as a (K, D, D) matrix, whatever the covariance type."""
    n_components, n_features = params.means.shape
    cov = params.covariances
    kind = family.covariance_type
    if kind == "full":
        return cov
    if kind == "tied":
        return np.broadcast_to(cov, (n_components, n_features, n_features))
    variances = cov if kind == "diag" else np.repeat(cov[:, None], n_features, axis=1)
    return variances[:, :, None] * np.eye(n_features)


class Conditional:
    """One component's marginal and conditional distributions for one pattern of missingness."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray, observed: np.ndarray):
        self.observed, self.missing = observed, ~observed
        self.mean = mean
        obs_cov = cov[np.ix_(observed, observed)]
        self.cholesky = linalg.cholesky(obs_cov, lower=True, check_finite=False)
        cross = cov[np.ix_(observed, self.missing)]
        self.regression = linalg.cho_solve((self.cholesky, True), cross, check_finite=False)
        self.covariance = cov[np.ix_(self.missing, self.missing)] - cross.T @ self.regression

    def log_density(self, X: np.ndarray) -> np.ndarray:
        """log N(x_o | μ_o, Σ_oo) of rows X (n, D) that share this pattern."""
        deviation = X[:, self.observed] - self.mean[self.observed]
        z = linalg.solve_triangular(self.cholesky, deviation.T, lower=True, check_finite=False)
        log_det = 2.0 * np.sum(np.log(np.diag(self.cholesky)))
        n_observed = int(self.observed.sum())
        return -0.5 * (n_observed * _LOG_2PI + log_det + np.sum(z * z, axis=0))

    def completed(self, X: np.ndarray) -> np.ndarray:
        """Rows with the missing coordinates replaced by their conditional means x̂_m."""
        filled = np.array(X, dtype=np.float64, copy=True)
        deviation = X[:, self.observed] - self.mean[self.observed]
        filled[:, self.missing] = self.mean[self.missing] + deviation @ self.regression
        return filled


def conditionals(family: GaussianFamily, params: GaussianParams,
                 observed: np.ndarray) -> list[Conditional]:
    covariances = full_covariances(family, params)
    return [Conditional(params.means[k], covariances[k], observed)
            for k in range(len(params.means))]


def marginal_log_density(family: GaussianFamily, params: GaussianParams,
                         rows: RowLayout) -> np.ndarray:
    """log N(x_o | μ_k,o, Σ_k,oo) of the incomplete rows, shape (n_incomplete, K), float64
    (0 for rows with nothing observed)."""
    return kernels.missing_log_density(rows.values, rows.order, rows.starts, rows.observed,
                                       params.means,
                                       np.ascontiguousarray(full_covariances(family, params)))


class Moments(NamedTuple):
    """The fields of a ``GaussianStats``: Σ w, Σ w (x − c), Σ w (x − c)(x − c)ᵀ (or its
    diagonal) per component, and the centre c."""

    weight: np.ndarray
    first: np.ndarray
    second: np.ndarray
    center: np.ndarray


def conditional_statistics(family: GaussianFamily, params: GaussianParams, rows: RowLayout,
                           weights: np.ndarray) -> Moments:
    """Exact expected statistics of the incomplete rows with per-component ``weights``
    (n_incomplete, K) (see the module docstring), centred at the current means like
    :meth:`GaussianFamily.statistics`, as :class:`Moments` (the family makes them its
    ``GaussianStats``: this module does not import the family's module)."""
    full = family.covariance_type in ("full", "tied")
    weight, first, second = kernels.missing_moments(
        rows.values, rows.order, rows.starts, rows.observed, params.means,
        np.ascontiguousarray(full_covariances(family, params)),
        np.ascontiguousarray(weights, dtype=np.float64), params.means, full)
    if full:
        second = 0.5 * (second + np.swapaxes(second, 1, 2))
    else:
        second = second[:, :, 0]
    return Moments(weight, first, second, params.means)
