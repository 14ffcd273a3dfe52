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
from typing import NamedTuple

import numpy as np
from scipy.special import digamma, polygamma

from emkit.errors import NumericalError, ParameterError
from emkit.families.dirichlet import (
    LATENT,
    CompoundDirichletStats,
    DirichletFamily,
    DirichletMultinomialFamily,
    GammaPrior,
    SparseCounts,
    check_counts,
    sparse_counts,
)
from emkit.models.mixture import MixtureModel

__all__ = ["CompoundDirichletParams", "CompoundDirichletStats",
           "DirichletMultinomialMixtureModel", "DirichletMixtureModel", "LATENT"]


class CompoundDirichletParams(NamedTuple):
    weights: np.ndarray  # (K,) mixing proportions π_k
    alpha: np.ndarray  # (K, J) Dirichlet parameters α_kj > 0

    @property
    def components(self) -> np.ndarray:
        """The components' parameters, as :class:`~emkit.models.mixture.MixtureModel` names
        them: α."""
        return self.alpha


class _CompoundDirichletMixture(MixtureModel):
    """The generic mixture over a Dirichlet family, with parameters as
    :class:`CompoundDirichletParams`."""

    family: DirichletFamily | DirichletMultinomialFamily

    @property
    def prior(self) -> GammaPrior | None:
        return self.family.prior

    def _params(self, weights, components, events=()) -> CompoundDirichletParams:
        return CompoundDirichletParams(weights, components)


class DirichletMultinomialMixtureModel(_CompoundDirichletMixture):
    """Mixture of ``n_components`` Dirichlet-multinomials over count vectors (module docstring):
    the generic mixture over :class:`~emkit.families.dirichlet.DirichletMultinomialFamily`.

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
        super().__init__(DirichletMultinomialFamily(prior, latent), n_components)

    @property
    def latent(self) -> str:
        return self.family.latent

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
        log_norm, _ = self.posteriors(params, counts)
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
        _, resp = self.posteriors(params, counts)
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



class DirichletMixtureModel(_CompoundDirichletMixture):
    """Mixture of ``n_components`` Dirichlet distributions over rows on the simplex: the generic
    mixture over :class:`~emkit.families.dirichlet.DirichletFamily`."""

    def __init__(self, n_components: int = 1, prior: GammaPrior | None = None):
        super().__init__(DirichletFamily(prior), n_components)
