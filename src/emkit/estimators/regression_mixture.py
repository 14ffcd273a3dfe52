"""Mixtures of linear regressions: :class:`RegressionMixture` (R's flexmix and mixtools'
``regmixEM``).

The estimator is :class:`emkit.estimators.family_mixture.FamilyMixture` over
:class:`emkit.families.regression.RegressionFamily`, whose rows are (x_1 … x_D, y): ``fit(X, y)``
stacks them, and every method that needs the response takes it as its second argument. No math
lives here.
"""

from __future__ import annotations

import numpy as np

from emkit.data.chunks import Batch, ChunkSource
from emkit.errors import DataError, ParameterError
from emkit.estimators.family_mixture import FamilyMixture, register_family_mixture
from emkit.estimators.validation import check_sample_weight, is_dask_collection, validate_rows
from emkit.families.regression import RegressionFamily, RegressionParams

__all__ = ["RegressionMixture"]


class RegressionMixture(FamilyMixture):
    """Mixture of linear regressions with Gaussian noise, fitted by EM.

    Each row's response comes from one of K regressions: y = intercept_k + x·coef_k + ε with
    ε ~ N(0, noise_variance_k), component k chosen with probability weights_k (independently of
    x, as mixtools' ``regmixEM`` and flexmix's default ``FLXMRglm``).

    The API follows scikit-learn's regressors where they have a meaning here:
    ``fit(X, y, sample_weight)``, ``predict(X)`` the conditional mean of y (Σ_k π_k (intercept_k
    + x·coef_k)), ``coef_`` and ``intercept_`` shaped as a multi-output ``LinearRegression``'s
    (one row per component). What a mixture adds takes the response too, since the component
    of a row depends on its y: ``predict_proba(X, y)`` (posterior probabilities of the
    components), ``predict_component(X, y)`` (the most probable one), ``score_samples(X, y)``
    (log p(y | x) per row). ``score(X, y)`` is the mean log-likelihood per row, as emkit's
    other estimators and scikit-learn's density models, **not** R² (a mixture's conditional
    mean can predict badly where the lines cross while the model fits well; for R² use
    ``sklearn.metrics.r2_score(y, model.predict(X))``). ``bic(X, y)`` and ``aic(X, y)`` count
    K − 1 weights and K × (D + 2) regression parameters.

    Parameters
    ----------
    n_components : int, default 2
    tol : float, default 1e-8
        Convergence threshold per sample of the estimated distance to the maximum (see
        :class:`emkit.GaussianMixture`).
    xtol : float or None, default None
        Also require the parameters to have converged (see :func:`emkit.fit_em`).
    max_iter : int, default 1000
        Maximum number of passes over the data per start.
    n_init : int, default 1
        Starts; the best log-likelihood wins. Each start is already the best of 8 k-lines runs
        (rows assigned to the nearest of K lines through random rows, lines refitted; see
        :mod:`emkit.families.regression`).
    random_state : None, int, Generator or RandomState
    warm_start : bool, default False
        Start the next ``fit`` from the current parameters (one start).
    accelerate : {None, "squarem"}, default "squarem"
    verbose, verbose_interval, progress
        As :class:`emkit.GaussianMixture`.
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes of online EM (:meth:`partial_fit`, which takes ``(X, y)`` mini-batches).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    coef_ : ndarray of shape (n_components, n_features)
    intercept_ : ndarray of shape (n_components,)
    noise_variance_ : ndarray of shape (n_components,)
        σ_k², the variance of the noise of each regression (the square of mixtools' ``sigma``).
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_,
    n_features_in_, feature_names_in_
        As :class:`emkit.GaussianMixture`; ``n_features_in_`` counts the columns of X.
    response_name_ : ndarray of one str, optional
        The name of the response column, where a model file stores it (``emkit fit
        regression`` does, so that ``emkit predict`` and ``emkit score`` read the same column).

    Degenerate components: the likelihood of a mixture of regressions is unbounded (a line
    through D + 1 rows with σ² → 0). A component whose rows weigh less than D + 2, or whose
    line fits its rows exactly, is re-seeded at the least-squares line of all rows and the event
    is recorded in ``events_``.

    Examples
    --------
    >>> import emkit
    >>> data = emkit.datasets.load("ethanol")
    >>> X, y = data.data[:, :1], data.column("Equivalence")
    >>> model = emkit.RegressionMixture(2, random_state=0).fit(X, y)
    >>> round(float(model.score(X, y) * len(y)), 3)  # mixtools' best regmixEM maximum
    122.038
    """

    _components = RegressionParams
    _input_tags = {}  # NaN is not a missing value here: rows must be complete

    def __init__(self, n_components=2, *, tol=1e-8, xtol=None, max_iter=1000, n_init=1,
                 random_state=None, warm_start=False, accelerate="squarem", verbose=0,
                 verbose_interval=10, progress=False, learning_decay=0.6,
                 learning_offset=2.0):
        self.n_components = n_components
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

    def _family(self) -> RegressionFamily:
        return RegressionFamily()

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None, *, checkpoint=None, resume=False):
        """Fit by EM to the regressors ``X`` (n_samples, n_features) and the response ``y``
        (n_samples,); ``sample_weight``: non-negative row weights (an integer weight counts a
        row that many times). ``checkpoint``/``resume`` as :meth:`emkit.GaussianMixture.fit`."""
        return self._fit(X, y, sample_weight, checkpoint=checkpoint, resume=resume)

    def fit_predict(self, X, y, sample_weight=None):
        """Fit, then return the most probable component of each row (a clustering)."""
        return self.fit(X, y, sample_weight=sample_weight).predict_component(X, y)

    def _prepare_fit(self, X, y, sample_weight):
        rows = self._rows(X, y, reset=True)
        if self.n_components > len(rows):
            raise DataError(f"n_components={self.n_components} is larger than the number of "
                            f"samples (n_samples={len(rows)}): use fewer components or more "
                            "data.")
        return Batch(rows, check_sample_weight(sample_weight, len(rows)))

    def _online_batch(self, X, y, sample_weight, first):
        rows = self._rows(X, y, reset=first and not self._is_fitted())
        return Batch(rows, check_sample_weight(sample_weight, len(rows)))

    # ------------------------------------------------------------------ inference
    def predict(self, X):
        """The conditional mean of y: Σ_k π_k (intercept_k + x·coef_k), shape (n_samples,)."""
        self._check_fitted()
        X = self._validate_rows(X, reset=False)
        return (X @ self.coef_.T + self.intercept_) @ self.weights_

    def predict_component(self, X, y):
        """The most probable component of each row (x, y), shape (n_samples,)."""
        return self.predict_proba(X, y).argmax(axis=1)

    def predict_proba(self, X, y):
        """Posterior probability of each component given the row (x, y), shape
        (n_samples, n_components)."""
        return self._posteriors(X, y)[1]

    def score_samples(self, X, y):
        """log p(y | x) of each row, shape (n_samples,)."""
        return self._posteriors(X, y)[0]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean (weighted) log-likelihood log p(y | x) per row (not R²; see the class notes).
        Rows of zero weight do not count."""
        log_likelihood = self.score_samples(X, y)
        w = check_sample_weight(sample_weight, len(log_likelihood))
        if w is None:
            return float(log_likelihood.mean())
        used = w > 0
        return float(np.average(log_likelihood[used], weights=w[used]))

    def _posteriors(self, X, y):
        self._check_fitted()
        return self._model().posteriors(self._params(), self._rows(X, y, reset=False))

    def _draw(self, n_samples, rng):
        raise ParameterError("a mixture of regressions models y given X and has no "
                             "distribution of X to draw rows from.")

    def standard_errors(self, X, y, sample_weight=None) -> dict[str, np.ndarray]:
        """Standard errors of ``weights_``, ``coef_``, ``intercept_`` and ``noise_variance_``
        from the observed information on the rows (X, y) the model was fitted to (with their
        ``sample_weight``): the exact Hessian of the observed-data log-likelihood in
        (π_1 … π_{K−1}, and per component intercept, slopes, σ²), inverted (see
        :mod:`emkit.models.information`). Raises NumericalError naming a parameter the data
        do not identify."""
        from emkit.families.regression import RegressionInformation
        from emkit.models.information import mixture_standard_errors

        self._check_fitted()
        rows = self._rows(X, y, reset=False)
        sample_weight = check_sample_weight(sample_weight, len(rows))
        return mixture_standard_errors(RegressionInformation(self._params().components),
                                       self.weights_, rows, sample_weight)

    # ------------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """K − 1 weights and, per component, an intercept, D slopes and a noise variance."""
        self._check_fitted()
        return self._model().n_parameters(self.n_features_in_ + 1)

    # ------------------------------------------------------------------ validation
    def _validate_rows(self, X, reset):
        if is_dask_collection(X) or isinstance(X, ChunkSource):
            raise DataError("RegressionMixture takes X and y in memory (arrays or data "
                            "frames); streamed chunks and Dask collections are not supported.")
        X = validate_rows(self, X, reset=reset, dtype=np.float64)
        if not np.all(np.isfinite(X)):
            raise DataError("X holds NaN or infinity: a regression mixture needs complete "
                            "rows; drop or impute them first.")
        return X

    def _rows(self, X, y, reset):
        """The family's rows (x_1 … x_D, y) from validated X and y."""
        if y is None:
            raise DataError("RegressionMixture needs the response: call it with (X, y).")
        X = self._validate_rows(X, reset)
        try:
            y = np.asarray(y, dtype=float)
        except (TypeError, ValueError) as error:
            raise DataError(f"y must be numbers: {error}.") from error
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != (len(X),):
            raise DataError(f"y has shape {y.shape}, expected ({len(X)},): one response per "
                            "row of X.")
        if not np.all(np.isfinite(y)):
            raise DataError("y holds NaN or infinity: drop or impute those rows first.")
        return np.ascontiguousarray(np.column_stack([X, y]))

    def _attribute_shapes(self, n_components: int, n_features: int) -> dict[str, tuple]:
        K = n_components
        return {"weights_": (K,), "coef_": (K, n_features), "intercept_": (K,),
                "noise_variance_": (K,)}

    def _check_components(self) -> None:
        if np.any(self.noise_variance_ <= 0):
            raise ValueError("noise_variance_ must be positive")
        names = getattr(self, "response_name_", None)
        if names is not None and len(names) != 1:
            raise ValueError(f"response_name_ must hold one name, got {len(names)}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


# The response's name, when known (``emkit fit regression`` stores it for predict and score).
register_family_mixture(RegressionMixture, {"response_name_": "names"},
                        optional=frozenset({"response_name_"}))
