"""Gaussian emissions of hidden Markov models: one Gaussian per state (:class:`GaussianEmission`,
hmmlearn's GaussianHMM) or a mixture of Gaussians per state (:class:`GMMEmission`, GMMHMM).

Both meet the :class:`~emkit.families.base.Emission` contract through one
:class:`~emkit.families.gaussian.GaussianFamily` (its densities, including the marginal densities
of partially observed frames, and its statistics). The start of the emissions is a Gaussian
mixture's start on the frames (time order ignored).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from emkit.data.chunks import Batch
from emkit.errors import DataError, ParameterError
from emkit.families.base import (
    flatten_probabilities,
    log_weights,
    mixing_weights,
    posteriors_from_log_joint,
    unflatten_probabilities,
)
from emkit.families.gaussian import GaussianFamily, GaussianParams, GaussianStats
from emkit.families.gaussian_missing import full_covariances
from emkit.models.clustering import INIT_METHODS
from emkit.models.mixture import GaussianMixtureModel

#: Default start of the Gaussian emissions: the mixture default on the frames (k-means among
#: its candidates, so at least hmmlearn's start).
DEFAULT_HMM_INIT = "auto"


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

    def expected_log_density(self, params: GaussianParams, stats: GaussianStats) -> float:
        """The emissions' part of the M-step's objective Q (see
        :meth:`GaussianFamily.expected_log_density`)."""
        return self.family.expected_log_density(params, stats)

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
            new, bad = self.family.estimate(stats)
        if "c" not in update:
            new, bad = self.family.with_covariances(new.means, params.covariances)
        # A state that explains (almost) no frame, or whose covariance is not positive definite,
        # keeps its previous parameters: recorded as an event, never NaN.
        return self.family.keep_previous(new, bad, stats, params)

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

    def merge(self, drawn: GaussianParams, given: GaussianParams,
              letters: str) -> GaussianParams:
        means = drawn.means if "m" in letters else given.means
        cov = drawn.covariances if "c" in letters else given.covariances
        params, _ = self.family.with_covariances(means, cov)
        return params

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
        joint = np.asarray(self.family.log_density(params.components, X,
                                                   log_weights(params.weights).ravel(), rows),
                           dtype=np.float64)
        return joint.reshape(len(X), K, M)

    def log_density(self, params: GMMParams, X: np.ndarray, rows=None) -> np.ndarray:
        return posteriors_from_log_joint(self._component_log_density(params, X, rows))[0]

    def statistics(self, params: GMMParams, X: np.ndarray,
                   weights: np.ndarray, rows=None) -> GaussianStats:
        _, within = posteriors_from_log_joint(self._component_log_density(params, X, rows))
        within = np.nan_to_num(within)  # a component of weight 0 in a state of weight 0
        frame_weights = np.asarray(weights)[:, :, None] * within
        frame_weights = frame_weights.reshape(len(X), params.weights.size)
        return self.family.statistics(params.components, X, frame_weights, rows)

    def m_step(self, stats: GaussianStats, params: GMMParams,
               update: str = "mcw") -> tuple[GMMParams, tuple]:
        K, M = params.weights.shape
        weights = params.weights
        if "w" in update:  # each state's mixture weights, as any mixture's
            weights = mixing_weights(stats.weight.reshape(K, M))
        components, events = self.gaussian.m_step(stats, params.components, update)
        return GMMParams(weights, components), events

    def log_prior(self, params: GMMParams) -> float:
        return 0.0

    def merge(self, drawn: GMMParams, given: GMMParams, letters: str) -> GMMParams:
        weights = drawn.weights if "w" in letters else given.weights
        return GMMParams(weights, self.gaussian.merge(drawn.components, given.components,
                                                      letters))

    def init(self, X: np.ndarray, frame_weights: np.ndarray, n_states: int,
             rng: np.random.Generator) -> GMMParams:
        """K·M Gaussians from a mixture start on the frames (see GaussianEmission.init), M of
        them to each state in turn, equal weights."""
        components = self.gaussian.init(X, frame_weights, n_states * self.n_mix, rng)
        return GMMParams(np.full((n_states, self.n_mix), 1.0 / self.n_mix), components)

    def flatten(self, params: GMMParams) -> np.ndarray:
        return np.concatenate([flatten_probabilities(params.weights),
                               self.family.flatten(params.components)])

    def unflatten(self, vector: np.ndarray, template: GMMParams) -> GMMParams:
        size = template.weights.size
        weights = unflatten_probabilities(vector[:size], template.weights)
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


