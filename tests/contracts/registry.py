"""The models that every contract in ``test_contracts.py`` runs over.

To put a new model through the contracts, register a :class:`ModelCase` with :func:`register` in
a file ``cases_<model>.py`` beside this one (imported at the end of this file): a name, a factory
for the model, and a generator of small data sets on which a fit converges in a few hundred
iterations at most.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from poisson_mixture import PoissonMixture  # docs/examples, importable through tests/conftest.py

from emkit.models.mixture import GaussianMixtureModel


@dataclass(frozen=True)
class ModelCase:
    """One model under test.

    Attributes
    ----------
    name : str
        Test id.
    make_model : callable () -> model
        A fresh model (an ``emkit.core.engine.EMModel``) each call.
    make_data : callable (rng, n_rows) -> ndarray
        ``n_rows`` rows of data the model can be fitted to, drawn with ``rng``. Rows must be
        independent observations: the contracts split, drop, repeat and weight them.
    n_rows : int
        A size at which the fit is well posed and fast.
    min_rows : int
        The fewest rows the property-based contracts draw.
    round_off : float
        Relative round-off of the model's arithmetic (0 for float64 throughout; about 1e-6 for a
        float32 E-step). Contracts that compare two computations in exact arithmetic use
        ``max(their tolerance, round_off)``.
    tight_tol : float
        A per-sample ``tol`` that the fit can reach despite its round-off.
    coordinates : callable (model) -> (flatten, unflatten), optional
        Unconstrained coordinates of the parameters for ``test_optimum.py``'s independent
        maximiser, where the model's own ``flatten``/``unflatten`` (SQUAREM's) are not
        unconstrained; None uses the model's.
    """

    name: str
    make_model: Callable[[], Any]
    make_data: Callable[[np.random.Generator, int], np.ndarray]
    n_rows: int = 150
    min_rows: int = 12
    round_off: float = 0.0
    tight_tol: float = 1e-12
    coordinates: Callable[[Any], tuple[Callable, Callable]] | None = None

    def rtol(self, exact: float) -> float:
        """The tolerance to use where exact arithmetic would allow ``exact``."""
        return max(exact, self.round_off)


CASES: list[ModelCase] = []
#: Models with a prior (MAP). They go only through the contracts that hold with a prior
#: (``test_optimum.py``): "a row of weight 2 is two rows" and "chunks fitted with doubled
#: weights give the doubled objective" are false for them, since the prior is not doubled.
MAP_CASES: list[ModelCase] = []


def register(case: ModelCase) -> ModelCase:
    if any(existing.name == case.name for existing in CASES + MAP_CASES):
        raise ValueError(f"a model case named {case.name!r} is already registered")
    CASES.append(case)
    return case


def register_map(case: ModelCase) -> ModelCase:
    """Register a model with a prior (see MAP_CASES)."""
    register(case)
    MAP_CASES.append(CASES.pop())
    return case


def two_gaussian_clusters(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Two overlapping, differently shaped 2-D clusters (EM needs tens of iterations)."""
    first = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]], size=n_rows // 2)
    second = rng.normal([2.5, 1.0], [0.7, 1.3], size=(n_rows - n_rows // 2, 2))
    return rng.permutation(np.vstack([first, second]))


def two_poisson_components(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Counts from 0.4 Poisson(2) + 0.6 Poisson(9)."""
    rates = np.where(rng.uniform(size=n_rows) < 0.4, 2.0, 9.0)
    return rng.poisson(rates).astype(float)


# reg_covar=0: adding reg_covar to the covariances (scikit-learn's rule) makes the M-step an
# inexact maximiser, so near-singular components can lower the objective by O(reg_covar²)
# (found by hypothesis: 12 rows, a component on 3 nearly collinear points). Without it the M-step
# is exact and the invariants test our E- and M-steps; singular components are re-seeded events.
# init_params="kmeans": the default start ("auto") is the best of its candidates after short
# EM runs, which on these easy samples is the same maximum for every seed (by design, as
# mclust's), and nearly converged, so its centred first moments are all ≈ 0 and float32
# round-off is large relative to them; the invariants are about E- and M-steps, not starts.
for covariance_type in ("full", "tied", "diag", "spherical"):
    register(ModelCase(
        f"gmm-{covariance_type}",
        lambda covariance_type=covariance_type: GaussianMixtureModel(
            2, covariance_type, reg_covar=0.0, init_params="kmeans"),
        two_gaussian_clusters,
    ))
register(ModelCase(
    "gmm-full-float32",
    lambda: GaussianMixtureModel(2, "full", dtype=np.float32, init_params="kmeans"),
    two_gaussian_clusters,
    round_off=1e-6,
    tight_tol=1e-7,
))
register(ModelCase("poisson-mixture", lambda: PoissonMixture(2), two_poisson_components))


def two_gaussian_clusters_with_gaps(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Two overlapping 3-D clusters with about 20% of the entries missing completely at random
    (NaN), so rows come in every pattern of missingness, a few of them empty."""
    first = rng.multivariate_normal([0.0, 0.0, 0.0],
                                    [[1.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 1.0]],
                                    size=n_rows // 2)
    second = rng.normal([2.5, 1.0, -1.0], [0.7, 1.3, 0.9], size=(n_rows - n_rows // 2, 3))
    X = rng.permutation(np.vstack([first, second]))
    X[rng.uniform(size=X.shape) < 0.2] = np.nan
    return X


# Exact EM with missing values (the E-step integrates over the missing coordinates): the same
# invariants hold for the observed-data likelihood.
for covariance_type in ("full", "diag"):
    register(ModelCase(
        f"gmm-{covariance_type}-missing",
        lambda covariance_type=covariance_type: GaussianMixtureModel(2, covariance_type,
                                                                     reg_covar=0.0),
        two_gaussian_clusters_with_gaps,
        # With a dozen 3-D rows, k-means++ can give a component 3 rows (a rank-2 covariance that
        # Cholesky accepts in round-off), and with gaps a component can also collapse onto a
        # line of the rows' observed coordinates (the observed-data likelihood is unbounded);
        # both end in round-off, not in an EM step. 40 rows make either rare.
        min_rows=40,
    ))


# Other models keep their cases in ``cases_<model>.py`` beside this file; each calls register().
for _path in sorted(Path(__file__).parent.glob("cases_*.py")):
    importlib.import_module(f"{__package__}.{_path.stem}")
