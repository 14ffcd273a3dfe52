"""Bernoulli components: each row is D binary items (0/1; NaN: that item is not observed) —
the latent class model of binary responses.

Parameters are (K, D) probabilities θ_kd = p(x_d = 1 | k). Given the component the items are
independent, so a missing item is simply left out of its row's likelihood (missing at random).
The sufficient statistics of rows x_i with per-component weights w_ik are Σ_i w_ik (rows),
N_kd = Σ_i w_ik [x_id observed] and S_kd = Σ_i w_ik x_id; the M-step is
θ_kd = (S_kd + a − 1) / (N_kd + a + b − 2) with a Beta(a, b) prior (a = b = 1: maximum
likelihood, where estimates of exactly 0 or 1 are common and allowed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit

from emkit.errors import DataError, NumericalError
from emkit.families.base import FamilyDefaults, partition_start

# log θ is evaluated as log max(θ, _TINY): a probability of exactly 0 (a boundary maximum) then
# gives a finite −690 instead of −inf, which a matrix product would turn into NaN (0 · −inf).
_TINY = 1e-300
# A probability this close to 0 or 1 is a boundary maximum: no standard error is defined there.
_BOUNDARY = 1e-8


class BernoulliParams(NamedTuple):
    probabilities: np.ndarray  # (K, D) θ_kd = p(x_d = 1 | component k)


class BinaryStats(NamedTuple):
    rows: np.ndarray  # (K,) Σ_i w_ik
    weight: np.ndarray  # (K, D) Σ_i w_ik over rows where item d is observed
    ones: np.ndarray  # (K, D) Σ_i w_ik x_id


class BinaryItems(NamedTuple):
    """Rows of binary items as the family takes them (read once per chunk and fit)."""

    values: np.ndarray  # (n, D) 1.0 where the item is 1 (missing: 0)
    observed: np.ndarray  # (n, D) 1.0 where the item is observed


def _safe_log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, _TINY))


class BernoulliFamily(FamilyDefaults):
    """K components of D independent binary items (a :class:`ComponentFamily
    <emkit.families.base.ComponentFamily>`).

    Parameters
    ----------
    prior_a, prior_b : float
        Beta(a, b) prior on every probability (a = b = 1: none).
    """

    def __init__(self, prior_a: float = 1.0, prior_b: float = 1.0):
        self.a = float(prior_a)
        self.b = float(prior_b)

    def read(self, X) -> BinaryItems:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"a Bernoulli mixture needs rows of binary items (a 2-D array), got "
                            f"shape {X.shape}.")
        observed = ~np.isnan(X)
        values = X[observed]
        bad = (values != 0) & (values != 1)
        if bad.any():
            raise DataError(f"a Bernoulli mixture needs binary items coded 0 and 1 (NaN for a "
                            f"missing answer), got {values[bad][0]:g}: recode the items, or use "
                            "a CategoricalMixture for items with more levels.")
        return BinaryItems(np.where(observed, X, 0.0), observed.astype(float))

    def n_rows(self, data: BinaryItems) -> int:
        return len(data.values)

    def log_density(self, params: BernoulliParams, data: BinaryItems) -> np.ndarray:
        """Σ_d observed [x log θ + (1 − x) log(1 − θ)], shape (n, K)."""
        p = params.probabilities
        out = data.values @ _safe_log(p).T + (data.observed - data.values) @ _safe_log(1 - p).T
        return np.ascontiguousarray(out)

    def statistics(self, params: BernoulliParams, data: BinaryItems,
                   weights: np.ndarray) -> BinaryStats:
        weights = np.asarray(weights, dtype=float)
        return BinaryStats(weights.sum(axis=0), weights.T @ data.observed,
                           weights.T @ data.values)

    def component_weights(self, stats: BinaryStats) -> np.ndarray:
        return stats.rows

    def m_step(self, stats: BinaryStats,
               params: BernoulliParams) -> tuple[BernoulliParams, tuple]:
        numerator = stats.ones + self.a - 1.0
        denominator = stats.weight + self.a + self.b - 2.0
        usable = denominator > 0  # an item never observed in a component keeps its value
        p = np.where(usable, numerator / np.where(usable, denominator, 1.0),
                     params.probabilities)
        return BernoulliParams(np.clip(p, 0.0, 1.0)), ()

    def information(self, params: BernoulliParams) -> BernoulliInformation:
        return BernoulliInformation(params.probabilities)

    def log_prior(self, params: BernoulliParams) -> float:
        if self.a == 1.0 and self.b == 1.0:
            return 0.0
        p = params.probabilities
        return float(np.sum((self.a - 1.0) * _safe_log(p) + (self.b - 1.0) * _safe_log(1 - p)))

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, BernoulliParams]:
        """A softened partition around k-means++ seeds among the rows (missing items at the
        item's mean)."""
        data = BinaryItems(*(np.concatenate(column) for column in zip(
            *(items for items, _ in parts), strict=True)))
        w = np.concatenate([np.ones(len(items.values)) if rw is None else rw
                            for items, rw in parts])
        counted = w[:, None] * data.observed
        mean = (w[:, None] * data.values).sum(axis=0) / np.maximum(counted.sum(axis=0), 1e-300)
        points = np.where(data.observed > 0, data.values, mean)
        placeholder = BernoulliParams(np.broadcast_to(np.clip(mean, 0.05, 0.95),
                                                      (n_components, len(mean))).copy())
        if (w > 0).sum() < n_components:
            return np.full(n_components, 1.0 / n_components), placeholder
        return partition_start(self, data, points, w, n_components, rng, placeholder)

    def flatten(self, params: BernoulliParams) -> np.ndarray:
        p = params.probabilities
        return (_safe_log(p) - _safe_log(1 - p)).ravel()  # logits

    def unflatten(self, vector: np.ndarray, template: BernoulliParams) -> BernoulliParams:
        return BernoulliParams(expit(vector).reshape(template.probabilities.shape))

    def n_parameters(self, n_components: int, n_features: int) -> int:
        return n_components * n_features

    def sample(self, params: BernoulliParams, components: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """One row drawn from each component in ``components``, shape (len, D)."""
        p = params.probabilities[components]
        return (rng.uniform(size=p.shape) < p).astype(np.float64)


class BernoulliInformation:
    """The pieces of the observed information of K components of binary items (see
    :class:`emkit.models.information.ComponentInformation`); coordinates: the probabilities
    θ_kd in (k, d) order. A missing item contributes nothing. Per observed item,
    ∂ log p / ∂θ = x/θ − (1 − x)/(1 − θ) and ∂² log p / ∂θ² = −x/θ² − (1 − x)/(1 − θ)²."""

    def __init__(self, probabilities: np.ndarray):
        self.p = np.asarray(probabilities, dtype=float)
        K, D = self.p.shape
        self.n_coordinates = K * D
        self.coordinate_names = [f"probabilities[{k}, {d}]" for k in range(K) for d in range(D)]
        edge = np.argwhere((self.p <= _BOUNDARY) | (self.p >= 1.0 - _BOUNDARY))
        if len(edge):
            k, d = edge[0]
            raise NumericalError(
                f"the standard errors cannot be computed: probabilities[{k}, {d}] = "
                f"{self.p[k, d]:.3g} is at the edge of its range, where the likelihood has no "
                "curvature to measure (latent class fits often put items there). Fit fewer "
                "classes, or use a Beta prior (prior_a, prior_b > 1) and bootstrap the errors.")

    def _items(self, X: np.ndarray) -> BinaryItems:
        return BernoulliFamily().read(X)

    def log_density(self, X: np.ndarray) -> np.ndarray:
        return BernoulliFamily().log_density(BernoulliParams(self.p), self._items(X))

    def scores(self, X: np.ndarray) -> np.ndarray:
        items = self._items(X)
        K, D = self.p.shape
        ones, zeros = items.values[:, None, :], (items.observed - items.values)[:, None, :]
        per_component = ones / self.p[None] - zeros / (1.0 - self.p[None])  # (n, K, D)
        scores = np.zeros((len(items.values), K, K * D))
        for k in range(K):  # component k's score is zero outside its own probabilities
            scores[:, k, k * D:(k + 1) * D] = per_component[:, k]
        return scores

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        items = self._items(X)
        ones = weights.T @ items.values
        zeros = weights.T @ (items.observed - items.values)
        return np.diag((-ones / self.p**2 - zeros / (1.0 - self.p) ** 2).ravel())

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        return [("probabilities", self.p.shape, np.eye(self.n_coordinates))]
