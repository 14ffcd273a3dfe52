"""Linear regression components: y = β_k0 + x·β_k + ε, ε ~ N(0, σ_k²) in component k.

A row is (x_1 … x_D, y): the D regressors, then the response (the estimator stacks them). With
z = (1, x), the component's log-density is log N(y | z·β_k, σ_k²). The sufficient statistics
of rows with per-component weights w_ik are, per component, the weighted cross products of
u = (1, x, y): C_k = Σ_i w_ik u_i u_iᵀ, a (D + 2) × (D + 2) matrix that adds over rows. The
M-step is weighted least squares: β_k = G⁻¹ b with G = Σ w z zᵀ and b = Σ w z y (blocks of C_k),
and σ_k² = (Σ w y² − b·β_k) / Σ w, the weighted mean squared residual.

Degenerate components: a component whose rows do not determine its line (G singular, fewer
than D + 1 rows in general position) or that fits its rows exactly (σ² at round-off; the
likelihood is unbounded there) keeps its previous parameters, and the M-step says so in its
events.

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
from typing import NamedTuple

import numpy as np

from emkit.errors import DataError
from emkit.families.base import FamilyDefaults

__all__ = ["RegressionParams", "RegressionStats", "RegressionRows", "RegressionFamily",
           "RegressionInformation", "read_regression_rows"]

_LOG_2PI = math.log(2.0 * math.pi)
# σ² below this fraction of the component's mean y² is round-off: the line fits exactly.
_EXACT_FIT = 1e-12
# Rounds of k-lines in the start.
_KLINES_ROUNDS = 10


class RegressionParams(NamedTuple):
    coef: np.ndarray  # (K, D) slopes β_k
    intercept: np.ndarray  # (K,) intercepts β_k0
    noise_variance: np.ndarray  # (K,) σ_k²


class RegressionStats(NamedTuple):
    weight: np.ndarray  # (K,) Σ_i w_ik
    cross: np.ndarray  # (K, D + 2, D + 2) Σ_i w_ik u_i u_iᵀ, u = (1, x, y)


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


def _least_squares(cross: np.ndarray, weight: float) -> tuple[np.ndarray, float] | None:
    """(β with intercept first, σ²) from one component's cross products, or None where they do
    not determine the line or the line fits exactly."""
    gram, moment, yy = cross[:-1, :-1], cross[:-1, -1], cross[-1, -1]
    if not weight > 0:
        return None
    try:
        factor = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None
    # Scale-free rank test: a pivot of the Cholesky factor at round-off of its column.
    if np.min(np.diag(factor) / np.sqrt(np.diag(gram))) < 1e-7:
        return None
    beta = np.linalg.solve(factor.T, np.linalg.solve(factor, moment))
    variance = (yy - moment @ beta) / weight
    if not variance > _EXACT_FIT * yy / weight:
        return None
    return beta, float(variance)


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
        u = np.column_stack([data.design, data.response])
        return RegressionStats(weights.sum(axis=0), np.einsum("nk,na,nb->kab", weights, u, u))

    def component_weights(self, stats: RegressionStats) -> np.ndarray:
        return stats.weight

    def m_step(self, stats: RegressionStats,
               params: RegressionParams) -> tuple[RegressionParams, tuple[str, ...]]:
        coefficients = _coefficients(params).copy()
        variances = params.noise_variance.copy()
        events = []
        for k, (cross, weight) in enumerate(zip(stats.cross, stats.weight, strict=True)):
            fitted = _least_squares(cross, weight)
            if fitted is None:
                events.append(f"component {k} kept its line: its rows (weight {weight:.3g}) "
                              "do not determine one, or it fits them exactly")
                continue
            coefficients[k], variances[k] = fitted
        return (RegressionParams(coefficients[:, 1:], coefficients[:, 0], variances),
                tuple(events))

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, RegressionParams]:
        """k-lines from K lines through D + 1 random rows each (see the module's notes)."""
        design = np.concatenate([data.design for data, _ in parts])
        response = np.concatenate([data.response for data, _ in parts])
        w = np.concatenate([np.ones(len(data.response)) if rw is None else rw
                            for data, rw in parts])
        used = w > 0
        design, response, w = design[used], response[used], w[used]
        n, p = design.shape
        K = n_components
        overall = _least_squares(_cross(design, response, w), w.sum())
        if overall is None:
            raise DataError("the rows do not determine a regression line (fewer rows than "
                            "coefficients, a constant or duplicated column, or y an exact "
                            "linear function of X): a mixture of regressions cannot be fitted.")
        lines = np.empty((K, p))
        for k in range(K):
            chosen = rng.choice(n, size=min(p, n), replace=False, p=w / w.sum())
            solved = np.linalg.lstsq(design[chosen], response[chosen], rcond=None)[0]
            lines[k] = solved if np.all(np.isfinite(solved)) else overall[0]
        labels = np.zeros(n, dtype=int)
        for _ in range(_KLINES_ROUNDS):
            new = np.argmin((response[:, None] - design @ lines.T) ** 2, axis=1)
            if _ > 0 and np.array_equal(new, labels):
                break
            labels = new
            for k in range(K):
                rows = labels == k
                fitted = _least_squares(_cross(design[rows], response[rows], w[rows]),
                                        w[rows].sum())
                if fitted is not None:
                    lines[k] = fitted[0]
        squared = (response[:, None] - design @ lines.T) ** 2
        variances = np.full(K, overall[1])
        counts = np.zeros(K)
        for k in range(K):
            rows = labels == k
            counts[k] = w[rows].sum()
            if counts[k] > p:
                variances[k] = max(np.average(squared[rows, k], weights=w[rows]),
                                   1e-3 * overall[1])
        weights = (counts + 1.0) / (counts + 1.0).sum()  # no component starts empty
        return weights, RegressionParams(lines[:, 1:], lines[:, 0], variances)

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
        """Intercept, ``n_features`` slopes and a noise variance per component."""
        return n_components * (n_features + 2)


def _cross(design: np.ndarray, response: np.ndarray, w: np.ndarray) -> np.ndarray:
    u = np.column_stack([design, response])
    return (u * w[:, None]).T @ u


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
