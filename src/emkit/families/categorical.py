"""Categorical emissions: each frame is one symbol code 0..M−1 (NaN: not observed).

Parameters are a (K, M) matrix of emission probabilities B (rows sum to 1). The sufficient
statistics of frames x_t with per-state weights w_tk are the expected counts
N_km = Σ_t w_tk [x_t = m]; the M-step is B_km ∝ N_km + α − 1 (α = 1: maximum likelihood).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from emkit.errors import DataError
from emkit.families.base import EmissionDefaults


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
        codes, weights = codes[observed], np.asarray(weights)[observed]
        counts = np.stack([np.bincount(codes, weights=weights[:, k], minlength=self.n_categories)
                           for k in range(weights.shape[1])])
        return CategoricalStats(counts.astype(np.float64))

    def m_step(self, stats: CategoricalStats, params: CategoricalParams,
               update: str = "e") -> tuple[CategoricalParams, tuple]:
        if "e" not in update:
            return params, ()
        counts = np.maximum(stats.counts + np.asarray(self.prior, dtype=float) - 1.0, 0.0)
        total = counts.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0
        probabilities = np.where(empty[:, None], params.probabilities,
                                 counts / np.where(total > 0, total, 1.0))
        return CategoricalParams(probabilities), ()

    def log_prior(self, params: CategoricalParams) -> float:
        alpha = np.broadcast_to(np.asarray(self.prior, dtype=float), params.probabilities.shape)
        used = (alpha != 1.0) & (params.probabilities > 0)
        return float(np.sum((alpha[used] - 1.0) * np.log(params.probabilities[used])))

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
        cumulative = np.cumsum(params.probabilities[states], axis=1)
        draws = (rng.uniform(size=(len(states), 1)) > cumulative).sum(axis=1)
        return np.minimum(draws, self.n_categories - 1)[:, None].astype(np.int64)
