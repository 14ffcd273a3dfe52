"""Linear regression components: y = β_k0 + x·β_k + ε, ε ~ N(0, σ_k²) in component k.

A row is (x_1 … x_D, y): the D regressors, then the response (the estimator stacks them). With
z = (1, x), the component's log-density is log N(y | z·β_k, σ_k²). The sufficient statistics
of rows with per-component weights w_ik are, per component, the weighted cross products of
u = (1, x, e) with e = y − z·c_k the residual from a centre line c_k (the current line):
C_k = Σ_i w_ik u_i u_iᵀ, a (D + 2) × (D + 2) matrix that adds over rows (two parts about
different lines are moved to the same one first, as the Gaussian family's centred moments).
The M-step is weighted least squares: β_k = c_k + G⁻¹ b with G = Σ w z zᵀ and b = Σ w z e
(blocks of C_k), and σ_k² = (Σ w e² − b·G⁻¹b) / Σ w, the weighted mean squared residual;
near convergence b ≈ 0, so σ² has no cancellation.

Degenerate components: a component with less than D + 2 rows' worth of weight, whose rows do
not determine its line (G singular) or that fits its rows exactly (σ² at round-off) is heading
for a spurious maximum (the likelihood is unbounded as a line passes exactly through D + 1
rows and σ² → 0). It is re-seeded at the least-squares line and noise of all rows, and the
M-step says so in its events.

The start (:meth:`RegressionFamily.init`) is k-lines, the regression analogue of k-means: K
lines through D + 1 random rows each, then rows assigned to the line with the smallest
squared residual and the lines refitted by least squares, a few rounds; the noise variances
and weights come from the final groups. Different random rows give different starts, which
``n_init`` restarts then rank.

Standard errors: :class:`RegressionInformation` gives the scores and Hessians of
log N(y | z·β_k, σ_k²) in (β_k, σ_k²) for :mod:`emkit.models.information`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from emkit.errors import DataError
from emkit.families.base import FamilyDefaults, logsumexp

__all__ = ["RegressionParams", "RegressionStats", "RegressionRows", "RegressionFamily",
           "RegressionInformation", "read_regression_rows"]

_LOG_2PI = math.log(2.0 * math.pi)
# σ² below this fraction of the component's mean y² is round-off: the line fits exactly.
_EXACT_FIT = 1e-12
# Rounds of k-lines in a start, and the k-lines runs a start is the best of.
_KLINES_ROUNDS = 10
_INIT_CANDIDATES = 8


class RegressionParams(NamedTuple):
    coef: np.ndarray  # (K, D) slopes β_k
    intercept: np.ndarray  # (K,) intercepts β_k0
    noise_variance: np.ndarray  # (K,) σ_k²


@dataclass(frozen=True)
class RegressionStats:
    """Weighted cross products of (z, e) per component, e = y − z·c_k the residual from a
    centre line c_k (the current line in an E-step): near convergence the M-step's
    correction is tiny and the residual sum of squares suffers no cancellation."""

    weight: np.ndarray  # (K,) Σ_i w_ik
    cross: np.ndarray  # (K, D + 2, D + 2) Σ_i w_ik u_ik u_ikᵀ, u_ik = (1, x_i, e_ik)
    center: np.ndarray  # (K, D + 1) c_k, intercept first

    def __add__(self, other: RegressionStats) -> RegressionStats:
        other = other.recentered(self.center)
        return RegressionStats(self.weight + other.weight, self.cross + other.cross,
                               self.center)

    def scaled(self, factor: float) -> RegressionStats:
        """The statistics of the same rows with every weight multiplied by ``factor``."""
        return RegressionStats(self.weight * factor, self.cross * factor, self.center)

    def recentered(self, center: np.ndarray) -> RegressionStats:
        """The same statistics about other centre lines: e_new = e_old + z·(c_old − c_new),
        a linear map T of u, so C_new = T C_old Tᵀ."""
        if center is self.center or np.array_equal(center, self.center):
            return self
        K, p = center.shape
        transform = np.broadcast_to(np.eye(p + 1), (K, p + 1, p + 1)).copy()
        transform[:, p, :p] = self.center - center
        cross = transform @ self.cross @ np.swapaxes(transform, 1, 2)
        return RegressionStats(self.weight, cross, center)


class RegressionRows(NamedTuple):
    """Rows as the regression math takes them (read once per chunk and fit)."""

    design: np.ndarray  # (n, D + 1) z = (1, x)
    response: np.ndarray  # (n,) y


def read_regression_rows(rows) -> RegressionRows:
    """Rows (x_1 … x_D, y) checked (finite numbers, at least the response column) and split."""
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2 or rows.shape[1] < 1:
        raise DataError(f"a regression mixture needs rows (x_1 … x_D, y), got shape "
                        f"{rows.shape}.")
    if not np.all(np.isfinite(rows)):
        raise DataError("a regression mixture needs finite X and y: drop or impute the rows "
                        "with NaN or infinity first.")
    design = np.column_stack([np.ones(len(rows)), rows[:, :-1]])
    return RegressionRows(design, rows[:, -1])


def _coefficients(params: RegressionParams) -> np.ndarray:
    """(K, D + 1): intercept, then slopes."""
    return np.column_stack([params.intercept, params.coef])


def _least_squares(cross: np.ndarray, weight: float, center: np.ndarray,
                   ) -> tuple[np.ndarray, float] | None:
    """(β with intercept first, σ²) from one component's cross products about the line
    ``center``, or None where they do not determine the line or the line fits exactly."""
    p = len(center)
    gram, moment, ee = cross[:p, :p], cross[:p, p], cross[p, p]
    if not weight > 0:
        return None
    try:
        factor = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None
    # Scale-free rank test: a pivot of the Cholesky factor at round-off of its column.
    if np.min(np.diag(factor) / np.sqrt(np.diag(gram))) < 1e-7:
        return None
    step = np.linalg.solve(factor.T, np.linalg.solve(factor, moment))
    variance = (ee - moment @ step) / weight
    # y's own spread in the component (from the cross products about the line y = 0) sets
    # the scale below which σ² is round-off of an exact fit.
    sum_y = moment[0] + gram[0] @ center
    sum_yy = ee + 2 * moment @ center + center @ gram @ center
    spread = sum_yy / weight - (sum_y / weight) ** 2
    if not variance > _EXACT_FIT * max(spread, 0.0):
        return None
    if not variance > 0:
        return None
    return center + step, float(variance)


class RegressionFamily(FamilyDefaults):
    """K linear regressions with Gaussian noise (a :class:`ComponentFamily
    <emkit.families.base.ComponentFamily>` on rows (x_1 … x_D, y))."""

    def read(self, X) -> RegressionRows:
        return read_regression_rows(X)

    def n_rows(self, data: RegressionRows) -> int:
        return len(data.response)

    def log_density(self, params: RegressionParams, data: RegressionRows) -> np.ndarray:
        residuals = data.response[:, None] - data.design @ _coefficients(params).T
        variance = params.noise_variance[None, :]
        return -0.5 * (_LOG_2PI + np.log(variance) + residuals**2 / variance)

    def statistics(self, params: RegressionParams, data: RegressionRows,
                   weights: np.ndarray) -> RegressionStats:
        weights = np.asarray(weights, dtype=float)
        center = _coefficients(params)
        residuals = data.response[:, None] - data.design @ center.T  # (n, K)
        zz = np.einsum("nk,na,nb->kab", weights, data.design, data.design)
        ze = np.einsum("nk,na->ka", weights * residuals, data.design)
        ee = np.einsum("nk,nk->k", weights, residuals**2)
        cross = np.concatenate([np.concatenate([zz, ze[:, :, None]], axis=2),
                                np.concatenate([ze, ee[:, None]], axis=1)[:, None, :]], axis=1)
        return RegressionStats(weights.sum(axis=0), cross, center)

    def component_weights(self, stats: RegressionStats) -> np.ndarray:
        return stats.weight

    def m_step(self, stats: RegressionStats,
               params: RegressionParams) -> tuple[RegressionParams, tuple[str, ...]]:
        coefficients = _coefficients(params).copy()
        variances = params.noise_variance.copy()
        events = []
        n_coefficients = coefficients.shape[1]
        for k, (cross, weight, center) in enumerate(zip(stats.cross, stats.weight,
                                                        stats.center, strict=True)):
            # Fewer than D + 2 rows' worth of weight: the line can pass through them all and
            # σ² → 0, a spurious maximum where the likelihood is unbounded.
            fitted = (_least_squares(cross, weight, center)
                      if weight >= n_coefficients + 1 else None)
            if fitted is not None:
                coefficients[k], variances[k] = fitted
                continue
            overall = _least_squares(*_pooled(stats))
            if overall is None:
                events.append(f"component {k} kept its line: its rows (weight {weight:.3g}) "
                              "do not determine one")
                continue
            coefficients[k], variances[k] = overall
            events.append(f"component {k} re-seeded at the line of all rows: its rows "
                          f"(weight {weight:.3g}) do not determine a line and its noise")
        return (RegressionParams(coefficients[:, 1:], coefficients[:, 0], variances),
                tuple(events))

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, RegressionParams]:
        """The best of a few k-lines runs, each from K lines through D + 1 random rows (see the
        module's notes), by the mixture log-likelihood of its groups' lines, noise and sizes;
        runs leaving a group with fewer than D + 2 rows count only if no run does better."""
        design = np.concatenate([data.design for data, _ in parts])
        response = np.concatenate([data.response for data, _ in parts])
        w = np.concatenate([np.ones(len(data.response)) if rw is None else rw
                            for data, rw in parts])
        used = w > 0
        design, response, w = design[used], response[used], w[used]
        n, p = design.shape
        K = n_components
        overall = _fit_rows(design, response, w)
        if overall is None:
            raise DataError("the rows do not determine a regression line (fewer rows than "
                            "coefficients, a constant or duplicated column, or y an exact "
                            "linear function of X): a mixture of regressions cannot be fitted.")
        best, best_score = None, -np.inf
        for _ in range(_INIT_CANDIDATES):
            candidate, score = _k_lines(design, response, w, K, overall, rng)
            if best is None or score > best_score:
                best, best_score = candidate, score
        return best

    def flatten(self, params: RegressionParams) -> np.ndarray:
        return np.concatenate([_coefficients(params).ravel(), np.log(params.noise_variance)])

    def unflatten(self, vector: np.ndarray, template: RegressionParams) -> RegressionParams:
        K, D = template.coef.shape
        coefficients = vector[:K * (D + 1)].reshape(K, D + 1)
        with np.errstate(over="raise"):
            variances = np.exp(vector[K * (D + 1):])
        if not np.all(variances > 0):
            raise FloatingPointError("a noise variance underflowed to 0")
        return RegressionParams(coefficients[:, 1:], coefficients[:, 0], variances)

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Per component an intercept, D slopes and a noise variance, for rows of
        ``n_features`` = D + 1 columns (x_1 … x_D, y)."""
        return n_components * (n_features + 1)


def _k_lines(design, response, w, K, overall, rng):
    """One k-lines run: ((weights, params), score). Rows go to the line with the smallest
    squared residual, lines are refitted to their rows; the score is the mixture
    log-likelihood of the final groups (−inf where a group has fewer than D + 2 rows)."""
    n, p = design.shape
    lines = np.empty((K, p))
    for k in range(K):
        chosen = rng.choice(n, size=min(p, n), replace=False, p=w / w.sum())
        solved = np.linalg.lstsq(design[chosen], response[chosen], rcond=None)[0]
        lines[k] = solved if np.all(np.isfinite(solved)) else overall[0]
    labels = np.full(n, -1)
    for _ in range(_KLINES_ROUNDS):
        new = np.argmin((response[:, None] - design @ lines.T) ** 2, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for k in range(K):
            rows = labels == k
            fitted = _fit_rows(design[rows], response[rows], w[rows])
            if fitted is not None:
                lines[k] = fitted[0]
    squared = (response[:, None] - design @ lines.T) ** 2
    variances = np.full(K, overall[1])
    counts = np.array([w[labels == k].sum() for k in range(K)])
    for k in range(K):
        rows = labels == k
        if counts[k] > p:
            variances[k] = max(np.average(squared[rows, k], weights=w[rows]), 1e-3 * overall[1])
    weights = (counts + 1.0) / (counts + 1.0).sum()  # no component starts empty
    log_joint = np.log(weights) - 0.5 * (_LOG_2PI + np.log(variances) + squared / variances)
    score = float(w @ logsumexp(log_joint, axis=1)) if counts.min() >= p + 1 else -np.inf
    return (weights, RegressionParams(lines[:, 1:], lines[:, 0], variances)), score


def _pooled(stats: RegressionStats) -> tuple[np.ndarray, float, np.ndarray]:
    """The cross products of all components together (about the line y = 0), their weight
    and that centre: the statistics of one regression of all rows."""
    zero = np.zeros_like(stats.center)
    return stats.recentered(zero).cross.sum(axis=0), float(stats.weight.sum()), zero[0]


def _fit_rows(design: np.ndarray, response: np.ndarray,
              w: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Weighted least squares of a set of rows (None where they do not determine a line)."""
    u = np.column_stack([design, response])
    return _least_squares((u * w[:, None]).T @ u, w.sum(), np.zeros(design.shape[1]))


class RegressionInformation:
    """Scores and Hessians of log N(y | z·β_k, σ_k²) in the coordinates (β_k with its
    intercept first, σ_k²), component by component, for
    :func:`emkit.models.information.mixture_standard_errors`. With e = y − z·β_k:

    - ∂/∂β = z e / σ²,  ∂/∂σ² = (e² / σ² − 1) / (2σ²);
    - ∂²/∂β∂β = −z zᵀ / σ²,  ∂²/∂β∂σ² = −z e / σ⁴,  ∂²/∂σ²∂σ² = 1 / (2σ⁴) − e² / σ⁶.
    """

    def __init__(self, params: RegressionParams):
        self.coefficients = _coefficients(params)
        self.variances = np.asarray(params.noise_variance, dtype=float)
        K, p = self.coefficients.shape
        self.per_component = p + 1
        self.n_coordinates = K * self.per_component
        self.coordinate_names = [
            name for k in range(K) for name in
            [f"intercept[{k}]", *(f"coef[{k}, {d}]" for d in range(p - 1)),
             f"noise_variance[{k}]"]]

    def _rows(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = read_regression_rows(X)
        return rows.design, rows.response[:, None] - rows.design @ self.coefficients.T

    def log_density(self, X: np.ndarray) -> np.ndarray:
        _, residuals = self._rows(X)
        return -0.5 * (_LOG_2PI + np.log(self.variances) + residuals**2 / self.variances)

    def scores(self, X: np.ndarray) -> np.ndarray:
        design, e = self._rows(X)
        n, K = e.shape
        v = self.variances
        out = np.zeros((n, K, K, self.per_component))
        for k in range(K):
            out[:, k, k, :-1] = design * (e[:, k] / v[k])[:, None]
            out[:, k, k, -1] = (e[:, k] ** 2 / v[k] - 1) / (2 * v[k])
        return out.reshape(n, K, self.n_coordinates)

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        design, e = self._rows(X)
        K = e.shape[1]
        v = self.variances
        m = self.per_component
        hessian = np.zeros((self.n_coordinates, self.n_coordinates))
        for k in range(K):
            w = weights[:, k]
            block = np.zeros((m, m))
            block[:-1, :-1] = -(design * w[:, None]).T @ design / v[k]
            block[:-1, -1] = block[-1, :-1] = -(design.T @ (w * e[:, k])) / v[k] ** 2
            block[-1, -1] = w.sum() / (2 * v[k] ** 2) - (w @ e[:, k] ** 2) / v[k] ** 3
            hessian[k * m:(k + 1) * m, k * m:(k + 1) * m] = block
        return hessian

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        K, p = self.coefficients.shape
        m = self.per_component
        eye = np.eye(self.n_coordinates)
        index = np.arange(K)[:, None] * m
        return [("coef", (K, p - 1), eye[(index + np.arange(1, p)).ravel()]),
                ("intercept", (K,), eye[index[:, 0]]),
                ("noise_variance", (K,), eye[index[:, 0] + m - 1])]
