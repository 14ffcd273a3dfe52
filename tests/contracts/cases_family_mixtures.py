"""Contract cases of the mixture families shipped as estimators (``emkit.estimators.
family_mixture``): the generic mixture over each family, as the estimators fit it."""

from __future__ import annotations

import numpy as np

from emkit.families.poisson import PoissonFamily
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
