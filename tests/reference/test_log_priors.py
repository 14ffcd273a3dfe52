"""Every model's log prior against scipy.stats' densities.

``tests/contracts/test_optimum.py`` checks that EM maximises log-likelihood + ``log_prior``; this
checks that ``log_prior`` is the density it claims to be. HMM priors drop constants (they do
not move the maximum), so those are compared as differences between two parameter values.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from emkit.families.categorical import CategoricalEmission, CategoricalParams
from emkit.families.dirichlet import GammaPrior
from emkit.families.gaussian import GaussianFamily
from emkit.families.poisson import PoissonEmission, PoissonParams
from emkit.models.compound_dirichlet import CompoundDirichletParams, DirichletMixtureModel
from emkit.models.fixed_mixture import FixedMixtureModel, FixedMixtureParams
from emkit.models.hmm import GaussianEmission, HMMModel, HMMParams

RNG = np.random.default_rng(0)


def random_rows(shape) -> np.ndarray:
    return RNG.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def test_gamma_prior_on_log_alpha():
    """α ~ Gamma(shape, rate), as a density of λ = log α: the Gamma density times α."""
    model = DirichletMixtureModel(2, GammaPrior(0.7, 0.3))
    alpha = RNG.uniform(0.2, 5.0, size=(2, 4))
    expected = np.sum(stats.gamma.logpdf(alpha, 0.7, scale=1 / 0.3) + np.log(alpha))
    params = CompoundDirichletParams(np.array([0.4, 0.6]), alpha)
    np.testing.assert_allclose(model.log_prior(params), expected, rtol=1e-12)


def test_fixed_mixture_dirichlet_prior():
    concentration = np.array([1.5, 3.0, 2.0, 1.2])
    weights = RNG.dirichlet(np.ones(4))
    model = FixedMixtureModel(prior=concentration)
    np.testing.assert_allclose(model.log_prior(FixedMixtureParams(weights)),
                               stats.dirichlet.logpdf(weights, concentration), rtol=1e-12)


def hmm_params(emission) -> list[HMMParams]:
    return [HMMParams(RNG.dirichlet(np.ones(2)), random_rows((2, 2)), emission())
            for _ in range(2)]


def dirichlet_rows(rows, alpha) -> float:
    return sum(stats.dirichlet.logpdf(row, np.broadcast_to(alpha, row.shape)) for row in rows)


def test_hmm_dirichlet_categorical_and_gamma_priors():
    transmat_prior = np.array([[3.0, 1.5], [1.2, 2.5]])
    categorical = HMMModel(2, CategoricalEmission(3, prior=2.0), startprob_prior=1.5,
                           transmat_prior=transmat_prior)
    poisson = HMMModel(2, PoissonEmission(rate_prior_shape=3.0, rate_prior_rate=0.5),
                       startprob_prior=1.5, transmat_prior=transmat_prior)
    for model, emission, emission_density in [
        (categorical, lambda: CategoricalParams(random_rows((2, 3))),
         lambda e: dirichlet_rows(e.probabilities, 2.0)),
        (poisson, lambda: PoissonParams(RNG.uniform(0.5, 8.0, size=(2, 3))),
         lambda e: np.sum(stats.gamma.logpdf(e.rates, 3.0, scale=1 / 0.5))),
    ]:
        first, second = hmm_params(emission)

        def density(p, emission_density=emission_density):
            return (stats.dirichlet.logpdf(p.startprob, [1.5, 1.5])
                    + sum(stats.dirichlet.logpdf(row, alpha)
                          for row, alpha in zip(p.transmat, transmat_prior, strict=True))
                    + emission_density(p.emission))

        np.testing.assert_allclose(model.log_prior(first) - model.log_prior(second),
                                   density(first) - density(second), rtol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_hmm_normal_inverse_wishart_prior(kind):
    """The Gaussian emission's prior (hmmlearn's parametrisation) is Normal(μ | μ₀, Σ/λ) times
    inverse-Wishart(Σ | Ψ, ν = w − 2D − 2) (full), or per coordinate Normal(μ | μ₀, σ²/λ) times
    inverse-Gamma(σ² | (w − 4)/2, ψ/2) (diag), with w = covars_weight."""
    D, lam, w, psi, mu0 = 2, 2.0, 10.0, 0.5, np.array([0.5, -0.2])
    emission = GaussianEmission(kind, reg_covar=0.0, means_prior=mu0, means_weight=lam,
                                covars_prior=psi * np.eye(D) if kind == "full" else psi,
                                covars_weight=w)
    family = GaussianFamily(kind)

    def draw():
        means = RNG.normal(size=(2, D))
        if kind == "full":
            A = RNG.normal(size=(2, D, D))
            cov = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
        else:
            cov = RNG.uniform(0.3, 3.0, size=(2, D))
        return family.with_covariances(means, cov)[0]

    def density(p):
        total = 0.0
        for k in range(2):
            if kind == "full":
                total += stats.multivariate_normal.logpdf(p.means[k], mu0, p.covariances[k] / lam)
                total += stats.invwishart.logpdf(p.covariances[k], w - 2 * D - 2,
                                                 psi * np.eye(D))
            else:
                var = p.covariances[k]
                total += np.sum(stats.norm.logpdf(p.means[k], mu0, np.sqrt(var / lam)))
                total += np.sum(stats.invgamma.logpdf(var, (w - 4) / 2, scale=psi / 2))
        return total

    first, second = draw(), draw()
    np.testing.assert_allclose(emission.log_prior(first) - emission.log_prior(second),
                               density(first) - density(second), rtol=1e-10)
