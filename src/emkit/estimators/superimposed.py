"""scikit-learn style estimator for superimposed signals (Feder & Weinstein 1988).

No math lives here: see :mod:`emkit.models.superimposed` (the EM model) and
:mod:`emkit.models.signals` (the signal shapes).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from emkit.data.chunks import Batch
from emkit.errors import DataError, ParameterError
from emkit.estimators.base import FIT_RECORD, EMEstimator
from emkit.estimators.persist import EstimatorSpec, register_estimator
from emkit.estimators.validation import COUNT, RANDOM_STATE, Real, check_sample_weight
from emkit.models.signals import Sinusoids, describe, order
from emkit.models.superimposed import SuperimposedModel, SuperimposedParams, sample_rows

__all__ = ["SuperimposedSignals", "SIGNAL_NAMES"]

#: Signals that can be named by a string (and therefore stored in a model file).
SIGNAL_NAMES = {"tones": False, "complex_tones": True}


class SuperimposedSignals(EMEstimator):
    """Separate K superimposed signals of a known shape in white Gaussian noise by EM.

    y(d) = Σ_k s(d; θ_k) + n(d), d = 0 … n_samples − 1. Each EM iteration splits the residual
    among the components (E-step) and fits each component to its share separately (M-step), so a
    K-dimensional search becomes K small ones; the noise variance is estimated too.

    There is no ``partial_fit`` (online EM): the samples of one signal are not independent draws
    from the model, since each depends on its position d and all of them on the same θ, so
    mini-batches of them give no running average of per-sample statistics to converge on.

    Parameters
    ----------
    signal : signal object or {"tones", "complex_tones"}, default "tones"
        The shape of each component: ``emkit.models.signals.Sinusoids(complex=...)``,
        ``DelayedWaveform(waveform)``, ``Transmitters(receiver_positions)``, or any object
        following the :class:`emkit.models.signals.Signal` protocol. The strings name real and
        complex :class:`~emkit.models.signals.Sinusoids`.
    n_components : int, default 1
    sage : bool, default True
        SAGE (Fessler & Hero 1994): update one component at a time with the whole residual
        (with SQUAREM the fastest way to the maximum on close tones: on the bundled two-tone
        clip 58 passes against 372 for SAGE alone and 416 for parallel EM with SQUAREM).
        ``False`` is Feder & Weinstein's parallel EM.
    noise_split : array of shape (n_components,), optional
        Shares β_k of the noise given to each component in the E-step (default 1/K each).
    tol : float, default 1e-8
        Convergence threshold per sample on the last change of the log-likelihood and on its
        estimated remaining rise (see :class:`emkit.core.engine.ConvergenceMonitor`).
    max_iter : int, default 500
        Maximum number of EM iterations per start.
    n_init : int, default 5
        Number of starts from spread starting points; the best log-likelihood wins (the
        likelihood of superimposed signals has many local maxima).
    random_state : None, int, Generator or RandomState
    accelerate : {"squarem", None}, default "squarem"
    progress : bool, default False
    sample_rate : float, optional
        Samples per second of ``y``, to read frequencies in Hz (``frequencies_hz_``) and
        delays in seconds (``delays_seconds_``); the fit itself works in samples. Amplitudes
        are in the units of ``y``: :func:`emkit.data.io.read_wav` (and ``emkit fit tones``) scales
        integer PCM to [−1, 1), full scale, so an int16 clip's amplitudes are fractions of
        full scale (multiply by 32768 for int16 units).

    Attributes
    ----------
    theta_ : (n_components, n_parameters)
        The signal's parameters in its internal coordinates, components in reporting order.
    frequencies_, amplitudes_, phases_ : (n_components,)
        For :class:`~emkit.models.signals.Sinusoids`, sorted by frequency (cycles per sample).
    frequencies_hz_ : (n_components,)
        ``frequencies_ × sample_rate`` (when ``sample_rate`` is given).
    delays_, gains_ : (n_components,)
        For :class:`~emkit.models.signals.DelayedWaveform`, sorted by delay (samples).
    positions_ : (n_components, 2), powers_ : (n_components,)
        For :class:`~emkit.models.signals.Transmitters`, sorted by x.
    noise_variance_ : float
        σ² (per complex sample for complex signals).
    n_points_ : int
        Number of samples (or receivers) of the fitted data.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Final log-likelihood per sample.
    history_ : ndarray
        Log-likelihood at every iteration of the best start.
    restart_objectives_ : ndarray
        Final log-likelihood of each start.
    events_ : list of (iteration, message)
    """

    _parameter_constraints = {
        **EMEstimator._parameter_constraints,
        "n_components": COUNT,
        "n_init": COUNT,
        "sample_rate": Real(0, low_open=True, optional=True, hint="samples per second"),
        "random_state": RANDOM_STATE,
    }
    _fitted_attributes = ("theta_",)

    def __init__(self, signal="tones", n_components=1, *, sage=True, noise_split=None,
                 tol=1e-8, max_iter=500, n_init=5, random_state=None, accelerate="squarem",
                 progress=False, sample_rate=None):
        self.signal = signal
        self.n_components = n_components
        self.sage = sage
        self.noise_split = noise_split
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.accelerate = accelerate
        self.progress = progress
        self.sample_rate = sample_rate

    # ------------------------------------------------------------------ fitting
    def fit(self, y, sample_weight=None, *, checkpoint=None, resume=False):
        """Fit to the samples ``y`` (1-D, real or complex); returns self.

        ``sample_weight`` (n_samples,) weights the samples; weight 0 drops a sample (a gap).

        ``checkpoint`` (a file path) saves the state of the fit every 10 iterations and after
        each start; ``resume=True`` continues an interrupted fit from it, to the result an
        uninterrupted fit gives (see :func:`emkit.fit_em`).
        """
        return self._fit(y, None, sample_weight, checkpoint=checkpoint, resume=resume)

    def _prepare_fit(self, y, _, sample_weight) -> Batch:
        signal = self._signal()
        y = self._validate_samples(y, signal)
        n_samples = len(y)
        weights = check_sample_weight(sample_weight, n_samples)
        n_parameters = self._model(n_samples).n_parameters()
        observed = n_samples if weights is None else int(np.count_nonzero(weights))
        if observed <= n_parameters:
            raise DataError(
                f"{observed} samples cannot determine {n_parameters} parameters "
                f"({self.n_components} components × {signal.n_parameters} parameters + the noise "
                "variance): give more samples than parameters, or fewer components.")
        self.n_points_ = n_samples
        return Batch(sample_rows(y), weights)

    def _build_model(self, data) -> SuperimposedModel:
        return self._model(len(data.X))

    def fit_transform(self, y, sample_weight=None):
        """Fit, then return the separated signals of ``y`` (see :meth:`transform`)."""
        return self.fit(y, sample_weight).transform(y)

    def _set_params(self, params: SuperimposedParams) -> None:
        signal = self._signal()
        theta = np.asarray(params.theta, dtype=float)
        if hasattr(signal, "wrap"):
            theta = signal.wrap(theta)
        theta = theta[order(signal, theta)]
        self.theta_ = theta
        for name, value in describe(signal, theta).items():
            setattr(self, name, value)
        self.noise_variance_ = float(params.noise_variance)

    @property
    def frequencies_hz_(self) -> np.ndarray:
        """Fitted frequencies in Hz (cycles per sample × ``sample_rate``)."""
        return self._fitted_in_samples("frequencies_", "frequencies_hz_") * self.sample_rate

    @property
    def delays_seconds_(self) -> np.ndarray:
        """Fitted delays in seconds (samples / ``sample_rate``)."""
        return self._fitted_in_samples("delays_", "delays_seconds_") / self.sample_rate

    def _fitted_in_samples(self, name: str, wanted: str) -> np.ndarray:
        if self.sample_rate is None or name not in vars(self):
            missing = "sample_rate" if self.sample_rate is None else f"a fitted {name}"
            raise AttributeError(f"{wanted} needs a fitted {name} and sample_rate=<samples per "
                                 f"second>; this {type(self).__name__} has no {missing}.")
        return np.asarray(vars(self)[name], dtype=float)

    # ------------------------------------------------------------------ inference
    def predict(self, y):
        """The fitted noise-free components s(d; θ̂_k) at the samples of ``y``:
        shape (n_samples, n_components)."""
        signal, y = self._fitted_input(y)
        return self._model(len(y)).components(self._params(), np.arange(len(y))).T

    def transform(self, y):
        """The separated signals x̂_k = s_k + β_k (y − Σ_l s_l) (each component with its share
        of the residual, so they add up to ``y``): shape (n_samples, n_components)."""
        signal, y = self._fitted_input(y)
        model = self._model(len(y))
        return model.separate(self._params(), np.arange(len(y)), y).T

    def score(self, y, sample_weight=None):
        """Log-likelihood of ``y`` per sample (mean over samples; times ``len(y)`` for the
        total), as ``GaussianMixture.score``."""
        signal, y = self._fitted_input(y)
        weights = check_sample_weight(sample_weight, len(y))
        model = self._model(len(y))
        _, log_likelihood = model.e_step(self._params(), Batch(sample_rows(y), weights))
        return float(log_likelihood / (len(y) if weights is None else weights.sum()))

    def _log_likelihood_and_count(self, y):
        """Total log-likelihood of ``y`` and its number of samples (the BIC's n)."""
        n_samples = len(self._fitted_input(y)[1])
        return self.score(y) * n_samples, n_samples

    def n_parameters(self) -> int:
        """Free parameters: n_components × the signal's parameters, plus the noise variance."""
        self._check_fitted()
        return self._model(self.n_points_).n_parameters()

    # ------------------------------------------------------------------ persistence
    def _to_save(self) -> SuperimposedSignals:
        """The estimator with its signal named (``save`` stores plain arrays and never code).

        Only tones can be stored: a model file holds plain arrays and never code, so waveforms,
        receiver layouts, path-loss functions and user signal classes cannot be restored
        safely from it. For those, keep ``theta_`` and the signal yourself.
        """
        self._check_fitted()
        name = _signal_name(self.signal)
        if name is None:
            raise ParameterError(
                f"cannot save a SuperimposedSignals with signal {self.signal!r}: an emkit model "
                "file holds plain arrays and never code, so only tones (Sinusoids with the default "
                "oversample, or signal='tones'/'complex_tones') can be stored. Keep theta_ and "
                "the signal object yourself (e.g. numpy.save) for other signals.")
        stored = copy.copy(self)
        stored.signal = name
        return stored

    # ------------------------------------------------------------------ helpers
    def _signal(self) -> Any:
        if isinstance(self.signal, str):
            if self.signal not in SIGNAL_NAMES:
                raise ParameterError(f"signal must be a signal object or one of "
                                     f"{sorted(SIGNAL_NAMES)}, got {self.signal!r}.")
            return Sinusoids(complex=SIGNAL_NAMES[self.signal])
        if self.signal is None:
            raise ParameterError("signal is None: give a signal shape, e.g. "
                                 "emkit.models.signals.Sinusoids().")
        return self.signal

    def _model(self, n_points: int) -> SuperimposedModel:
        return SuperimposedModel(self._signal(), self.n_components, n_points, self.noise_split,
                                 self.sage)

    def _params(self) -> SuperimposedParams:
        self._check_fitted()
        return SuperimposedParams(self.theta_, self.noise_variance_)

    def _fitted_input(self, y):
        self._check_fitted()
        signal = self._signal()
        return signal, self._validate_samples(y, signal)

    def _validate_samples(self, y, signal) -> np.ndarray:
        if y is None:
            raise DataError("y is None: pass the recorded samples as a 1-D array.")
        try:
            y = np.asarray(y)
        except (TypeError, ValueError) as error:
            raise DataError(f"y must be a 1-D array of numbers: {error}.") from error
        if y.ndim == 2 and 1 in y.shape:
            y = y.ravel()
        if y.ndim != 1 or y.dtype.kind not in "biufc":
            raise DataError(f"y must be a 1-D array of numbers (one recording), got "
                            f"{y.dtype} of shape {y.shape}.")
        complex_signal = bool(getattr(signal, "is_complex", False))
        if np.iscomplexobj(y) and not complex_signal:
            raise DataError(
                f"y is complex but {signal!r} is a real signal: use a complex signal (e.g. "
                "Sinusoids(complex=True)) or pass y.real.")
        y = y.astype(complex if complex_signal else float)
        bad = np.flatnonzero(~np.isfinite(y))
        if len(bad):
            raise DataError(
                f"y has {len(bad)} NaN or infinite sample(s), the first at index {bad[0]}: "
                "replace them (e.g. by 0) and give them sample_weight 0 to treat them as gaps.")
        fixed = getattr(signal, "n_points", None)
        if fixed is not None and len(y) != fixed:
            raise DataError(f"{len(y)} measurements were given for {fixed} receivers: give one "
                            "per receiver, in the order of receiver_positions.")
        if len(y) < 1:
            raise DataError("y is empty: pass at least one sample.")
        return y



def _signal_name(signal) -> str | None:
    """The string naming a storable signal, or None."""
    if isinstance(signal, str) and signal in SIGNAL_NAMES:
        return signal
    if type(signal) is Sinusoids and signal.oversample == 8:
        return "complex_tones" if signal.is_complex else "tones"
    return None


# --------------------------------------------------------------------------- model files
def _check_superimposed(estimator: SuperimposedSignals) -> None:
    """Shapes and values of a fitted (tones) SuperimposedSignals; raises ValueError."""
    estimator._check_parameters()
    if _signal_name(estimator.signal) is None:
        raise ValueError("only tones can be stored")
    K = estimator.n_components
    theta = estimator.theta_
    if not isinstance(theta, np.ndarray) or theta.shape != (K, 3) or theta.dtype.kind != "f" \
            or not np.all(np.isfinite(theta)):
        raise ValueError(f"theta_ must be {K}×3 finite floating-point numbers")
    if not (isinstance(estimator.noise_variance_, float) and estimator.noise_variance_ > 0
            and np.isfinite(estimator.noise_variance_)):
        raise ValueError("noise_variance_ must be a positive finite number")
    signal = estimator._signal()
    for name, value in describe(signal, theta).items():
        stored = getattr(estimator, name)
        if not isinstance(stored, np.ndarray) or not np.allclose(stored, value, rtol=1e-12,
                                                                 atol=1e-12):
            raise ValueError(f"{name} does not match theta_")
    if not isinstance(estimator.n_points_, int) or estimator.n_points_ < 1:
        raise ValueError("n_points_ must be a positive integer")


register_estimator("SuperimposedSignals", EstimatorSpec(
    target="emkit.estimators.superimposed:SuperimposedSignals",
    attributes={
        "theta_": "array",
        "frequencies_": "array",
        "amplitudes_": "array",
        "phases_": "array",
        "noise_variance_": "float",
        "n_points_": "int",
        **FIT_RECORD,
    },
    check=_check_superimposed,
))
