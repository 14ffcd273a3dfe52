"""A mixture of Poisson distributions, written only against emkit's model protocol.

p(x) = Σ_k π_k Poisson(x | λ_k). ``emkit.fit_em`` adds restarts, the convergence monitor,
SQUAREM and deterministic annealing; nothing in the engine knows about this model.
"""

from importlib.resources import files
from typing import NamedTuple

import numpy as np
from scipy.special import gammaln, logsumexp, softmax

import emkit
from emkit.data import Batch, chunk_list
from emkit.errors import DataError


class PoissonParams(NamedTuple):
    weights: np.ndarray  # (K,) mixing proportions π_k
    rates: np.ndarray  # (K,) Poisson means λ_k


class PoissonStats(NamedTuple):
    """Additive: the statistics of two chunks are the field-wise sums."""

    weight: np.ndarray  # (K,) Σ_i w_i r_ik
    weighted_count: np.ndarray  # (K,) Σ_i w_i r_ik x_i


def counts_and_weights(chunk) -> tuple[np.ndarray, np.ndarray]:
    """Counts (n,) and row weights (n,) of an array or an ``emkit.data.Batch``."""
    X, sample_weight = (chunk.X, chunk.sample_weight) if isinstance(chunk, Batch) else (chunk, None)
    counts = np.asarray(X, dtype=float)
    counts = counts[:, 0] if counts.ndim == 2 and counts.shape[1] == 1 else counts
    if counts.ndim != 1 or not np.all((counts >= 0) & (counts == np.round(counts))):
        raise DataError("a Poisson mixture needs one column of non-negative integer counts.")
    weights = np.ones(len(counts)) if sample_weight is None else np.asarray(sample_weight, float)
    return counts, weights


class PoissonMixture:
    def __init__(self, n_components: int):
        self.n_components = n_components

    def init_params(self, data, rng: np.random.Generator) -> PoissonParams:
        # Rates at randomly chosen observed counts (jittered: equal rates would never separate).
        pairs = [counts_and_weights(chunk) for chunk in chunk_list(data)]
        counts, weights = (np.concatenate(column) for column in zip(*pairs, strict=True))
        picked = rng.choice(counts, self.n_components, p=weights / weights.sum())
        return PoissonParams(np.full(self.n_components, 1.0 / self.n_components),
                             picked + rng.uniform(0.1, 1.0, self.n_components))

    def e_step(self, params: PoissonParams, chunk, inverse_temperature: float = 1.0):
        counts, weights = counts_and_weights(chunk)
        log_joint = (np.log(params.weights) + counts[:, None] * np.log(params.rates)
                     - params.rates - gammaln(counts + 1)[:, None])  # log π_k Poisson(x_i | λ_k)
        # Annealing tempers the posteriors only; the log-likelihood is always the true one.
        weighted = softmax(inverse_temperature * log_joint, axis=1) * weights[:, None]
        stats = PoissonStats(weighted.sum(axis=0), weighted.T @ counts)
        return stats, float(weights @ logsumexp(log_joint, axis=1))

    def m_step(self, stats: PoissonStats, params: PoissonParams) -> PoissonParams:
        # A tiny pseudo-count keeps an emptied component's weight and rate positive.
        weight = stats.weight + 1e-12
        return PoissonParams(weight / weight.sum(), (stats.weighted_count + 1e-12) / weight)

    def n_samples(self, stats: PoissonStats) -> float:
        return float(stats.weight.sum())  # makes fit_em's tol a change per sample

    # Unconstrained coordinates for SQUAREM: any vector maps back to valid parameters.
    def flatten(self, params: PoissonParams) -> np.ndarray:
        return np.concatenate([np.log(params.weights), np.log(params.rates)])

    def unflatten(self, vector: np.ndarray, template: PoissonParams) -> PoissonParams:
        log_weights, log_rates = np.split(vector, 2)
        return PoissonParams(softmax(log_weights), np.exp(log_rates))


def main() -> None:
    """Fit two components to the yearly numbers of great discoveries, 1860–1959."""
    table = np.loadtxt(files("emkit") / "datasets" / "discoveries.csv", delimiter=",",
                       skiprows=1)
    result = emkit.fit_em(PoissonMixture(2), table[:, 1], n_init=5, random_state=0,
                          accelerate="squarem", tol=1e-10, max_iter=1000)
    order = np.argsort(result.params.rates)
    print(f"weights        {np.round(result.params.weights[order], 3)}")
    print(f"rates          {np.round(result.params.rates[order], 3)}")
    print(f"log-likelihood {result.log_likelihood:.3f}, converged: {result.converged}")


if __name__ == "__main__":
    main()
