"""Mixtures of Poisson distributions for counts: :class:`PoissonMixture`.

The estimator is :class:`emkit.estimators.family_mixture.FamilyMixture` over
:class:`emkit.families.poisson.PoissonFamily`; no math lives here.
"""

from __future__ import annotations

import numpy as np

from emkit.estimators.family_mixture import FamilyMixture, register_family_mixture
from emkit.estimators.validation import Real
from emkit.families.poisson import PoissonFamily, PoissonParams

__all__ = ["PoissonMixture"]


class PoissonMixture(FamilyMixture):
    """Mixture of Poisson distributions for counts, fitted by EM.

    A row is D counts; given its component k they are independent Poisson with rates λ_k1 …
    λ_kD (one column: the classic Poisson mixture). A missing count (NaN) is left out of its
    row's likelihood; a row with no count observed has log-likelihood 0.

    Parameters
    ----------
    n_components : int, default 1
    rate_prior_shape, rate_prior_rate : float, default 1.0 and 0.0
        A Gamma(shape, rate) prior on every rate (MAP-EM); the default is none (maximum
        likelihood). A prior keeps the rate of a column with only zeros in a component
        positive.
    tol : float, default 1e-8
        Convergence threshold per sample of the estimated distance to the maximum (see
        :class:`emkit.GaussianMixture`). Poisson mixtures converge slowly where components
        overlap (the death notices: 2,600 plain EM steps), so the default is tight and
        SQUAREM is on.
    xtol : float or None, default 1e-7
        ... and the estimated remaining relative change of every weight and rate below this
        (the likelihood is flat along overlapping components: an objective within 1e-8 nats
        per sample can leave the rates 1e-3 off). None: the objective alone.
    max_iter : int, default 2000
        Maximum number of passes over the data per start.
    n_init : int, default 1
        Starts (k-means++ seeds on the square-root counts); the best objective wins.
    random_state : None, int, Generator or RandomState
    warm_start : bool, default False
        Start the next ``fit`` from the current parameters (one start).
    accelerate : {None, "squarem"}, default "squarem"
    verbose, verbose_interval, progress
        As :class:`emkit.GaussianMixture`.
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes of online EM (:meth:`partial_fit`).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    rates_ : ndarray of shape (n_components, n_features)
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_,
    n_features_in_, feature_names_in_
        As :class:`emkit.GaussianMixture`.

    Examples
    --------
    >>> import numpy as np, emkit
    >>> deaths = np.repeat(np.arange(10), [162, 267, 271, 185, 111, 61, 27, 8, 3, 1])
    >>> model = emkit.PoissonMixture(2, random_state=0).fit(deaths[:, None])
    >>> np.round(np.sort(model.rates_[:, 0]), 4)
    array([1.2561, 2.6634])
    """

    _components = PoissonParams
    _parameter_constraints = {**FamilyMixture._parameter_constraints,
                              "rate_prior_shape": Real(0, low_open=True),
                              "rate_prior_rate": Real(0)}

    def __init__(self, n_components=1, *, rate_prior_shape=1.0, rate_prior_rate=0.0, tol=1e-8,
                 xtol=1e-7, max_iter=2000, n_init=1, random_state=None, warm_start=False,
                 accelerate="squarem", verbose=0, verbose_interval=10, progress=False,
                 learning_decay=0.6, learning_offset=2.0):
        self.n_components = n_components
        self.rate_prior_shape = rate_prior_shape
        self.rate_prior_rate = rate_prior_rate
        self.tol = tol
        self.xtol = xtol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def _family(self) -> PoissonFamily:
        return PoissonFamily(self.rate_prior_shape, self.rate_prior_rate)

    def _check_components(self) -> None:
        if np.any(self.rates_ <= 0):
            raise ValueError("rates_ must be positive")


register_family_mixture(PoissonMixture)
