"""The convergence monitor of the EM loop: records the objective of every point and says when a
start is near its limit (Aitken's Δ² on the objective, or the rate a SQUAREM cycle measured),
warning about decreases that exact EM cannot make."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from emkit.core.results import EMStep, MonitorState
from emkit.errors import LikelihoodDecreaseWarning, NumericalError

# How many points the objective's convergence is judged on.
WINDOW = 6
# Units of a floating type's epsilon within which steps count as its round-off (float32).
_ULPS = 16
_FLOAT64_EPS = float(np.finfo(np.float64).eps)


@dataclass
class ConvergenceMonitor:
    """Records the objective; says when the fit is near its limit.

    The fit has converged when both the last change of the objective *and* the estimated distance
    to its limit are below ``tol`` per sample (``n_samples``). The distance is extrapolated from
    the observed linear rate of convergence (Aitken's Δ² on the objective sequence, see
    :func:`remaining_gain`): EM converges linearly, so a fit that climbs slowly keeps climbing
    long after its last step became small, and the step alone (scikit-learn's rule) stops it
    early. A fit whose recent steps are all within round-off of the objective's size is
    stationary: its remaining gain is 0.

    With ``xtol``, the parameters must have converged too: the largest change of an EM step in
    the model's unconstrained coordinates (``flatten``: logarithms of weights, rates and
    concentrations, so relative changes there), extrapolated the same way (what is left of a
    step of size s at rate ρ per step is s·ρ / (1 − ρ)), must be below ``xtol``. Where the
    likelihood is flat in some direction the objective pins the parameters only to the square
    root of its own precision, so parameters to 1e-6 need this test. A model computing in a
    coarser floating type (``working_eps``, e.g. float32's machine epsilon) has parameters that
    bounce at its round-off for ever once converged; when they do and the objective is stationary or
    bouncing at that type's resolution, the parameter test is met (see ``_at_round_off``).

    Points before ``first_judged`` (deterministic annealing) are never judged; ``lead_in`` holds
    the objectives of an earlier fit this one continues (a warm start), read before the history.
    A decrease larger than ``decrease_rtol`` (relative to the objective's size) cannot happen in
    exact EM: it is recorded and warned about. A non-finite objective raises
    :class:`emkit.errors.NumericalError`.
    """

    tol: float
    n_samples: float = 1.0
    decrease_rtol: float = 1e-10
    restart: int = 0
    history: list[float] = field(default_factory=list)
    decreases: list[tuple[int, float]] = field(default_factory=list)
    first_judged: int = 0
    em_rates: list[float] = field(default_factory=list)
    xtol: float | None = None
    param_steps: list[float] = field(default_factory=list)
    last_gain: float = math.inf
    last_param_distance: float = math.inf
    lead_in: list[float] = field(default_factory=list)
    working_eps: float = float(np.finfo(np.float64).eps)

    def record(self, objective: float, *, compare: bool = True, judge: bool = True,
               em_step: EMStep | None = None,
               param_step: float | None = None,
               explained_decrease: float | Callable[[], float] = 0.0) -> bool:
        """Add one objective; return True when the fit has converged.

        ``compare=False`` skips the decrease check against the previous point (a re-seeded
        component or an extrapolation accepted with slack may lower the objective);
        ``judge=False`` records a point that cannot end the fit (annealing, the middle of a
        SQUAREM cycle). ``em_step``, from an accelerated step rule, replaces the extrapolation
        from the history, whose rates an accelerated sequence does not follow. ``param_step``
        is the largest change of the unconstrained parameters since the previous point (plain
        EM, when ``xtol`` is set). ``explained_decrease`` is how far the M-step behind this point
        lowered its own objective Q (an inexact M-step): the log-likelihood may fall by as much
        (generalised EM's inequality), so such a fall is no defect and is not warned about; a
        callable is called for it only when the objective falls.
        """
        iteration = len(self.history)
        if not math.isfinite(objective):
            raise NumericalError(
                f"the EM objective became {objective} at iteration {iteration} "
                f"(restart {self.restart}): the data or the starting point give a density of zero "
                "or overflow; check the data for extreme values, raise the regularisation "
                "(e.g. reg_covar) or use another initialisation."
            )
        self.history.append(objective)
        if iteration == 0:
            return False
        change = objective - self.history[-2]
        slack = self.decrease_rtol * max(1.0, abs(objective))
        falls = compare and change < -slack
        if falls and callable(explained_decrease):
            explained_decrease = explained_decrease()
        if falls and change < -(slack + explained_decrease):
            self.decreases.append((iteration, -change))
            warnings.warn(
                f"EM objective decreased by {-change:.3g} at iteration {iteration} "
                f"(restart {self.restart}); exact EM never does this, so a model's E- or M-step "
                "is inexact or buggy.",
                LikelihoodDecreaseWarning,
                stacklevel=4,
            )
            return False
        if not judge:
            return False
        if param_step is not None:
            self.param_steps = [*self.param_steps[-(_STEP_MEMORY - 1):], param_step]
        if em_step is None:
            self.last_gain = remaining_gain(self.lead_in + self.history[self.first_judged:],
                                            decrease_rtol=self.decrease_rtol)
            self.last_param_distance = remaining_distance(self.param_steps)
        else:
            # One cycle's rate can be far too small (its first EM step then mostly corrects
            # the extrapolation's overshoot in fast directions): the slowest of the last few
            # stands for EM's rate near the maximum.
            self.em_rates = [*self.em_rates[-(RATE_MEMORY - 1):], em_step.rate]
            self.last_gain = em_step_remaining_gain(em_step._replace(rate=max(self.em_rates)),
                                                    objective, self.decrease_rtol)
            change = max(abs(change), em_step.gain)
            rho = math.sqrt(max(self.em_rates))  # the objective converges at ρ², parameters at ρ
            self.last_param_distance = (math.inf if rho >= 1.0 else
                                        em_step.param_step * max(1.0, rho / (1.0 - rho)))
        limit = self.tol * self.n_samples
        if (self.xtol is not None and not self.last_param_distance <= self.xtol
                and not self._at_round_off(em_step)):
            return False
        # tol = 0 runs all max_iter iterations
        return self.tol > 0 and abs(change) < limit and self.last_gain < limit

    def _at_round_off(self, em_step: EMStep | None) -> bool:
        """Whether a model computing in a floating type coarser than float64 (``working_eps``,
        e.g. float32's epsilon) has parameters that only bounce at its round-off: the last
        parameter step within a few units of ``working_eps``, and the objective's last
        ``WINDOW`` points stationary or bouncing (no step beyond the type's resolution of the
        objective, and none upwards unless one is downwards). Such parameters never pass
        ``xtol`` (their steps are as large as it and their rates are noise), yet no EM step can
        bring them closer: the test is met.

        In float64 the parameters' round-off lies far below any useful ``xtol``, so their steps
        measure real movement (along a flat direction, where the objective is stationary long
        before the parameters are), and this never applies.
        """
        if self.working_eps <= _FLOAT64_EPS:
            return False
        last_step = em_step.param_step if em_step is not None else (
            self.param_steps[-1] if self.param_steps else math.inf)
        if not last_step <= _ULPS * self.working_eps:
            return False
        objectives = (self.lead_in + self.history[self.first_judged:])[-WINDOW:]
        if len(objectives) < WINDOW:
            return False
        recent = np.asarray(objectives, dtype=float)
        steps = np.diff(recent)
        resolution = _ULPS * self.working_eps * max(float(np.max(np.abs(recent))), 1.0)
        if np.any(np.abs(steps) > resolution):
            return False
        return bool(np.all(steps == 0.0) or np.any(steps < 0.0))

    def remaining_gain(self) -> float:
        """Estimated rise of the objective from the last judged point to its limit (inf:
        unknown)."""
        return self.last_gain

    def state(self) -> MonitorState:
        """What this monitor remembers, as a value (for checkpoints)."""
        return MonitorState(tuple(self.history), tuple(self.decreases), tuple(self.em_rates),
                            tuple(self.param_steps))

    def restore(self, state: MonitorState) -> None:
        """Continue from ``state`` (what :meth:`state` gave): the next point recorded follows
        the last one of its history."""
        self.history = list(state.history)
        self.decreases = list(state.decreases)
        self.em_rates = list(state.em_rates)
        self.param_steps = list(state.param_steps)


def remaining_gain(objectives: Sequence[float], window: int = WINDOW,
                   decrease_rtol: float = 1e-10) -> float:
    """Estimated distance from the last of ``objectives`` to their limit, by Aitken's Δ².

    A linearly converging sequence rises by Δ_t = L_t − L_{t−1} ≈ r·Δ_{t−1}, so what is left is
    Δ_t·r / (1 − r). The rate is measured on sums of two consecutive steps,
    r² ≈ (Δ_t + Δ_{t−1}) / (Δ_{t−2} + Δ_{t−3}), which gives the same estimate on a geometric
    sequence and stays meaningful when steps alternate in size (SQUAREM's EM step and
    extrapolation); of the two pairings in the last ``window`` points the slower rate is used,
    and the last step's ratio Δ_t / Δ_{t−1} (squared) when it is slower still (a rising rate).
    Changes within round-off of the objective's size count as zero: a window of them is
    stationary (0 is returned). A window with decreases no larger than ``decrease_rtol`` of the
    objective (an inexact M-step at its fixed point, e.g. with ``reg_covar``) bounces within its
    largest step, which is returned. ``inf`` is returned while no estimate is possible: fewer
    than ``window`` points, a larger decrease in the window (after a re-seeded component), or a
    rate ≥ 1.
    """
    if len(objectives) < window:
        return math.inf
    recent = np.asarray(objectives[-window:], dtype=float)
    steps = np.diff(recent)
    size = max(float(np.max(np.abs(recent))), 1.0)
    steps[np.abs(steps) <= _ROUND_OFF * size] = 0.0
    if np.any(steps < 0):
        bouncing = np.min(steps) >= -decrease_rtol * size
        return float(np.max(np.abs(steps))) if bouncing else math.inf
    pairs = steps[1:] + steps[:-1]  # pairs[i] = steps[i] + steps[i + 1]
    last = float(pairs[-1])
    if last == 0.0:
        return 0.0
    rate = 0.0
    for now, before in ((pairs[-1], pairs[-3]), (pairs[-2], pairs[-4])):
        if before <= 0.0:
            if now > 0.0:
                return math.inf  # the objective started moving again
            continue
        rate = max(rate, float(now / before))
    # Leaving a fast phase for its slowest direction, EM's rate rises for a while, and rates
    # measured over pairs two steps apart lag behind it (a 3-state HMM on the geyser data was
    # called converged 4x tol short of its maximum): the last step's own ratio, squared to a
    # rate per pair, is never ignored. On a geometric sequence it is the same rate.
    if 0.0 < steps[-1] < steps[-2]:
        rate = max(rate, float(steps[-1] / steps[-2]) ** 2)
    if rate >= 1.0:
        return math.inf
    return last * rate / (1.0 - rate)


def remaining_gain_rows(objectives: np.ndarray, decrease_rtol: float = 1e-10) -> np.ndarray:
    """:func:`remaining_gain` of each row of ``objectives`` (shape (G, ``WINDOW``): the last
    objectives of G independent fits, oldest first; NaN where a fit has fewer points, which
    gives inf), for fits batched in one model (:mod:`emkit.models.batched_gaussian`). The same
    rule, on arrays; ``tests/test_batched.py`` checks it against :func:`remaining_gain`."""
    recent = np.asarray(objectives, dtype=float)
    steps = np.diff(recent, axis=1)
    size = np.maximum(np.max(np.abs(recent), axis=1), 1.0)
    steps = np.where(np.abs(steps) <= _ROUND_OFF * size[:, None], 0.0, steps)
    pairs = steps[:, 1:] + steps[:, :-1]
    last = pairs[:, -1]
    rate = np.zeros(len(recent))
    moving_again = np.zeros(len(recent), dtype=bool)
    for now, before in ((pairs[:, -1], pairs[:, -3]), (pairs[:, -2], pairs[:, -4])):
        moving_again |= (before <= 0.0) & (now > 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(before > 0.0, np.maximum(rate, now / before), rate)
    slower = (steps[:, -1] > 0.0) & (steps[:, -1] < steps[:, -2])
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(slower, np.maximum(rate, (steps[:, -1] / steps[:, -2]) ** 2), rate)
        gain = np.where(rate >= 1.0, np.inf, last * rate / (1.0 - rate))
    gain = np.where(moving_again, np.inf, gain)
    gain = np.where(last == 0.0, 0.0, gain)
    decreasing = np.any(steps < 0.0, axis=1)
    bouncing = np.min(steps, axis=1) >= -decrease_rtol * size
    gain = np.where(decreasing, np.where(bouncing, np.max(np.abs(steps), axis=1), np.inf), gain)
    return np.where(np.all(np.isfinite(recent), axis=1), gain, np.inf)


def remaining_distance(steps: Sequence[float]) -> float:
    """Estimated distance of the parameters to their limit from the sizes of the last EM steps
    (the last one at least; inf with fewer than three steps or a rate ≥ 1)."""
    if len(steps) < 3:
        return math.inf
    last = steps[-1]
    if last == 0.0:
        return 0.0
    rates = [now / before if before > 0 else math.inf
             for before, now in zip(steps[-3:-1], steps[-2:], strict=True)]
    rate = max(rates)
    return math.inf if rate >= 1.0 else last * max(1.0, rate / (1.0 - rate))


def em_step_remaining_gain(step: EMStep, objective: float,
                           decrease_rtol: float = 1e-10) -> float:
    """Estimated distance to the limit after an accelerated cycle, from its EM step.

    An EM step that gains g where EM shrinks the remaining gain by the factor r per step started
    g / (1 − r) below the limit and ended g·r / (1 − r) below it; the cycle's end point is no
    worse than that, less its ``shortfall``. A gain within round-off means a fixed point; a loss
    within ``decrease_rtol`` an inexact M-step (or float32) at its fixed point, bouncing by that
    much.
    """
    size = max(abs(objective), 1.0)
    if abs(step.gain) <= _ROUND_OFF * size:
        return step.shortfall
    if step.gain < 0:
        return -step.gain + step.shortfall if -step.gain <= decrease_rtol * size else math.inf
    if step.rate >= 1.0:
        return math.inf
    return step.gain * step.rate / (1.0 - step.rate) + step.shortfall


def em_step_remaining_gain_rows(step: EMStep, objectives: np.ndarray,
                                decrease_rtol: float = 1e-10) -> np.ndarray:
    """:func:`em_step_remaining_gain` of each of B fits at once: ``step`` holds (B,) arrays
    (each fit's cycle), ``objectives`` (B,) their end points (SQUAREM over independent blocks,
    :class:`emkit.core.accelerate.Blocks`). The same rule, on arrays; ``tests/test_batched.py``
    checks it against :func:`em_step_remaining_gain`."""
    gain, rate, shortfall = (np.asarray(x, dtype=float) for x in step[:3])
    size = np.maximum(np.abs(np.asarray(objectives, dtype=float)), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where(rate >= 1.0, np.inf, gain * rate / (1.0 - rate) + shortfall)
    falling = np.where(-gain <= decrease_rtol * size, -gain + shortfall, np.inf)
    estimate = np.where(gain < 0, falling, rising)
    return np.where(np.abs(gain) <= _ROUND_OFF * size, shortfall, estimate)


# Relative size of objective changes treated as round-off by the convergence test: 16 units in
# the last place (the objective's own rounding error is a few).
_ROUND_OFF = 16 * np.finfo(float).eps
# How many SQUAREM cycles' estimates of EM's rate the monitor keeps (the slowest is used).
RATE_MEMORY = 32
# How many sizes of plain EM steps in the parameters the monitor keeps (for ``xtol``).
_STEP_MEMORY = 3


__all__ = ["RATE_MEMORY", "WINDOW", "ConvergenceMonitor", "em_step_remaining_gain",
           "em_step_remaining_gain_rows", "remaining_distance", "remaining_gain",
           "remaining_gain_rows"]
