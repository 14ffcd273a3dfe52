"""Hidden Markov models for :func:`emkit.fit_em` (Baum-Welch is EM).

A chain of K hidden states with start probabilities π and transition matrix A emits one frame per
step from an *emission* (the :class:`~emkit.families.base.Emission` contract; Gaussian and
Gaussian-mixture emissions in :mod:`emkit.families.gaussian_emission`, categorical and Poisson
beside them in :mod:`emkit.families`). The E-step is the
forward-backward pass of :mod:`emkit.kernels.hmm`; its sufficient statistics add over sequences:

- start counts Σ_s w_s γ_{s,1} (K,),
- transition counts Σ_s w_s Σ_t ξ_{s,t} (K, K),
- the emission family's statistics of the frames weighted by w_s γ_{s,t}(k) — exactly a mixture's
  statistics with the posteriors in place of the responsibilities,

so a chunk is any group of *whole* sequences. The M-step normalises the counts (with Dirichlet
priors: π ∝ max(counts + α − 1, 0)) and calls the family's M-step. Zeros of A stay zero (a
left-right model stays left-right): ξ is 0 wherever A is, and the M-step keeps those zeros even
under a prior. The objective is the log-likelihood plus the log prior, so MAP-EM is monotone too.

Missing frames: the emission family gives a frame with nothing observed log-density 0 for every
state (no emission term; the chain still moves), and a Gaussian frame with some coordinates
observed the marginal density of those coordinates (:mod:`emkit.families.gaussian_missing`).

Sequences come as :class:`Sequences` (frames back to back, their lengths, optional sequence
weights), as a 3-D array (n_sequences, n_frames, n_features) of equal-length sequences, or as an
``emkit.data.chunks.Batch`` of either with per-sequence ``sample_weight``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from emkit.data.chunks import Batch, chunk_list
from emkit.errors import DataError
from emkit.families import gaussian_missing as missing
from emkit.families.base import Emission, flatten_probabilities, unflatten_probabilities

# The Gaussian emissions live in emkit.families.gaussian_emission; re-exported for the old path.
from emkit.families.gaussian_emission import (  # noqa: F401
    DEFAULT_HMM_INIT,
    GaussianEmission,
    GMMEmission,
    GMMParams,
)
from emkit.kernels import hmm as kernels

# --------------------------------------------------------------------------- sequences


@dataclass(frozen=True, eq=False)
class Sequences:
    """Sequences of frames stored back to back.

    Attributes
    ----------
    X : ndarray (n_frames, n_features)
        All frames; NaN marks a missing value.
    lengths : ndarray of int (n_sequences,)
        Frames per sequence, each ≥ 1, summing to n_frames.
    sample_weight : ndarray (n_sequences,) or None
        Non-negative weight of each sequence (None: all 1).
    """

    X: np.ndarray
    lengths: np.ndarray
    sample_weight: np.ndarray | None = None

    def __post_init__(self):
        X = np.asarray(self.X)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"sequence frames must be a 2-D array (frames × features), got "
                            f"shape {X.shape}.")
        lengths = check_lengths(self.lengths, len(X))
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "lengths", lengths)
        if self.sample_weight is not None:
            w = np.asarray(self.sample_weight, dtype=float)
            if w.shape != lengths.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise DataError(f"sample_weight must be {len(lengths)} finite non-negative "
                                f"numbers (one per sequence), got shape {w.shape}.")
            object.__setattr__(self, "sample_weight", w)

    @classmethod
    def from_list(cls, sequences, sample_weight=None) -> Sequences:
        """Sequences from a list of (n_frames_s, n_features) arrays."""
        arrays = [np.asarray(s, dtype=float) for s in sequences]
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        if not arrays:
            raise DataError("the list of sequences is empty: pass at least one sequence.")
        widths = {a.shape[1] if a.ndim == 2 else None for a in arrays}
        if len(widths) != 1 or None in widths:
            raise DataError("every sequence must be a 2-D array (frames × features) with the "
                            "same number of features.")
        return cls(np.concatenate(arrays), np.array([len(a) for a in arrays]), sample_weight)

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of the frames (makes a Sequences one chunk for ``emkit.data.chunks``)."""
        return self.X.shape

    @functools.cached_property
    def missing_layout(self) -> missing.RowLayout | missing.Complete:
        """Where the NaN are among the frames (``missing.COMPLETE`` when nowhere), found once:
        the frames do not change during a fit."""
        rows = missing.layout(np.ascontiguousarray(self.X, dtype=np.float64))
        return missing.COMPLETE if rows is None else rows

    @property
    def bounds(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def weights(self) -> np.ndarray:
        return np.ones(len(self.lengths)) if self.sample_weight is None else self.sample_weight

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index) -> Sequences:
        """The sequences selected by a slice, integer array or boolean mask."""
        chosen = np.arange(len(self.lengths))[index]
        chosen = np.atleast_1d(chosen)
        bounds = self.bounds
        frames = np.concatenate([np.arange(bounds[s], bounds[s + 1]) for s in chosen]) \
            if len(chosen) else np.zeros(0, dtype=np.int64)
        w = None if self.sample_weight is None else self.sample_weight[chosen]
        return Sequences(self.X[frames], self.lengths[chosen], w)


def check_lengths(lengths, n_frames: int) -> np.ndarray:
    """Validated sequence lengths (int64) that sum to ``n_frames``."""
    try:
        values = np.asarray(lengths, dtype=float)
    except (TypeError, ValueError) as error:
        raise DataError(f"lengths must be integers: {error}.") from error
    values = np.atleast_1d(values)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise DataError("lengths must be a 1-D list of whole numbers of frames.")
    if np.any(values < 1):
        first = int(np.flatnonzero(values < 1)[0])
        raise DataError(f"sequence {first} has length {values[first]:g}: every sequence needs "
                        "at least one frame; drop empty sequences from lengths.")
    if values.sum() != n_frames:
        raise DataError(f"lengths sum to {values.sum():g}, but X has {n_frames} rows: lengths "
                        "must give the number of frames of every sequence in X, in order.")
    return values.astype(np.int64)


def as_sequences(chunk: Any) -> Sequences:
    """A chunk (Sequences, 3-D array of equal-length sequences, 2-D array = one sequence, or a
    Batch of these with per-sequence weights) as :class:`Sequences`."""
    if isinstance(chunk, Sequences):
        return chunk
    if isinstance(chunk, Batch):
        inner = as_sequences(chunk.X)
        if chunk.sample_weight is None:
            return inner
        return Sequences(inner.X, inner.lengths, chunk.sample_weight)
    X = np.asarray(chunk, dtype=float)
    if X.ndim == 3:
        n_sequences, n_frames, n_features = X.shape
        return Sequences(X.reshape(n_sequences * n_frames, n_features),
                         np.full(n_sequences, n_frames))
    if X.ndim in (1, 2):
        X = X[:, None] if X.ndim == 1 else X
        return Sequences(X, np.array([len(X)]))
    raise DataError(f"cannot read sequences from an array of shape {X.shape}: pass frames "
                    "(n_frames, n_features) with lengths, a list of such arrays, or a 3-D array "
                    "(n_sequences, n_frames, n_features).")


# --------------------------------------------------------------------------- the model
class HMMParams(NamedTuple):
    startprob: np.ndarray  # (K,) π
    transmat: np.ndarray  # (K, K) A, rows sum to 1
    emission: Any  # the emission family's parameters
    events: tuple = ()


class HMMStats(NamedTuple):
    """Additive over sequences (field by field)."""

    start: np.ndarray  # (K,) Σ_s w_s γ_{s,1}
    transitions: np.ndarray  # (K, K) Σ_s w_s Σ_t ξ_{s,t}
    emission: Any  # the family's statistics of the frames weighted by w_s γ_{s,t}
    n_frames: float  # Σ_s w_s T_s


class HMMModel:
    """A hidden Markov model with ``n_components`` states for :func:`emkit.fit_em`.

    Parameters
    ----------
    n_components : int
        K, the number of hidden states.
    emission : Emission
        ``GaussianEmission``, ``CategoricalEmission``, ``PoissonEmission``, … (the
        :class:`~emkit.families.base.Emission` contract): log-densities of frames, weighted
        statistics, M-step, starting values.
    params : str
        Letters of the parameters the M-step updates: "s" start probabilities, "t" transition
        matrix, then the family's letters ("m", "c" means and covariances; "e" emission
        probabilities; "l" Poisson rates).
    init_params : str
        Letters of the parameters ``init_params`` draws; the others come from ``start``.
    start : HMMParams, optional
        Values for the parameters not drawn (their ``emission`` may be None when every emission
        letter is drawn).
    startprob_prior, transmat_prior : float or array
        Dirichlet concentrations of π and of every row of A (1: no prior).
    """

    def __init__(self, n_components: int, emission: Emission, params: str | None = None,
                 init_params: str | None = None, start: HMMParams | None = None,
                 startprob_prior=1.0, transmat_prior=1.0):
        self.n_components = int(n_components)
        self.emission = emission
        letters = "st" + emission.letters
        self.params = letters if params is None else params
        self.init_letters = letters if init_params is None else init_params
        self.start = start
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior

    # ------------------------------------------------------------------ E-step
    def prepare(self, chunk: Any) -> list[Sequences]:
        """The chunk as one :class:`Sequences`, kept for the whole fit (so that what it caches,
        such as where the NaN are, is found once)."""
        return [as_sequences(chunk)]

    def log_emission(self, params: HMMParams, sequences: Sequences) -> np.ndarray:
        return self.emission.log_density(params.emission, sequences.X,
                                         rows=sequences.missing_layout)

    def e_step(self, params: HMMParams, chunk: Any) -> tuple[HMMStats, float]:
        sequences = as_sequences(chunk)
        weights = sequences.weights
        log_emission = self.log_emission(params, sequences)
        with np.errstate(divide="ignore"):
            log_start = np.log(params.startprob)
        log_likelihood, posteriors, start, transitions = kernels.forward_backward(
            log_start, params.transmat, log_emission, sequences.bounds, weights)
        if sequences.sample_weight is not None:  # (unit weights need no product)
            posteriors *= np.repeat(weights, sequences.lengths)[:, None]
        emission = self.emission.statistics(params.emission, sequences.X, posteriors,
                                            rows=sequences.missing_layout)
        used = weights > 0
        # Sums, not np.dot: OpenBLAS runs a dot of over 10,000 numbers (one per sequence) on
        # its threads, which then wait for numba's, still spinning after the forward-backward
        # (measured: 16 ms a dot on 20,000 sequences, a third of the E-step; 0.04 ms summed).
        total = float(np.sum(weights[used] * log_likelihood[used]))
        n_frames = float(np.sum(weights * sequences.lengths))
        return HMMStats(start, transitions, emission, n_frames), total

    def posteriors(self, params: HMMParams, sequences: Sequences,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Log-likelihood of each sequence (n_sequences,) and the posterior state marginals of
        every frame (n_frames, K)."""
        with np.errstate(divide="ignore"):
            log_start = np.log(params.startprob)
        ll, posteriors, _, _ = kernels.forward_backward(
            log_start, params.transmat, self.log_emission(params, sequences), sequences.bounds)
        return ll, posteriors

    def viterbi(self, params: HMMParams, sequences: Sequences) -> tuple[np.ndarray, np.ndarray]:
        """The most probable state path (n_frames,) and its log-probability per sequence."""
        with np.errstate(divide="ignore"):
            log_start, log_transmat = np.log(params.startprob), np.log(params.transmat)
        return kernels.viterbi(log_start, log_transmat, self.log_emission(params, sequences),
                               sequences.bounds)

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: HMMStats, params: HMMParams) -> HMMParams:
        startprob, transmat = params.startprob, params.transmat
        if "s" in self.params:
            startprob = _dirichlet_map(stats.start[None, :], self.startprob_prior,
                                       params.startprob[None, :])[0]
        if "t" in self.params:
            transmat = _dirichlet_map(stats.transitions, self.transmat_prior, params.transmat)
        emission, events = self.emission.m_step(stats.emission, params.emission, self.params)
        return HMMParams(startprob, transmat, emission, tuple(events))

    def expected_complete_log_likelihood(self, stats: HMMStats, params: HMMParams,
                                         ) -> float | None:
        """Q: the expected complete-data log-likelihood (plus log prior) of ``params`` under
        the E-step that made ``stats``, up to a constant; None if the emission cannot say.
        The engine compares Q before and after each M-step, so that a log-likelihood fall an
        inexact M-step explains (``reg_covar``'s) is not taken for a defect."""
        emission_part = getattr(self.emission, "expected_log_density", None)
        if emission_part is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            start = np.where(stats.start > 0, stats.start * np.log(params.startprob), 0.0)
            moves = np.where(stats.transitions > 0,
                             stats.transitions * np.log(params.transmat), 0.0)
        return (float(start.sum() + moves.sum())
                + emission_part(params.emission, stats.emission) + self.log_prior(params))

    def log_prior(self, params: HMMParams) -> float:
        return (_dirichlet_log_density(params.startprob[None, :], self.startprob_prior)
                + _dirichlet_log_density(params.transmat, self.transmat_prior)
                + float(self.emission.log_prior(params.emission)))

    # ------------------------------------------------------------------ engine hooks
    def n_samples(self, stats: HMMStats) -> float:
        return float(stats.n_frames)

    def flatten(self, params: HMMParams) -> np.ndarray:
        return np.concatenate([flatten_probabilities(params.startprob),
                               flatten_probabilities(params.transmat),
                               self.emission.flatten(params.emission)])

    def unflatten(self, vector: np.ndarray, template: HMMParams) -> HMMParams:
        K = self.n_components
        startprob = unflatten_probabilities(vector[:K], template.startprob)
        transmat = unflatten_probabilities(vector[K:K + K * K], template.transmat)
        emission = self.emission.unflatten(vector[K + K * K:], template.emission)
        return HMMParams(startprob, transmat, emission)

    def n_parameters(self, n_features: int, params: HMMParams | None = None) -> int:
        """Free parameters: start probabilities, transition rows and the emissions' own count
        (``emission.n_parameters``). Entries of the start and transition probabilities that are
        exactly 0 are structural (EM keeps them 0) and not free: those of ``params`` (the fitted
        values), else of the given ``start``."""
        K = self.n_components
        reference = params if params is not None else self.start
        n = (K - 1) + K * (K - 1)
        if reference is not None and reference.startprob is not None:
            n -= int(np.sum(np.asarray(reference.startprob) == 0))
        if reference is not None and reference.transmat is not None:
            n -= int(np.sum(np.asarray(reference.transmat) == 0))
        return n + self.emission.n_parameters(K, n_features)

    # ------------------------------------------------------------------ initialisation
    def init_params(self, data: Any, rng: np.random.Generator) -> HMMParams:
        chunks = [as_sequences(chunk) for chunk in chunk_list(data)]
        X = np.concatenate([c.X for c in chunks])
        frame_weights = np.concatenate([np.repeat(c.weights, c.lengths) for c in chunks])
        K = self.n_components
        given = self.start
        startprob = (np.full(K, 1.0 / K) if "s" in self.init_letters or given is None
                     else given.startprob)
        transmat = (np.full((K, K), 1.0 / K) if "t" in self.init_letters or given is None
                    else given.transmat)
        drawn = any(letter in self.init_letters for letter in self.emission.letters)
        if drawn or given is None or given.emission is None:
            emission = self.emission.init(X, frame_weights, K, rng)
            if given is not None and given.emission is not None:
                emission = self.emission.merge(emission, given.emission, self.init_letters)
        else:
            emission = given.emission
        return HMMParams(np.asarray(startprob, dtype=float), np.asarray(transmat, dtype=float),
                         emission)


def _dirichlet_map(counts: np.ndarray, prior, previous: np.ndarray) -> np.ndarray:
    """Rows ∝ max(counts + α − 1, 0), zeros of ``previous`` kept; a row with no mass keeps its
    previous value."""
    alpha = np.broadcast_to(np.asarray(prior, dtype=float), counts.shape)
    values = np.where(previous > 0, np.maximum(counts + alpha - 1.0, 0.0), 0.0)
    total = values.sum(axis=1, keepdims=True)
    return np.where(total > 0, values / np.where(total > 0, total, 1.0), previous)


def _dirichlet_log_density(rows: np.ndarray, prior) -> float:
    """Σ (α − 1) log p over the entries that can be positive (unnormalised: constants do not
    move the maximum)."""
    alpha = np.broadcast_to(np.asarray(prior, dtype=float), rows.shape)
    used = (alpha != 1.0) & (rows > 0)
    return float(np.sum((alpha[used] - 1.0) * np.log(rows[used])))
