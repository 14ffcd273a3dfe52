"""emkit: maximum-likelihood estimation by the EM algorithm.

Public names are imported lazily so that ``import emkit`` stays fast (numba, scikit-learn and
scipy load on first use).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "fit_em": "emkit.engine",
    "EMResult": "emkit.engine",
    "EMModel": "emkit.engine",
    "IterationInfo": "emkit.engine",
    "annealing_schedule": "emkit.engine",
    "Batch": "emkit.data",
    "GaussianMixture": "emkit.estimators",
    "GaussianHMM": "emkit.hmm",
    "GMMHMM": "emkit.hmm",
    "CategoricalHMM": "emkit.hmm",
    "PoissonHMM": "emkit.hmm",
    "FixedMixture": "emkit.fixed_mixture",
    "EMImputer": "emkit.imputer",
    "DirichletMultinomial": "emkit.compound_dirichlet",
    "DirichletMultinomialMixture": "emkit.compound_dirichlet",
    "Dirichlet": "emkit.compound_dirichlet",
    "SuperimposedSignals": "emkit.superimposed",
    "signals": "emkit.signals",
    "GaussianMixtureModel": "emkit.models.mixture",
    "select_model": "emkit.selection",
    "load": "emkit.persist",
    "datasets": "emkit.datasets",
    "errors": "emkit.errors",
    "data": "emkit.data",
    "online": "emkit.online",
}

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
