"""scikit-learn compatible hidden Markov models: Gaussian, GMM, categorical and Poisson HMMs.

Fitted attributes follow hmmlearn where they overlap (``startprob_``, ``transmat_``, ``means_``,
``covars_``, ``emissionprob_``, ``lambdas_``); constructor parameters follow emkit's
:class:`emkit.GaussianMixture` (``n_components``, ``max_iter``, ``tol``, ``n_init``,
``random_state``, ``accelerate``, …). Like hmmlearn, ``params`` and ``init_params`` choose by
letter what EM updates and what ``fit`` initialises: setting attributes before ``fit`` with
``init_params=""`` starts from them. hmmlearn's constructor names are accepted with hmmlearn's
meaning (``n_iter``, ``min_covar``, ``algorithm``, ``verbose``, ``implementation``), and a
fitted model has hmmlearn's ``monitor_`` (see docs/hmm.md for the whole mapping).

No math lives here: the model is :class:`emkit.models.hmm.HMMModel`, fitted by the one EM loop
:func:`emkit.fit_em`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emkit.errors import DataError, NotFittedError, ParameterError
from emkit.estimators.base import FIT_RECORD, EMEstimator, OnlineEMMixin, SamplingMixin
from emkit.estimators.persist import EstimatorSpec, register_estimator
from emkit.estimators.validation import (
    CONCENTRATIONS,
    COUNT,
    NON_NEGATIVE,
    RANDOM_STATE,
    VERBOSE,
    Integer,
    Letters,
    OneOf,
    check_no_constant_column,
    check_observed,
    is_dask_collection,
    validate_rows,
)
from emkit.families.categorical import CategoricalEmission, CategoricalParams
from emkit.families.gaussian import COVARIANCE_TYPES, GaussianParams
from emkit.families.poisson import PoissonEmission, PoissonParams
from emkit.models.hmm import (
    DEFAULT_HMM_INIT,
    GaussianEmission,
    GMMEmission,
    GMMParams,
    HMMModel,
    HMMParams,
    Sequences,
    check_lengths,
)

__all__ = ["GaussianHMM", "GMMHMM", "CategoricalHMM", "PoissonHMM", "FitMonitor"]


@dataclass(frozen=True)
class FitMonitor:
    """hmmlearn's ``monitor_`` of a fitted emkit HMM, read from the fit.

    ``history`` is the objective (log-likelihood + log prior) at every evaluated point of the
    best start, the start first (``history_``), so ``history[-1]`` belongs to the fitted
    parameters; ``iter`` is ``n_iter_``; ``converged`` is ``converged_`` — True only when the
    convergence test passed (hmmlearn's is also True when ``n_iter`` iterations were done).
    """

    tol: float
    n_iter: int
    verbose: int
    history: tuple[float, ...]
    iter: int
    converged: bool


def _letters_constraints(letters: str) -> dict:
    """Constraints of ``params`` and ``init_params``: strings of some of ``letters``."""
    return {"params": Letters(letters), "init_params": Letters(letters)}


class _BaseHMM(OnlineEMMixin, SamplingMixin, EMEstimator):
    """What every emkit HMM estimator shares: input handling, fitting through ``fit_em``,
    inference (forward-backward, Viterbi), sampling, model choice and saving."""

    _letters = "st"
    _parameter_constraints = {
        **EMEstimator._parameter_constraints,
        **OnlineEMMixin._online_constraints,
        "n_components": COUNT,
        "n_init": COUNT,
        "n_iter": Integer(0, optional=True),
        "algorithm": OneOf("viterbi", "map"),
        "implementation": OneOf("log", "scaling",
                                hint="hmmlearn's values; both run emkit's scaled pass"),
        "verbose": VERBOSE,
        "startprob_prior": CONCENTRATIONS,
        "transmat_prior": CONCENTRATIONS,
        "random_state": RANDOM_STATE,
        **_letters_constraints(_letters),
    }
    _fitted_attributes = ("transmat_", "n_features_in_")
    _input_tags = {"allow_nan": True}

    # ------------------------------------------------------------------ hooks of subclasses
    def _emission(self, n_features: int):
        raise NotImplementedError

    def _emission_params(self):
        """The emission parameters from the fitted (or user-set) attributes, or None."""
        raise NotImplementedError

    def _set_emission(self, params) -> None:
        raise NotImplementedError

    def _given_emission(self):
        """The user-set emission parameters for a fit that draws only some of them."""
        return self._emission_params()

    def _check_frames(self, X: np.ndarray) -> None:
        """Data checks specific to the emission type (raise DataError)."""

    # ------------------------------------------------------------------ fitting
    def fit(self, X, lengths=None, sample_weight=None, *, checkpoint=None, resume=False):
        """Fit by Baum-Welch (EM).

        Parameters
        ----------
        X : array (n_frames, n_features) or list of such arrays (one per sequence)
            Frames of all sequences back to back; NaN marks a missing value.
        lengths : array of int (n_sequences,), optional
            Frames per sequence (hmmlearn's convention); default one sequence (or the list's).
        sample_weight : array (n_sequences,), optional
            Weight of each sequence.
        checkpoint, resume
            Save the state of the fit to this file, and continue an interrupted fit from it (see
            :func:`emkit.fit_em`).
        """
        return self._fit(X, lengths, sample_weight, checkpoint=checkpoint, resume=resume)

    def _prepare_fit(self, X, lengths, sample_weight):
        if is_dask_collection(X):  # blocks of whole sequences, E-steps on the workers
            from emkit.data.distributed import DaskSequences

            sequences = DaskSequences(X, [len(X)] if lengths is None else lengths,
                                      sample_weight)
            self.n_features_in_ = sequences.n_features
            return sequences
        sequences = self._sequences(X, lengths, sample_weight, reset=True)
        n_frames = int(np.sum(sequences.lengths[sequences.weights > 0]))
        if self.n_components > n_frames:
            raise DataError(f"n_components={self.n_components} is larger than the number "
                            f"of frames ({n_frames}): use fewer states or more data.")
        return sequences

    def _build_model(self, data) -> HMMModel:
        return self._model(self.n_features_in_, start=self._given_start())

    # ------------------------------------------------------------------ online EM hook
    def _online_batch(self, X, y, sample_weight, first):
        return self._sequences(X, y, sample_weight, reset=first and not self._is_fitted())

    def _max_iter(self) -> int:
        """``max_iter``, or hmmlearn's ``n_iter`` when given."""
        return self.max_iter if self.n_iter is None else self.n_iter

    @property
    def monitor_(self) -> FitMonitor:
        """hmmlearn's convergence monitor: ``converged``, ``history``, ``iter`` of the fit."""
        if not hasattr(self, "history_"):
            raise AttributeError(f"This {type(self).__name__} has no monitor_ before fit.")
        return FitMonitor(self.tol, self._max_iter(), int(self.verbose),
                          tuple(float(v) for v in self.history_), int(self.n_iter_),
                          bool(self.converged_))

    def _is_fitted(self) -> bool:
        # Fitted by EM (a warm start for partial_fit), not merely given parameters: hmmlearn's
        # users set startprob_/transmat_/… before fit with init_params="" (see _given_start).
        return getattr(self, "startprob_", None) is not None and hasattr(self, "n_iter_")

    def _model(self, n_features: int | None = None,
               start: HMMParams | None = None) -> HMMModel:
        n_features = self.n_features_in_ if n_features is None else n_features
        return HMMModel(self.n_components, self._emission(n_features), self.params,
                        self.init_params, start, self.startprob_prior, self.transmat_prior)

    def _given_start(self) -> HMMParams | None:
        """Parameters set before ``fit`` for the letters not in ``init_params``."""
        K = self.n_components
        missing = [letter for letter in self._letters if letter not in self.init_params
                   and not self._has_letter(letter)]
        if missing:
            raise ParameterError(
                f"init_params={self.init_params!r} leaves parameter(s) "
                f"{', '.join(repr(m) for m in missing)} to you, but the attribute is not set: "
                "set it before fit, or add the letter to init_params.")
        startprob = transmat = None
        if "s" not in self.init_params:
            startprob = _probability_rows("startprob_", self.startprob_, (K,))
        if "t" not in self.init_params:
            transmat = _probability_rows("transmat_", self.transmat_, (K, K))
        emission = None
        if any(letter not in self.init_params for letter in self._letters[2:]):
            emission = self._given_emission()
        if startprob is None and transmat is None and emission is None:
            return None
        return HMMParams(startprob, transmat, emission)

    def _has_letter(self, letter: str) -> bool:
        name = {"s": "startprob_", "t": "transmat_", "m": "means_", "c": "covars_",
                "e": "emissionprob_", "l": "lambdas_"}[letter]
        return getattr(self, name, None) is not None

    def _params(self) -> HMMParams:
        return HMMParams(self.startprob_, self.transmat_, self._emission_params())

    def _set_params(self, params: HMMParams) -> None:
        self.startprob_ = params.startprob
        self.transmat_ = params.transmat
        self._set_emission(params.emission)

    # ------------------------------------------------------------------ inference
    def score_samples(self, X, lengths=None):
        """Log-likelihood of X (summed over sequences) and the posterior state probabilities
        of every frame (n_frames, n_components)."""
        sequences = self._fitted_sequences(X, lengths)
        log_likelihood, posteriors = self._fitted_model().posteriors(self._params(), sequences)
        return float(np.sum(log_likelihood)), posteriors

    def score(self, X, lengths=None):
        """Log-likelihood of X, summed over its sequences (hmmlearn's convention)."""
        return self.score_samples(X, lengths)[0]

    def predict_proba(self, X, lengths=None):
        """Posterior probability of each state at every frame, (n_frames, n_components)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None, algorithm=None):
        """The most probable state path and its log-probability.

        ``algorithm="viterbi"``: the jointly most probable path; the log-probability is
        log p(X, path) summed over sequences. ``"map"``: the most probable state of each frame
        (posterior decoding); the log-probability is Σ_t log max_k p(z_t = k | X).
        None: the estimator's ``algorithm`` (as hmmlearn).
        """
        algorithm = self.algorithm if algorithm is None else algorithm
        if algorithm not in ("viterbi", "map"):
            raise ParameterError(f"algorithm must be 'viterbi' or 'map', got {algorithm!r}.")
        sequences = self._fitted_sequences(X, lengths)
        model = self._fitted_model()
        if algorithm == "viterbi":
            path, log_probability = model.viterbi(self._params(), sequences)
            return float(np.sum(log_probability)), path
        _, posteriors = model.posteriors(self._params(), sequences)
        with np.errstate(divide="ignore"):
            return float(np.sum(np.log(posteriors.max(axis=1)))), posteriors.argmax(axis=1)

    def predict(self, X, lengths=None):
        """The state path of :meth:`decode` with the estimator's ``algorithm`` (Viterbi by
        default), (n_frames,)."""
        return self.decode(X, lengths)[1]

    def get_stationary_distribution(self) -> np.ndarray:
        """The stationary distribution π of ``transmat_`` (π A = π, Σ π = 1), as hmmlearn.

        Found as the least-squares solution of the stacked system; for a chain with several
        closed classes it is one of the stationary distributions."""
        self._check_fitted()
        K = self.n_components
        system = np.vstack([self.transmat_.T - np.eye(K), np.ones((1, K))])
        target = np.concatenate([np.zeros(K), [1.0]])
        stationary = np.linalg.lstsq(system, target, rcond=None)[0]
        stationary = np.clip(stationary, 0.0, None)
        return stationary / stationary.sum()

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw one sequence of ``n_samples`` frames; returns (X, states).

        ``random_state`` (default: the estimator's) seeds the draws, in any form (see
        :class:`emkit.estimators.base.SamplingMixin`); ``currstate`` is the state of the first
        frame."""
        return self._draw(n_samples, self._sampling_generator(n_samples, random_state),
                          currstate)

    def _draw(self, n_samples, rng, currstate=None):
        K = self.n_components
        states = np.empty(n_samples, dtype=np.int64)
        state = rng.choice(K, p=self.startprob_) if currstate is None else int(currstate)
        cumulative = np.cumsum(self.transmat_, axis=1)
        for t in range(n_samples):
            if t:
                state = min(int(np.searchsorted(cumulative[state], rng.uniform(), "right")),
                            K - 1)
            states[t] = state
        emission = self._emission(self.n_features_in_)
        return emission.sample(self._emission_params(), states, rng), states

    # ------------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """Free parameters: start probabilities, transition rows and emissions (entries of
        ``startprob_``/``transmat_`` that are exactly 0 are structural and not counted)."""
        self._check_fitted()
        return self._model().n_parameters(self.n_features_in_, self._params())

    def _log_likelihood_and_count(self, X, lengths=None):
        """Log-likelihood of X and its number of frames (the BIC's n)."""
        return self.score(X, lengths), len(self._fitted_sequences(X, lengths).X)

    # ------------------------------------------------------------------ validation
    def _fitted_model(self) -> HMMModel:
        return self._model(self.n_features_in_)

    def _fitted_sequences(self, X, lengths) -> Sequences:
        self._check_fitted()
        return self._sequences(X, lengths, None, reset=False)

    def _sequences(self, X, lengths, sample_weight, reset: bool) -> Sequences:
        # A list of arrays is a list of sequences; a list of lists is the rows of one array.
        if isinstance(X, (list, tuple)) and len(X) and all(isinstance(s, np.ndarray)
                                                           for s in X):
            if lengths is not None:
                raise DataError("pass either a list of sequences or X with lengths, not both.")
            arrays = [np.asarray(s, dtype=float) for s in X]
            arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
            lengths = [len(a) for a in arrays]
            if any(a.ndim != 2 for a in arrays) or len({a.shape[1] for a in arrays}) != 1:
                raise DataError("every sequence in the list must be a 2-D array (frames × "
                                "features) with the same number of features.")
            if any(n == 0 for n in lengths):
                raise DataError("a sequence in the list has no frame: drop empty sequences.")
            X = np.concatenate(arrays)
        X = validate_rows(self, X, reset=reset, dtype=np.float64)
        lengths = check_lengths([len(X)] if lengths is None else lengths, len(X))
        if sample_weight is not None:
            try:
                w = np.asarray(sample_weight, dtype=float)
            except (TypeError, ValueError) as error:
                raise DataError(f"sample_weight must be numbers: {error}.") from error
            if w.shape != lengths.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise DataError(f"sample_weight must be {len(lengths)} finite non-negative "
                                f"numbers, one per sequence; got shape {w.shape}.")
            if not w.sum() > 0:
                raise DataError("sample_weight sums to zero: at least one sequence needs a "
                                "positive weight.")
            sample_weight = w
        if np.isnan(X).all():
            raise DataError("every frame is empty (all NaN): there is nothing to fit.")
        self._check_frames(X)
        return Sequences(X, lengths, sample_weight)

def _probability_rows(name: str, value, shape) -> np.ndarray:
    """Validated probabilities of the given shape whose last axis sums to 1."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{name} must be numbers: {error}.") from error
    if array.shape != tuple(shape):
        raise ParameterError(f"{name} has shape {array.shape}, expected {tuple(shape)} "
                             "(from n_components).")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ParameterError(f"{name} must hold finite non-negative probabilities.")
    sums = array.sum(axis=-1)
    bad = np.flatnonzero(np.abs(np.atleast_1d(sums) - 1.0) > 1e-8)
    if len(bad):
        where = "" if array.ndim == 1 else f" row {bad[0]}"
        raise ParameterError(f"{name}{where} sums to {np.atleast_1d(sums)[bad[0]]:.10g}, not "
                             "1: every row of probabilities must sum to 1.")
    return array


class GaussianHMM(_BaseHMM):
    """Hidden Markov model with Gaussian emissions, fitted by EM (Baum-Welch).

    Parameters
    ----------
    n_components : int, default 1
        Number of hidden states.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-6
        Convergence threshold per frame: EM stops when both the last change of the
        log-likelihood and its estimated remaining rise (extrapolated from the observed rate of
        convergence, see :class:`emkit.core.engine.ConvergenceMonitor`) are below ``tol`` times the
        number of frames.
    reg_covar : float, default 1e-6
        Added to the diagonal of the covariances.
    max_iter : int, default 1000
        Maximum number of EM iterations (passes over the data) per start.
    n_init : int, default 1
        Number of starts; the best objective wins.
    params, init_params : str, default "stmc"
        Letters of the parameters EM updates / ``fit`` initialises: s start probabilities,
        t transition matrix, m means, c covariances.
    init : str, default "kmeans"
        How ``fit`` starts the means and covariances it initialises: a Gaussian-mixture start
        on the frames (time order ignored), by any ``init_params`` method of
        :class:`emkit.GaussianMixture`. ``"kmeans"`` (k-means clusters' means and covariances)
        is hmmlearn's start; ``"auto"``, ``"hierarchical"``, ``"emEM"``, ``"k-means++"``,
        ``"random"`` and ``"random_from_data"`` as there. Named ``init`` because hmmlearn's
        ``init_params`` is the string of letters above.
    startprob_prior, transmat_prior : float or array, default 1.0
        Dirichlet concentrations (1: no prior). Zeros of ``transmat_`` always stay zero.
    means_prior, means_weight, covars_prior, covars_weight : float or array, default 0
        Conjugate prior on the emissions (full and diag; see
        :class:`emkit.models.hmm.GaussianEmission`); 0 everywhere is no prior.
    random_state : None, int, Generator or RandomState
    accelerate : {None, "squarem"}, default None
        Plain EM, or SQUAREM (on the eustock log-returns: K=2 no fewer passes, K=3 up to 1.5×
        fewer).
    progress : bool
    min_covar : float, default 1e-3
        Added to the diagonal of the data's covariance from which the initial covariances are
        drawn (hmmlearn's meaning: at initialisation only; ``reg_covar`` acts in every M-step).
    n_iter : int, optional
        hmmlearn's name for ``max_iter``; when given it replaces ``max_iter``.
    algorithm : {"viterbi", "map"}, default "viterbi"
        The decoder of :meth:`decode` and :meth:`predict` (hmmlearn's parameter).
    verbose : bool or int, default False
        True (or 1) prints every iteration of every start, 2 also the time and the change of
        the log-likelihood per frame (:class:`emkit.core.engine.VerboseReporter`).
    implementation : {"log", "scaling"}, default "log"
        Accepted for hmmlearn's code, no effect: emkit's forward-backward pass always works in
        scaled probabilities with renormalisation, which agrees with a log-space pass to
        round-off except in the extreme chains docs/hmm.md describes.

    Attributes
    ----------
    startprob_ : (n_components,)
    transmat_ : (n_components, n_components)
    means_ : (n_components, n_features)
    covars_ : the covariance_type's shape, as scikit-learn's ``covariances_``: (K, D, D) full,
        (D, D) tied, (K, D) diag, (K,) spherical.
    converged_, n_iter_, lower_bound_ (objective per frame), history_ (objective at every
    iteration), events_, restart_objectives_, n_features_in_
    monitor_ : FitMonitor
        hmmlearn's ``monitor_`` (``converged``, ``history``, ``iter``), read from the above.
    """

    _letters = "stmc"
    _parameter_constraints = {
        **_BaseHMM._parameter_constraints,
        **_letters_constraints(_letters),
        "covariance_type": OneOf(*COVARIANCE_TYPES),
        "reg_covar": NON_NEGATIVE,
        "min_covar": NON_NEGATIVE,
    }

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-6, reg_covar=1e-6,
                 max_iter=1000, n_init=1, params="stmc", init_params="stmc",
                 init=DEFAULT_HMM_INIT, startprob_prior=1.0, transmat_prior=1.0,
                 means_prior=0.0, means_weight=0.0, covars_prior=0.0, covars_weight=0.0,
                 random_state=None, accelerate=None, progress=False, learning_decay=0.6,
                 learning_offset=2.0, min_covar=1e-3, n_iter=None, algorithm="viterbi",
                 verbose=False, implementation="log"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.params = params
        self.init_params = init_params
        self.init = init
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.random_state = random_state
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.n_iter = n_iter
        self.algorithm = algorithm
        self.verbose = verbose
        self.implementation = implementation

    def _emission(self, n_features):
        return GaussianEmission(self.covariance_type, self.reg_covar, self.means_prior,
                                self.means_weight, self.covars_prior, self.covars_weight,
                                min_covar=self.min_covar, init=self.init)

    def _emission_params(self):
        family = self._emission(None).family
        K = self.n_components
        means = np.asarray(self.means_, dtype=float)
        if means.ndim != 2 or means.shape[0] != K:
            raise ParameterError(f"means_ has shape {means.shape}, expected ({K}, n_features).")
        shape = family.covariance_shape(K, means.shape[1])
        cov = np.asarray(self.covars_, dtype=float)
        if cov.shape != shape:
            raise ParameterError(f"covars_ has shape {cov.shape}, expected {shape} for "
                                 f"covariance_type={self.covariance_type!r}.")
        params, bad = family.with_covariances(means, cov)
        if bad.any():
            raise ParameterError("covars_ must be positive definite for every state.")
        return params

    def _given_emission(self):
        # Covariances given, means drawn: a placeholder for the means (replaced by the draw).
        if "m" in self.init_params and getattr(self, "means_", None) is None:
            cov = np.asarray(self.covars_, dtype=float)
            n_features = cov.shape[-1] if self.covariance_type != "spherical" else None
            if n_features is None:
                raise ParameterError("with covariance_type='spherical', set means_ too when "
                                     "init_params draws only the means.")
            self.means_ = np.zeros((self.n_components, n_features))
        if "c" in self.init_params and getattr(self, "covars_", None) is None:
            D = np.shape(self.means_)[1]
            self.covars_ = np.ones(self._emission(None).family.covariance_shape(
                self.n_components, D))
            if self.covariance_type in ("full", "tied"):
                self.covars_ = np.broadcast_to(np.eye(D), self.covars_.shape[:-2] + (D, D)).copy()
        return self._emission_params()

    def _set_emission(self, params: GaussianParams) -> None:
        self.means_ = params.means
        self.covars_ = params.covariances

    def _check_frames(self, X):
        names = getattr(self, "feature_names_in_", None)
        check_observed(X, names)
        check_no_constant_column(X, names)

    def _check_parameter_combinations(self):
        self._emission(None)  # checks that the priors fit the covariance type


class CategoricalHMM(_BaseHMM):
    """Hidden Markov model with categorical emissions (one symbol code 0..M−1 per frame).

    Parameters
    ----------
    n_components : int, default 1
    n_features : int, optional
        M, the number of symbols; default: the largest code in the data + 1.
    emissionprob_prior : float or array, default 1.0
        Dirichlet concentration of every row of ``emissionprob_`` (1: no prior).
    params, init_params : str, default "ste"
        s start probabilities, t transition matrix, e emission probabilities.
    Other parameters as :class:`GaussianHMM`.

    Attributes
    ----------
    startprob_, transmat_, emissionprob_ : (n_components, n_features), and as GaussianHMM.
    """

    _letters = "ste"
    _parameter_constraints = {
        **_BaseHMM._parameter_constraints,
        **_letters_constraints(_letters),
        "n_features": Integer(1, optional=True),
    }

    def __init__(self, n_components=1, *, n_features=None, tol=1e-6, max_iter=1000, n_init=1,
                 params="ste", init_params="ste", startprob_prior=1.0, transmat_prior=1.0,
                 emissionprob_prior=1.0, random_state=None, accelerate=None, progress=False,
                 learning_decay=0.6, learning_offset=2.0,
                 n_iter=None, algorithm="viterbi", verbose=False, implementation="log"):
        self.n_components = n_components
        self.n_features = n_features
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.params = params
        self.init_params = init_params
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.emissionprob_prior = emissionprob_prior
        self.random_state = random_state
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.n_iter = n_iter
        self.algorithm = algorithm
        self.verbose = verbose
        self.implementation = implementation

    def _n_categories(self) -> int:
        if self.n_features is not None:
            return int(self.n_features)
        if getattr(self, "_data_categories", None) is not None:
            return int(self._data_categories)
        if getattr(self, "emissionprob_", None) is not None and np.ndim(self.emissionprob_) == 2:
            return int(np.shape(self.emissionprob_)[1])
        raise NotFittedError("CategoricalHMM does not know its number of symbols yet: set "
                             "n_features or call fit first.")

    def _emission(self, n_features):
        return CategoricalEmission(self._n_categories(), self.emissionprob_prior)

    def _sequences(self, X, lengths, sample_weight, reset):
        self._counting = reset  # fit: the number of symbols may come from the data
        try:
            return super()._sequences(X, lengths, sample_weight, reset)
        finally:
            self._counting = False

    def _check_frames(self, X):
        if X.shape[1] != 1:
            raise DataError(f"CategoricalHMM needs one column of symbol codes, got "
                            f"{X.shape[1]} columns.")
        if getattr(self, "_counting", False) and self.n_features is None and (
                "e" in self.init_params or getattr(self, "emissionprob_", None) is None):
            observed = X[~np.isnan(X)]
            if len(observed) and (np.any(observed < 0) or np.any(observed != np.round(observed))):
                bad = observed[(observed < 0) | (observed != np.round(observed))][0]
                raise DataError(f"symbol code {bad:g} is not a non-negative integer: recode the "
                                "symbols as 0, 1, ….")
            self._data_categories = int(observed.max()) + 1 if len(observed) else 1
        self._emission(1).validate(X)

    def _emission_params(self):
        probabilities = _probability_rows(
            "emissionprob_", self.emissionprob_, (self.n_components, self._n_categories()))
        return CategoricalParams(probabilities)

    def _set_emission(self, params: CategoricalParams) -> None:
        self.emissionprob_ = params.probabilities
        self._data_categories = None


class PoissonHMM(_BaseHMM):
    """Hidden Markov model with Poisson emissions (D independent counts per frame).

    Parameters
    ----------
    n_components : int, default 1
    lambdas_prior_shape, lambdas_prior_rate : float, default 1.0 and 0.0
        Gamma(shape, rate) prior on every rate (1 and 0: no prior).
    params, init_params : str, default "stl"
        s start probabilities, t transition matrix, l rates.
    Other parameters as :class:`GaussianHMM`.

    Attributes
    ----------
    startprob_, transmat_, lambdas_ : (n_components, n_features), and as GaussianHMM.
    """

    _letters = "stl"
    _parameter_constraints = {**_BaseHMM._parameter_constraints, **_letters_constraints(_letters)}

    def __init__(self, n_components=1, *, tol=1e-6, max_iter=1000, n_init=1, params="stl",
                 init_params="stl", startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior_shape=1.0, lambdas_prior_rate=0.0, random_state=None,
                 accelerate=None, progress=False, learning_decay=0.6, learning_offset=2.0,
                 n_iter=None, algorithm="viterbi", verbose=False, implementation="log"):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.params = params
        self.init_params = init_params
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.lambdas_prior_shape = lambdas_prior_shape
        self.lambdas_prior_rate = lambdas_prior_rate
        self.random_state = random_state
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.n_iter = n_iter
        self.algorithm = algorithm
        self.verbose = verbose
        self.implementation = implementation

    def _emission(self, n_features):
        return PoissonEmission(self.lambdas_prior_shape, self.lambdas_prior_rate)

    def _check_frames(self, X):
        self._emission(X.shape[1]).validate(X)

    def _emission_params(self):
        rates = np.asarray(self.lambdas_, dtype=float)
        if rates.ndim != 2 or rates.shape[0] != self.n_components:
            raise ParameterError(f"lambdas_ has shape {rates.shape}, expected "
                                 f"({self.n_components}, n_features).")
        if not np.all(np.isfinite(rates)) or np.any(rates <= 0):
            raise ParameterError("lambdas_ must be positive rates.")
        return PoissonParams(rates)

    def _set_emission(self, params: PoissonParams) -> None:
        self.lambdas_ = params.rates


class GMMHMM(_BaseHMM):
    """Hidden Markov model whose states emit from mixtures of ``n_mix`` Gaussians.

    Parameters
    ----------
    n_components : int, default 1
        Number of hidden states.
    n_mix : int, default 1
        Gaussians per state.
    covariance_type : {"full", "diag", "spherical"}, default "full"
    params, init_params : str, default "stmcw"
        s start probabilities, t transition matrix, m means, c covariances, w mixture weights.
    Other parameters as :class:`GaussianHMM` (no emission priors).

    Attributes
    ----------
    startprob_, transmat_ : as GaussianHMM
    weights_ : (n_components, n_mix)
    means_ : (n_components, n_mix, n_features)
    covars_ : (n_components, n_mix, n_features, n_features) full, (n_components, n_mix,
        n_features) diag, (n_components, n_mix) spherical
    """

    _letters = "stmcw"
    _parameter_constraints = {
        **_BaseHMM._parameter_constraints,
        **_letters_constraints(_letters),
        "n_mix": COUNT,
        "covariance_type": OneOf("full", "diag", "spherical"),
        "reg_covar": NON_NEGATIVE,
        "min_covar": NON_NEGATIVE,
    }

    def __init__(self, n_components=1, n_mix=1, *, covariance_type="full", tol=1e-6,
                 reg_covar=1e-6, max_iter=1000, n_init=1, params="stmcw", init_params="stmcw",
                 init=DEFAULT_HMM_INIT, startprob_prior=1.0, transmat_prior=1.0,
                 random_state=None, accelerate=None, progress=False, learning_decay=0.6,
                 learning_offset=2.0, min_covar=1e-3, n_iter=None, algorithm="viterbi",
                 verbose=False, implementation="log"):
        self.n_components = n_components
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.params = params
        self.init_params = init_params
        self.init = init
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.random_state = random_state
        self.accelerate = accelerate
        self.progress = progress
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.n_iter = n_iter
        self.algorithm = algorithm
        self.verbose = verbose
        self.implementation = implementation

    def _emission(self, n_features):
        return GMMEmission(self.n_mix, self.covariance_type, self.reg_covar, self.min_covar,
                           self.init)

    def _has_letter(self, letter: str) -> bool:
        if letter == "w":
            return getattr(self, "weights_", None) is not None
        return super()._has_letter(letter)

    def _given_emission(self):
        K, M = self.n_components, self.n_mix
        if getattr(self, "weights_", None) is None:
            self.weights_ = np.full((K, M), 1.0 / M)
        if getattr(self, "means_", None) is None:
            cov = np.asarray(self.covars_, dtype=float)
            if self.covariance_type == "spherical":
                raise ParameterError("with covariance_type='spherical', set means_ too when "
                                     "init_params draws only the means.")
            self.means_ = np.zeros((K, M, cov.shape[-1]))
        if getattr(self, "covars_", None) is None:
            D = np.shape(self.means_)[-1]
            shape = {"full": (K, M, D, D), "diag": (K, M, D), "spherical": (K, M)}[
                self.covariance_type]
            self.covars_ = (np.broadcast_to(np.eye(D), shape).copy()
                            if self.covariance_type == "full" else np.ones(shape))
        return self._emission_params()

    def _emission_params(self):
        K, M = self.n_components, self.n_mix
        weights = _probability_rows("weights_", self.weights_, (K, M))
        means = np.asarray(self.means_, dtype=float)
        if means.ndim != 3 or means.shape[:2] != (K, M):
            raise ParameterError(f"means_ has shape {means.shape}, expected ({K}, {M}, "
                                 "n_features).")
        D = means.shape[2]
        shape = {"full": (K, M, D, D), "diag": (K, M, D), "spherical": (K, M)}[
            self.covariance_type]
        cov = np.asarray(self.covars_, dtype=float)
        if cov.shape != shape:
            raise ParameterError(f"covars_ has shape {cov.shape}, expected {shape} for "
                                 f"covariance_type={self.covariance_type!r}.")
        family = self._emission(D).family
        components, bad = family.with_covariances(means.reshape(K * M, D),
                                                  cov.reshape((K * M,) + shape[2:]))
        if bad.any():
            raise ParameterError("covars_ must be positive definite for every Gaussian.")
        return GMMParams(weights, components)

    def _set_emission(self, params: GMMParams) -> None:
        K, M = self.n_components, self.n_mix
        self.weights_ = params.weights
        self.means_ = params.components.means.reshape(K, M, -1)
        cov = params.components.covariances
        self.covars_ = cov.reshape((K, M) + cov.shape[1:])

    def _check_frames(self, X):
        names = getattr(self, "feature_names_in_", None)
        check_observed(X, names)
        check_no_constant_column(X, names)


# --------------------------------------------------------------------------- model files
def _check_hmm(estimator) -> None:
    """Shapes and values of a fitted HMM; raises ValueError saying what is wrong."""
    estimator._check_parameters()
    for name, ndim in _EMISSION_DIMENSIONS[type(estimator).__name__].items():
        if np.ndim(getattr(estimator, name)) != ndim:
            raise ValueError(f"{name} must be a {ndim}-D array, got shape "
                             f"{np.shape(getattr(estimator, name))}")
    K = estimator.n_components
    _probability_rows("startprob_", estimator.startprob_, (K,))
    _probability_rows("transmat_", estimator.transmat_, (K, K))
    params = estimator._emission_params()
    D = estimator.n_features_in_
    if not isinstance(D, int) or D < 1:
        raise ValueError(f"n_features_in_ must be a positive integer, got {D!r}")
    if isinstance(params, GMMParams):
        params = params.components
    if isinstance(params, GaussianParams) and params.means.shape[1] != D:
        raise ValueError(f"means_ has {params.means.shape[1]} features, n_features_in_ is {D}")
    if isinstance(params, PoissonParams) and params.rates.shape[1] != D:
        raise ValueError(f"lambdas_ has {params.rates.shape[1]} features, n_features_in_ is {D}")


_EMISSION_DIMENSIONS = {"GaussianHMM": {"means_": 2}, "GMMHMM": {"weights_": 2, "means_": 3},
                        "CategoricalHMM": {"emissionprob_": 2}, "PoissonHMM": {"lambdas_": 2}}
_COMMON = {"startprob_": "array", "transmat_": "array", **FIT_RECORD, "n_features_in_": "int",
           "feature_names_in_": "names"}
for _name, _emission_attributes in (("GaussianHMM", ("means_", "covars_")),
                                    ("GMMHMM", ("weights_", "means_", "covars_")),
                                    ("CategoricalHMM", ("emissionprob_",)),
                                    ("PoissonHMM", ("lambdas_",))):
    register_estimator(_name, EstimatorSpec(
        target=f"emkit.estimators.hmm:{_name}",
        attributes={**_COMMON, **dict.fromkeys(_emission_attributes, "array")},
        optional=frozenset({"feature_names_in_"}),
        check=_check_hmm,
    ))
