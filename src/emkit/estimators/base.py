"""The one base of emkit's EM estimators: validate → build the model → ``fit_em`` → store.

:class:`EMEstimator` is a template method (in the spirit of scikit-learn's ``BaseMixture`` and
hmmlearn's ``_AbstractHMM``): ``fit`` checks the parameters against the class's constraints
table (:mod:`emkit.estimators.validation`), asks the subclass for its data (``_prepare_fit``) and
model (``_build_model``), runs the one EM loop :func:`emkit.core.engine.fit_em` with the options
every estimator shares (``_em_options``) and stores the outcome through one method
(``_store_result``). It also owns what every estimator had copied: the fitted check, ``bic`` and
``aic`` on the ``n_parameters`` hook, ``save``, the fitted attributes a model file keeps
(:data:`FIT_RECORD`) and the scikit-learn tags. Two mixins add what only some estimators can
do: :class:`OnlineEMMixin` (``partial_fit``, stepwise EM) and :class:`SamplingMixin`
(``sample``, seeded from any ``random_state``).

A subclass writes only its own part: a constraints table extension, the data checks, the model,
``_params``/``_set_params`` and ``n_parameters``. No math lives here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin

from emkit.core.engine import fit_em
from emkit.core.online import OnlineEM
from emkit.estimators.persist import save as save_model
from emkit.estimators.validation import (
    ACCELERATE,
    LEARNING_DECAY,
    LEARNING_OFFSET,
    NON_NEGATIVE,
    NON_NEGATIVE_INTEGER,
    Constraint,
    check_fitted,
    check_n_samples,
    check_parameters,
    check_sample_weight,
    random_generator,
)

__all__ = ["EMEstimator", "OnlineEMMixin", "SamplingMixin", "MixturePosteriorsMixin", "FitOutcome",
           "FIT_RECORD"]

#: The fitted attributes every EM estimator records of its fit, with their kinds in a model
#: file (see :class:`emkit.estimators.persist.EstimatorSpec`).
FIT_RECORD: dict[str, str] = {
    "converged_": "bool",
    "n_iter_": "int",
    "lower_bound_": "float",
    "history_": "array",
    "events_": "events",
    "restart_objectives_": "array",
}


# Passes over the data of one SQUAREM cycle (two EM steps and the extrapolated point).
_SQUAREM_CYCLE = 3


@dataclass(frozen=True)
class FitOutcome:
    """What an estimator keeps of a fit: the fields of :class:`emkit.core.engine.EMResult` that
    :meth:`EMEstimator._store_result` reads, for fits that do not come from ``fit_em`` (a
    direct solver, a step of online EM)."""

    params: Any
    objective: float
    n_samples: float
    converged: bool
    n_iter: int
    history: np.ndarray
    restart_objectives: tuple[float, ...] = ()
    events: tuple[tuple[int, str], ...] = ()


class EMEstimator(BaseEstimator):
    """Base of every emkit estimator fitted by :func:`emkit.core.engine.fit_em`.

    Subclasses provide

    - ``_parameter_constraints``: their constructor parameters' constraints, the parent's table
      merged in (``{**EMEstimator._parameter_constraints, ...}``);
    - ``_prepare_fit(X, y, sample_weight, **inputs)``: the validated data for ``fit_em``;
    - ``_build_model(data)`` (default ``_model()``): the EM model;
    - ``_params()`` and ``_set_params(params)``: fitted attributes from/to parameters;
    - ``n_parameters()`` for ``bic``/``aic``;
    - ``_fitted_attributes``: the attributes that exist once fitted.

    and may extend ``_em_options`` (estimator-specific options of ``fit_em``),
    ``_store_result`` (further attributes), ``_check_parameter_combinations`` (constraints that
    span several parameters) and ``_log_likelihood_and_count`` (for ``bic``/``aic``).
    """

    #: Constraints of the constructor parameters every EM estimator has.
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "tol": NON_NEGATIVE,
        "max_iter": NON_NEGATIVE_INTEGER,
        "accelerate": ACCELERATE,
    }
    #: Attributes that a fitted estimator has (and that are not None).
    _fitted_attributes: ClassVar[tuple[str, ...]] = ("history_",)
    #: scikit-learn input tags that differ from the defaults (e.g. ``{"allow_nan": True}``).
    _input_tags: ClassVar[dict[str, bool]] = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, *, checkpoint=None, resume=False):
        """Fit by EM (``y`` is ignored). ``sample_weight``: non-negative row weights; an integer
        weight counts a row that many times.

        ``checkpoint`` (a file path) saves the state of the fit every 10 iterations and after
        each start; ``resume=True`` continues an interrupted fit from it, to the result an
        uninterrupted fit gives (see :func:`emkit.fit_em`)."""
        return self._fit(X, y, sample_weight, checkpoint=checkpoint, resume=resume)

    def _fit(self, X, y, sample_weight, *, checkpoint=None, resume=False, **inputs):
        """The template: validate, build the model, run EM, store the result."""
        self._check_parameters()
        self.__dict__.pop("_online", None)  # a batch fit ends an online one
        data = self._prepare_fit(X, y, sample_weight, **inputs)
        model = self._build_model(data)
        result = self._run_em(model, data, checkpoint=checkpoint, resume=resume)
        self._store_result(result)
        return self

    def _prepare_fit(self, X, y, sample_weight, **inputs):
        """The validated data of ``fit`` (an array, a Batch, chunks …) for ``fit_em``."""
        raise NotImplementedError

    def _build_model(self, data):
        """The EM model to fit to ``data``."""
        return self._model()

    def _run_em(self, model, data, *, checkpoint=None, resume=False):
        """Run the one EM loop with the estimator's options; returns an EMResult."""
        return fit_em(model, data, **self._em_options(data), checkpoint=checkpoint,
                      resume=resume)

    def _max_iter(self) -> int:
        return self.max_iter

    def _start(self, data):
        """Starting parameters for ``fit_em`` (then one start), or None to initialise: the
        fitted parameters when ``warm_start`` is set and the estimator is fitted."""
        if getattr(self, "warm_start", False) and self._is_fitted():
            return self._params()
        return None

    def _em_options(self, data) -> dict[str, Any]:
        """The options of ``fit_em`` that come from the constructor parameters every
        estimator shares (those it lacks take fit_em's meaning of "none": one start, no
        seed, no parameter tolerance, quiet)."""
        start = self._start(data)
        max_iter = self._max_iter()
        return {
            "n_init": 1 if start is not None else getattr(self, "n_init", 1),
            "init": start,
            "max_iter": max_iter,
            "tol": self.tol,
            "xtol": getattr(self, "xtol", None),
            "random_state": getattr(self, "random_state", None),
            # A SQUAREM cycle takes three passes and is judged at its end: a fit allowed fewer
            # (scikit-learn's warm-started max_iter=1 loops) runs plain EM, which can converge.
            "accelerate": self.accelerate if max_iter >= _SQUAREM_CYCLE else None,
            "progress": self.progress,
            "verbose": getattr(self, "verbose", 0),
            "verbose_interval": getattr(self, "verbose_interval", 1),
            # max_iter=0 asks for the starting point itself: nothing to warn about (as sklearn)
            "warn_not_converged": max_iter > 0,
        }

    def _store_result(self, result) -> None:
        """Set the fitted parameters and the record of the fit (:data:`FIT_RECORD`) from an
        EMResult (or a :class:`FitOutcome`)."""
        self._set_params(result.params)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.objective) / max(float(result.n_samples), 1e-300)
        self.history_ = np.asarray(result.history, dtype=float)
        self.events_ = list(result.events)
        self.restart_objectives_ = np.asarray(result.restart_objectives, dtype=float)

    # ------------------------------------------------------------------ validation
    def _check_parameters(self) -> None:
        """Check the constructor parameters against the class's constraints table (and the
        constraints that span several of them); raises ParameterError."""
        check_parameters(self, self._parameter_constraints)
        self._check_parameter_combinations()

    def _check_parameter_combinations(self) -> None:
        """Constraints that span several parameters or need more than one value's check."""

    def _is_fitted(self) -> bool:
        return all(getattr(self, name, None) is not None for name in self._fitted_attributes)

    def _check_fitted(self) -> None:
        check_fitted(self, self._fitted_attributes)

    # ------------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """Number of free parameters of the fitted model."""
        raise NotImplementedError

    def _log_likelihood_and_count(self, X, *args, **kwargs) -> tuple[float, int]:
        """Total log-likelihood of X and the number of its rows (n of the BIC's log n)."""
        log_likelihood = np.asarray(self.score_samples(X, *args, **kwargs))
        return float(log_likelihood.sum()), len(log_likelihood)

    def bic(self, X, *args, **kwargs) -> float:
        """Bayesian information criterion on X: −2 log L + p log n (lower is better). Further
        arguments go to the scoring (e.g. an HMM's ``lengths``)."""
        log_likelihood, n = self._log_likelihood_and_count(X, *args, **kwargs)
        return float(-2 * log_likelihood + self.n_parameters() * math.log(n))

    def aic(self, X, *args, **kwargs) -> float:
        """Akaike information criterion on X: −2 log L + 2 p (lower is better)."""
        log_likelihood, _ = self._log_likelihood_and_count(X, *args, **kwargs)
        return float(-2 * log_likelihood + 2 * self.n_parameters())

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted model to ``path`` (safe format, see :mod:`emkit.estimators.persist`)."""
        save_model(self._to_save(), path)

    def _to_save(self):
        """The estimator as a model file stores it (a copy where something must change)."""
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # the same random_state gives the same fit
        for name, value in self._input_tags.items():
            setattr(tags.input_tags, name, value)
        return tags


class OnlineEMMixin:
    """``partial_fit``: online (stepwise) EM for an :class:`EMEstimator`.

    The estimator has ``learning_decay`` and ``learning_offset`` parameters and provides
    ``_online_batch(X, y, sample_weight, first)`` (a validated mini-batch; ``y`` is what
    ``partial_fit`` got as its second argument, e.g. an HMM's ``lengths``; ``first`` resets the
    feature checks) and may override ``_online_model()`` and ``_online_start(model, batch)``
    (default: the fitted parameters, or the model's initialisation on the batch).
    """

    #: Constraints of the online parameters, for the estimator's table to merge in.
    _online_constraints: ClassVar[dict[str, Constraint]] = {
        "learning_decay": LEARNING_DECAY,
        "learning_offset": LEARNING_OFFSET,
    }

    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on the mini-batch ``X`` (Cappé & Moulines 2009).

        The first call starts from the current parameters of a fitted estimator, or from the
        estimator's initialisation on that batch; each call blends the batch's statistics into
        a running average with step (t + learning_offset)^(−learning_decay) and sets the
        parameters by an M-step (see :mod:`emkit.core.online`). ``history_`` holds each batch's
        log-likelihood per sample under the parameters before its update."""
        self._check_parameters()
        state = getattr(self, "_online", None)
        batch = self._online_batch(X, y, sample_weight, state is None)
        if state is None:
            model = self._online_model()
            state = OnlineEM(model, self._online_start(model, batch), self.learning_decay,
                             self.learning_offset)
            self._online = state
        mean_log_likelihood = state.step(batch)
        history = list(self.history_) if state.n_steps > 1 else []
        # Per-sample values: the "objective" of the record is the last batch's mean.
        self._store_result(FitOutcome(
            params=state.params, objective=mean_log_likelihood, n_samples=1.0, converged=False,
            n_iter=state.n_steps, history=np.asarray(history + [mean_log_likelihood])))
        return self

    def _online_model(self):
        return self._model()

    def _online_start(self, model, batch):
        if self._is_fitted():
            return self._params()
        return model.init_params(batch, random_generator(getattr(self, "random_state", None)))


class MixturePosteriorsMixin:
    """``predict``, ``predict_proba`` and ``score_samples`` of a fitted mixture, from one pass of
    its model's ``posteriors`` over the validated rows (``_model_rows`` converts them where the
    model takes another form, e.g. sparse counts)."""

    def predict(self, X):
        """Most probable component of each row, shape (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples, n_components)."""
        return self._posteriors(X)[1]

    def score_samples(self, X):
        """Log-likelihood of each row, shape (n_samples,)."""
        return self._posteriors(X)[0]

    def _posteriors(self, X, validated: bool = False):
        """Per-row log-likelihood and posteriors of X (``validated``: rows this estimator's
        validation already returned, as a grid of fits on the same rows shares them)."""
        self._check_fitted()
        if not validated:
            X = self._validate_rows(X, reset=False)
        return self._model().posteriors(self._params(), self._model_rows(X))

    def _model_rows(self, X):
        return X


class RowDensityMixin(DensityMixin):
    """``score``: the mean (weighted) log-likelihood per row of the estimator's
    ``score_samples``. Rows of zero weight do not count, even where their density is 0."""

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean (weighted) log-likelihood per row."""
        log_likelihood = self.score_samples(X)
        if sample_weight is None:
            return float(log_likelihood.mean())
        w = check_sample_weight(sample_weight, len(log_likelihood))
        used = w > 0
        return float(np.average(log_likelihood[used], weights=w[used]))


class SamplingMixin:
    """``sample``: draws from the fitted model, seeded from any ``random_state``.

    The estimator provides ``_draw(n_samples, rng, **options)``. With an int ``random_state``
    every call draws the same rows; with a Generator each call continues its stream (so the
    same Generator state gives the same rows); a RandomState seeds the draws from one of its
    numbers (see :func:`emkit.estimators.validation.random_generator`)."""

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows from the fitted model; returns (X, component labels)."""
        return self._draw(n_samples, self._sampling_generator(n_samples))

    def _sampling_generator(self, n_samples, random_state=None) -> np.random.Generator:
        """Check that the estimator is fitted and ``n_samples`` valid; the generator of the
        draws (from ``random_state`` when given, else the estimator's)."""
        self._check_fitted()
        check_n_samples(n_samples)
        if random_state is None:
            random_state = getattr(self, "random_state", None)
        return random_generator(random_state)

    def _draw(self, n_samples, rng, **options):
        raise NotImplementedError
