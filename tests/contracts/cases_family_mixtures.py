"""Contract cases of the mixture families shipped as estimators (``emkit.estimators.
family_mixture``): the generic mixture over each family, as the estimators fit it."""

from __future__ import annotations

import numpy as np

from emkit.families.bernoulli import BernoulliFamily
from emkit.families.categorical import CategoricalFamily
from emkit.families.poisson import PoissonFamily
from emkit.families.student import StudentFamily
from emkit.models.mixture import MixtureModel

from .registry import ModelCase, register, register_map, two_poisson_components


def two_poisson_components_two_columns_with_gaps(rng: np.random.Generator,
                                                 n_rows: int) -> np.ndarray:
    """Two columns of counts from 0.4 Poisson(2, 6) + 0.6 Poisson(7, 3), about 10% of the
    counts missing (NaN)."""
    rates = np.where(rng.uniform(size=(n_rows, 1)) < 0.4, [2.0, 6.0], [7.0, 3.0])
    X = rng.poisson(rates).astype(float)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return X


register(ModelCase("family-poisson", lambda: MixtureModel(PoissonFamily(), 2),
                   two_poisson_components))
register(ModelCase("family-poisson-missing", lambda: MixtureModel(PoissonFamily(), 2),
                   two_poisson_components_two_columns_with_gaps))
register_map(ModelCase("family-poisson-gamma-prior",
                       lambda: MixtureModel(PoissonFamily(1.5, 0.2), 2),
                       two_poisson_components_two_columns_with_gaps))


_THETA = np.array([[0.85, 0.75, 0.7, 0.3, 0.2], [0.25, 0.35, 0.2, 0.7, 0.8]])


def two_latent_classes_with_gaps(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Five binary items from two classes (shares 0.45, 0.55), about 10% of answers missing."""
    classes = (rng.uniform(size=n_rows) < 0.55).astype(int)
    X = (rng.uniform(size=(n_rows, 5)) < _THETA[classes]).astype(float)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return X


LEVELS = (3, 4, 2)
_ITEM_PROBABILITIES = [np.array([[0.6, 0.3, 0.1], [0.15, 0.35, 0.5]]),
                       np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]]),
                       np.array([[0.7, 0.3], [0.35, 0.65]])]


def two_classes_of_polytomous_items(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Three items with 3, 4 and 2 levels from two classes, about 10% of answers missing."""
    classes = (rng.uniform(size=n_rows) < 0.6).astype(int)
    X = np.column_stack([[rng.choice(len(p[k]), p=p[k]) for k in classes]
                         for p in _ITEM_PROBABILITIES]).astype(float)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return X


register(ModelCase("family-bernoulli", lambda: MixtureModel(BernoulliFamily(), 2),
                   two_latent_classes_with_gaps))
register_map(ModelCase("family-bernoulli-beta-prior",
                       lambda: MixtureModel(BernoulliFamily(1.5, 1.5), 2),
                       two_latent_classes_with_gaps))
register(ModelCase("family-categorical", lambda: MixtureModel(CategoricalFamily(LEVELS), 2),
                   two_classes_of_polytomous_items))
register_map(ModelCase("family-categorical-dirichlet-prior",
                       lambda: MixtureModel(CategoricalFamily(LEVELS, 1.3), 2),
                       two_classes_of_polytomous_items))


def two_heavy_tailed_clusters(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Two overlapping 2-D t clusters (ν = 5 and 8): the degrees of freedom are inside their
    bounds at the maximum, and a row far enough out to take a component of its own is rare
    even in a few dozen rows."""
    first = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.5], [0.5, 1.0]], size=n_rows // 2)
    first /= np.sqrt(rng.gamma(2.5, 1 / 2.5, size=(len(first), 1)))
    second = rng.normal([3.0, 1.0], [0.7, 1.2], size=(n_rows - n_rows // 2, 2))
    second = [3.0, 1.0] + (second - [3.0, 1.0]) / np.sqrt(rng.gamma(4.0, 1 / 4.0,
                                                                    size=(len(second), 1)))
    return rng.permutation(np.vstack([first, second]))


# reg_covar=0 as for the Gaussian cases: the M-step is then exact.
register(ModelCase("family-student", lambda: MixtureModel(StudentFamily(reg_covar=0.0), 2),
                   two_heavy_tailed_clusters, min_rows=30))
register(ModelCase("family-student-fixed-dof",
                   lambda: MixtureModel(StudentFamily(dof=4.0, reg_covar=0.0), 2),
                   two_heavy_tailed_clusters, min_rows=30))
