"""Poisson components: each row (a mixture's row or an HMM's frame) is D independent counts
(NaN: that count is not observed).

Parameters are (K, D) rates λ. Because the coordinates are independent given the component, a
partially observed row simply leaves out its missing coordinates. The sufficient statistics of
rows x_i with per-component weights w_ik are, per coordinate, N_kd = Σ_i w_ik [x_id observed]
and S_kd = Σ_i w_ik x_id; the M-step is λ_kd = (S_kd + a − 1) / (N_kd + b) with a Gamma(a, b)
prior (a = 1, b = 0: maximum likelihood).

The math is written once, as functions, and used by both contracts of
:mod:`emkit.families.base`: :class:`PoissonFamily` (mixture components, e.g.
:class:`emkit.PoissonMixture`) and :class:`PoissonEmission` (the states of
:class:`emkit.PoissonHMM`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import gammaln

from emkit.errors import DataError
from emkit.families.base import EmissionDefaults, FamilyDefaults

_MIN_RATE = 1e-10


class PoissonParams(NamedTuple):
    rates: np.ndarray  # (K, D) λ_kd


class PoissonStats(NamedTuple):
    weight: np.ndarray  # (K, D) Σ_t w_tk over frames where coordinate d is observed
    total: np.ndarray  # (K, D) Σ_t w_tk x_td


class Counts(NamedTuple):
    """Rows of counts as the Poisson math takes them (read once per chunk and fit)."""

    values: np.ndarray  # (n, D) counts, missing entries as 0
    observed: np.ndarray  # (n, D) float: 1 where the count is observed
    log_factorial: np.ndarray  # (n,) Σ_d log x_id! over the observed counts


# --------------------------------------------------------------------------- shared math
def read_counts(X, owner: str = "a Poisson model") -> Counts:
    """Rows of non-negative integer counts (NaN = missing) checked and converted; raises
    DataError naming ``owner`` otherwise."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"{owner} needs rows of counts (a 2-D array), got shape {X.shape}.")
    observed = ~np.isnan(X)
    values = X[observed]
    bad = (values < 0) | (values != np.round(values)) | ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{owner} needs non-negative integer counts, got {values[bad][0]:g}: "
                        "round or transform the data, or use a Gaussian model.")
    values = np.where(observed, X, 0.0)
    return Counts(values, observed.astype(float), gammaln(values + 1.0).sum(axis=1))


def poisson_log_density(rates: np.ndarray, counts: Counts) -> np.ndarray:
    """log p(x_i | λ_k) = Σ_d observed (x_id log λ_kd − λ_kd − log x_id!), shape (n, K)."""
    out = counts.values @ np.log(rates).T - counts.observed @ rates.T
    return np.ascontiguousarray(out - counts.log_factorial[:, None])


def poisson_statistics(counts: Counts, weights: np.ndarray) -> PoissonStats:
    """N_kd and S_kd of the rows with per-component weights (n, K)."""
    weights = np.asarray(weights, dtype=float)
    return PoissonStats(weights.T @ counts.observed, weights.T @ counts.values)


def poisson_rates(stats: PoissonStats, previous: np.ndarray, a: float = 1.0,
                  b: float = 0.0) -> np.ndarray:
    """The M-step λ_kd = (S_kd + a − 1) / (N_kd + b); a coordinate without data keeps its
    previous rate."""
    numerator = stats.total + a - 1.0
    denominator = stats.weight + b
    usable = denominator > 0
    rates = np.where(usable, numerator / np.where(usable, denominator, 1.0), previous)
    # A rate of exactly 0 would make any later positive count impossible (log 0).
    return np.maximum(rates, _MIN_RATE)


def gamma_log_prior(rates: np.ndarray, a: float, b: float) -> float:
    """Σ log Gamma(λ | a, b) up to its constant (0 without a prior)."""
    if a == 1.0 and b == 0.0:
        return 0.0
    return float(np.sum((a - 1.0) * np.log(rates) - b * rates))


def spread_rates(mean: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of rates around ``mean`` (D,), each coordinate scaled by a factor in [0.5, 1.5]."""
    spread = rng.uniform(0.5, 1.5, size=(n, len(mean)))
    return np.maximum(mean * spread, 0.1 * spread)


# --------------------------------------------------------------------------- mixture family
class CountStats(NamedTuple):
    """A mixture's Poisson statistics: the rows' weight per component (rows with nothing
    observed count too) and the per-coordinate statistics."""

    rows: np.ndarray  # (K,) Σ_i w_ik
    weight: np.ndarray  # (K, D) N_kd
    total: np.ndarray  # (K, D) S_kd


class PoissonFamily(FamilyDefaults):
    """K components of D independent Poisson counts (a :class:`ComponentFamily
    <emkit.families.base.ComponentFamily>`).

    Parameters
    ----------
    rate_prior_shape, rate_prior_rate : float
        Gamma(a, b) prior on every rate (a = 1, b = 0: none).
    """

    def __init__(self, rate_prior_shape: float = 1.0, rate_prior_rate: float = 0.0):
        self.a = float(rate_prior_shape)
        self.b = float(rate_prior_rate)

    def read(self, X) -> Counts:
        return read_counts(X, "a Poisson mixture")

    def n_rows(self, data: Counts) -> int:
        return len(data.values)

    def log_density(self, params: PoissonParams, data: Counts) -> np.ndarray:
        return poisson_log_density(params.rates, data)

    def statistics(self, params: PoissonParams, data: Counts, weights: np.ndarray) -> CountStats:
        weights = np.asarray(weights, dtype=float)
        return CountStats(weights.sum(axis=0), *poisson_statistics(data, weights))

    def component_weights(self, stats: CountStats) -> np.ndarray:
        return stats.rows

    def m_step(self, stats: CountStats, params: PoissonParams) -> tuple[PoissonParams, tuple]:
        per_coordinate = PoissonStats(stats.weight, stats.total)
        return PoissonParams(poisson_rates(per_coordinate, params.rates, self.a, self.b)), ()

    def log_prior(self, params: PoissonParams) -> float:
        return gamma_log_prior(params.rates, self.a, self.b)

    def information(self, params: PoissonParams) -> PoissonInformation:
        return PoissonInformation(params.rates)

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, PoissonParams]:
        """Rates at K rows drawn by k-means++ seeding (rows far apart, weighted by the sample
        weights), jittered so that equal rows still give distinct components; equal weights.
        Missing counts take the column's mean; a row set too small gets rates spread around
        the mean."""
        values = np.concatenate([data.values for data, _ in parts])
        observed = np.concatenate([data.observed for data, _ in parts])
        w = np.concatenate([np.ones(len(data.values)) if rw is None else rw
                            for data, rw in parts])
        column_weight = (w[:, None] * observed).sum(axis=0)
        mean = (w[:, None] * values).sum(axis=0) / np.maximum(column_weight, 1e-300)
        rows = np.where(observed > 0, values, mean)
        used = w > 0
        weights = np.full(n_components, 1.0 / n_components)
        if used.sum() < n_components:
            return weights, PoissonParams(spread_rates(mean, n_components, rng))
        from emkit.models.clustering import kmeans_plusplus

        # Seeds in the square-root scale, where Poisson counts have about unit variance.
        seeds = kmeans_plusplus(np.sqrt(rows[used]), n_components, rng, w[used]) ** 2
        jitter = rng.uniform(0.9, 1.1, size=seeds.shape)
        return weights, PoissonParams(np.maximum(seeds * jitter, 0.05 * np.maximum(mean, 1.0)))

    def flatten(self, params: PoissonParams) -> np.ndarray:
        return np.log(params.rates).ravel()

    def unflatten(self, vector: np.ndarray, template: PoissonParams) -> PoissonParams:
        with np.errstate(over="raise"):
            return PoissonParams(np.exp(vector).reshape(template.rates.shape))

    def n_parameters(self, n_components: int, n_features: int) -> int:
        return n_components * n_features

    def sample(self, params: PoissonParams, components: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """One row drawn from each component in ``components``, shape (len, D)."""
        return rng.poisson(params.rates[components]).astype(np.float64)


# --------------------------------------------------------------------------- HMM emission
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

    def _counts(self, X: np.ndarray) -> Counts:
        return read_counts(X, "a Poisson HMM")

    def validate(self, X: np.ndarray) -> None:
        self._counts(X)

    def log_density(self, params: PoissonParams, X: np.ndarray, rows=None) -> np.ndarray:
        return poisson_log_density(params.rates, self._counts(X))

    def statistics(self, params: PoissonParams, X: np.ndarray,
                   weights: np.ndarray, rows=None) -> PoissonStats:
        return poisson_statistics(self._counts(X), weights)

    def m_step(self, stats: PoissonStats, params: PoissonParams,
               update: str = "l") -> tuple[PoissonParams, tuple]:
        if "l" not in update:
            return params, ()
        return PoissonParams(poisson_rates(stats, params.rates, self.a, self.b)), ()

    def log_prior(self, params: PoissonParams) -> float:
        return gamma_log_prior(params.rates, self.a, self.b)

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> PoissonParams:
        """Rates at the weighted mean counts, spread by a random factor per state."""
        counts = self._counts(X)
        w = frame_weights[:, None] * counts.observed
        mean = (w * counts.values).sum(axis=0) / np.maximum(w.sum(axis=0), 1e-300)
        return PoissonParams(spread_rates(mean, n_states, rng))

    def flatten(self, params: PoissonParams) -> np.ndarray:
        return np.log(params.rates).ravel()

    def unflatten(self, vector: np.ndarray, template: PoissonParams) -> PoissonParams:
        return PoissonParams(np.exp(vector).reshape(template.rates.shape))

    def n_parameters(self, n_states: int, n_features: int) -> int:
        return n_states * n_features

    def sample(self, params: PoissonParams, states: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(params.rates[states]).astype(np.int64)


class PoissonInformation:
    """The pieces of the observed information of K Poisson components (see
    :class:`emkit.models.information.ComponentInformation`); coordinates: the rates λ_kd in
    (k, d) order. A missing count contributes nothing. Per observed count,
    ∂ log p / ∂λ_kd = x_d / λ_kd − 1 and ∂² log p / ∂λ_kd² = −x_d / λ_kd²."""

    def __init__(self, rates: np.ndarray):
        self.rates = np.asarray(rates, dtype=float)
        K, D = self.rates.shape
        self.n_coordinates = K * D
        self.coordinate_names = [f"rates[{k}, {d}]" for k in range(K) for d in range(D)]

    def log_density(self, X: np.ndarray) -> np.ndarray:
        return poisson_log_density(self.rates, read_counts(X))

    def scores(self, X: np.ndarray) -> np.ndarray:
        counts = read_counts(X)
        K, D = self.rates.shape
        per_component = (counts.values[:, None, :] / self.rates[None]
                         - counts.observed[:, None, :])  # (n, K, D)
        scores = np.zeros((len(counts.values), K, K * D))
        for k in range(K):  # component k's score is zero outside its own rates
            scores[:, k, k * D:(k + 1) * D] = per_component[:, k]
        return scores

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        counts = read_counts(X)
        return np.diag((-(weights.T @ counts.values) / self.rates**2).ravel())

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        return [("rates", self.rates.shape, np.eye(self.n_coordinates))]
