"""Latent class models: mixtures of independent binary (:class:`BernoulliMixture`) or
categorical (:class:`CategoricalMixture`) items, as R's poLCA fits them.

Both are :class:`emkit.estimators.family_mixture.FamilyMixture` over the families of
:mod:`emkit.families.bernoulli` and :mod:`emkit.families.categorical`; no math lives here.

For users of poLCA: ``weights_`` is poLCA's ``P`` (class shares), ``predict_proba`` its
``posterior``, and poLCA's ``probs[[j]]`` (classes × outcomes of item j) is
``probabilities_[:, j, :n_levels_[j]]`` of a :class:`CategoricalMixture`; items are coded
0, 1, … here (poLCA codes 1, 2, …). Missing answers (NaN) are left out of a row's likelihood,
as poLCA's ``na.rm = FALSE``.
"""

from __future__ import annotations

import numpy as np

from emkit.data.chunks import ChunkSource
from emkit.errors import DataError, ParameterError
from emkit.estimators.family_mixture import FamilyMixture, register_family_mixture
from emkit.estimators.validation import Real, Satisfies, is_dask_collection, validate_rows
from emkit.families.bernoulli import BernoulliFamily, BernoulliParams
from emkit.families.categorical import CategoricalFamily, ItemParams

__all__ = ["BernoulliMixture", "CategoricalMixture"]

_SHARED_DOC = """    tol : float, default 1e-8
        Convergence threshold per sample of the estimated distance to the maximum (see
        :class:`emkit.GaussianMixture`).
    xtol : float or None, default None
        Optionally also the estimated remaining change of every parameter in SQUAREM's
        coordinates (log-weights, logits) below this. Off by default: latent class maxima
        often lie on the boundary (a probability of 0 or 1), which EM approaches
        geometrically, so its logit changes by a constant for ever while the objective has
        converged.
    max_iter : int, default 2000
        Maximum number of passes over the data per start.
    n_init : int, default 10
        Starts (softened partitions around k-means++ seeds among the rows); the best objective
        wins. Latent class likelihoods have many local maxima: poLCA's advice is many starts.
    random_state : None, int, Generator or RandomState
    warm_start : bool, default False
        Start the next ``fit`` from the current parameters (one start).
    accelerate : {None, "squarem"}, default "squarem"
    verbose, verbose_interval, progress
        As :class:`emkit.GaussianMixture`.
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes of online EM (:meth:`partial_fit`)."""


class BernoulliMixture(FamilyMixture):
    """Mixture of independent Bernoulli items (latent class analysis of binary items), fitted
    by EM.

    A row is D answers coded 0/1 (NaN: not answered); given its class k the answers are
    independent with p(x_d = 1 | k) = θ_kd. A missing answer is left out of its row's
    likelihood (missing at random).

    Parameters
    ----------
    n_components : int, default 1
        Number of latent classes.
    prior : float, default 1.0
        A Beta(prior, prior) prior on every θ (MAP-EM); 1 is none (maximum likelihood, where
        estimates of exactly 0 or 1 are common). A prior > 1 keeps them inside (0, 1).
""" + _SHARED_DOC + """

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Class shares.
    probabilities_ : ndarray of shape (n_components, n_features)
        θ_kd = p(item d is 1 | class k).
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_,
    n_features_in_, feature_names_in_
        As :class:`emkit.GaussianMixture`.
    """

    _components = BernoulliParams
    _parameter_constraints = {**FamilyMixture._parameter_constraints,
                              "prior": Real(0, low_open=True)}

    def __init__(self, n_components=1, *, prior=1.0, tol=1e-8, xtol=None, max_iter=2000,
                 n_init=10, random_state=None, warm_start=False, accelerate="squarem",
                 verbose=0, verbose_interval=10, progress=False, learning_decay=0.6,
                 learning_offset=2.0):
        self.n_components = n_components
        self.prior = prior
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

    def _family(self) -> BernoulliFamily:
        return BernoulliFamily(self.prior, self.prior)

    def _check_components(self) -> None:
        p = self.probabilities_
        if np.any(p < 0) or np.any(p > 1):
            raise ValueError("probabilities_ must lie in [0, 1]")


def _levels_constraint(value) -> bool:
    if value is None:
        return True
    levels = np.asarray(value)
    return (levels.ndim <= 1 and levels.size > 0 and np.issubdtype(levels.dtype, np.integer)
            and bool(np.all(levels >= 1)))


class CategoricalMixture(FamilyMixture):
    """Mixture of independent categorical items (latent class analysis of polytomous items,
    as R's poLCA), fitted by EM.

    A row is D answers, item d coded 0 … L_d − 1 (NaN: not answered); given its class k the
    answers are independent with p(x_d = l | k). A missing answer is left out of its row's
    likelihood (missing at random).

    Parameters
    ----------
    n_components : int, default 1
        Number of latent classes.
    n_levels : int, sequence of int or None, default None
        L_d, the number of levels of each item (one int: every item). None: the largest code
        of each item in the training data (for ``partial_fit``, the first mini-batch), plus
        one. Needed for streamed data.
    prior : float, default 1.0
        A symmetric Dirichlet(prior) prior on every item's probabilities (MAP-EM); 1 is none.
""" + _SHARED_DOC + """

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Class shares (poLCA's ``P``).
    probabilities_ : ndarray of shape (n_components, n_features, max(n_levels_))
        p(item d = l | class k); zero beyond an item's levels, so
        ``probabilities_[:, d, :n_levels_[d]]`` is poLCA's ``probs[[d]]``. One array rather
        than poLCA's list of matrices: it indexes the same way, stores and broadcasts as one.
    n_levels_ : ndarray of int, shape (n_features,)
        The number of levels of each item.
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_,
    n_features_in_, feature_names_in_
        As :class:`emkit.GaussianMixture`.
    """

    _components = ItemParams
    _parameter_constraints = {
        **FamilyMixture._parameter_constraints,
        "n_levels": Satisfies(_levels_constraint, "None, or integers >= 1 (one per item)"),
        "prior": Real(0, low_open=True),
    }

    def __init__(self, n_components=1, *, n_levels=None, prior=1.0, tol=1e-8, xtol=None,
                 max_iter=2000, n_init=10, random_state=None, warm_start=False,
                 accelerate="squarem", verbose=0, verbose_interval=10, progress=False,
                 learning_decay=0.6, learning_offset=2.0):
        self.n_components = n_components
        self.n_levels = n_levels
        self.prior = prior
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

    def _family(self) -> CategoricalFamily:
        return CategoricalFamily(self.n_levels_, self.prior)

    # The levels are fixed before the family reads any row (at the first fit or batch).
    def _prepare_fit(self, X, y, sample_weight):
        self._check_parameters()
        if isinstance(X, ChunkSource) or is_dask_collection(X):
            if self.n_levels is None:
                raise ParameterError("streamed items need n_levels (the number of levels of "
                                     "each item): the data are not read before fitting.")
            self.n_levels_ = self._given_levels(X.n_features if isinstance(X, ChunkSource)
                                                else X.shape[1])
        else:
            self.n_levels_ = self._levels_of(X)
        return super()._prepare_fit(X, y, sample_weight)

    def _online_batch(self, X, y, sample_weight, first):
        if first and not self._is_fitted():
            self.n_levels_ = self._levels_of(X)
        return super()._online_batch(X, y, sample_weight, first)

    def _levels_of(self, X) -> np.ndarray:
        X = validate_rows(self, X, reset=True, dtype=np.float64)
        if self.n_levels is not None:
            return self._given_levels(X.shape[1])
        values = X[~np.isnan(X)]
        bad = (values != np.round(values)) | (values < 0)
        if bad.any():
            raise DataError(f"items must be integer codes 0, 1, … (NaN for a missing answer), "
                            f"got {values[bad][0]:g}: recode the items.")
        largest = np.where(np.isnan(X), -1.0, X).max(axis=0)  # −1: an item never answered
        return np.maximum(largest.astype(np.int64) + 1, 1)

    def _given_levels(self, n_features) -> np.ndarray:
        levels = np.broadcast_to(np.asarray(self.n_levels, dtype=np.int64), (n_features,)) \
            if np.ndim(self.n_levels) == 0 else np.asarray(self.n_levels, dtype=np.int64)
        if levels.shape != (n_features,):
            raise ParameterError(f"n_levels has {levels.size} entries for {n_features} items: "
                                 "give one number of levels per item (or one for all).")
        return levels.copy()

    def _attribute_shapes(self, n_components, n_features):
        return {"weights_": (n_components,),
                "probabilities_": (n_components, n_features, None)}

    def _check_components(self) -> None:
        levels = self.n_levels_
        p = self.probabilities_
        if not (isinstance(levels, np.ndarray) and levels.shape == (p.shape[1],)
                and levels.dtype.kind in "iu" and np.all(levels >= 1)):
            raise ValueError("n_levels_ must hold one integer >= 1 per item")
        if p.shape[2] != levels.max():
            raise ValueError(f"probabilities_ has {p.shape[2]} levels, n_levels_ says "
                             f"{levels.max()}")
        beyond = np.arange(p.shape[2])[None, :] >= levels[:, None]
        if np.any(p < 0) or np.any(p[:, beyond] != 0) or not np.allclose(p.sum(axis=2), 1.0):
            raise ValueError("probabilities_ must be non-negative, sum to 1 over each item's "
                             "levels and be 0 beyond them")


register_family_mixture(BernoulliMixture)
register_family_mixture(CategoricalMixture, {"n_levels_": "int_array"})
