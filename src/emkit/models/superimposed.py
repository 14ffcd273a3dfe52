"""Superimposed signals in white Gaussian noise, separated by EM (Feder & Weinstein 1988).

The observation is y(d) = Σ_k s(d; θ_k) + n(d) at the integer points d = 0 … n_points − 1 of a
design (time samples, receivers), with white Gaussian noise of variance σ². The complete data
give every component its own share of the noise, x_k = s(θ_k) + n_k with n_k ~ N(0, β_k σ²),
Σ_k β_k = 1, so that y = Σ_k x_k. Then

E-step
    x̂_k = s(θ_k) + β_k (y − Σ_l s(θ_l))
M-step
    θ_k = argmin_θ ‖x̂_k − s(θ)‖² for each k separately — K small searches instead of one
    K-dimensional one — followed by σ² = ‖y − Σ_k s(θ_k)‖² / n, the exact maximiser of the
    likelihood given the new θ (a second conditional step, as in ECM/AECM: Meng & van Dyk 1997).

With ``sage=True`` the M-step updates one component at a time with the *whole* current residual
(β_k = 1 for the component being updated) and refreshes the residual before the next one: the
SAGE algorithm (Fessler & Hero 1994), which usually converges in fewer iterations. Both never lower
the likelihood: each single-signal fit is kept only when it does not raise its own cost
(a generalised EM step), so even an inexact user ``fit_one`` cannot make EM go down.

Data and statistics
-------------------
A row of the data is one sample: ``[point, value]`` (real signals) or ``[point, real, imag]``
(complex signals), ``point`` the integer position in the design. Given θ, samples are
independent, so rows can be split into chunks, weighted, dropped or repeated like the rows of any
emkit model (a missing sample is a row of weight 0), and the contracts of ``tests/contracts``
apply. The statistics of a chunk are, per point d, the weight W_d = Σ w_i, the weighted sums
Σ w_i x̂_k,i of the E-step's estimates, and Σ w_i |y_i|²; they add over chunks, and the M-step
needs nothing else (the weighted least-squares cost Σ_i w_i |x̂_k,i − s(d_i; θ)|² equals
Σ_d W_d |s_d(θ)|² − 2 Re Σ_d conj(s_d(θ)) Σ_i w_i x̂_k,i plus a constant).

SQUAREM: parameters are the signal's unconstrained coordinates and log σ², so ``flatten`` /
``unflatten`` exist and SQUAREM can be used; it helps most for close tones, where EM's rate of
convergence is slow.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from emkit.data.chunks import Batch, chunk_list
from emkit.errors import DataError, ParameterError
from emkit.models.signals import weighted_cost

__all__ = ["SuperimposedModel", "SuperimposedParams", "SuperimposedStats", "sample_rows"]


class SuperimposedParams(NamedTuple):
    theta: np.ndarray  # (K, n_parameters) signal parameters in unconstrained coordinates
    noise_variance: float  # σ² (per complex sample for complex signals)


class SuperimposedStats(NamedTuple):
    """Additive statistics of a chunk of samples."""

    weight: np.ndarray  # (n_points,) Σ w_i over the samples at each point
    expected: np.ndarray  # (K, n_points) Σ w_i x̂_k,i at each point
    sum_squares: float  # Σ w_i |y_i|²


def sample_rows(y: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """Rows ``[point, value]`` (real y) or ``[point, real, imag]`` (complex y) of samples y."""
    y = np.asarray(y)
    points = np.arange(len(y), dtype=float) if points is None else np.asarray(points, float)
    if np.iscomplexobj(y):
        return np.column_stack([points, y.real, y.imag])
    return np.column_stack([points, y])


class SuperimposedModel:
    """K superimposed signals of one shape in white Gaussian noise (an ``emkit.EMModel``).

    Parameters
    ----------
    signal : emkit.models.signals.Signal
        The shape of every component (e.g. ``emkit.models.signals.Sinusoids(complex=True)``).
    n_components : int
    n_points : int, optional
        Size of the design (the number of samples of the recording); required unless the signal
        fixes it (``Transmitters``: the number of receivers).
    noise_split : array of shape (n_components,), optional
        The β_k (positive, summing to one); default 1/K each. Ignored by SAGE.
    sage : bool, default False
        Update components one at a time with the whole residual (Fessler & Hero 1994).
    """

    def __init__(self, signal: Any, n_components: int, n_points: int | None = None,
                 noise_split=None, sage: bool = False):
        for name in ("evaluate", "fit_one", "initial"):
            if not callable(getattr(signal, name, None)):
                raise ParameterError(
                    f"{type(signal).__name__} is not a signal: it has no {name}() method "
                    "(see emkit.models.signals.Signal).")
        if not isinstance(n_components, (int, np.integer)) or isinstance(n_components, bool) \
                or n_components < 1:
            raise ParameterError(f"n_components must be an integer >= 1, got {n_components!r}.")
        fixed = getattr(signal, "n_points", None)
        if fixed is not None:
            if n_points is not None and n_points != fixed:
                raise DataError(f"the signal has {fixed} points (receivers) but {n_points} "
                                "samples were given: give one measurement per receiver.")
            n_points = fixed
        if n_points is None or n_points < 1:
            raise ParameterError("n_points (the number of samples of the recording) must be "
                                 ">= 1.")
        self.signal = signal
        self.n_components = int(n_components)
        self.n_points = int(n_points)
        self.sage = bool(sage)
        self.is_complex = bool(getattr(signal, "is_complex", False))
        if noise_split is None:
            self.noise_split = np.full(self.n_components, 1.0 / self.n_components)
        else:
            split = np.asarray(noise_split, dtype=float)
            if split.shape != (self.n_components,) or np.any(~(split > 0)) \
                    or abs(split.sum() - 1.0) > 1e-8:
                raise ParameterError(f"noise_split must be {self.n_components} positive numbers "
                                     "summing to 1.")
            self.noise_split = split

    # ------------------------------------------------------------------ data
    def _read(self, chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points (n,) int, values (n,), weights (n,) of a chunk of rows."""
        X, weights = (chunk.X, chunk.sample_weight) if isinstance(chunk, Batch) else (chunk, None)
        X = np.asarray(X, dtype=float)
        width = 3 if self.is_complex else 2
        if X.ndim != 2 or X.shape[1] != width:
            kind = "[point, real, imag]" if self.is_complex else "[point, value]"
            raise DataError(f"rows of samples must have {width} columns {kind}, got shape "
                            f"{X.shape}.")
        points = X[:, 0].astype(np.intp)
        if len(X) and (np.any(points != X[:, 0]) or points.min() < 0
                       or points.max() >= self.n_points):
            raise DataError(f"sample points must be integers in 0..{self.n_points - 1}.")
        values = X[:, 1] + 1j * X[:, 2] if self.is_complex else X[:, 1]
        if weights is None:
            weights = np.ones(len(X))
        return points, values, np.asarray(weights, dtype=float)

    def _per_point(self, points, values) -> np.ndarray:
        if np.iscomplexobj(values):
            return (np.bincount(points, values.real, self.n_points)
                    + 1j * np.bincount(points, values.imag, self.n_points))
        return np.bincount(points, values, self.n_points)

    # ------------------------------------------------------------------ EM
    def init_params(self, data, rng: np.random.Generator) -> SuperimposedParams:
        weight = np.zeros(self.n_points)
        sums = np.zeros(self.n_points, dtype=complex if self.is_complex else float)
        sum_squares = 0.0
        for chunk in chunk_list(data):
            points, values, weights = self._read(chunk)
            weight += np.bincount(points, weights, self.n_points)
            sums = sums + self._per_point(points, weights * values)
            sum_squares += float(weights @ np.abs(values) ** 2)
        theta = np.asarray(self.signal.initial(sums, weight, self.n_components, rng), float)
        if theta.shape != (self.n_components, self.signal.n_parameters):
            raise ParameterError(f"{type(self.signal).__name__}.initial returned shape "
                                 f"{theta.shape}, expected "
                                 f"({self.n_components}, {self.signal.n_parameters}).")
        return SuperimposedParams(theta, self._noise_variance(theta, weight, sums, sum_squares))

    def e_step(self, params: SuperimposedParams, chunk) -> tuple[SuperimposedStats, float]:
        points, values, weights = self._read(chunk)
        components = self.signal.evaluate(params.theta, points)  # (K, n)
        residual = values - components.sum(axis=0)
        estimates = components + self.noise_split[:, None] * residual  # x̂_k at each sample
        expected = np.array([self._per_point(points, weights * row) for row in estimates])
        stats = SuperimposedStats(np.bincount(points, weights, self.n_points), expected,
                                  float(weights @ np.abs(values) ** 2))
        return stats, self._log_likelihood(float(weights @ np.abs(residual) ** 2),
                                           float(weights.sum()), params.noise_variance)

    def _log_likelihood(self, weighted_rss, total_weight, noise_variance) -> float:
        if self.is_complex:  # complex Gaussian: density exp(−|r|²/σ²) / (πσ²)
            return -total_weight * np.log(np.pi * noise_variance) - weighted_rss / noise_variance
        return -0.5 * (total_weight * np.log(2 * np.pi * noise_variance)
                       + weighted_rss / noise_variance)

    def m_step(self, stats: SuperimposedStats, params: SuperimposedParams) -> SuperimposedParams:
        weight = stats.weight
        data_sums = stats.expected.sum(axis=0)  # Σ_k x̂_k = y, since Σ_k β_k = 1
        theta = np.array(params.theta, dtype=float)
        points = np.arange(self.n_points)
        if self.sage:
            fitted = weight * self.signal.evaluate(theta, points)  # W_d s_k(d)
            for k in range(self.n_components):
                # x̂_k with β_k = 1: this component plus the whole current residual.
                sums = fitted[k] + (data_sums - fitted.sum(axis=0))
                theta[k] = self._fit_one(sums, weight, theta[k])
                fitted[k] = weight * self.signal.evaluate(theta[k], points)[0]
        else:
            for k in range(self.n_components):
                theta[k] = self._fit_one(stats.expected[k], weight, theta[k])
        return SuperimposedParams(theta, self._noise_variance(theta, weight, data_sums,
                                                               stats.sum_squares))

    def _fit_one(self, sums, weight, start) -> np.ndarray:
        """The signal's single-signal fit, kept only where it does not raise the cost."""
        candidate = np.asarray(self.signal.fit_one(sums, weight, start.copy()), dtype=float)
        if candidate.shape != start.shape or not np.all(np.isfinite(candidate)):
            return start
        costs = weighted_cost(self.signal, np.vstack([start, candidate]), sums, weight)
        # Near the optimum the two costs agree to round-off: accept the candidate then, so that
        # round-off (e.g. of chunked sums) never decides whether EM moves. A rise of 1e-12 of
        # the cost is far below what the monitor counts as a decrease of the likelihood.
        slack = 1e-12 * (abs(costs[0]) + abs(costs[1]))
        return candidate if costs[1] <= costs[0] + slack else start

    def _noise_variance(self, theta, weight, data_sums, sum_squares) -> float:
        """σ² = Σ_i w_i |y_i − Σ_k s_k(d_i)|² / Σ w_i, from the per-point sums."""
        total = float(weight.sum())
        if not total > 0:
            raise DataError("every sample has weight 0: there is nothing to fit.")
        fitted = self.signal.evaluate(theta, np.arange(self.n_points)).sum(axis=0)
        rss = (sum_squares - 2 * float(np.real(np.vdot(fitted, data_sums)))
               + float(weight @ np.abs(fitted) ** 2))
        # A floor keeps the likelihood finite when the components fit the data exactly.
        floor = 1e-12 * max(sum_squares / total, 1e-300)
        return max(rss / total, floor)

    def n_samples(self, stats: SuperimposedStats) -> float:
        return float(stats.weight.sum())

    # ------------------------------------------------------------------ SQUAREM
    def flatten(self, params: SuperimposedParams) -> np.ndarray:
        return np.concatenate([np.ravel(params.theta), [np.log(params.noise_variance)]])

    def unflatten(self, vector: np.ndarray, template: SuperimposedParams) -> SuperimposedParams:
        theta = np.asarray(vector[:-1], dtype=float).reshape(np.shape(template.theta))
        if hasattr(self.signal, "wrap"):
            theta = self.signal.wrap(theta)
        noise_variance = float(np.exp(vector[-1]))
        if not (np.all(np.isfinite(theta)) and np.isfinite(noise_variance)
                and noise_variance > 0):
            raise ValueError("extrapolated parameters are not finite")
        return SuperimposedParams(theta, noise_variance)

    # ------------------------------------------------------------------ inference
    def components(self, params: SuperimposedParams, points: np.ndarray) -> np.ndarray:
        """s(d; θ_k) at ``points``: shape (K, n)."""
        return self.signal.evaluate(params.theta, np.asarray(points, dtype=np.intp))

    def separate(self, params: SuperimposedParams, points: np.ndarray,
                 values: np.ndarray) -> np.ndarray:
        """The E-step's x̂_k = s_k + β_k (y − Σ s_l) at ``points``: shape (K, n)."""
        components = self.components(params, points)
        return components + self.noise_split[:, None] * (values - components.sum(axis=0))

    def n_parameters(self) -> int:
        """Free parameters: K × n_parameters of the signal, plus the noise variance."""
        return self.n_components * int(self.signal.n_parameters) + 1
