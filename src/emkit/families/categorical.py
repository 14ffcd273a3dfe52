"""Categorical components: each row holds items coded 0..L−1 (NaN: not observed).

Two users of the same math (the functions below):

- :class:`CategoricalEmission`: an HMM's frame is one symbol code 0..M−1; parameters are a
  (K, M) matrix of emission probabilities B (rows sum to 1).
- :class:`CategoricalFamily`: a mixture's row is D items, item d with L_d levels (the latent
  class model of polytomous items, as R's poLCA); parameters are a (K, D, L) array of
  probabilities p(x_d = l | k), L = max L_d, zero beyond an item's levels (structural zeros).
  Given the component the items are independent, so a missing item is left out of its row.

The sufficient statistics of rows x_i with per-component weights w_ik are the expected counts
N_k(d)l = Σ_i w_ik [x_id = l]; the M-step is p ∝ N + α − 1 per item (α = 1: maximum
likelihood; estimates of exactly 0 are allowed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from emkit.errors import DataError, NumericalError
from emkit.families.base import EmissionDefaults, FamilyDefaults, partition_start

# log p is evaluated as log max(p, _TINY) in matrix products: a probability of exactly 0 then
# gives a finite −690 where the product would otherwise make 0 · −inf = NaN.
_TINY = 1e-300
# A probability this close to 0 is a boundary maximum: no standard error is defined there.
_BOUNDARY = 1e-8


# --------------------------------------------------------------------------- shared math
def one_hot(codes: np.ndarray, observed: np.ndarray, n_levels: int) -> np.ndarray:
    """Indicator rows (n, D·L): column d·L + l is 1 where item d is observed at level l."""
    n, D = codes.shape
    out = np.zeros((n, D * n_levels))
    rows, items = np.nonzero(observed)
    out[rows, items * n_levels + codes[rows, items]] = 1.0
    return out


def level_counts(indicators: np.ndarray, weights: np.ndarray, shape: tuple) -> np.ndarray:
    """Expected counts Σ_i w_ik [x_id = l] of indicator rows (:func:`one_hot`), shaped
    (K, *shape) with ``shape`` = (L,) for one item or (D, L)."""
    return (np.asarray(weights, dtype=float).T @ indicators).reshape(
        (np.shape(weights)[1], *shape))


def categorical_probabilities(counts: np.ndarray, previous: np.ndarray, prior=1.0,
                              levels: np.ndarray | None = None) -> np.ndarray:
    """The M-step over the last axis: p ∝ max(N + α − 1, 0), only on ``levels`` (a mask of
    the real levels; None: all). A distribution without any weight keeps ``previous``."""
    counts = np.maximum(counts + np.asarray(prior, dtype=float) - 1.0, 0.0)
    if levels is not None:
        counts = counts * levels
    total = counts.sum(axis=-1, keepdims=True)
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), previous)


def dirichlet_log_prior(probabilities: np.ndarray, prior=1.0) -> float:
    """Σ (α − 1) log p over the probabilities with α ≠ 1 (0 without a prior)."""
    alpha = np.broadcast_to(np.asarray(prior, dtype=float), probabilities.shape)
    used = (alpha != 1.0) & (probabilities > 0)
    return float(np.sum((alpha[used] - 1.0) * np.log(probabilities[used])))


def draw_levels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One level per distribution over the last axis of ``probabilities``."""
    cumulative = np.cumsum(probabilities, axis=-1)
    draws = (rng.uniform(size=(*probabilities.shape[:-1], 1)) > cumulative).sum(axis=-1)
    return np.minimum(draws, probabilities.shape[-1] - 1)


# --------------------------------------------------------------------------- HMM emission


class CategoricalParams(NamedTuple):
    probabilities: np.ndarray  # (K, M) emission probabilities B_km = p(x = m | state k)


class CategoricalStats(NamedTuple):
    counts: np.ndarray  # (K, M) Σ_t w_tk [x_t = m]


class CategoricalEmission(EmissionDefaults):
    """M symbols, K states.

    Parameters
    ----------
    n_categories : int
        M, the number of distinct symbols (codes 0..M−1).
    prior : float or (K, M) array
        Dirichlet concentration of each row of B; 1 is no prior.
    """

    letters = "e"  # the Emission contract (emkit.families.base); ``rows`` is not needed

    def __init__(self, n_categories: int, prior=1.0):
        self.n_categories = int(n_categories)
        self.prior = prior

    def codes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer codes (n,) of the frames and a mask of observed frames (n,)."""
        X = np.asarray(X, dtype=float)
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise DataError(f"a categorical HMM needs one column of symbol codes, got data of "
                            f"shape {X.shape}.")
        observed = ~np.isnan(X)
        values = X[observed]
        if len(values) and (np.any(values != np.round(values)) or values.min() < 0
                            or values.max() >= self.n_categories):
            bad = values[(values != np.round(values)) | (values < 0)
                         | (values >= self.n_categories)][0]
            raise DataError(f"symbol code {bad:g} is not an integer in 0..{self.n_categories - 1}"
                            f" (n_features={self.n_categories} categories): recode the symbols "
                            "as 0, 1, …, or raise n_features.")
        codes = np.zeros(len(X), dtype=np.int64)
        codes[observed] = values.astype(np.int64)
        return codes, observed

    def validate(self, X: np.ndarray) -> None:
        self.codes(X)

    def log_density(self, params: CategoricalParams, X: np.ndarray, rows=None) -> np.ndarray:
        codes, observed = self.codes(X)
        with np.errstate(divide="ignore"):
            log_b = np.log(params.probabilities)
        out = np.ascontiguousarray(log_b[:, codes].T)
        out[~observed] = 0.0  # nothing observed: no emission term
        return out

    def statistics(self, params: CategoricalParams, X: np.ndarray,
                   weights: np.ndarray, rows=None) -> CategoricalStats:
        codes, observed = self.codes(X)
        indicators = one_hot(codes[:, None], observed[:, None], self.n_categories)
        return CategoricalStats(level_counts(indicators, weights, (self.n_categories,)))

    def m_step(self, stats: CategoricalStats, params: CategoricalParams,
               update: str = "e") -> tuple[CategoricalParams, tuple]:
        if "e" not in update:
            return params, ()
        return CategoricalParams(categorical_probabilities(stats.counts, params.probabilities,
                                                           self.prior)), ()

    def log_prior(self, params: CategoricalParams) -> float:
        return dirichlet_log_prior(params.probabilities, self.prior)

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> CategoricalParams:
        """Rows near the weighted symbol frequencies, randomly perturbed (so states differ)."""
        codes, observed = self.codes(X)
        frequency = np.bincount(codes[observed], weights=frame_weights[observed],
                                minlength=self.n_categories) + 1.0
        rows = frequency / frequency.sum() * rng.uniform(0.5, 1.5, (n_states, self.n_categories))
        return CategoricalParams(rows / rows.sum(axis=1, keepdims=True))

    def flatten(self, params: CategoricalParams) -> np.ndarray:
        return np.log(np.maximum(params.probabilities, 1e-300)).ravel()

    def unflatten(self, vector: np.ndarray, template: CategoricalParams) -> CategoricalParams:
        logits = vector.reshape(template.probabilities.shape)
        rows = np.exp(logits - logits.max(axis=1, keepdims=True))
        rows[template.probabilities == 0] = 0.0  # structural zeros stay zero
        return CategoricalParams(rows / rows.sum(axis=1, keepdims=True))

    def n_parameters(self, n_states: int, n_features: int) -> int:
        return n_states * (self.n_categories - 1)

    def sample(self, params: CategoricalParams, states: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        return draw_levels(params.probabilities[states], rng)[:, None].astype(np.int64)


# --------------------------------------------------------------------------- mixture family
class ItemParams(NamedTuple):
    probabilities: np.ndarray  # (K, D, L) p(x_d = l | component k); 0 beyond item d's levels


class ItemStats(NamedTuple):
    rows: np.ndarray  # (K,) Σ_i w_ik
    counts: np.ndarray  # (K, D, L) Σ_i w_ik [x_id = l]


class Items(NamedTuple):
    """Rows of items as the family takes them (read once per chunk and fit)."""

    indicators: np.ndarray  # (n, D·L) one-hot levels of the observed items
    observed: np.ndarray  # (n, D) bool


class CategoricalFamily(FamilyDefaults):
    """K components of D independent categorical items, item d with ``n_levels[d]`` levels
    coded 0..L_d − 1 (a :class:`ComponentFamily <emkit.families.base.ComponentFamily>`).

    Parameters
    ----------
    n_levels : sequence of int
        L_d, the number of levels of each item (at least 2).
    prior : float
        Dirichlet concentration of every item's probabilities; 1 is no prior.
    """

    def __init__(self, n_levels, prior: float = 1.0):
        self.n_levels = np.asarray(n_levels, dtype=np.int64).reshape(-1)
        self.prior = float(prior)
        self.width = int(self.n_levels.max())
        # (D, L): True at the real levels of each item.
        self.levels = np.arange(self.width)[None, :] < self.n_levels[:, None]
        self._free = np.arange(self.width)[None, :] >= 1  # level 0 is the reference

    def read(self, X) -> Items:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != len(self.n_levels):
            raise DataError(f"a categorical mixture of {len(self.n_levels)} items needs rows of "
                            f"{len(self.n_levels)} item codes, got data of shape {X.shape}.")
        observed = ~np.isnan(X)
        rows, items = np.nonzero(observed)
        values = X[rows, items]
        bad = (values != np.round(values)) | (values < 0) | (values >= self.n_levels[items])
        if bad.any():
            first = np.flatnonzero(bad)[0]
            raise DataError(
                f"item {items[first]} holds {values[first]:g}, not an integer code in "
                f"0..{self.n_levels[items[first]] - 1}: code each item's levels as 0, 1, … "
                "(NaN for a missing answer), or give n_levels.")
        codes = np.zeros(X.shape, dtype=np.int64)
        codes[rows, items] = values.astype(np.int64)
        return Items(one_hot(codes, observed, self.width), observed)

    def n_rows(self, data: Items) -> int:
        return len(data.indicators)

    def log_density(self, params: ItemParams, data: Items) -> np.ndarray:
        """Σ_d observed log p(x_id | k), shape (n, K)."""
        K = len(params.probabilities)
        log_p = np.log(np.maximum(params.probabilities, _TINY)).reshape(K, -1)
        return np.ascontiguousarray(data.indicators @ log_p.T)

    def statistics(self, params: ItemParams, data: Items, weights: np.ndarray) -> ItemStats:
        weights = np.asarray(weights, dtype=float)
        return ItemStats(weights.sum(axis=0),
                         level_counts(data.indicators, weights, self.levels.shape))

    def component_weights(self, stats: ItemStats) -> np.ndarray:
        return stats.rows

    def m_step(self, stats: ItemStats, params: ItemParams) -> tuple[ItemParams, tuple]:
        return ItemParams(categorical_probabilities(stats.counts, params.probabilities,
                                                    self.prior, self.levels)), ()

    def log_prior(self, params: ItemParams) -> float:
        if self.prior == 1.0:
            return 0.0
        return dirichlet_log_prior(params.probabilities[:, self.levels], self.prior)

    def information(self, params: ItemParams) -> CategoricalInformation:
        return CategoricalInformation(self, params.probabilities)

    def init(self, parts, n_components: int,
             rng: np.random.Generator) -> tuple[np.ndarray, ItemParams]:
        """A softened partition around k-means++ seeds among the rows' indicator vectors (a
        missing item at its levels' frequencies)."""
        indicators = np.concatenate([items.indicators for items, _ in parts])
        observed = np.concatenate([items.observed for items, _ in parts])
        w = np.concatenate([np.ones(len(items.indicators)) if rw is None else rw
                            for items, rw in parts])
        frequencies = categorical_probabilities(
            level_counts(indicators, w[:, None], self.levels.shape)[0],
            self.levels / self.n_levels[:, None], 1.0, self.levels)
        points = np.where(np.repeat(observed, self.width, axis=1), indicators,
                          frequencies.reshape(1, -1))
        smoothed = (frequencies + 0.1 * self.levels) / (1 + 0.1 * self.n_levels[:, None])
        placeholder = ItemParams(np.broadcast_to(smoothed, (n_components, *smoothed.shape)
                                                 ).copy())
        if (w > 0).sum() < n_components:
            return np.full(n_components, 1.0 / n_components), placeholder
        return partition_start(self, Items(indicators, observed), points, w, n_components, rng,
                               placeholder)

    def flatten(self, params: ItemParams) -> np.ndarray:
        """Log-ratios log p_l − log p_0 of every item's real levels l ≥ 1 (its free
        parameters)."""
        log_p = np.log(np.maximum(params.probabilities, _TINY))
        return (log_p - log_p[..., :1])[:, self.levels & self._free].ravel()

    def unflatten(self, vector: np.ndarray, template: ItemParams) -> ItemParams:
        logits = np.broadcast_to(np.where(self.levels, 0.0, -np.inf),
                                 template.probabilities.shape).copy()
        logits[:, self.levels & self._free] = vector.reshape(len(logits), -1)
        logits -= logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        return ItemParams(probabilities / probabilities.sum(axis=-1, keepdims=True))

    def n_parameters(self, n_components: int, n_features: int) -> int:
        return n_components * int(np.sum(self.n_levels - 1))

    def sample(self, params: ItemParams, components: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """One row of item codes drawn from each component in ``components``, (len, D)."""
        return draw_levels(params.probabilities[components], rng).astype(np.float64)


class CategoricalInformation:
    """The pieces of the observed information of K components of categorical items (see
    :class:`emkit.models.information.ComponentInformation`). Free coordinates: for every
    component k and item d the probabilities of its levels but the last, p_kd0 … p_kd(L−2) (the
    last is 1 minus their sum). Per observed answer x of item d, with q the last level's
    probability, ∂ log p / ∂p_l = [x = l]/p_l − [x = last]/q and
    ∂² log p / ∂p_l ∂p_m = −δ_lm [x = l]/p_l² − [x = last]/q². The reported probabilities
    beyond an item's levels are structural zeros (standard error 0)."""

    def __init__(self, family: CategoricalFamily, probabilities: np.ndarray):
        self.family = family
        self.p = np.asarray(probabilities, dtype=float)  # (K, D, W)
        K, D, W = self.p.shape
        real = np.broadcast_to(family.levels, self.p.shape)
        edge = np.argwhere(real & (self.p <= _BOUNDARY))
        if len(edge):
            k, d, level = edge[0]
            raise NumericalError(
                f"the standard errors cannot be computed: probabilities[{k}, {d}, {level}] = "
                f"{self.p[k, d, level]:.3g} is at the edge of its range, where the likelihood "
                "has no curvature to measure (latent class fits often put levels there). Fit "
                "fewer classes, or use a Dirichlet prior (prior > 1) and bootstrap the errors.")
        # (k, d, free level l) -> coordinate
        self.blocks = [(k, d, int(family.n_levels[d]) - 1) for k in range(K) for d in range(D)]
        starts = np.cumsum([0] + [free for _, _, free in self.blocks])
        self.starts, self.n_coordinates = starts[:-1], int(starts[-1])
        self.coordinate_names = [f"probabilities[{k}, {d}, {level}]"
                                 for k, d, free in self.blocks for level in range(free)]

    def log_density(self, X: np.ndarray) -> np.ndarray:
        return self.family.log_density(ItemParams(self.p), self.family.read(X))

    def _indicators(self, X: np.ndarray) -> np.ndarray:
        return self.family.read(X).indicators.reshape(len(X), *self.p.shape[1:])  # (n, D, W)

    def scores(self, X: np.ndarray) -> np.ndarray:
        answers = self._indicators(X)
        scores = np.zeros((len(X), self.p.shape[0], self.n_coordinates))
        for (k, d, free), start in zip(self.blocks, self.starts, strict=True):
            p = self.p[k, d]
            scores[:, k, start:start + free] = (answers[:, d, :free] / p[:free]
                                                - answers[:, d, free:free + 1] / p[free])
        return scores

    def hessian(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        counts = level_counts(self._indicators(X).reshape(len(X), -1), weights,
                              self.p.shape[1:])  # (K, D, W)
        hessian = np.zeros((self.n_coordinates, self.n_coordinates))
        for (k, d, free), start in zip(self.blocks, self.starts, strict=True):
            p, c = self.p[k, d], counts[k, d]
            block = np.full((free, free), -c[free] / p[free] ** 2)
            block[np.diag_indices(free)] -= c[:free] / p[:free] ** 2
            hessian[start:start + free, start:start + free] = block
        return hessian

    def reported(self) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        K, D, W = self.p.shape
        jacobian = np.zeros((K, D, W, self.n_coordinates))
        for (k, d, free), start in zip(self.blocks, self.starts, strict=True):
            jacobian[k, d, np.arange(free), start + np.arange(free)] = 1.0
            jacobian[k, d, free, start:start + free] = -1.0
        return [("probabilities", self.p.shape, jacobian.reshape(K * D * W, -1))]
