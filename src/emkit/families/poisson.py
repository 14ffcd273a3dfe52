"""Poisson emissions: each frame is D independent counts (NaN: that count is not observed).

Parameters are (K, D) rates λ. Because the coordinates are independent given the state, a
partially observed frame simply leaves out its missing coordinates. The sufficient statistics of
frames x_t with per-state weights w_tk are, per coordinate, N_kd = Σ_t w_tk [x_td observed] and
S_kd = Σ_t w_tk x_td; the M-step is λ_kd = (S_kd + a − 1) / (N_kd + b) with a Gamma(a, b) prior
(a = 1, b = 0: maximum likelihood).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import gammaln

from emkit.errors import DataError
from emkit.families.base import EmissionDefaults

_MIN_RATE = 1e-10


class PoissonParams(NamedTuple):
    rates: np.ndarray  # (K, D) λ_kd


class PoissonStats(NamedTuple):
    weight: np.ndarray  # (K, D) Σ_t w_tk over frames where coordinate d is observed
    total: np.ndarray  # (K, D) Σ_t w_tk x_td


class PoissonEmission(EmissionDefaults):
    """K states of D independent Poisson counts.

    Parameters
    ----------
    rate_prior_shape, rate_prior_rate : float
        Gamma(a, b) prior on every rate (a = 1, b = 0: none).
    """

    letters = "l"  # the Emission contract (emkit.families.base); ``rows`` is not needed

    def __init__(self, rate_prior_shape: float = 1.0, rate_prior_rate: float = 0.0):
        self.a = float(rate_prior_shape)
        self.b = float(rate_prior_rate)

    def _counts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts with missing entries as 0 (n, D), and the observed mask (n, D)."""
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        observed = ~np.isnan(X)
        values = X[observed]
        if len(values) and (np.any(values < 0) or np.any(values != np.round(values))
                            or not np.all(np.isfinite(values))):
            bad = values[(values < 0) | (values != np.round(values))
                         | ~np.isfinite(values)][0]
            raise DataError(f"a Poisson HMM needs non-negative integer counts, got {bad:g}: "
                            "round or transform the data, or use a GaussianHMM.")
        return np.where(observed, X, 0.0), observed

    def validate(self, X: np.ndarray) -> None:
        self._counts(X)

    def log_density(self, params: PoissonParams, X: np.ndarray, rows=None) -> np.ndarray:
        counts, observed = self._counts(X)
        rates = params.rates
        constant = np.sum(gammaln(counts + 1.0), axis=1)
        out = counts @ np.log(rates).T - observed.astype(float) @ rates.T - constant[:, None]
        return np.ascontiguousarray(out)

    def statistics(self, params: PoissonParams, X: np.ndarray,
                   weights: np.ndarray, rows=None) -> PoissonStats:
        counts, observed = self._counts(X)
        weights = np.asarray(weights, dtype=float)
        return PoissonStats(weights.T @ observed.astype(float), weights.T @ counts)

    def m_step(self, stats: PoissonStats, params: PoissonParams,
               update: str = "l") -> tuple[PoissonParams, tuple]:
        if "l" not in update:
            return params, ()
        numerator = stats.total + self.a - 1.0
        denominator = stats.weight + self.b
        usable = denominator > 0
        rates = np.where(usable, numerator / np.where(usable, denominator, 1.0), params.rates)
        # A rate of exactly 0 would make any later positive count impossible (log 0).
        return PoissonParams(np.maximum(rates, _MIN_RATE)), ()

    def log_prior(self, params: PoissonParams) -> float:
        if self.a == 1.0 and self.b == 0.0:
            return 0.0
        return float(np.sum((self.a - 1.0) * np.log(params.rates) - self.b * params.rates))

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> PoissonParams:
        """Rates at the weighted mean counts, spread by a random factor per state."""
        counts, observed = self._counts(X)
        w = frame_weights[:, None] * observed
        mean = (w * counts).sum(axis=0) / np.maximum(w.sum(axis=0), 1e-300)
        spread = rng.uniform(0.5, 1.5, size=(n_states, counts.shape[1]))
        return PoissonParams(np.maximum(mean * spread, 0.1 * spread))

    def flatten(self, params: PoissonParams) -> np.ndarray:
        return np.log(params.rates).ravel()

    def unflatten(self, vector: np.ndarray, template: PoissonParams) -> PoissonParams:
        return PoissonParams(np.exp(vector).reshape(template.rates.shape))

    def n_parameters(self, n_states: int, n_features: int) -> int:
        return n_states * n_features

    def sample(self, params: PoissonParams, states: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(params.rates[states]).astype(np.int64)
