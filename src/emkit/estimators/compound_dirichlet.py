"""scikit-learn estimators for compound-Dirichlet data: counts and proportions.

- :class:`DirichletMultinomial`: one Dirichlet-multinomial (Pólya) distribution for count vectors
  (rows = samples, columns = categories), maximum-likelihood α by the EM of Gupta & Chen §4.3 or by
  Minka's fixed point.
- :class:`DirichletMultinomialMixture`: mixtures of Dirichlet-multinomials (Holmes, Harris &
  Quince 2012, the "Dirichlet multinomial mixtures" of microbiome community typing), with their
  Gamma prior on λ = log α, restarts, sample weights, BIC, AIC and a Laplace approximation to the
  evidence for choosing K.
- :class:`Dirichlet`: (mixtures of) Dirichlet distributions for proportions (rows on the simplex).

Conventions follow :class:`emkit.GaussianMixture`. No math lives here: see
:mod:`emkit.models.compound_dirichlet` and :mod:`emkit.families.dirichlet`.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from emkit.data.chunks import Batch
from emkit.errors import DataError, ParameterError
from emkit.estimators.base import (
    FIT_RECORD,
    EMEstimator,
    FitOutcome,
    MixturePosteriorsMixin,
    OnlineEMMixin,
    RowDensityMixin,
    SamplingMixin,
)
from emkit.estimators.validation import (
    COUNT,
    RANDOM_STATE,
    OneOf,
    Real,
    check_sample_weight,
    seed_sequence,
)
from emkit.families.dirichlet import (
    GammaPrior,
    check_counts,
    check_proportions,
    polya_fixed_point,
    sparse_counts,
)
from emkit.models.compound_dirichlet import (
    LATENT,
    CompoundDirichletParams,
    DirichletMixtureModel,
    DirichletMultinomialMixtureModel,
)

__all__ = ["DirichletMultinomial", "DirichletMultinomialMixture", "Dirichlet"]

PRIORS = ("gamma", None)
SOLVERS = ("em", "fixed-point")


class _CompoundDirichletBase(OnlineEMMixin, SamplingMixin, MixturePosteriorsMixin, RowDensityMixin,
                             EMEstimator):
    """Fitting (batch EM, and online EM by ``partial_fit``), inference and model choice shared
    by the three estimators."""

    _counts = True  # counts (Dirichlet-multinomial) or proportions (Dirichlet)
    _parameter_constraints = {
        **EMEstimator._parameter_constraints,
        **OnlineEMMixin._online_constraints,
        "n_components": COUNT,
        "n_init": COUNT,
        "prior": OneOf(*PRIORS, hint="'gamma': Gamma(prior_shape, prior_rate) on each α; "
                                     "None: maximum likelihood"),
        "prior_shape": Real(0, low_open=True),
        "prior_rate": Real(0, low_open=True),
        "random_state": RANDOM_STATE,
    }
    _fitted_attributes = ("alpha_",)
    _input_tags = {"positive_only": True}

    # ------------------------------------------------------------------ fitting
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def _prepare_fit(self, X, y, sample_weight) -> Batch:
        X = self._validate_rows(X, reset=True)
        n_samples = len(X)
        K = self._n_components()
        if K > n_samples:
            raise DataError(f"n_components={K} is larger than the number of samples "
                            f"(n_samples={n_samples}): use fewer components or more data.")
        sample_weight = check_sample_weight(sample_weight, n_samples)
        used = np.ones(n_samples, bool) if sample_weight is None else sample_weight > 0
        self._check_no_empty_category(X[used], "any row")
        if self._counts:
            self.n_trials_ = int(np.median(X[used].sum(axis=1)))
        return Batch(self._model_rows(X), sample_weight)

    def _check_no_empty_category(self, X, where):
        if not self._counts or self._prior() is not None:
            return
        empty = np.flatnonzero(X.sum(axis=0) == 0)
        if len(empty):
            names = getattr(self, "feature_names_in_", None)
            shown = [str(names[j]) if names is not None else str(j) for j in empty[:5]]
            raise DataError(
                f"category (column) {', '.join(shown)} has no counts in {where}, so its "
                "maximum-likelihood α is 0: drop it, or use the Gamma prior "
                "(prior='gamma').")

    # ------------------------------------------------------------------ online EM hooks
    def _online_batch(self, X, y, sample_weight, first):
        fitted = self._is_fitted()
        X = self._validate_rows(X, reset=first and not fitted)
        sample_weight = check_sample_weight(sample_weight, len(X))
        if first and not fitted:
            # The first batch alone sets the starting α: no category may be empty in it (later
            # batches are averaged with the earlier ones, so they may lack categories).
            used = np.ones(len(X), bool) if sample_weight is None else sample_weight > 0
            self._check_no_empty_category(X[used], "any row of the first batch")
            if self._counts:
                self.n_trials_ = int(np.median(X[used].sum(axis=1)))
        return Batch(self._model_rows(X), sample_weight)

    # ------------------------------------------------------------------ inference
    def score_samples(self, X):
        """Log-likelihood of each row, shape (n_samples,). For counts it includes the
        multinomial coefficient N! / Π x_j!, as ``scipy.stats.dirichlet_multinomial``."""
        return super().score_samples(X)

    def _model_rows(self, X):
        return sparse_counts(X) if self._counts else X

    def sample(self, n_samples=1, n_trials=None):
        """Draw rows from the fitted distribution; returns (X, component labels).

        Parameters
        ----------
        n_samples : int
        n_trials : int or array of int of shape (n_samples,), optional
            Counts only: the total count N of each drawn row; default ``n_trials_``, the median
            row total of the training data.

        The draws are seeded from ``random_state`` in any form (see
        :class:`emkit.estimators.base.SamplingMixin`).
        """
        return self._draw(n_samples, self._sampling_generator(n_samples), n_trials)

    def _draw(self, n_samples, rng, n_trials=None):
        params = self._params()
        labels = rng.choice(len(params.weights), size=n_samples, p=params.weights)
        proportions = np.vstack([rng.dirichlet(params.alpha[k]) for k in labels])
        if not self._counts:
            return proportions, labels
        trials = self.n_trials_ if n_trials is None else n_trials
        trials = np.broadcast_to(np.asarray(trials), (n_samples,))
        if not (np.issubdtype(trials.dtype, np.integer) and np.all(trials >= 1)):
            raise ParameterError("n_trials must be positive integers (one total per row).")
        X = np.vstack([rng.multinomial(int(n), q) for n, q in zip(trials, proportions,
                                                                   strict=True)])
        return X.astype(np.float64), labels

    # ------------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """Number of free parameters: K − 1 weights and K × n_features α."""
        self._check_fitted()
        return self._model().n_parameters(self.n_features_in_)

    # ------------------------------------------------------------------ helpers
    def _n_components(self) -> int:
        return self.n_components

    def _prior(self) -> GammaPrior | None:
        return None if self.prior is None else GammaPrior(float(self.prior_shape),
                                                          float(self.prior_rate))

    def _params(self) -> CompoundDirichletParams:
        return CompoundDirichletParams(np.asarray(self.weights_, dtype=float),
                                       np.atleast_2d(np.asarray(self.alpha_, dtype=float)))

    def _set_params(self, params: CompoundDirichletParams) -> None:
        self.weights_ = params.weights
        self.alpha_ = params.alpha

    def _validate_rows(self, X, reset):
        try:
            X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1,
                              ensure_min_features=1)
        except DataError:
            raise
        except ValueError as error:
            message = str(error)
            if "features" in message and not reset:
                message += " Pass the same columns as in fit."
            raise DataError(message) from error
        return check_counts(X) if self._counts else check_proportions(X)

class DirichletMultinomialMixture(_CompoundDirichletBase):
    """Mixture of Dirichlet-multinomial distributions for count vectors, fitted by EM.

    The model of Holmes, Harris & Quince (2012, PLoS ONE 7(2): e30126) for microbiome community
    typing: each row (counts of J categories) belongs to component k with probability π_k, draws
    its category probabilities from Dir(α_k) and its counts from a multinomial with them.

    Parameters
    ----------
    n_components : int, default 1
    prior : {"gamma", None}, default "gamma"
        ``"gamma"``: α_kj ~ Gamma(shape ``prior_shape``, rate ``prior_rate``), as a density of
        λ = log α, as Holmes et al. (who use 0.1 and 0.1); the fit maximises the log-likelihood
        plus this log prior. It keeps α of a category absent from a component finite.
        ``None``: maximum likelihood.
    prior_shape, prior_rate : float, default 0.1
    tol : float, default 1e-7
        Stop when the objective changes by less than this per sample.
    max_iter : int, default 500
        Maximum number of EM iterations (passes over the data) per start.
    n_init : int, default 1
        Number of starts (k-means++ seeds on the proportions); the best objective wins.
    random_state : None, int, Generator or RandomState
    warm_start : bool, default False
        Start the next ``fit`` from the current parameters (one start).
    accelerate : {None, "squarem"}, default "squarem"
    latent : {"components", "probabilities"}, default "components"
        What EM treats as missing: the memberships only, each M-step a full weighted
        Dirichlet-multinomial fit (fast), or also each row's probability vector (Gupta & Chen's
        EM; slower, the same optimum). See :class:`emkit.models.compound_dirichlet.
        DirichletMultinomialMixtureModel`.
    progress : bool, default False
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes ρ_t = (t + learning_offset)^(−learning_decay) of online EM
        (:meth:`partial_fit`: one step per mini-batch, the count histograms averaged; see
        :mod:`emkit.core.online`).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    alpha_ : ndarray of shape (n_components, n_features)
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Final objective (log-likelihood + log prior) per sample.
    history_ : ndarray
        The objective at every iteration of the best start.
    events_ : list of (iteration, message)
    restart_objectives_ : ndarray of shape (n_init,)
    n_trials_ : int
        Median row total of the training data (the default total of :meth:`sample`).
    """

    _parameter_constraints = {**_CompoundDirichletBase._parameter_constraints,
                              "latent": OneOf(*LATENT)}

    def __init__(self, n_components=1, *, prior="gamma", prior_shape=0.1, prior_rate=0.1,
                 tol=1e-7, max_iter=500, n_init=1, random_state=None, warm_start=False,
                 accelerate="squarem", latent="components", progress=False,
                 learning_decay=0.6, learning_offset=2.0):
        self.n_components = n_components
        self.prior = prior
        self.prior_shape = prior_shape
        self.prior_rate = prior_rate
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.latent = latent
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def _model(self) -> DirichletMultinomialMixtureModel:
        return DirichletMultinomialMixtureModel(self.n_components, self._prior(), self.latent)

    def objective(self, X, sample_weight=None) -> float:
        """Holmes et al.'s objective on X: −(log-likelihood with the multinomial coefficient +
        log prior of λ = log α). Lower is better; the fit minimises it."""
        self._check_fitted()
        w = check_sample_weight(sample_weight, len(self._validate_rows(X, reset=False)))
        log_likelihood = self.score_samples(X)
        total = float(log_likelihood.sum() if w is None else w @ log_likelihood)
        return -(total + self._model().log_prior(self._params()))

    def laplace(self, X, sample_weight=None) -> float:
        """Laplace approximation to the negative log evidence, −log p(X) (lower is better).

        Needs ``prior="gamma"`` (a flat prior has no evidence); the weights get a uniform
        Dirichlet prior. See
        :meth:`emkit.models.compound_dirichlet.DirichletMultinomialMixtureModel.
        laplace_log_evidence` for the formula.
        """
        self._check_fitted()
        X = self._validate_rows(X, reset=False)
        w = check_sample_weight(sample_weight, len(X))
        return -self._model().laplace_log_evidence(self._params(), X, w)


class DirichletMultinomial(DirichletMultinomialMixture):
    """The Dirichlet-multinomial (Pólya, compound Dirichlet) distribution for count vectors.

    Maximum-likelihood (or, with ``prior="gamma"``, maximum a posteriori) α by one of two
    solvers, which reach the same α:

    - ``solver="em"``: the EM of Gupta & Chen (2010, §4.3) on :func:`emkit.fit_em`, with each
      row's probability vector q_i ~ Dir(α) as missing data: E[log q_ij] = ψ(α_j + x_ij) −
      ψ(α₀ + N_i), and the M-step is the Dirichlet MLE from those mean-log statistics (Newton's
      method, O(n_features) per step). SQUAREM by default.
    - ``solver="fixed-point"``: Minka's fixed point directly on the Dirichlet-multinomial
      likelihood ("Estimating a Dirichlet distribution", 2000).

    Parameters
    ----------
    prior : {None, "gamma"}, default None
        As :class:`DirichletMultinomialMixture` (there the default is "gamma").
    prior_shape, prior_rate : float, default 0.1
    solver : {"em", "fixed-point"}, default "em"
    tol : float, default 1e-10
        Stop when the objective's last change and its estimated remaining rise are below this
        per sample.
    xtol : float, default 1e-7
        ... and when the estimated remaining relative change of every α is below this (small
        α are weakly determined: an objective converged to 1e-10 per sample pins them only to
        about 1e-4; see :class:`emkit.core.engine.ConvergenceMonitor`). None: the objective alone.
        Both solvers then agree to 1e-6 (twins: 608–743 SQUAREM-EM passes, 216 fixed-point
        steps).
    max_iter : int, default 5000
    n_init : int, default 1
        Starts (jittered method-of-moments estimates).
    random_state, accelerate, progress
        As :class:`DirichletMultinomialMixture` (``accelerate`` applies to ``solver="em"``).
    learning_decay, learning_offset : float, default 0.6 and 2.0
        Step sizes ρ_t = (t + learning_offset)^(−learning_decay) of online EM
        (:meth:`partial_fit`, which is Gupta & Chen's EM whatever the ``solver``: one EM step
        per mini-batch on the averaged count histograms; see :mod:`emkit.core.online`).

    Attributes
    ----------
    alpha_ : ndarray of shape (n_features,)
    weights_ : ndarray of shape (1,), [1.0]
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_, n_trials_
        As :class:`DirichletMultinomialMixture`.
    """

    n_components = 1
    _parameter_constraints = {**_CompoundDirichletBase._parameter_constraints,
                              "solver": OneOf(*SOLVERS),
                              "xtol": Real(0, optional=True)}

    def __init__(self, *, prior=None, prior_shape=0.1, prior_rate=0.1, solver="em", tol=1e-10,
                 max_iter=5000, n_init=1, random_state=None, accelerate="squarem",
                 progress=False, learning_decay=0.6, learning_offset=2.0, xtol=1e-7):
        self.prior = prior
        self.prior_shape = prior_shape
        self.prior_rate = prior_rate
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.xtol = xtol

    def _model(self) -> DirichletMultinomialMixtureModel:
        return DirichletMultinomialMixtureModel(1, self._prior(), "probabilities")

    def _run_em(self, model, data, *, checkpoint=None, resume=False):
        if self.solver == "em":
            return super()._run_em(model, data, checkpoint=checkpoint, resume=resume)
        if checkpoint is not None:
            raise ParameterError("checkpoints are written by the EM solver; use solver='em', or "
                                 "fit without checkpoint (the fixed point takes seconds).")
        # Minka's fixed point, from the same starts as EM's (method of moments, jittered).
        best = None
        objectives = []
        for seed in seed_sequence(self.random_state).spawn(self.n_init):
            start = model.init_params(data, np.random.default_rng(seed)).alpha[0]
            fit = polya_fixed_point(data.X, start, data.sample_weight, self._prior(),
                                    tol=self.tol, max_iter=self.max_iter, xtol=self.xtol)
            objectives.append(fit.objective)
            if best is None or fit.objective > best.objective:
                best = fit
        weights = data.sample_weight
        total_weight = float(len(data.X.totals) if weights is None else weights.sum())
        return FitOutcome(CompoundDirichletParams(np.ones(1), best.alpha[None, :]),
                          objective=best.objective, n_samples=total_weight,
                          converged=best.converged, n_iter=best.n_iter, history=best.history,
                          restart_objectives=tuple(objectives))

    def _set_params(self, params: CompoundDirichletParams) -> None:
        self.weights_ = params.weights
        self.alpha_ = params.alpha[0]


class Dirichlet(_CompoundDirichletBase):
    """(A mixture of) Dirichlet distributions for proportions: rows of positive numbers that sum
    to one. The M-step is the same Newton solver as the Dirichlet-multinomial EM's.

    Parameters
    ----------
    n_components : int, default 1
    prior : {None, "gamma"}, default None
    prior_shape, prior_rate : float, default 0.1
    tol : float, default 1e-9
    max_iter : int, default 500
    n_init, random_state, warm_start, accelerate, progress, learning_decay, learning_offset
        As :class:`DirichletMultinomialMixture` (online EM averages n_k and the mean-log
        sums S_kj).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    alpha_ : ndarray of shape (n_components, n_features)
    converged_, n_iter_, lower_bound_, history_, events_, restart_objectives_
    """

    _counts = False

    def __init__(self, n_components=1, *, prior=None, prior_shape=0.1, prior_rate=0.1,
                 tol=1e-9, max_iter=500, n_init=1, random_state=None, warm_start=False,
                 accelerate="squarem", progress=False, learning_decay=0.6,
                 learning_offset=2.0):
        self.n_components = n_components
        self.prior = prior
        self.prior_shape = prior_shape
        self.prior_rate = prior_rate
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def _model(self) -> DirichletMixtureModel:
        return DirichletMixtureModel(self.n_components, self._prior())


# --------------------------------------------------------------------------- model files
def _check_fitted_compound(estimator) -> None:
    """Shapes and values of a fitted estimator of this module; raises ValueError saying what is
    wrong (run before saving and after loading)."""
    estimator._check_parameters()
    D = estimator.n_features_in_
    if not isinstance(D, int) or isinstance(D, bool) or D < 2:
        raise ValueError(f"n_features_in_ must be an integer >= 2, got {D!r}")
    K = estimator._n_components()
    alpha_shape = (D,) if isinstance(estimator, DirichletMultinomial) else (K, D)
    for name, shape in (("weights_", (K,)), ("alpha_", alpha_shape)):
        value = getattr(estimator, name)
        if not isinstance(value, np.ndarray) or value.shape != shape:
            raise ValueError(f"{name} should have shape {shape}, got "
                             f"{getattr(value, 'shape', type(value).__name__)}")
        if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must hold finite floating-point numbers")
    if np.any(estimator.alpha_ <= 0):
        raise ValueError("alpha_ must be positive")
    weights = estimator.weights_
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-8:
        raise ValueError(f"weights_ must be non-negative and sum to 1 (they sum to "
                         f"{weights.sum():.10g})")
    if estimator._counts and not (isinstance(estimator.n_trials_, int)
                                  and estimator.n_trials_ >= 1):
        raise ValueError(f"n_trials_ must be an integer >= 1, got {estimator.n_trials_!r}")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) != D:
        raise ValueError(f"feature_names_in_ has {len(names)} names for {D} features")


def _register() -> None:
    from emkit.estimators.persist import EstimatorSpec, register_estimator

    common = {
        "weights_": "array",
        "alpha_": "array",
        **FIT_RECORD,
        "n_features_in_": "int",
        "feature_names_in_": "names",
    }
    for cls, extra in ((DirichletMultinomialMixture, {"n_trials_": "int"}),
                       (DirichletMultinomial, {"n_trials_": "int"}), (Dirichlet, {})):
        register_estimator(cls.__name__, EstimatorSpec(
            target=f"{__name__}:{cls.__name__}",
            attributes={**common, **extra},
            optional=frozenset({"feature_names_in_"}),
            check=_check_fitted_compound,
        ))


_register()
