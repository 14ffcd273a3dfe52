"""Hidden Markov models for :func:`emkit.fit_em` (Baum-Welch is EM).

A chain of K hidden states with start probabilities π and transition matrix A emits one frame per
step from an *emission family* (Gaussian, categorical, Poisson, …). The E-step is the
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
``emkit.data.Batch`` of either with per-sequence ``sample_weight``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.special import logsumexp

from emkit.data import Batch, chunk_list
from emkit.errors import DataError, ParameterError
from emkit.families import gaussian_missing as missing
from emkit.families.gaussian import (
    GaussianFamily,
    GaussianParams,
    GaussianStats,
)
from emkit.kernels import hmm as kernels
from emkit.models.mixture import INIT_METHODS, GaussianMixtureModel

#: Default start of the Gaussian emissions: the mixture default on the frames (k-means among
#: its candidates, so at least hmmlearn's start).
DEFAULT_HMM_INIT = "auto"

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
        """The shape of the frames (makes a Sequences one chunk for ``emkit.data``)."""
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


# --------------------------------------------------------------------------- Gaussian emissions
class GaussianEmission:
    """Gaussian emissions through :class:`emkit.families.gaussian.GaussianFamily` (its densities,
    including marginal densities of partially observed frames, and its statistics).

    Conjugate priors (full and diag covariances; the conventions of hmmlearn): a normal prior on
    each mean (``means_prior`` μ₀ with weight λ = ``means_weight``) and an inverse-Wishart-like
    prior on each covariance (``covars_prior`` Ψ, ``covars_weight`` ν):

        log p(μ, Σ) = −a/2 log|Σ| − ½ tr(Ψ Σ⁻¹) − λ/2 (μ − μ₀)ᵀ Σ⁻¹ (μ − μ₀),
        a = max(ν − D, 0) (full) or max(ν − 1, 0) (diag, per coordinate),

    whose MAP M-step is μ = (λμ₀ + Σγx)/(λ + Σγ), Σ = (Ψ + λ(μ − μ₀)(μ − μ₀)ᵀ + S_μ)/(a + Σγ).
    """

    letters = "mc"
    # log_density and statistics take ``rows`` (Sequences.missing_layout)
    uses_missing_layout = True

    def __init__(self, covariance_type: str = "full", reg_covar: float = 1e-6,
                 means_prior=0.0, means_weight=0.0, covars_prior=0.0, covars_weight=0.0,
                 min_covar: float = 1e-3, init: str = DEFAULT_HMM_INIT):
        if init not in INIT_METHODS:
            raise ParameterError(f"init must be one of {INIT_METHODS}, got {init!r}.")
        self.init_method = init
        self.family = GaussianFamily(covariance_type, reg_covar)
        self.covariance_type = covariance_type
        self.min_covar = float(min_covar)  # added to the data's covariance at init (hmmlearn)
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.has_prior = bool(np.any(np.asarray(means_weight) != 0)
                              or np.any(np.asarray(covars_prior) != 0)
                              or np.any(np.asarray(covars_weight) != 0))
        if self.has_prior and covariance_type not in ("full", "diag"):
            raise ParameterError("priors on Gaussian emissions are implemented for "
                                 "covariance_type 'full' and 'diag' only.")

    def validate(self, X: np.ndarray) -> None:
        if np.isinf(X).any():
            raise DataError("X contains infinity; mark missing values as NaN.")

    def log_density(self, params: GaussianParams, X: np.ndarray, rows=None) -> np.ndarray:
        return np.asarray(self.family.log_density(params, X, rows=rows), dtype=np.float64)

    def statistics(self, params: GaussianParams, X: np.ndarray,
                   weights: np.ndarray, rows=None) -> GaussianStats:
        return self.family.statistics(params, X, weights, rows)

    def m_step(self, stats: GaussianStats, params: GaussianParams,
               update: str = "mc") -> tuple[GaussianParams, tuple]:
        if "m" not in update and "c" not in update:
            return params, ()
        if "m" not in update:  # covariances about the current means (first moments ignored)
            stats = stats.recentered(params.means)
            stats = GaussianStats(stats.weight, np.zeros_like(stats.first), stats.second,
                                  stats.center)
        if self.has_prior:
            new, bad = self._map_step(stats)
        else:
            new, bad = self.family.m_step(stats)
        if "c" not in update:
            new, bad = self.family.with_covariances(new.means, params.covariances)
        # A state that explains (almost) no frame has no information about its parameters.
        bad = bad | (stats.weight < 1e-10 * max(float(stats.weight.sum()), 1e-300))
        if not bad.any():
            return new, ()
        # A state whose covariance is not positive definite (e.g. it explains no frame) keeps
        # its previous parameters: recorded as an event, never NaN.
        means = np.where(bad[:, None], params.means, new.means)
        cov = np.array(new.covariances, copy=True)
        if self.covariance_type == "tied":
            cov = params.covariances
        else:
            cov[bad] = params.covariances[bad]
        kept, _ = self.family.with_covariances(means, cov)
        events = tuple(f"emission Gaussian {k} has no usable covariance (weight "
                       f"{stats.weight[k]:.3g}); kept its previous parameters"
                       for k in np.flatnonzero(bad))
        return kept, events

    def _map_step(self, stats: GaussianStats) -> tuple[GaussianParams, np.ndarray]:
        n = stats.weight
        K, D = stats.first.shape
        mu0 = np.broadcast_to(np.asarray(self.means_prior, dtype=float), (K, D))
        lam = np.broadcast_to(np.asarray(self.means_weight, dtype=float), (K,))
        # Σγ(x − c) and the prior pull, with c the centre of the statistics
        means = stats.center + (stats.first + lam[:, None] * (mu0 - stats.center)) / np.maximum(
            n + lam, 1e-300)[:, None]
        shift = means - stats.center  # S_μ = second − 2 shift firstᵀ + n shift shiftᵀ (sym.)
        diff = means - mu0
        if self.covariance_type == "full":
            cross = stats.first[:, :, None] * shift[:, None, :]
            scatter = (stats.second - cross - np.swapaxes(cross, 1, 2)
                       + n[:, None, None] * shift[:, :, None] * shift[:, None, :])
            psi = np.broadcast_to(np.asarray(self.covars_prior, dtype=float), (K, D, D))
            a = max(float(self.covars_weight) - D, 0.0)
            cov = (psi + lam[:, None, None] * diff[:, :, None] * diff[:, None, :] + scatter) \
                / np.maximum(a + n, 1e-300)[:, None, None]
            cov = 0.5 * (cov + np.swapaxes(cov, 1, 2)) + self.family.reg_covar * np.eye(D)
        else:
            scatter = stats.second - 2 * stats.first * shift + n[:, None] * shift**2
            psi = np.broadcast_to(np.asarray(self.covars_prior, dtype=float), (K, D))
            a = max(float(self.covars_weight) - 1.0, 0.0)
            cov = (psi + lam[:, None] * diff**2 + scatter) / np.maximum(a + n, 1e-300)[:, None]
            cov = cov + self.family.reg_covar
        return self.family.with_covariances(means, cov)

    def log_prior(self, params: GaussianParams) -> float:
        if not self.has_prior:
            return 0.0
        K, D = params.means.shape
        mu0 = np.broadcast_to(np.asarray(self.means_prior, dtype=float), (K, D))
        lam = np.broadcast_to(np.asarray(self.means_weight, dtype=float), (K,))
        diff = params.means - mu0
        if self.covariance_type == "full":
            psi = np.broadcast_to(np.asarray(self.covars_prior, dtype=float), (K, D, D))
            a = max(float(self.covars_weight) - D, 0.0)
            precision = np.linalg.inv(params.covariances)
            _, log_det = np.linalg.slogdet(params.covariances)
            quad = np.einsum("ki,kij,kj->k", diff, precision, diff)
            trace = np.einsum("kij,kji->k", psi, precision)
            return float(np.sum(-0.5 * a * log_det - 0.5 * trace - 0.5 * lam * quad))
        psi = np.broadcast_to(np.asarray(self.covars_prior, dtype=float), (K, D))
        a = max(float(self.covars_weight) - 1.0, 0.0)
        var = params.covariances
        return float(np.sum(-0.5 * a * np.log(var) - 0.5 * (psi + lam[:, None] * diff**2)
                            / var))

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> GaussianParams:
        """Means and covariances of the states from a Gaussian-mixture start on the frames
        (time order ignored) by the method ``init_method`` of
        :class:`emkit.models.mixture.GaussianMixtureModel`: for ``"kmeans"`` (hmmlearn's
        start) the k-means clusters' means and covariances."""
        used = frame_weights > 0
        with np.errstate(invalid="ignore"):
            spread = np.nanmax(X[used], axis=0) - np.nanmin(X[used], axis=0)
        if not np.all(spread > 0):
            raise DataError("the frames' covariance is singular (a constant or duplicated "
                            "column?): drop such columns.")
        # The mixture start needs positive definite covariances even when the fit runs with
        # reg_covar=0: at least 1e-6 of the frames' mean variance.
        floor = 1e-6 * float(np.mean(np.nanvar(X[used], axis=0)))
        mixture = GaussianMixtureModel(n_states, self.covariance_type,
                                       max(self.family.reg_covar, floor),
                                       init_params=self.init_method)
        start = mixture.init_params(Batch(X[used], frame_weights[used]), rng)
        cov = np.array(start.components.covariances)
        if self.covariance_type in ("full", "tied"):  # hmmlearn's min_covar, at the start only
            cov = cov + self.min_covar * np.eye(cov.shape[-1])
        else:
            cov = cov + self.min_covar
        params, bad = self.family.with_covariances(start.components.means, cov)
        if bad.any():
            raise DataError("the frames' covariance is singular (a constant or duplicated "
                            "column?): drop such columns.")
        return params

    def flatten(self, params: GaussianParams) -> np.ndarray:
        return self.family.flatten(params)

    def unflatten(self, vector: np.ndarray, template: GaussianParams) -> GaussianParams:
        return self.family.unflatten(vector, template)

    def n_parameters(self, n_states: int, n_features: int) -> int:
        return self.family.n_parameters(n_states, n_features)

    def sample(self, params: GaussianParams, states: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        from emkit.families.gaussian_missing import full_covariances

        cov = full_covariances(self.family, params)
        noise = rng.standard_normal((len(states), params.means.shape[1]))
        factors = np.linalg.cholesky(cov)
        return params.means[states] + np.einsum("nij,nj->ni", factors[states], noise)


# --------------------------------------------------------------------------- mixture emissions
class GMMParams(NamedTuple):
    weights: np.ndarray  # (K, M) mixture weights of each state
    components: GaussianParams  # K·M Gaussians; state k owns components k·M … k·M + M − 1


class GMMEmission:
    """Each state emits from a mixture of ``n_mix`` Gaussians (the emissions of hmmlearn's
    GMMHMM), through one :class:`GaussianFamily` of K·M components.

    log p(x | state k) = log Σ_m w_km N(x | μ_km, Σ_km); the statistics are the Gaussian
    statistics of the K·M components with frame weights γ_t(k) · r_t(k, m), r the posterior of
    component m within state k — whose sums are also the counts that re-estimate w. Partially
    observed frames use the marginal densities, as for :class:`GaussianEmission`.
    """

    letters = "mcw"
    uses_missing_layout = True

    def __init__(self, n_mix: int, covariance_type: str = "diag", reg_covar: float = 1e-6,
                 min_covar: float = 1e-3, init: str = DEFAULT_HMM_INIT):
        if covariance_type == "tied":
            raise ParameterError("GMMHMM supports covariance_type 'full', 'diag' and "
                                 "'spherical'.")
        self.n_mix = int(n_mix)
        # the K·M components
        self.gaussian = GaussianEmission(covariance_type, reg_covar, min_covar=min_covar,
                                         init=init)
        self.family = self.gaussian.family
        self.covariance_type = covariance_type

    def validate(self, X: np.ndarray) -> None:
        self.gaussian.validate(X)

    def _component_log_density(self, params: GMMParams, X: np.ndarray, rows) -> np.ndarray:
        """log w_km + log N(x_t | μ_km, Σ_km), shape (n_frames, K, M)."""
        K, M = params.weights.shape
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights).ravel()
        joint = np.asarray(self.family.log_density(params.components, X, log_weights, rows),
                           dtype=np.float64)
        return joint.reshape(len(X), K, M)

    def log_density(self, params: GMMParams, X: np.ndarray, rows=None) -> np.ndarray:
        return logsumexp(self._component_log_density(params, X, rows), axis=2)

    def statistics(self, params: GMMParams, X: np.ndarray,
                   weights: np.ndarray, rows=None) -> GaussianStats:
        joint = self._component_log_density(params, X, rows)
        with np.errstate(invalid="ignore"):
            within = np.exp(joint - logsumexp(joint, axis=2, keepdims=True))
        within = np.nan_to_num(within)  # a component of weight 0 in a state of weight 0
        frame_weights = np.asarray(weights)[:, :, None] * within
        frame_weights = frame_weights.reshape(len(X), params.weights.size)
        return self.family.statistics(params.components, X, frame_weights, rows)

    def m_step(self, stats: GaussianStats, params: GMMParams,
               update: str = "mcw") -> tuple[GMMParams, tuple]:
        K, M = params.weights.shape
        weights = params.weights
        if "w" in update:
            counts = stats.weight.reshape(K, M)
            total = counts.sum(axis=1, keepdims=True)
            weights = np.where(total > 0, counts / np.where(total > 0, total, 1.0), weights)
        components, events = self.gaussian.m_step(stats, params.components, update)
        return GMMParams(weights, components), events

    def log_prior(self, params: GMMParams) -> float:
        return 0.0

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> GMMParams:
        """K·M Gaussians from a mixture start on the frames (see GaussianEmission.init), M of
        them to each state in turn, equal weights."""
        components = self.gaussian.init(X, frame_weights, n_states * self.n_mix, rng)
        return GMMParams(np.full((n_states, self.n_mix), 1.0 / self.n_mix), components)

    def flatten(self, params: GMMParams) -> np.ndarray:
        return np.concatenate([_log_positive(params.weights),
                               self.family.flatten(params.components)])

    def unflatten(self, vector: np.ndarray, template: GMMParams) -> GMMParams:
        size = template.weights.size
        weights = _softmax_rows(vector[:size].reshape(template.weights.shape), template.weights)
        return GMMParams(weights, self.family.unflatten(vector[size:], template.components))

    def n_parameters(self, n_states: int, n_features: int) -> int:
        return n_states * (self.n_mix - 1) + self.family.n_parameters(n_states * self.n_mix,
                                                                      n_features)

    def sample(self, params: GMMParams, states: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        cumulative = np.cumsum(params.weights[states], axis=1)
        mix = np.minimum((rng.uniform(size=(len(states), 1)) > cumulative).sum(axis=1),
                         self.n_mix - 1)
        return self.gaussian.sample(params.components, states * self.n_mix + mix, rng)


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
    emission : emission family
        ``GaussianEmission``, ``CategoricalEmission``, ``PoissonEmission``, …: log-densities of
        frames, weighted statistics, M-step, starting values.
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

    def __init__(self, n_components: int, emission: Any, params: str | None = None,
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

    def _layout(self, sequences: Sequences) -> dict:
        """The keyword giving the emission the frames' NaN layout, for emissions that take it."""
        if getattr(self.emission, "uses_missing_layout", False):
            return {"rows": sequences.missing_layout}
        return {}

    def log_emission(self, params: HMMParams, sequences: Sequences) -> np.ndarray:
        return self.emission.log_density(params.emission, sequences.X,
                                         **self._layout(sequences))

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
                                            **self._layout(sequences))
        used = weights > 0
        total = float(np.dot(weights[used], log_likelihood[used]))
        n_frames = float(np.dot(weights, sequences.lengths))
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

    def log_prior(self, params: HMMParams) -> float:
        return (_dirichlet_log_density(params.startprob[None, :], self.startprob_prior)
                + _dirichlet_log_density(params.transmat, self.transmat_prior)
                + float(getattr(self.emission, "log_prior", lambda p: 0.0)(params.emission)))

    # ------------------------------------------------------------------ engine hooks
    def n_samples(self, stats: HMMStats) -> float:
        return float(stats.n_frames)

    def flatten(self, params: HMMParams) -> np.ndarray:
        return np.concatenate([_log_positive(params.startprob), _log_positive(params.transmat),
                               self.emission.flatten(params.emission)])

    def unflatten(self, vector: np.ndarray, template: HMMParams) -> HMMParams:
        K = self.n_components
        startprob = _softmax_rows(vector[:K][None, :], template.startprob[None, :])[0]
        transmat = _softmax_rows(vector[K:K + K * K].reshape(K, K), template.transmat)
        emission = self.emission.unflatten(vector[K + K * K:], template.emission)
        return HMMParams(startprob, transmat, emission)

    def n_parameters(self, n_features: int) -> int:
        """Free parameters: start probabilities, transition rows and emissions (structural
        zeros of the start and transition probabilities are not free)."""
        start = self.start
        K = self.n_components
        n = (K - 1) + K * (K - 1)
        if start is not None and start.transmat is not None:
            zeros = int(np.sum(start.transmat == 0))
            n -= zeros
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
                emission = _merge_emission(self.emission, emission, given.emission,
                                           self.init_letters)
        else:
            emission = given.emission
        return HMMParams(np.asarray(startprob, dtype=float), np.asarray(transmat, dtype=float),
                         emission)


def _merge_emission(family, drawn, given, letters):
    """Drawn emission parameters, with those whose letter is not in ``letters`` from ``given``."""
    if isinstance(family, GMMEmission):
        weights = drawn.weights if "w" in letters else given.weights
        components = _merge_emission(family.gaussian, drawn.components, given.components,
                                     letters)
        return GMMParams(weights, components)
    if isinstance(family, GaussianEmission):
        means = drawn.means if "m" in letters else given.means
        cov = drawn.covariances if "c" in letters else given.covariances
        params, _ = family.family.with_covariances(means, cov)
        return params
    return drawn


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


def _log_positive(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, 1e-300)).ravel()


def _softmax_rows(logits: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Rows of probabilities from logits; zeros of ``template`` stay zero."""
    logits = np.where(template > 0, logits, -np.inf)
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
