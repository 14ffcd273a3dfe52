"""``FixedMixture``: the optimal mixture of fixed models, with only the mixing weights learned.

A thin scikit-learn layer over :class:`emkit.models.fixed_mixture.FixedMixtureModel` and
:func:`emkit.fit_em`: validate the input, compute the likelihood matrix once, fit, expose fitted
attributes ending in ``_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emkit.errors import DataError, ParameterError
from emkit.estimators.base import FIT_RECORD, EMEstimator, OnlineEMMixin, RowDensityMixin
from emkit.estimators.persist import EstimatorSpec, register_estimator
from emkit.estimators.validation import NON_NEGATIVE, check_sample_weight
from emkit.models.fixed_mixture import (
    FixedMixtureModel,
    FixedMixtureParams,
    LikelihoodMatrix,
    check_explained,
    dirichlet_concentration,
    likelihood_matrix,
)

# Online EM keeps every weight at least this fraction of 1/M: a model that no row of the batches
# so far supports would otherwise get weight exactly 0, and EM never revives a zero weight, so a
# later batch with rows only that model explains would have likelihood 0.
_ONLINE_WEIGHT_FLOOR = 1e-12


class _OnlineFixedMixtureModel(FixedMixtureModel):
    """:class:`FixedMixtureModel` whose M-step keeps every weight positive (for online EM)."""

    def m_step(self, stats, params=None) -> FixedMixtureParams:
        weights = super().m_step(stats, params).weights
        weights = weights + _ONLINE_WEIGHT_FLOOR / len(weights)
        return FixedMixtureParams(weights / weights.sum())


class FixedMixture(OnlineEMMixin, RowDensityMixin, EMEstimator):
    """Optimal mixture of fixed models: learn only the mixing weights, by EM.

    The component models p_1 … p_M are given and stay fixed; the fit finds the weights λ on the
    simplex that maximise Σ_i w_i log Σ_j λ_j p_j(x_i) (+ log Dirichlet(λ | prior) for MAP).
    The data enter only through the n × M matrix of likelihoods p_j(x_i), which ``fit`` takes

    * directly: dense likelihoods, dense log-likelihoods (``log=True``; rows are rescaled by a
      log-sum-exp, so likelihoods that would underflow are fine), or a scipy.sparse matrix of
      likelihoods where most entries are zero (e.g. reads × transcripts); or
    * as ``models``: a list of fitted density models with ``score_samples`` (any scikit-learn
      density, any emkit estimator) or of callables returning per-row log-likelihoods; then
      ``fit(X)``, ``predict_proba(X)`` and ``score(X)`` take the data X those models score.

    An EM iteration is two matrix-vector products with that matrix (one fused pass over a sparse
    matrix); no n × M posterior matrix is formed during the fit.

    There is no ``n_init`` (and no ``random_state``): the objective is concave in λ, so every
    interior start reaches the same global maximum and restarts would only repeat the work.
    The fit starts from uniform weights (or ``weights_init``). Convergence is judged on the
    objective *and* on the weights: near a flat optimum the log-likelihood settles long before
    the weights do. SQUAREM acceleration is on by default; plain EM is slow exactly where the
    models overlap.

    Parameters
    ----------
    models : sequence of fitted models or callables, optional
        Each either has ``score_samples(X) -> (n,)`` log-likelihoods or is a callable
        ``f(X) -> (n,)`` returning them. None: ``X`` is the likelihood matrix itself.
    log : bool, default False
        Whether a dense likelihood matrix holds log-likelihoods (ignored with ``models``, which
        always give log-likelihoods; sparse matrices always hold likelihoods).
    prior : float or array-like of shape (n_models,), optional
        Dirichlet concentration α ≥ 1 for the MAP estimate; 1 is flat (maximum likelihood),
        larger values pull the weights towards uniform (α − 1 pseudo-rows per model).
    tol : float, default 1e-10
        Convergence threshold on the change of the objective per sample (as
        ``GaussianMixture.tol``).
    weights_tol : float, default 1e-8
        Convergence also needs every weight to move by at most this much in the last iteration.
    max_iter : int, default 1000
        Maximum number of EM iterations (passes over the likelihoods).
    weights_init : array-like of shape (n_models,), optional
        Starting weights: positive (EM never revives a zero weight) and summing to 1.
    warm_start : bool, default False
        Start the next ``fit`` from the current ``weights_``.
    accelerate : {"squarem", None}, default "squarem"
        SQUAREM extrapolation (Varadhan & Roland 2008) or plain EM.
    progress : bool, default False
        Show a progress bar.
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes ρ_t = (t + learning_offset)^(−learning_decay) of online EM
        (:meth:`partial_fit`: one EM step per mini-batch of rows, the posterior sums averaged;
        see :mod:`emkit.core.online`). Online EM keeps every weight at least 1e-12 / M, so that a
        model no earlier batch supported can still gain weight.

    Attributes
    ----------
    weights_ : ndarray of shape (n_models,)
        The optimal mixing weights; a model that no row supports gets exactly 0.
    n_components_ : int
        Number of models M.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Final objective per sample: mean log-likelihood (plus log prior / n for MAP).
    history_ : ndarray
        Objective (total weighted log-likelihood + log prior) at every iteration.
    events_ : list of (iteration, message)
    n_features_in_ : int
        Number of columns of the likelihood matrix (only without ``models``).

    Notes
    -----
    The optimum satisfies the KKT conditions of the concave problem: the mean posterior ratio
    (1/n) Σ_i w_i p_j(x_i) / p(x_i) of model j is 1 where λ_j > 0 and at most 1 where λ_j = 0.
    ``save`` stores the weights but not ``models`` (model files hold no code): a loaded
    FixedMixture takes likelihood matrices, or set ``models`` again with ``set_params``.
    """

    _parameter_constraints = {
        **EMEstimator._parameter_constraints,
        **OnlineEMMixin._online_constraints,
        "weights_tol": NON_NEGATIVE,
    }
    _fitted_attributes = ("weights_",)
    _input_tags = {"sparse": True, "allow_nan": False}

    def __init__(self, models: Sequence[Any] | None = None, *, log: bool = False,
                 prior: Any = None, tol: float = 1e-10, weights_tol: float = 1e-8,
                 max_iter: int = 1000, weights_init: Any = None, warm_start: bool = False,
                 accelerate: str | None = "squarem", progress: bool = False,
                 learning_decay: float = 0.6, learning_offset: float = 2.0):
        self.models = models
        self.log = log
        self.prior = prior
        self.tol = tol
        self.weights_tol = weights_tol
        self.max_iter = max_iter
        self.weights_init = weights_init
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, *, checkpoint=None,
            resume=False) -> FixedMixture:
        """Learn the mixing weights.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_models), or the data for
            ``models`` (anything they score)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights (an integer weight is the same as repeating the row).
        checkpoint, resume
            Save the state of the fit to this file, and continue an interrupted fit from it (see
            :func:`emkit.fit_em`).
        """
        return self._fit(X, y, sample_weight, checkpoint=checkpoint, resume=resume)

    def _prepare_fit(self, X, y, sample_weight) -> LikelihoodMatrix:
        data = self._weighted_likelihoods(X, sample_weight)
        dirichlet_concentration(self.prior, data.shape[1])  # a bad prior raises before the work
        return data

    def _build_model(self, data) -> FixedMixtureModel:
        return FixedMixtureModel(log=self._log_input(), prior=self.prior,
                                 weights_tol=float(self.weights_tol))

    def _start(self, data) -> FixedMixtureParams:
        return FixedMixtureParams(self._start_weights(data.shape[1]))

    def _weighted_likelihoods(self, X, sample_weight) -> LikelihoodMatrix:
        """The likelihood matrix of X with its row weights; every row of positive weight must
        be explained by some model."""
        data = self._likelihoods(X)
        if sample_weight is not None:
            weight = check_sample_weight(sample_weight, data.shape[0])
            data = LikelihoodMatrix(data.matrix, data.log_scale, weight)
        check_explained(data)
        return data

    def _set_params(self, params: FixedMixtureParams) -> None:
        self.weights_ = params.weights
        self.n_components_ = len(params.weights)
        if self.models is None:
            self.n_features_in_ = len(params.weights)

    # ------------------------------------------------------------------ online EM hooks
    def _online_model(self) -> FixedMixtureModel:
        return _OnlineFixedMixtureModel(log=self._log_input(), prior=self.prior)

    def _online_batch(self, X, y, sample_weight, first):
        # The same conversion as fit's (the model's prepare hook): a LikelihoodMatrix, made
        # once per batch, which the E-step uses as it is.
        data = self._weighted_likelihoods(X, sample_weight)
        state = getattr(self, "_online", None)
        expected = (len(state.params.weights) if state is not None
                    else getattr(self, "n_components_", None))
        if expected is not None and data.shape[1] != expected:
            raise DataError(f"X has {data.shape[1]} features, but FixedMixture is expecting "
                            f"{expected} features as input (one column per model, as in the "
                            "earlier batches or fit).")
        dirichlet_concentration(self.prior, data.shape[1])
        return data

    def _online_start(self, model, batch) -> FixedMixtureParams:
        n_models = batch.shape[1]
        if hasattr(self, "weights_"):
            # As a warm start: EM never revives a zero weight, new rows may need it.
            return FixedMixtureParams(0.999 * self.weights_ + 0.001 / n_models)
        if self.weights_init is None:
            return FixedMixtureParams(np.full(n_models, 1.0 / n_models))
        return FixedMixtureParams(self._checked_weights_init(n_models))

    def _start_weights(self, n_models: int) -> np.ndarray:
        if self.warm_start and hasattr(self, "weights_"):
            if len(self.weights_) != n_models:
                raise DataError(f"warm_start: the fitted model has {len(self.weights_)} "
                                f"weights, the data {n_models} models.")
            # A weight that reached 0 stays 0 under EM; a warm start on new data may need it.
            return 0.999 * self.weights_ + 0.001 / n_models
        if self.weights_init is None:
            return np.full(n_models, 1.0 / n_models)
        return self._checked_weights_init(n_models)

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X):
        """Posterior probability of each model for each row, r_ij = λ_j p_j(x_i) / p(x_i).

        Returns an ndarray of shape (n_samples, n_models), or a CSR matrix for sparse input.

        Raises
        ------
        DataError
            A row has likelihood zero under every model of positive weight.
        """
        log_likelihood, resp = self._posteriors(X)
        unexplained = ~np.isfinite(log_likelihood)
        if unexplained.any():
            raise DataError(f"{int(unexplained.sum())} rows (first: row "
                            f"{int(np.flatnonzero(unexplained)[0])}) have likelihood zero under "
                            "every model of positive weight: their posteriors are undefined.")
        return resp

    def predict(self, X) -> np.ndarray:
        """Most probable model of each row, shape (n_samples,)."""
        resp = self.predict_proba(X)
        return np.asarray(resp.argmax(axis=1)).ravel()

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood log Σ_j λ_j p_j(x_i) of each row (−inf where no model explains
        it), shape (n_samples,)."""
        return self._posteriors(X)[0]


    def n_parameters(self) -> int:
        """Number of free parameters: M − 1 weights."""
        self._check_fitted()
        return self.n_components_ - 1

    def _posteriors(self, X):
        self._check_fitted()
        data = self._likelihoods(X)
        if data.shape[1] != self.n_components_:
            raise DataError(f"X has {data.shape[1]} features, but FixedMixture is expecting "
                            f"{self.n_components_} features as input (one column per model).")
        return FixedMixtureModel(log=self._log_input()).posteriors(
            FixedMixtureParams(self.weights_), data)

    # ------------------------------------------------------------------ input
    def _log_input(self) -> bool:
        return bool(self.log) and self.models is None

    def _likelihoods(self, X) -> LikelihoodMatrix:
        """The validated, row-scaled likelihood matrix of X (rows no model explains
        allowed)."""
        if self.models is None:
            return likelihood_matrix(X, log=bool(self.log), require_explained=False)
        return likelihood_matrix(self._score_models(X), log=True, require_explained=False)

    def _score_models(self, X) -> np.ndarray:
        """The (n, M) log-likelihoods of X under each of ``models``."""
        columns = []
        for j, member in enumerate(self.models):
            name = type(member).__name__
            scorer = getattr(member, "score_samples", None)
            scorer = scorer if callable(scorer) else member
            try:
                values = np.asarray(scorer(X), dtype=np.float64)
            except Exception as error:  # whatever the member raises: say which one and why
                raise DataError(f"model {j} ({name}) cannot score the data: "
                                f"{type(error).__name__}: {error}") from error
            if values.ndim != 1 or (columns and len(values) != len(columns[0])):
                expected = f"({len(columns[0])},)" if columns else "(n_samples,)"
                raise DataError(f"model {j} ({name}) returned log-likelihoods of shape "
                                f"{values.shape}; expected one per row, {expected}.")
            if np.isnan(values).any() or np.isposinf(values).any():
                raise DataError(f"model {j} ({name}) returned NaN or +inf log-likelihoods for "
                                f"{int((np.isnan(values) | np.isposinf(values)).sum())} rows: "
                                "it cannot score these data.")
            columns.append(values)
        return np.column_stack(columns)

    # ------------------------------------------------------------------ validation
    def _check_parameter_combinations(self):
        if self.models is not None:
            if isinstance(self.models, (str, bytes)) or not isinstance(self.models, Sequence) \
                    or len(self.models) == 0:
                raise ParameterError("models must be a non-empty list of fitted models (with "
                                     "score_samples) or callables returning log-likelihoods.")
            for j, member in enumerate(self.models):
                if not (callable(getattr(member, "score_samples", None)) or callable(member)):
                    raise ParameterError(
                        f"model {j} ({type(member).__name__}) has no score_samples method "
                        "and is not callable: give fitted density models or functions "
                        "X -> per-row log-likelihoods.")

    def _checked_weights_init(self, n_models: int) -> np.ndarray:
        try:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError("weights_init must be numbers.") from None
        if weights.shape != (n_models,):
            raise ParameterError(f"weights_init has shape {weights.shape}, expected "
                                 f"({n_models},) (one per model).")
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0) \
                or abs(weights.sum() - 1.0) > 1e-6:
            raise ParameterError(
                "weights_init must be positive and sum to 1 (EM never revives a zero weight), "
                f"got minimum {np.min(weights):.3g} and sum {np.sum(weights):.6g}.")
        return weights / weights.sum()


# --------------------------------------------------------------------------- model files
def _check_fixed_mixture(estimator: FixedMixture) -> None:
    """Shapes and values of a fitted FixedMixture; raises ValueError saying what is wrong."""
    estimator._check_parameters()
    M = estimator.n_components_
    if not isinstance(M, int) or isinstance(M, bool) or M < 1:
        raise ValueError(f"n_components_ must be a positive integer, got {M!r}")
    weights = estimator.weights_
    if not isinstance(weights, np.ndarray) or weights.shape != (M,) \
            or weights.dtype.kind != "f" or not np.all(np.isfinite(weights)):
        raise ValueError(f"weights_ must be {M} finite floating-point numbers")
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-8:
        raise ValueError(f"weights_ must be non-negative and sum to 1 (they sum to "
                         f"{weights.sum():.10g})")
    dirichlet_concentration(estimator.prior, M)
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and n_features != M:
        raise ValueError(f"n_features_in_ ({n_features}) must equal n_components_ ({M})")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) != M:
        raise ValueError(f"feature_names_in_ has {len(names)} names for {M} models")


register_estimator("FixedMixture", EstimatorSpec(
    target="emkit.estimators.fixed_mixture:FixedMixture",
    attributes={
        "weights_": "array",
        "n_components_": "int",
        **FIT_RECORD,
        "n_features_in_": "int",
        "feature_names_in_": "names",
    },
    # restart_objectives_ (one start) is recorded since the estimator base; older files lack it
    optional=frozenset({"n_features_in_", "feature_names_in_", "restart_objectives_"}),
    check=_check_fixed_mixture,
))

__all__ = ["FixedMixture"]
