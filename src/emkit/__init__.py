"""emkit: maximum-likelihood estimation by the EM algorithm.

Public names are imported lazily so that ``import emkit`` stays fast (numba, scikit-learn and
scipy load on first use).
"""

from __future__ import annotations

import importlib

from emkit import _compat

__version__ = "0.1.0"

_PUBLIC = {
    "fit_em": "emkit.core.engine",
    "EMResult": "emkit.core.engine",
    "EMModel": "emkit.core.engine",
    "IterationInfo": "emkit.core.engine",
    "annealing_schedule": "emkit.core.engine",
    "Batch": "emkit.data.chunks",
    "GaussianMixture": "emkit.estimators.gaussian_mixture",
    "fit_gaussian_mixtures": "emkit.estimators.batched",
    "GroupMixtures": "emkit.estimators.batched",
    "GaussianHMM": "emkit.estimators.hmm",
    "GMMHMM": "emkit.estimators.hmm",
    "CategoricalHMM": "emkit.estimators.hmm",
    "PoissonHMM": "emkit.estimators.hmm",
    "FixedMixture": "emkit.estimators.fixed_mixture",
    "EMImputer": "emkit.estimators.imputer",
    "DirichletMultinomial": "emkit.estimators.compound_dirichlet",
    "DirichletMultinomialMixture": "emkit.estimators.compound_dirichlet",
    "Dirichlet": "emkit.estimators.compound_dirichlet",
    "SuperimposedSignals": "emkit.estimators.superimposed",
    "PoissonMixture": "emkit.estimators.poisson_mixture",
    "BernoulliMixture": "emkit.estimators.latent_class",
    "CategoricalMixture": "emkit.estimators.latent_class",
    "RegressionMixture": "emkit.estimators.regression_mixture",
    "StudentMixture": "emkit.estimators.student_mixture",
    "signals": "emkit.models.signals",
    "GaussianMixtureModel": "emkit.models.mixture",
    "select_model": "emkit.estimators.selection",
    "load": "emkit.estimators.persist",
    "datasets": "emkit.datasets",
    "errors": "emkit.errors",
    "data": "emkit.data",
    "online": "emkit.core.online",
}

_compat.install()

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    module_name = _PUBLIC.get(name)
    if module_name is None:
        raise AttributeError(f"module 'emkit' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
