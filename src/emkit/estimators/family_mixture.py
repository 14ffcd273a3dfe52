"""The estimator of a mixture of any component family: :class:`FamilyMixture`.

:class:`emkit.models.mixture.MixtureModel` makes a mixture of any
:class:`~emkit.families.base.ComponentFamily`; this class makes it a scikit-learn estimator with
everything :class:`emkit.GaussianMixture` has: restarts (``n_init``), SQUAREM (``accelerate``),
warm starts, ``sample_weight``, missing values (NaN, where the family allows them), streamed
chunks and Dask arrays, online EM (``partial_fit``), ``predict``/``predict_proba``/
``score_samples``/``score``, ``bic``/``aic``, ``sample`` and safe model files (``save``,
:func:`emkit.load`).

A new family's estimator is its constructor (the shared parameters plus the family's own),
``_components`` (the family's parameter NamedTuple: each field ``f`` becomes the fitted
attribute ``f_``), ``_family()`` and, for model files, one call of
:func:`register_family_mixture`. See :class:`emkit.PoissonMixture` for one. No math lives here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from emkit.data.chunks import Batch, CheckedChunks, ChunkSource
from emkit.errors import DataError, ParameterError
from emkit.estimators.base import (
    FIT_RECORD,
    EMEstimator,
    MixturePosteriorsMixin,
    OnlineEMMixin,
    RowDensityMixin,
    SamplingMixin,
)
from emkit.estimators.validation import (
    BOOLEAN,
    COUNT,
    RANDOM_STATE,
    VERBOSE,
    Real,
    check_observed,
    check_sample_weight,
    is_dask_collection,
    validate_rows,
)
from emkit.families.base import ComponentFamily
from emkit.models.mixture import MixtureModel, MixtureParams

__all__ = ["FamilyMixture", "register_family_mixture"]


class FamilyMixture(OnlineEMMixin, SamplingMixin, MixturePosteriorsMixin, RowDensityMixin,
                    EMEstimator):
    """Base of the estimators of mixtures of one component family, fitted by EM.

    Subclasses set ``_components`` (the family's parameter NamedTuple) and implement
    ``_family()``; they may override ``_attribute_shapes`` (for checks of model files) and
    ``_check_components`` (values a fitted model must hold, e.g. positive rates), and
    ``_set_params``/``_params`` where the fitted attributes are not the parameter fields.

    Shared constructor parameters (each subclass lists them in its own signature, as
    scikit-learn needs): ``n_components``, ``tol``, ``xtol``, ``max_iter``, ``n_init``,
    ``random_state``, ``warm_start``, ``accelerate``, ``verbose``, ``verbose_interval``,
    ``progress``, ``learning_decay``, ``learning_offset`` (meanings as in
    :class:`emkit.GaussianMixture`; ``xtol`` as in :func:`emkit.fit_em`).

    Fitted attributes: ``weights_`` (n_components,), one attribute per parameter field, and the
    record of the fit: ``converged_``, ``n_iter_``, ``lower_bound_`` (objective per sample),
    ``history_``, ``events_``, ``restart_objectives_``, ``n_features_in_`` (and
    ``feature_names_in_`` for a data frame).
    """

    _parameter_constraints = {
        **EMEstimator._parameter_constraints,
        **OnlineEMMixin._online_constraints,
        "n_components": COUNT,
        "n_init": COUNT,
        "xtol": Real(0, optional=True),
        "random_state": RANDOM_STATE,
        "warm_start": BOOLEAN,
        "verbose": VERBOSE,
        "verbose_interval": COUNT,
    }
    _fitted_attributes = ("weights_",)
    _input_tags = {"allow_nan": True}  # missing values: the families skip them
    #: The family's parameter type (a NamedTuple); its fields are the fitted attributes + "_".
    _components: ClassVar[type]

    # ------------------------------------------------------------------ the family
    def _family(self) -> ComponentFamily:
        """The component family of the constructor parameters."""
        raise NotImplementedError

    def _model(self) -> MixtureModel:
        return MixtureModel(self._family(), self.n_components)

    def _params(self) -> MixtureParams:
        components = self._components(*(getattr(self, f"{name}_")
                                         for name in self._components._fields))
        return MixtureParams(np.asarray(self.weights_, dtype=float), components)

    def _set_params(self, params: MixtureParams) -> None:
        self.weights_ = params.weights
        for name, value in zip(self._components._fields, params.components, strict=True):
            setattr(self, f"{name}_", value)

    # ------------------------------------------------------------------ fitting
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def _prepare_fit(self, X, y, sample_weight):
        if is_dask_collection(X):
            from emkit.data.distributed import DaskChunks

            X = DaskChunks(X)
        if isinstance(X, ChunkSource):
            return self._streamed(X, sample_weight)
        X = self._validate_rows(X, reset=True)
        if self.n_components > len(X):
            raise DataError(f"n_components={self.n_components} is larger than the number of "
                            f"samples (n_samples={len(X)}): use fewer components or more data.")
        check_observed(X, getattr(self, "feature_names_in_", None))
        return Batch(X, check_sample_weight(sample_weight, len(X)))

    def _streamed(self, source, sample_weight):
        """A streamed source whose chunks are checked (as rows of this family) as read."""
        if sample_weight is not None:
            raise DataError("sample_weight cannot go with streamed data; stream "
                            "emkit.data.chunks.Batch chunks instead.")
        n_features = source.n_features
        self.n_features_in_ = n_features
        if source.columns is not None:
            self.feature_names_in_ = np.asarray(source.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        family = self._family()

        def check(chunk, index):
            chunk = np.asarray(chunk, dtype=float)
            if chunk.ndim != 2 or chunk.shape[1] != n_features:
                raise DataError(f"chunk {index} of the data has shape {chunk.shape}, but the data "
                                f"have {n_features} columns: every chunk needs the same columns.")
            family.read(chunk)  # the family's checks (counts, binary items, …)
            return chunk

        if hasattr(source, "checked"):  # a source that runs its chunks elsewhere checks there
            return source.checked(check)
        return CheckedChunks(source, check)

    def _online_batch(self, X, y, sample_weight, first):
        X = self._validate_rows(X, reset=first and not self._is_fitted())
        return Batch(X, check_sample_weight(sample_weight, len(X)))

    def _draw(self, n_samples, rng):
        counts = rng.multinomial(n_samples, self.weights_)
        labels = np.repeat(np.arange(len(counts)), counts)
        return self._family().sample(self._params().components, labels, rng), labels

    def standard_errors(self, X, sample_weight=None) -> dict[str, np.ndarray]:
        """Standard errors of ``weights_`` and the components' parameters (keys without the
        trailing underscore, arrays shaped like the attributes) from the observed information
        on the rows ``X`` the model was fitted to (and their ``sample_weight``): the exact
        Hessian of the observed-data log-likelihood, inverted and carried to the reported
        parameters by the delta method (:mod:`emkit.models.information`). Families whose
        pieces are written provide ``information(params)``; a prior is not part of it."""
        from emkit.models.information import mixture_standard_errors

        self._check_fitted()
        information = getattr(self._family(), "information", None)
        if information is None:
            raise ParameterError(f"standard errors are not available for "
                                 f"{type(self).__name__}: its family does not provide "
                                 "information(params) (see emkit.models.information; every "
                                 "mixture emkit ships has them).")
        X = self._validate_rows(X, reset=False)
        sample_weight = check_sample_weight(sample_weight, len(X))
        return mixture_standard_errors(information(self._params().components), self.weights_,
                                       X, sample_weight)

    # ------------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """Number of free parameters: K − 1 weights and the components' parameters."""
        self._check_fitted()
        return self._model().n_parameters(self.n_features_in_)

    # ------------------------------------------------------------------ validation
    def _validate_rows(self, X, reset):
        """2-D numbers (NaN allowed), then the family's own checks."""
        X = np.ascontiguousarray(validate_rows(self, X, reset=reset, dtype=np.float64))
        self._family().read(X)
        return X

    # ------------------------------------------------------------------ model files
    def _attribute_shapes(self, n_components: int, n_features: int) -> dict[str, tuple]:
        """The shapes of the fitted arrays (None: a length the model file does not fix); by
        default (K, D) for every parameter field."""
        return {"weights_": (n_components,),
                **{f"{name}_": (n_components, n_features)
                   for name in self._components._fields}}

    def _check_components(self) -> None:
        """Values a fitted model must hold beyond shapes and finiteness (raise ValueError)."""


# --------------------------------------------------------------------------- model files
def _positive_int(values, key) -> int:
    value = values.get(key)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r:.40}")
    return int(value)


def check_fitted_family_mixture(estimator: FamilyMixture) -> None:
    """Shapes and values of a fitted family mixture; raises ValueError saying what is wrong
    (run before saving and after loading)."""
    from emkit.estimators.persist import check_mixture_arrays

    estimator._check_parameters()  # a ParameterError is a ValueError
    K = estimator.n_components
    D = estimator.n_features_in_
    if not isinstance(D, (int, np.integer)) or isinstance(D, bool) or D < 1:
        raise ValueError(f"n_features_in_ must be a positive integer, got {D!r}")
    check_mixture_arrays(estimator, estimator._attribute_shapes(K, D),
                         f"n_components={K} and {D} features")
    estimator._check_components()
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) != D:
        raise ValueError(f"feature_names_in_ has {len(names)} names for {D} features")


def register_family_mixture(cls: type[FamilyMixture], extra: dict[str, str] | None = None,
                            optional: frozenset[str] = frozenset()) -> None:
    """Let model files store ``cls`` (a :class:`FamilyMixture` subclass): its weights, its
    parameter fields, the record of the fit and ``extra`` fitted attributes (name -> kind of
    :class:`emkit.estimators.persist.EstimatorSpec`), those in ``optional`` stored when
    present."""
    from emkit.estimators.persist import EstimatorSpec, register_estimator

    def shapes(params: dict[str, Any], attributes: dict[str, Any]) -> dict[str, tuple]:
        template = cls.__new__(cls)  # only for the shapes: no constructor parameters needed
        template.__dict__.update(params)
        return template._attribute_shapes(_positive_int(params, "n_components"),
                                          _positive_int(attributes, "n_features_in_"))

    if not issubclass(cls, FamilyMixture):
        raise ParameterError(f"{cls.__name__} is not a FamilyMixture.")
    register_estimator(cls.__name__, EstimatorSpec(
        target=f"{cls.__module__}:{cls.__qualname__}",
        attributes={"weights_": "array",
                    **{f"{name}_": "array" for name in cls._components._fields},
                    **(extra or {}), **FIT_RECORD, "n_features_in_": "int",
                    "feature_names_in_": "names"},
        optional=frozenset({"feature_names_in_", *optional}),
        check=check_fitted_family_mixture,
        shapes=shapes,
    ))
