"""Signal shapes for :class:`emkit.SuperimposedSignals`, and the Cramér–Rao bound for tones.

A *signal* describes one component s(d; θ) of the superimposed model
y(d) = Σ_k s(d; θ_k) + noise, sampled at the integer points d = 0 … n_points − 1 of a fixed
*design* (time samples for tones and waveforms, receivers for transmitters). The EM of Feder &
Weinstein (1988) only needs three things from it (the :class:`Signal` protocol):

``evaluate(theta, points)``
    s(d; θ_k) for every component (rows of ``theta``) at the integer points ``points``.
``fit_one(sums, weights, start)``
    The single-signal M-step: an approximate minimiser of
    Σ_d W_d |x̄_d − s(d; θ)|², given ``sums`` = W·x̄ (the weighted sums of the E-step's estimate
    x̂ of this component at each point) and the weights W. It may be inexact: the model compares
    the candidate with ``start`` by the exact cost and keeps the better, so EM never goes down.
``initial(sums, weights, n_components, rng)``
    Spread starting points, different for different ``rng`` (restarts).

Parameters are a float array of shape (n_components, n_parameters) in *unconstrained*
coordinates (any vector is a valid signal), so SQUAREM can extrapolate them; ``describe`` turns
them into named fitted attributes (``frequencies_``, ``amplitudes_``, …).

Built-in signals: :class:`Sinusoids` (real or complex tones), :class:`DelayedWaveform`
(delayed, scaled copies of a known pulse) and :class:`Transmitters` (received power from
sources at unknown positions, Gupta & Chen 2011, §4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from emkit.errors import DataError, ParameterError

__all__ = ["Signal", "Sinusoids", "DelayedWaveform", "Transmitters", "CramerRaoBound",
           "crb_sinusoids", "weighted_cost"]


@runtime_checkable
class Signal(Protocol):
    """What :class:`emkit.models.superimposed.SuperimposedModel` needs from a signal shape.

    Attributes
    ----------
    is_complex : bool
        Complex-valued samples (complex noise) or real ones.
    n_parameters : int
        Parameters per component (columns of ``theta``).
    n_points : int or None
        Size of the design when the signal fixes it (receivers), else None (the length of the
        recording decides).
    """

    is_complex: bool
    n_parameters: int
    n_points: int | None

    def evaluate(self, theta: np.ndarray, points: np.ndarray) -> np.ndarray: ...

    def fit_one(self, sums: np.ndarray, weights: np.ndarray, start: np.ndarray) -> np.ndarray:
        ...

    def initial(self, sums: np.ndarray, weights: np.ndarray, n_components: int,
                rng: np.random.Generator) -> np.ndarray: ...


def weighted_cost(signal: Any, theta: np.ndarray, sums: np.ndarray,
                  weights: np.ndarray) -> np.ndarray:
    """Σ_d W_d |s(d; θ_k)|² − 2 Re Σ_d conj(s(d; θ_k)) sums_d for each row θ_k, shape (K,).

    This is Σ_d W_d |x̄_d − s(d; θ_k)|² up to a constant that does not depend on θ: the
    single-signal objective every ``fit_one`` minimises.
    """
    points = np.arange(len(weights))
    values = signal.evaluate(np.atleast_2d(theta), points)
    return (np.abs(values) ** 2 @ weights) - 2 * np.real(np.conj(values) @ sums)


def describe(signal: Any, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Named fitted attributes of ``theta`` (the signal's ``describe`` when it has one)."""
    if hasattr(signal, "describe"):
        return signal.describe(theta)
    return {"parameters_": np.array(theta, dtype=float)}


def order(signal: Any, theta: np.ndarray) -> np.ndarray:
    """The order in which to report the components (the signal's ``order`` or as fitted)."""
    if hasattr(signal, "order"):
        return np.asarray(signal.order(theta))
    return np.arange(len(theta))


def _golden_section(cost: Callable[[float], float], low: float, high: float,
                    n_steps: int = 40) -> float:
    """Minimiser of a unimodal scalar function on [low, high] by golden-section search."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(n_steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = cost(d)
    return c if fc < fd else d


def _cos_sin(frequency: float, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """cos(2π f d) and sin(2π f d) for d = 0 … n_points − 1, as e^{2πifd} = e^{2πif·bq} e^{2πifr}
    (d = bq + r, b ≈ √n): two short vectors of exponentials and their outer product, a quarter
    of the time of cos and sin of every point, and within one rounding of them."""
    block = max(1, int(np.ceil(np.sqrt(n_points))))
    within = np.exp(2j * np.pi * frequency * np.arange(block))
    across = np.exp(2j * np.pi * (frequency * block) * np.arange(-(-n_points // block)))
    phasors = (across[:, None] * within[None, :]).ravel()[:n_points]
    return phasors.real, phasors.imag


# ------------------------------------------------------------------------------- tones
class Sinusoids:
    """Tones: a cos(2π f d + φ) (real) or a exp(i(2π f d + φ)) (complex), d = 0, 1, …

    Frequencies are in cycles per sample: in [0, 0.5] for real tones, [−0.5, 0.5) for complex.
    Internal coordinates per tone are (f, A, B) with A + iB = a e^{iφ} for complex tones and
    a cos(2πfd + φ) = A cos 2πfd + B sin 2πfd for real ones (A = a cos φ, B = −a sin φ): every
    vector is a tone, which SQUAREM needs.

    The single-tone M-step is exact up to round-off: the peak of the periodogram of the
    component's estimate on a zero-padded FFT grid (``oversample`` × the length), then Newton
    steps on the exact single-tone likelihood (complex tones: |Z(f)|², Z(f) = Σ_d x_d e^{−2πifd};
    real tones: golden-section search of the two-parameter least-squares fit), also started from
    the current frequency; the best candidate wins.

    Parameters
    ----------
    complex : bool, default False
        Complex tones in complex white noise, or real tones in real noise.
    oversample : int, default 8
        Zero-padding factor of the FFT grid.
    """

    n_parameters = 3
    n_points = None

    def __init__(self, complex: bool = False, oversample: int = 8):  # noqa: A002 - user-facing
        if not isinstance(oversample, (int, np.integer)) or oversample < 1:
            raise ParameterError(f"oversample must be an integer >= 1, got {oversample!r}.")
        self.is_complex = bool(complex)
        self.oversample = int(oversample)

    def __repr__(self) -> str:
        return f"Sinusoids(complex={self.is_complex}, oversample={self.oversample})"

    # ---- the protocol
    def evaluate(self, theta: np.ndarray, points: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        phase = 2 * np.pi * np.outer(theta[:, 0], points)
        if self.is_complex:
            return (theta[:, 1] + 1j * theta[:, 2])[:, None] * np.exp(1j * phase)
        return theta[:, 1, None] * np.cos(phase) + theta[:, 2, None] * np.sin(phase)

    def fit_one(self, sums: np.ndarray, weights: np.ndarray, start: np.ndarray) -> np.ndarray:
        grid = self._grid_peak(sums)
        candidates = [self._refine(sums, weights, grid), self._refine(sums, weights, start[0])]
        thetas = np.array([self._linear_fit(sums, weights, f) for f in candidates])
        costs = weighted_cost(self, thetas, sums, weights)
        return self.wrap(thetas[int(np.argmin(costs))])

    def initial(self, sums: np.ndarray, weights: np.ndarray, n_components: int,
                rng: np.random.Generator) -> np.ndarray:
        # Greedy peaks (fit one tone, subtract it, repeat), frequencies jittered by up to half a
        # resolution cell so restarts differ, then amplitudes and phases refitted jointly.
        residual = np.array(sums, dtype=complex if self.is_complex else float)
        points = np.arange(len(weights))
        frequencies = []
        for _ in range(n_components):
            theta = self._linear_fit(residual, weights,
                                     self._refine(residual, weights, self._grid_peak(residual)))
            frequencies.append(theta[0])
            residual = residual - weights * self.evaluate(theta, points)[0]
        n_points = max(len(weights), 1)
        frequencies = np.array(frequencies) + rng.uniform(-0.5, 0.5, n_components) / n_points
        return self.wrap(self._joint_linear_fit(sums, weights, frequencies))

    # ---- fitted attributes
    def describe(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = self.wrap(np.atleast_2d(theta))
        if self.is_complex:
            coefficient = theta[:, 1] + 1j * theta[:, 2]
        else:
            coefficient = theta[:, 1] - 1j * theta[:, 2]  # a e^{iφ} = A − iB
        return {"frequencies_": theta[:, 0].copy(), "amplitudes_": np.abs(coefficient),
                "phases_": np.angle(coefficient)}

    def order(self, theta: np.ndarray) -> np.ndarray:
        return np.argsort(self.wrap(np.atleast_2d(theta))[:, 0], kind="stable")

    def wrap(self, theta: np.ndarray) -> np.ndarray:
        """Canonical coordinates: frequencies in [−0.5, 0.5) (complex) or [0, 0.5] (real)."""
        theta = np.array(theta, dtype=float)
        single = theta.ndim == 1
        theta = np.atleast_2d(theta)
        if self.is_complex:
            theta[:, 0] = (theta[:, 0] + 0.5) % 1.0 - 0.5
        else:
            f = theta[:, 0] % 1.0
            mirrored = f > 0.5  # cos(2π(1−f)d + φ') with B → −B is the same tone
            theta[:, 0] = np.where(mirrored, 1.0 - f, f)
            theta[:, 2] = np.where(mirrored, -theta[:, 2], theta[:, 2])
        return theta[0] if single else theta

    def from_tones(self, frequencies, amplitudes, phases=None) -> np.ndarray:
        """Internal parameters (K, 3) of tones given by frequency, amplitude and phase."""
        frequencies, amplitudes = np.atleast_1d(frequencies), np.atleast_1d(amplitudes)
        phases = np.zeros_like(frequencies, dtype=float) if phases is None else np.atleast_1d(
            phases)
        sign = 1.0 if self.is_complex else -1.0
        return self.wrap(np.column_stack([frequencies, amplitudes * np.cos(phases),
                                          sign * amplitudes * np.sin(phases)]))

    # ---- single-tone search
    def _grid_size(self, n_points: int) -> int:
        return int(2 ** np.ceil(np.log2(max(self.oversample * n_points, 16))))

    def _grid_peak(self, sums: np.ndarray) -> float:
        size = self._grid_size(len(sums))
        power = np.abs(np.fft.fft(sums, size)) ** 2
        if not self.is_complex:
            power = power[: size // 2 + 1]
        return float(np.argmax(power)) / size

    def _refine(self, sums: np.ndarray, weights: np.ndarray, frequency: float) -> float:
        """Local maximiser of the exact single-tone likelihood near ``frequency``."""
        cell = 1.0 / self._grid_size(len(sums))
        if not self.is_complex:
            def cost(f):
                return self._profile_cost(sums, weights, f)

            low, high = max(frequency - cell, 0.0), min(frequency + cell, 0.5)
            if not high > low:
                return frequency
            return self._newton_real(sums, weights, _golden_section(cost, low, high, 12),
                                     low, high)
        # Newton on g(f) = |Z(f)|², kept within a grid cell of the start, run to convergence
        # (no comparisons of nearly equal values: round-off must not decide where it stops, so
        # that chunked and whole data give the same fit). Where g is not concave, golden-section
        # search of the cell instead. The model keeps the result only if it lowers the cost.
        points = np.arange(len(sums))
        omega = 2 * np.pi * points
        f = frequency
        for _ in range(20):
            e = sums * np.exp(-1j * omega * f)
            z, z1, z2 = e.sum(), (-1j * omega * e).sum(), (-(omega**2) * e).sum()
            g1 = 2 * np.real(np.conj(z) * z1)
            g2 = 2 * (abs(z1) ** 2 + np.real(np.conj(z) * z2))
            if not g2 < 0:
                return _golden_section(lambda f: -abs(sums @ np.exp(-1j * omega * f)) ** 2,
                                       frequency - cell, frequency + cell)
            step = -g1 / g2
            f = float(np.clip(f + step, frequency - cell, frequency + cell))
            if abs(step) < 1e-14:
                break
        return f

    def _newton_real(self, sums, weights, frequency, low, high) -> float:
        """Newton steps on the exact cost Σ W s² − 2 Σ X s of one real tone in (f, A, B), from
        the golden-section estimate, run to convergence (round-off must not decide where it
        stops); the frequency stays in [low, high]."""
        omega = 2 * np.pi * np.arange(len(sums))
        theta = self._linear_fit(sums, weights, frequency)
        for _ in range(20):
            f, A, B = theta
            cos, sin = _cos_sin(f, len(sums))
            value = A * cos + B * sin
            d_f = omega * (B * cos - A * sin)
            gradient_basis = np.stack([d_f, cos, sin])  # ∂s/∂(f, A, B), (3, n)
            error = weights * value - sums
            hessian = 2 * (gradient_basis * weights) @ gradient_basis.T
            hessian[0, 0] += 2 * error @ (-(omega**2) * value)
            hessian[0, 1] += 2 * error @ (-omega * sin)
            hessian[0, 2] += 2 * error @ (omega * cos)
            hessian[1, 0], hessian[2, 0] = hessian[0, 1], hessian[0, 2]
            gradient = 2 * gradient_basis @ error
            try:
                if np.linalg.eigvalsh(hessian)[0] <= 0:
                    break
                step = -np.linalg.solve(hessian, gradient)
            except np.linalg.LinAlgError:
                break
            theta = theta + step
            theta[0] = float(np.clip(theta[0], low, high))
            if abs(step[0]) < 1e-14:
                break
        return float(theta[0])

    def _profile_cost(self, sums, weights, frequency) -> float:
        """The single-tone cost at its least-squares amplitudes, −rᵀ G⁻¹ r with the 2 × 2 Gram
        matrix G of (cos, sin) under the weights and r their products with the sums: the value
        :func:`weighted_cost` gives after :meth:`_linear_fit` (real tones), in five dot products
        instead of a least-squares solve (the search evaluates it thousands of times per fit).
        """
        cos, sin = _cos_sin(frequency, len(sums))
        weighted_cos = weights * cos
        g11, g12, g22 = weighted_cos @ cos, weighted_cos @ sin, (weights * sin) @ sin
        r1, r2 = cos @ sums, sin @ sums
        det = g11 * g22 - g12 * g12
        if not det > 1e-12 * (g11 + g22) ** 2:  # sin ≈ 0 at f ≈ 0 or ½: the solve's cut-off
            theta = self._linear_fit(sums, weights, frequency)
            return float(weighted_cost(self, theta, sums, weights)[0])
        return -float((g22 * r1 * r1 - 2 * g12 * r1 * r2 + g11 * r2 * r2) / det)

    def _linear_fit(self, sums: np.ndarray, weights: np.ndarray, frequency: float) -> np.ndarray:
        """(f, A, B) with A, B the weighted least-squares coefficients at this frequency."""
        return self._joint_linear_fit(sums, weights, np.array([frequency]))[0]

    def _joint_linear_fit(self, sums: np.ndarray, weights: np.ndarray,
                          frequencies: np.ndarray) -> np.ndarray:
        """Tones at fixed ``frequencies`` with jointly least-squares amplitudes and phases."""
        points = np.arange(len(weights))
        phase = 2 * np.pi * np.outer(points, frequencies)
        if self.is_complex:
            basis = np.exp(1j * phase)
        else:
            basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
        gram = (basis.conj().T * weights) @ basis
        right = basis.conj().T @ sums
        coefficients = np.linalg.lstsq(gram, right, rcond=1e-12)[0]
        K = len(frequencies)
        if self.is_complex:
            return np.column_stack([frequencies, coefficients.real, coefficients.imag])
        return np.column_stack([frequencies, coefficients[:K].real, coefficients[K:].real])


# ------------------------------------------------------------------------------- waveforms
class DelayedWaveform:
    """Delayed, scaled copies g · w(d − τ) of a known real pulse w (multipath echoes).

    Parameters
    ----------
    waveform : array of shape (n_waveform,)
        The pulse sampled at the data's sampling rate, w(0), …, w(n_waveform − 1); between
        samples it is interpolated by a cubic spline, and it is zero outside.
    oversample : int, default 4
        Delay grid steps per sample for the global search of each M-step.

    Fitted attributes: ``delays_`` (in samples, sorted) and ``gains_`` (signed).
    """

    n_parameters = 2
    n_points = None
    is_complex = False

    def __init__(self, waveform, oversample: int = 4):
        from scipy.interpolate import CubicSpline

        waveform = np.asarray(waveform)
        if np.iscomplexobj(waveform):
            raise ParameterError("DelayedWaveform needs a real waveform; complex pulses are not "
                                 "supported.")
        waveform = np.asarray(waveform, dtype=float)
        if waveform.ndim != 1 or len(waveform) < 2 or not np.all(np.isfinite(waveform)):
            raise ParameterError("waveform must be a 1-D array of at least 2 finite samples.")
        if not np.any(waveform):
            raise ParameterError("waveform is all zeros: there is nothing to delay.")
        if not isinstance(oversample, (int, np.integer)) or oversample < 1:
            raise ParameterError(f"oversample must be an integer >= 1, got {oversample!r}.")
        self.waveform = waveform
        self.oversample = int(oversample)
        self._spline = CubicSpline(np.arange(len(waveform)), waveform)

    def __repr__(self) -> str:
        return f"DelayedWaveform(<{len(self.waveform)} samples>, oversample={self.oversample})"

    def pulse(self, t: np.ndarray) -> np.ndarray:
        """w(t) at real times ``t`` (zero outside the pulse)."""
        t = np.asarray(t, dtype=float)
        inside = (t >= 0) & (t <= len(self.waveform) - 1)
        return np.where(inside, self._spline(np.clip(t, 0, len(self.waveform) - 1)), 0.0)

    def evaluate(self, theta: np.ndarray, points: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        return theta[:, 1, None] * self.pulse(points[None, :] - theta[:, 0, None])

    def _profile(self, sums, weights, delays):
        """Best gain and the cost at each delay (gain profiled out)."""
        shapes = self.pulse(np.arange(len(weights))[None, :] - np.atleast_1d(delays)[:, None])
        energy = shapes**2 @ weights
        correlation = shapes @ sums
        gain = np.where(energy > 0, correlation / np.where(energy > 0, energy, 1.0), 0.0)
        return gain, -gain * correlation

    def fit_one(self, sums: np.ndarray, weights: np.ndarray, start: np.ndarray) -> np.ndarray:
        candidates = []
        for center in (self._grid_peak(sums, weights), float(start[0])):
            step = 1.0 / self.oversample
            delay = _golden_section(
                lambda tau: float(self._profile(sums, weights, tau)[1][0]),
                center - step, center + step, n_steps=12)
            gain = self._profile(sums, weights, delay)[0][0]
            candidates.append(self._newton(sums, weights, np.array([delay, gain]),
                                           center - step, center + step))
        candidates = np.array(candidates)
        return candidates[int(np.argmin(weighted_cost(self, candidates, sums, weights)))]

    def _grid_peak(self, sums, weights) -> float:
        """The delay on the grid of step 1/oversample with the lowest profiled cost.

        For the fractional offset p/oversample the pulse is tabulated once at the integers, so
        the correlations Σ_d X_d w(d − k − p/oversample) for all integer k are one
        ``numpy.correlate`` (and the energies one more, with W and w²).
        """
        length = len(self.waveform)
        best_cost, best_delay = np.inf, 0.0
        for phase in range(self.oversample):
            offset = phase / self.oversample
            table = self.pulse(np.arange(length + 1) - offset)
            correlation = np.correlate(sums, table, mode="full")  # shifts −length … n − 1
            energy = np.correlate(weights, table**2, mode="full")
            with np.errstate(divide="ignore", invalid="ignore"):
                costs = np.where(energy > 0, -correlation**2 / energy, 0.0)
            index = int(np.argmin(costs))
            if costs[index] < best_cost:
                best_cost, best_delay = costs[index], index - length + offset
        return float(best_delay)

    def _newton(self, sums, weights, theta, low, high) -> np.ndarray:
        """Newton steps on the cost g² e(τ) − 2 g c(τ) in (τ, g), with c(τ) = Σ X_d w(d − τ) and
        e(τ) = Σ W_d w(d − τ)², run to convergence (round-off must not decide where it stops);
        the delay stays in [low, high]."""
        points = np.arange(len(weights))
        for _ in range(20):
            delay, gain = theta
            t = points - delay
            inside = (t >= 0) & (t <= len(self.waveform) - 1)
            clipped = np.clip(t, 0, len(self.waveform) - 1)
            w, w1, w2 = (np.where(inside, self._spline(clipped, nu), 0.0) for nu in (0, 1, 2))
            # d/dτ w(d − τ) = −w'(d − τ)
            c, c1, c2 = sums @ w, -(sums @ w1), sums @ w2
            e, e1 = weights @ w**2, -2 * weights @ (w * w1)
            e2 = 2 * weights @ (w1**2 + w * w2)
            gradient = np.array([gain**2 * e1 - 2 * gain * c1, 2 * gain * e - 2 * c])
            cross = 2 * gain * e1 - 2 * c1
            hessian = np.array([[gain**2 * e2 - 2 * gain * c2, cross], [cross, 2 * e]])
            if not (hessian[0, 0] > 0 and np.linalg.det(hessian) > 0):
                break
            step = -np.linalg.solve(hessian, gradient)
            theta = theta + step
            theta[0] = float(np.clip(theta[0], low, high))
            if abs(step[0]) < 1e-13:
                break
        return theta

    def initial(self, sums: np.ndarray, weights: np.ndarray, n_components: int,
                rng: np.random.Generator) -> np.ndarray:
        # Greedy: strongest echo, subtract, repeat; delays jittered by up to half a sample.
        residual = np.array(sums, dtype=float)
        points = np.arange(len(weights))
        thetas = []
        for _ in range(n_components):
            theta = self.fit_one(residual, weights, np.zeros(2))
            theta[0] += rng.uniform(-0.5, 0.5)
            theta[1] = self._profile(residual, weights, theta[0])[0][0]
            thetas.append(theta)
            residual = residual - weights * self.evaluate(theta, points)[0]
        return np.array(thetas)

    def describe(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        return {"delays_": theta[:, 0].copy(), "gains_": theta[:, 1].copy()}

    def order(self, theta: np.ndarray) -> np.ndarray:
        return np.argsort(np.atleast_2d(theta)[:, 0], kind="stable")


# ------------------------------------------------------------------------------- transmitters
class Transmitters:
    """Received power at sensors from transmitters at unknown positions (Gupta & Chen, §4.2).

    Receiver j at known position r_j measures Σ_k P_k h(‖r_j − p_k‖) + noise, with the path
    loss h(d) = 1 / (d² + epsilon) by default, or a user function ``path_loss(distance)``.
    Internal coordinates per transmitter are (x, y, q) with power P = q² ≥ 0.

    Parameters
    ----------
    receiver_positions : array of shape (n_receivers, 2)
    path_loss : callable, optional
        Vectorised ``h(distance) -> gain``, distance an array of any shape.
    epsilon : float, default 0.1
        Regularises the default path loss at distance 0.
    grid_size : int, default 24
        Points per axis of the grid searched for starting positions.

    Fitted attributes: ``positions_`` (n_components, 2) sorted by x, and ``powers_``.
    """

    n_parameters = 3
    is_complex = False

    def __init__(self, receiver_positions, path_loss: Callable | None = None,
                 epsilon: float = 0.1, grid_size: int = 24):
        if receiver_positions is None:
            raise ParameterError("Transmitters needs receiver_positions, an array of shape "
                                 "(n_receivers, 2): the known position of every receiver.")
        positions = np.asarray(receiver_positions, dtype=float)
        if positions.ndim != 2 or positions.shape[1] != 2 or len(positions) < 1:
            raise ParameterError(f"receiver_positions must have shape (n_receivers, 2), got "
                                 f"{positions.shape}.")
        if not np.all(np.isfinite(positions)):
            raise ParameterError("receiver_positions contains NaN or infinity.")
        if path_loss is not None and not callable(path_loss):
            raise ParameterError("path_loss must be a function of the distance, or None.")
        if not epsilon > 0:
            raise ParameterError(f"epsilon must be > 0, got {epsilon!r}.")
        self.receiver_positions = positions
        self.path_loss = path_loss
        self.epsilon = float(epsilon)
        self.grid_size = int(grid_size)
        self.n_points = len(positions)

    def __repr__(self) -> str:
        return (f"Transmitters(<{self.n_points} receivers>, path_loss={self.path_loss!r}, "
                f"epsilon={self.epsilon})")

    def gain(self, sources: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
        """h(‖r_j − p‖) for source positions (m, 2) at receivers ``points``: shape (m, n)."""
        receivers = self.receiver_positions if points is None else self.receiver_positions[
            points]
        squared = ((receivers[None, :, :] - np.atleast_2d(sources)[:, None, :]) ** 2).sum(-1)
        if self.path_loss is None:
            return 1.0 / (squared + self.epsilon)
        return np.asarray(self.path_loss(np.sqrt(squared)), dtype=float)

    def evaluate(self, theta: np.ndarray, points: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        return theta[:, 2, None] ** 2 * self.gain(theta[:, :2], points)

    def _profile(self, sums, weights, sources):
        """Best power (≥ 0) and the cost at each source position (power profiled out)."""
        gains = self.gain(sources)
        energy = gains**2 @ weights
        correlation = gains @ sums
        power = np.maximum(correlation, 0.0) / np.where(energy > 0, energy, 1.0)
        return power, power**2 * energy - 2 * power * correlation

    def _grid(self) -> np.ndarray:
        low, high = self.receiver_positions.min(0), self.receiver_positions.max(0)
        margin = 0.1 * np.maximum(high - low, 1e-3)
        axes = [np.linspace(low[i] - margin[i], high[i] + margin[i], self.grid_size)
                for i in range(2)]
        return np.stack(np.meshgrid(*axes), -1).reshape(-1, 2)

    def fit_one(self, sums: np.ndarray, weights: np.ndarray, start: np.ndarray) -> np.ndarray:
        # Levenberg–Marquardt on (x, y, P) from the current transmitter: the M-step of a
        # generalised EM (it lowers the single-signal cost; global starting points come from
        # initial() and restarts).
        position, power = np.array(start[:2], dtype=float), float(start[2]) ** 2
        scale = float(np.ptp(self.receiver_positions, axis=0).max()) or 1.0
        step = 1e-6 * scale

        def model(position, power):
            gains = self.gain(position)[0]
            # ∂h/∂position by central differences: works for any path_loss function.
            shifted = self.gain(position + step * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]]))
            slopes = np.stack([shifted[0] - shifted[1], shifted[2] - shifted[3]]) / (2 * step)
            return gains, np.vstack([power * slopes, gains[None, :]])  # (n,), (3, n)

        def cost(position, power):
            values = power * self.gain(position)[0]
            return float(weights @ values**2 - 2 * values @ sums)

        current = cost(position, power)
        damping = 1e-3
        for _ in range(50):
            gains, jacobian = model(position, power)
            gradient = jacobian @ (weights * power * gains - sums)
            hessian = (jacobian * weights) @ jacobian.T
            improved = False
            while damping < 1e12:
                matrix = hessian + damping * np.diag(np.diag(hessian) + 1e-300)
                try:
                    delta = -np.linalg.solve(matrix, gradient)
                except np.linalg.LinAlgError:
                    damping *= 10
                    continue
                trial_position, trial_power = position + delta[:2], max(power + delta[2], 0.0)
                trial = cost(trial_position, trial_power)
                if trial < current:
                    improved = True
                    decrease = current - trial
                    position, power, current = trial_position, trial_power, trial
                    damping = max(damping / 10, 1e-12)
                    break
                damping *= 10
            if not improved or decrease <= 1e-14 * (abs(current) + 1e-300):
                break
        return np.array([position[0], position[1], np.sqrt(power)])

    def initial(self, sums: np.ndarray, weights: np.ndarray, n_components: int,
                rng: np.random.Generator) -> np.ndarray:
        # Greedy on a jittered grid: best single source, subtract it, repeat.
        grid = self._grid()
        spacing = np.ptp(grid, axis=0) / max(self.grid_size - 1, 1)
        grid = grid + rng.uniform(-0.5, 0.5, grid.shape) * spacing
        residual = np.array(sums, dtype=float)
        points = np.arange(self.n_points)
        thetas = []
        for _ in range(n_components):
            power, costs = self._profile(residual, weights, grid)
            best = int(np.argmin(costs))
            theta = np.array([grid[best, 0], grid[best, 1], np.sqrt(power[best])])
            thetas.append(theta)
            residual = residual - weights * self.evaluate(theta, points)[0]
        return np.array(thetas)

    def describe(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        return {"positions_": theta[:, :2].copy(), "powers_": theta[:, 2] ** 2}

    def order(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        return np.lexsort((theta[:, 1], theta[:, 0]))


# ------------------------------------------------------------------------------- the bound
class CramerRaoBound(NamedTuple):
    """Cramér–Rao bound for tone parameters.

    Attributes
    ----------
    covariance : (3K, 3K)
        Inverse Fisher information, parameters ordered (f_1, a_1, φ_1, f_2, a_2, φ_2, …).
    fisher : (3K, 3K)
        The Fisher information matrix.
    frequency_variance, amplitude_variance, phase_variance : (K,)
        The diagonal: lower bounds on the variance of any unbiased estimator.
    """

    covariance: np.ndarray
    fisher: np.ndarray
    frequency_variance: np.ndarray
    amplitude_variance: np.ndarray
    phase_variance: np.ndarray


def tone_derivatives(frequencies, amplitudes, phases, times, complex: bool) -> np.ndarray:  # noqa: A002
    """∂s(t)/∂(f_k, a_k, φ_k) for s(t) = Σ_k a_k e^{i(2πf_k t + φ_k)} (or a_k cos(…)).

    Returns an array of shape (n_times, 3K), columns ordered (f_1, a_1, φ_1, f_2, …).
    """
    t = np.asarray(times, dtype=float)[:, None]
    angle = 2 * np.pi * frequencies[None, :] * t + phases[None, :]
    if complex:
        unit = np.exp(1j * angle)
        d_f, d_a, d_phi = 2j * np.pi * t * amplitudes * unit, unit, 1j * amplitudes * unit
    else:
        d_f = -2 * np.pi * t * amplitudes * np.sin(angle)
        d_a, d_phi = np.cos(angle), -amplitudes * np.sin(angle)
    return np.stack([d_f, d_a, d_phi], axis=2).reshape(len(t), -1)


def crb_sinusoids(frequencies, amplitudes, noise_variance: float, n_samples: int | None = None,
                  *, phases=None, complex: bool = True, times=None) -> CramerRaoBound:  # noqa: A002
    """Cramér–Rao bound for the frequencies, amplitudes and phases of tones in white noise.

    For y(t) = s(t; θ) + n(t) with white Gaussian noise, the Fisher information is
    J = (2/σ²) Re(Dᴴ D) for complex noise with E|n|² = σ² (real and imaginary parts of variance
    σ²/2 each), and J = (1/σ²) Dᵀ D for real noise of variance σ², where D = ∂s/∂θ is the
    (n_times, 3K) matrix of derivatives (:func:`tone_derivatives`). The bound is J⁻¹.
    For one complex tone it reduces to var(f̂) ≥ 6σ² / ((2π)² a² N (N² − 1)) (Rife & Boorstyn
    1974).

    Parameters
    ----------
    frequencies, amplitudes : array of shape (K,)
        In cycles per sample; amplitudes > 0.
    noise_variance : float
        σ² (per complex sample for complex tones).
    n_samples : int, optional
        Samples at t = 0 … n_samples − 1 (or give ``times``).
    phases : array of shape (K,), optional
        Default zeros. (The bound for several tones depends on their relative phases.)
    complex : bool, default True
    times : array, optional
        Sampling times (in samples) instead of ``n_samples``.
    """
    frequencies = np.atleast_1d(np.asarray(frequencies, dtype=float))
    amplitudes = np.atleast_1d(np.asarray(amplitudes, dtype=float))
    phases = np.zeros_like(frequencies) if phases is None else np.atleast_1d(
        np.asarray(phases, dtype=float))
    if not (frequencies.shape == amplitudes.shape == phases.shape) or frequencies.ndim != 1:
        raise ParameterError("frequencies, amplitudes and phases must be 1-D of one length.")
    if not np.all(amplitudes > 0):
        raise ParameterError("amplitudes must be > 0: the phase of a zero tone is undefined.")
    if not noise_variance > 0:
        raise ParameterError(f"noise_variance must be > 0, got {noise_variance!r}.")
    if times is None:
        if n_samples is None or n_samples < 1:
            raise ParameterError("give n_samples >= 1 or the sampling times.")
        times = np.arange(n_samples)
    D = tone_derivatives(frequencies, amplitudes, phases, times, complex)
    if complex:
        fisher = 2.0 / noise_variance * np.real(D.conj().T @ D)
    else:
        fisher = D.T @ D / noise_variance
    if np.linalg.cond(fisher) > 1e14:
        raise DataError("the Fisher information is singular: the tones are not identifiable "
                        "(equal frequencies, or too few samples).")
    covariance = np.linalg.inv(fisher)
    diagonal = np.diag(covariance).reshape(-1, 3)
    return CramerRaoBound(covariance, fisher, diagonal[:, 0], diagonal[:, 1], diagonal[:, 2])
