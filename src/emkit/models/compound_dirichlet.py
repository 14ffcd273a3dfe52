"""Mixtures of Dirichlet-multinomial and of Dirichlet distributions for :func:`emkit.fit_em`.

Dirichlet-multinomial mixture (Holmes, Harris & Quince 2012): row i (counts x_i, total N_i) comes
from component z_i = k with probability π_k, its category probabilities q_i ~ Dir(α_k), and
x_i | q_i ~ Multinomial(N_i, q_i). The E-step computes r_ik ∝ π_k DM(x_i | α_k) and adds, per
component, the weighted histograms of the counts (:class:`~emkit.families.dirichlet.CountHistogram`:
R_k,(j,c) = Σ_{i: x_ij = c} w_i r_ik and the same for the row totals). These add over chunks, and
from them two M-steps are exact:

- ``latent="components"`` (EM over the memberships z only): α_k maximises the weighted
  Dirichlet-multinomial likelihood of component k, by Newton's method with a diagonal-plus-rank-one
  Hessian and Minka's fixed point as fallback (:func:`~emkit.families.dirichlet.polya_map`),
  started at the current α_k — the "generalised Dirichlet-multinomial fit" of Holmes et al.
- ``latent="probabilities"`` (z and the q_i missing: the EM of Gupta & Chen 2010, §4.3): given
  z_i = k, q_i ~ Dir(α_k + x_i), so E[log q_ij] = ψ(α_kj + x_ij) − ψ(α_k0 + N_i); the M-step is the
  Dirichlet MLE from the mean-log sums S_kj = Σ_i w_i r_ik E[log q_ij] (read off the histograms),
  by Newton's method (:func:`~emkit.families.dirichlet.dirichlet_map`).

π_k = n_k / Σ n in both.

With the optional prior α ~ Gamma(η, ν) on λ = log α, the M-step maximises the expected
complete-data log-likelihood plus the log prior, and ``log_prior`` adds the same prior to the
monitored objective, so that objective (Holmes et al.'s, with the opposite sign) never decreases.

The Dirichlet mixture (proportion data) is the same model with q_i observed: its statistics are
n_k and Σ_i w_i r_ik log p_ij, and its M-step is the same Newton solver.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy.special import digamma, gammaln, logsumexp, polygamma, softmax

from emkit.data import Batch, chunk_list
from emkit.errors import DataError, NumericalError, ParameterError
from emkit.families.dirichlet import (
    CountHistogram,
    GammaPrior,
    SparseCounts,
    _log_dm_without_coefficient,
    check_counts,
    check_proportions,
    count_histogram,
    dirichlet_map,
    log_prior_log_alpha,
    mean_log_sums,
    polya_map_components,
    sparse_counts,
)

__all__ = ["CompoundDirichletParams", "CompoundDirichletStats",
           "DirichletMultinomialMixtureModel", "DirichletMixtureModel"]

_EMPTY_FRACTION = 1e-12
LATENT = ("components", "probabilities")


class CompoundDirichletParams(NamedTuple):
    weights: np.ndarray  # (K,) mixing proportions π_k
    alpha: np.ndarray  # (K, J) Dirichlet parameters α_kj > 0


class CompoundDirichletStats(NamedTuple):
    """Statistics of the Dirichlet mixture (proportions). Additive: the field-wise sum of two
    chunks' statistics is the statistic of both."""

    weight: np.ndarray  # (K,) n_k = Σ_i w_i r_ik
    sum_log: np.ndarray  # (K, J) S_kj = Σ_i w_i r_ik E[log q_ij]


def _rows_and_weights(chunk: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(chunk, Batch):
        w = None if chunk.sample_weight is None else np.asarray(chunk.sample_weight, float)
        return np.asarray(chunk.X), w
    return np.asarray(chunk), None


class _DirichletComponents:
    """What both mixtures share: the M-step, the prior, SQUAREM coordinates, initialisation."""

    def __init__(self, n_components: int = 1, prior: GammaPrior | None = None):
        if not (isinstance(n_components, (int, np.integer)) and n_components >= 1):
            raise ParameterError(f"n_components must be an integer >= 1, got {n_components!r}.")
        if prior is not None and not (prior.shape > 0 and prior.rate > 0):
            raise ParameterError(f"the Gamma prior needs shape > 0 and rate > 0, got {prior}.")
        self.n_components = int(n_components)
        self.prior = prior

    # -------------------------------------------------------------------- to be provided
    def _read(self, chunk) -> tuple[Any, np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _component_log_density(self, params, data) -> np.ndarray:
        raise NotImplementedError

    def _statistics(self, params, data, weighted_resp):
        raise NotImplementedError

    def _component_m_step(self, stats, alpha: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def _proportions(self, data) -> np.ndarray:
        raise NotImplementedError

    # -------------------------------------------------------------------- E-step
    def posteriors(self, params: CompoundDirichletParams, chunk,
                   inverse_temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood (n,) and posterior probabilities of the components (n, K)."""
        data, _, _ = self._read(chunk)
        return self._posteriors(params, data, inverse_temperature)

    def _posteriors(self, params, data, beta):
        with np.errstate(divide="ignore"):
            log_joint = self._component_log_density(params, data) + np.log(params.weights)
        log_norm = logsumexp(log_joint, axis=1)
        if beta == 1.0:
            resp = np.exp(log_joint - log_norm[:, None])
        else:  # annealing tempers the posteriors only; the log-likelihood stays the true one
            resp = softmax(beta * log_joint, axis=1)
        return log_norm, resp

    def e_step(self, params: CompoundDirichletParams, chunk,
               inverse_temperature: float = 1.0) -> tuple[Any, float]:
        data, n_rows, w = self._read(chunk)
        K = self.n_components
        if n_rows == 0:
            return self._statistics(params, data, np.zeros((0, K))), 0.0
        log_norm, resp = self._posteriors(params, data, inverse_temperature)
        if w is None:
            weighted = resp
            log_likelihood = float(log_norm.sum())
        else:
            weighted = resp * w[:, None]
            used = w > 0  # a row of weight 0 is a dropped row, even if its density is 0
            log_likelihood = float(w[used] @ log_norm[used])
        return self._statistics(params, data, weighted), log_likelihood

    # -------------------------------------------------------------------- M-step
    def m_step(self, stats, params: CompoundDirichletParams) -> CompoundDirichletParams:
        total = float(stats.weight.sum())
        alpha = params.alpha.copy()
        for k in range(self.n_components):
            # An empty component's α does not enter the expected log-likelihood (without a
            # prior): keeping it is a maximiser, and avoids a solve on zeros.
            if stats.weight[k] > _EMPTY_FRACTION * total or self.prior is not None:
                alpha[k] = self._component_m_step(stats, params.alpha, k)
        weights = stats.weight + 10 * np.finfo(float).eps
        return CompoundDirichletParams(weights / weights.sum(), alpha)

    def _dirichlet_m_step(self, sum_log: np.ndarray, weight: float, start: np.ndarray):
        return dirichlet_map(sum_log, weight, start, self.prior)

    def log_prior(self, params: CompoundDirichletParams) -> float:
        return 0.0 if self.prior is None else log_prior_log_alpha(params.alpha, self.prior)

    def n_samples(self, stats: CompoundDirichletStats) -> float:
        return float(stats.weight.sum())

    # Unconstrained coordinates for SQUAREM: log-weights (softmax back) and λ = log α.
    def flatten(self, params: CompoundDirichletParams) -> np.ndarray:
        return np.concatenate([np.log(params.weights), np.log(params.alpha).ravel()])

    def unflatten(self, vector: np.ndarray,
                  template: CompoundDirichletParams) -> CompoundDirichletParams:
        K = self.n_components
        alpha = np.exp(vector[K:]).reshape(template.alpha.shape)
        if not np.all((alpha > 0) & np.isfinite(alpha)):
            raise FloatingPointError("α outside (0, ∞)")
        return CompoundDirichletParams(softmax(vector[:K]), alpha)

    def n_parameters(self, n_categories: int) -> int:
        return self.n_components - 1 + self.n_components * n_categories

    # -------------------------------------------------------------------- initialisation
    def init_params(self, data: Any, rng: np.random.Generator) -> CompoundDirichletParams:
        """Hard clusters from k-means++ seeds on the proportions, each cluster's α from the
        method of moments, jittered so that every start differs (even with one component)."""
        parts = [self._read(chunk) for chunk in chunk_list(data)]
        P = np.concatenate([self._proportions(part[0]) for part in parts])
        w = np.concatenate([np.ones(part[1]) if part[2] is None else part[2] for part in parts])
        keep = w > 0
        P, w = P[keep], w[keep]
        K = self.n_components
        if len(P) < K:
            raise DataError(f"{K} components need at least {K} rows of positive weight, got "
                            f"{len(P)}.")
        if K == 1:
            assignment = np.zeros(len(P), dtype=int)
        else:
            from sklearn.cluster import kmeans_plusplus

            centres, _ = kmeans_plusplus(P, K, random_state=int(rng.integers(0, 2**31 - 1)),
                                         sample_weight=w)
            # Nearest centre by plain numpy: sklearn's pairwise_distances_argmin costs ~50 ms of
            # dispatch per call here, more than a whole EM fit of the twins data.
            distances = (np.einsum("ij,ij->i", P, P)[:, None] - 2.0 * P @ centres.T
                         + np.einsum("kj,kj->k", centres, centres))
            assignment = distances.argmin(axis=1)
        alpha = np.empty((K, P.shape[1]))
        weights = np.empty(K)
        for k in range(K):
            members = assignment == k
            if not members.any():  # k-means++ seeds are rows, so this is a tie: use all rows
                members = np.ones(len(P), dtype=bool)
            alpha[k] = _moment_alpha(P[members], w[members])
            weights[k] = w[members].sum()
        alpha *= np.exp(0.1 * rng.standard_normal(alpha.shape))
        return CompoundDirichletParams(weights / weights.sum(), alpha)


def _moment_alpha(P: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A rough Dirichlet α from the weighted mean and variance of proportions (Minka 2000, §1):
    mean m_j, precision s from m_j (1 − m_j) / var_j = s + 1 (median over categories)."""
    total = w.sum()
    mean = (w @ P + 1e-3) / (total + 1e-3 * P.shape[1])  # a pseudo-count keeps every α_j > 0
    variance = w @ (P - mean) ** 2 / total
    ratio = mean * (1 - mean) / np.maximum(variance, 1e-12)
    precision = float(np.clip(np.median(ratio) - 1.0, 0.5, 1e4)) if len(P) > 1 else 1.0
    return mean * precision


class DirichletMultinomialMixtureModel(_DirichletComponents):
    """Mixture of ``n_components`` Dirichlet-multinomials over count vectors (module docstring).

    Parameters
    ----------
    n_components : int
    prior : GammaPrior or None
        Gamma(shape η, rate ν) prior on each α_kj, as a density of λ = log α (Holmes et al.
        2012 use η = ν = 0.1); None for maximum likelihood.
    latent : {"components", "probabilities"}
        What EM treats as missing. ``"components"`` (default): only the memberships z_i; the
        M-step maximises each component's weighted Dirichlet-multinomial likelihood exactly
        (:func:`~emkit.families.dirichlet.polya_map`, from the count histograms). Few
        iterations. ``"probabilities"``: the memberships and the per-row probability vectors
        q_i (Gupta & Chen §4.3); the M-step is the Dirichlet MLE from the mean-log statistics
        S_kj (computed from the same histograms at the E-step's α). Many more iterations, since
        q_i carries much missing information; with one component, the classic EM for the
        Dirichlet-multinomial.

    The statistics are :class:`~emkit.families.dirichlet.CountHistogram` either way.
    """

    def __init__(self, n_components: int = 1, prior: GammaPrior | None = None,
                 latent: str = "components"):
        super().__init__(n_components, prior)
        if latent not in LATENT:
            raise ParameterError(f"latent must be one of {LATENT}, got {latent!r}.")
        self.latent = latent

    def _read(self, chunk) -> tuple[SparseCounts, int, np.ndarray | None]:
        # A chunk is an array of counts, or (what the estimators pass, converted and checked
        # once per fit instead of once per iteration) SparseCounts; either inside a Batch.
        X, w = (chunk.X, chunk.sample_weight) if isinstance(chunk, Batch) else (chunk, None)
        w = None if w is None else np.asarray(w, dtype=float)
        if isinstance(X, SparseCounts):
            return X, X.n_rows, w
        X = np.asarray(X)
        if X.ndim == 2 and len(X) == 0:
            return sparse_counts(np.zeros((0, max(X.shape[1], 2)))), 0, w
        counts = sparse_counts(check_counts(X))
        return counts, counts.n_rows, w

    def prepare(self, chunk) -> list:
        """The engine's once-per-fit hook: an array of counts becomes (checked) SparseCounts, so
        that the E-steps do not convert and check it again at every iteration."""
        if isinstance(chunk, Batch):
            if isinstance(chunk.X, SparseCounts) or len(chunk.X) == 0:
                return [chunk]
            return [Batch(sparse_counts(check_counts(chunk.X)), chunk.sample_weight,
                          chunk.labels)]
        if isinstance(chunk, SparseCounts) or len(chunk) == 0:
            return [chunk]
        return [sparse_counts(check_counts(chunk))]

    def _component_log_density(self, params, counts: SparseCounts) -> np.ndarray:
        return (_log_dm_without_coefficient(counts, params.alpha)
                + counts.log_coefficient[:, None])

    def _statistics(self, params, counts: SparseCounts, weighted_resp) -> CountHistogram:
        return count_histogram(counts, weighted_resp)

    def m_step(self, stats: CountHistogram,
               params: CompoundDirichletParams) -> CompoundDirichletParams:
        if self.latent == "probabilities":
            # E[log q_ij] under the posterior at the E-step's α (the α passed in with the stats).
            stats = CompoundDirichletStats(stats.weight, mean_log_sums(stats, params.alpha))
            return super().m_step(stats, params)
        # All components in one compiled call; as in the base class, an empty component keeps
        # its α when there is no prior.
        active = (stats.weight > _EMPTY_FRACTION * float(stats.weight.sum())) | (
            self.prior is not None)
        alpha = polya_map_components(stats, params.alpha, active, self.prior)
        weights = stats.weight + 10 * np.finfo(float).eps
        return CompoundDirichletParams(weights / weights.sum(), alpha)

    def _component_m_step(self, stats: CompoundDirichletStats, alpha: np.ndarray,
                          k: int) -> np.ndarray:
        # latent="probabilities" only (m_step above handles "components" in one call).
        return self._dirichlet_m_step(stats.sum_log[k], float(stats.weight[k]), alpha[k])

    def _proportions(self, counts: SparseCounts) -> np.ndarray:
        P = np.zeros((counts.n_rows, counts.n_categories))
        P[counts.rows, counts.columns] = counts.values / counts.totals[counts.rows]
        return P

    # -------------------------------------------------------------------- Laplace approximation
    def laplace_log_evidence(self, params: CompoundDirichletParams, X: np.ndarray,
                             sample_weight: np.ndarray | None = None) -> float:
        """Laplace approximation to the log evidence log p(X) at a posterior mode.

        log p(X) ≈ L(θ̂) + log p(θ̂) + (d/2) log 2π − ½ log det(−H) + log K!

        in the coordinates θ = (λ = log α, π_1 … π_{K−1}), with the Gamma prior on λ and a
        uniform Dirichlet(1, …, 1) prior on the weights (density (K − 1)! on the simplex); H is
        the exact Hessian of the log posterior there, and log K! counts the K! relabellings of
        the mode. Needs the prior (a flat prior on λ has no evidence).
        """
        if self.prior is None:
            raise ParameterError("the Laplace approximation to the evidence needs the Gamma "
                                 "prior on α (prior='gamma'): without it the evidence is "
                                 "undefined. Use bic() or aic() instead.")
        counts = sparse_counts(check_counts(X))
        w = np.ones(counts.n_rows) if sample_weight is None else np.asarray(sample_weight, float)
        hessian = self.log_posterior_hessian(params, counts, w)
        sign, log_det = np.linalg.slogdet(-hessian)
        if sign <= 0:
            raise NumericalError("the Hessian of the log posterior is not negative definite at "
                                 "the fitted parameters (not a maximum): fit to convergence "
                                 "(smaller tol, more max_iter) before the Laplace evidence.")
        log_norm, _ = self._posteriors(params, counts, 1.0)
        K = self.n_components
        d = hessian.shape[0]
        return float(w @ log_norm + self.log_prior(params) + math.lgamma(K)
                     + 0.5 * d * math.log(2 * math.pi) - 0.5 * log_det + math.lgamma(K + 1))

    def log_posterior_hessian(self, params: CompoundDirichletParams, counts: SparseCounts,
                              w: np.ndarray) -> np.ndarray:
        """Hessian of Σ_i w_i log p(x_i | θ) + log p(λ) in θ = (λ (K·J, row-major), π_1 … π_{K−1}).

        For one row, ∇² log p = Σ_k r_k (∇² log f_k + g_k g_kᵀ) + (π–λ cross terms) − ĝ ĝᵀ, with
        g_k = ∇_λk log f_k and ĝ the row's full gradient; ∇² log f_k in λ is a diagonal plus
        c αα ᵀ, so only the outer products of gradients need dense (d × d) work.
        """
        alpha, weights = params.alpha, params.weights
        K, J = alpha.shape
        _, resp = self._posteriors(params, counts, 1.0)
        alpha0 = alpha.sum(axis=1)
        totals = counts.totals[:, None]
        # a_ikj = ∂ log f_ik / ∂α_kj, dense (n, K, J): zero counts give ψ(α_kj) − ψ(α_kj) = 0.
        a = np.broadcast_to((digamma(alpha0) - digamma(alpha0 + totals))[:, :, None],
                            (counts.n_rows, K, J)).copy()
        alpha_nz = alpha[:, counts.columns].T  # (nnz, K)
        a[counts.rows, :, counts.columns] += (digamma(alpha_nz + counts.values[:, None])
                                              - digamma(alpha_nz))
        g = a * alpha[None]  # ∂ log f_ik / ∂λ_kj
        trigamma_diff = np.zeros((counts.n_rows, K, J))
        trigamma_diff[counts.rows, :, counts.columns] = (
            polygamma(1, alpha_nz + counts.values[:, None]) - polygamma(1, alpha_nz))
        c = polygamma(1, alpha0) - polygamma(1, alpha0 + totals)  # (n, K)
        wr = w[:, None] * resp  # (n, K)

        n_lambda = K * J
        d = n_lambda + K - 1
        H = np.zeros((d, d))
        for k in range(K):
            block = slice(k * J, (k + 1) * J)
            diagonal = wr[:, k] @ (alpha[k] ** 2 * trigamma_diff[:, k] + alpha[k] * a[:, k])
            H[block, block] = (float(wr[:, k] @ c[:, k]) * np.outer(alpha[k], alpha[k])
                               + np.diag(diagonal) + (g[:, k].T * wr[:, k]) @ g[:, k])
            if self.prior is not None:
                H[block, block] -= np.diag(self.prior.rate * alpha[k])
        # π coordinates: π_K = 1 − Σ_{m<K} π_m, so ∂ log p_i / ∂π_m = r_im/π_m − r_iK/π_K.
        ratio = resp / weights  # f_ik / p_i
        g_hat = np.empty((counts.n_rows, d))
        g_hat[:, :n_lambda] = (resp[:, :, None] * g).reshape(counts.n_rows, n_lambda)
        g_hat[:, n_lambda:] = ratio[:, :-1] - ratio[:, -1:]
        for m in range(K - 1):
            for k in (m, K - 1):  # ∂²p/∂π_m∂λ_k / p = (δ_km − δ_kK) (f_k / p) g_k
                sign = 1.0 if k == m else -1.0
                cross = sign * ((w * ratio[:, k]) @ g[:, k])
                H[k * J:(k + 1) * J, n_lambda + m] += cross
                H[n_lambda + m, k * J:(k + 1) * J] += cross
        H -= (g_hat.T * w) @ g_hat
        return H


class DirichletMixtureModel(_DirichletComponents):
    """Mixture of ``n_components`` Dirichlet distributions over rows on the simplex."""

    def _read(self, chunk) -> tuple[np.ndarray, int, np.ndarray | None]:
        P, w = _rows_and_weights(chunk)
        if P.ndim == 2 and len(P) == 0:
            return np.zeros((0, max(P.shape[1], 2))), 0, w
        P = check_proportions(P)
        return np.log(P), len(P), w

    def _component_log_density(self, params, log_p: np.ndarray) -> np.ndarray:
        alpha = params.alpha
        return (gammaln(alpha.sum(axis=1)) - gammaln(alpha).sum(axis=1)
                + log_p @ (alpha - 1.0).T)

    def _statistics(self, params, log_p: np.ndarray, weighted_resp) -> CompoundDirichletStats:
        return CompoundDirichletStats(weighted_resp.sum(axis=0), weighted_resp.T @ log_p)

    def _component_m_step(self, stats: CompoundDirichletStats, alpha: np.ndarray,
                          k: int) -> np.ndarray:
        return self._dirichlet_m_step(stats.sum_log[k], float(stats.weight[k]), alpha[k])

    def _proportions(self, log_p: np.ndarray) -> np.ndarray:
        return np.exp(log_p)

