"""Hidden Markov models in the contracts.

A contract's "row" is one whole sequence: the data are 3-D arrays (n_sequences, n_frames,
n_features) of equal-length sequences, which the HMM reads as a batch of sequences. The contracts
slice, mask, repeat and weight rows, so they drop, repeat and weight whole sequences, which is
exactly the unit over which an HMM's statistics add.
"""

from __future__ import annotations

import numpy as np

from emkit.families.categorical import CategoricalEmission
from emkit.families.poisson import PoissonEmission
from emkit.models.hmm import GaussianEmission, GMMEmission, HMMModel

from .registry import ModelCase, register, register_map

_FRAMES = 6
_START = np.array([0.7, 0.3])
_TRANSMAT = np.array([[0.85, 0.15], [0.25, 0.75]])


def _states(rng: np.random.Generator, n_sequences: int) -> np.ndarray:
    """Hidden paths (n_sequences, _FRAMES) of a two-state chain."""
    states = np.empty((n_sequences, _FRAMES), dtype=int)
    states[:, 0] = rng.uniform(size=n_sequences) > _START[0]
    for t in range(1, _FRAMES):
        stay = rng.uniform(size=n_sequences) < _TRANSMAT[states[:, t - 1], states[:, t - 1]]
        states[:, t] = np.where(stay, states[:, t - 1], 1 - states[:, t - 1])
    return states


def gaussian_sequences(rng: np.random.Generator, n_sequences: int) -> np.ndarray:
    """2-D Gaussian frames; state 1 is shifted and shaped differently."""
    states = _states(rng, n_sequences)
    noise = rng.standard_normal((n_sequences, _FRAMES, 2))
    scale = np.where(states[..., None] == 0, [1.0, 0.8], [0.6, 1.3])
    return np.where(states[..., None] == 0, 0.0, [2.0, 1.0]) + scale * noise


def gaussian_sequences_with_gaps(rng: np.random.Generator, n_sequences: int) -> np.ndarray:
    """As gaussian_sequences, with 20% of the values missing (some frames entirely)."""
    X = gaussian_sequences(rng, n_sequences)
    X[rng.uniform(size=X.shape) < 0.2] = np.nan
    return X


def categorical_sequences(rng: np.random.Generator, n_sequences: int) -> np.ndarray:
    states = _states(rng, n_sequences)
    probabilities = np.array([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]])[states]
    codes = (rng.uniform(size=states.shape + (1,)) > np.cumsum(probabilities, axis=-1)).sum(-1)
    return codes[..., None].astype(float)


def poisson_sequences(rng: np.random.Generator, n_sequences: int) -> np.ndarray:
    states = _states(rng, n_sequences)
    return rng.poisson(np.array([[3.0, 5.0], [5.0, 2.5]])[states]).astype(float)


# reg_covar=0 as for the mixtures: the M-step is then an exact maximiser.
for _kind in ("full", "diag"):
    register(ModelCase(
        f"hmm-gaussian-{_kind}",
        lambda kind=_kind: HMMModel(2, GaussianEmission(kind, reg_covar=0.0)),
        gaussian_sequences, n_rows=60, min_rows=8,
    ))
register(ModelCase(
    "hmm-gaussian-full-missing",
    lambda: HMMModel(2, GaussianEmission("full", reg_covar=0.0)),
    gaussian_sequences_with_gaps, n_rows=60, min_rows=10,
))
register(ModelCase("hmm-categorical", lambda: HMMModel(2, CategoricalEmission(3)),
                   categorical_sequences, n_rows=60, min_rows=8))
register(ModelCase("hmm-poisson", lambda: HMMModel(2, PoissonEmission()),
                   poisson_sequences, n_rows=60, min_rows=8))
register(ModelCase("hmm-gmm-diag", lambda: HMMModel(2, GMMEmission(2, "diag", reg_covar=0.0)),
                   gaussian_sequences, n_rows=60, min_rows=10))

# MAP models (priors) are MAP cases: "weight 2 = the data twice" is false for them (the prior is
# not doubled). Every prior is on: Dirichlet on the start and transition probabilities, Normal
# on the means and inverse-Wishart (full) or inverse-Gamma (diag) on the covariances, Dirichlet
# on the categorical emissions and Gamma on the Poisson rates.
for _kind in ("full", "diag"):
    register_map(ModelCase(
        f"hmm-gaussian-{_kind}-priors",
        lambda kind=_kind: HMMModel(
            2, GaussianEmission(kind, reg_covar=0.0, means_prior=[0.5, 0.5], means_weight=2.0,
                                covars_prior=0.5, covars_weight=4.0),
            startprob_prior=2.0, transmat_prior=np.array([[3.0, 1.5], [1.2, 2.5]])),
        gaussian_sequences, n_rows=60, min_rows=8,
    ))
register_map(ModelCase(
    "hmm-categorical-priors",
    lambda: HMMModel(2, CategoricalEmission(3, prior=2.0), startprob_prior=1.5,
                     transmat_prior=2.0),
    categorical_sequences, n_rows=60, min_rows=8))
register_map(ModelCase(
    "hmm-poisson-priors",
    lambda: HMMModel(2, PoissonEmission(rate_prior_shape=3.0, rate_prior_rate=0.5),
                     startprob_prior=2.0, transmat_prior=1.5),
    poisson_sequences, n_rows=60, min_rows=8))
