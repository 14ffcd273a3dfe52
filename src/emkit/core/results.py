"""What the EM loop produces and the state it carries, as plain values.

:func:`emkit.core.engine.fit_em` returns an :class:`EMResult` and shows callbacks an
:class:`IterationInfo`. Between iterations the loop's whole state is a few values defined here:
the point it stands at (:class:`EvaluatedPoint`), what a step rule tells the monitor
(:class:`EMStep`) and needs to restart (:class:`StepRuleState`), the monitor's memory
(:class:`MonitorState`), one start's state at an iteration boundary (:class:`StartState`) and
the fit's across starts (:class:`FitState`). A checkpoint is an encoding of a ``FitState``
(:mod:`emkit.core.checkpoint`), so a resumed fit is the uninterrupted one, bit for bit.

This module imports nothing from emkit: every other module of the loop can import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class EvaluatedPoint(NamedTuple):
    """Parameters with the result of their E-step over all data."""

    params: Any
    objective: float  # log-likelihood + log prior at ``params``
    log_likelihood: float
    stats: Any  # summed sufficient statistics at ``params`` (None: not computed yet)


class EMStep(NamedTuple):
    """What a SQUAREM cycle tells the convergence monitor about the EM map near its point.

    ``gain`` is the rise of the objective by the cycle's first EM step, ``rate`` the factor by
    which EM shrinks the remaining gain per step (estimated from the cycle's step length), and
    ``shortfall`` how far the cycle's end point lies below that EM step's point (> 0 only for an
    extrapolation accepted with slack); ``param_step`` is the largest change of the cycle's first
    EM step in the model's unconstrained coordinates.
    """

    gain: float
    rate: float
    shortfall: float
    param_step: float = 0.0


@dataclass(frozen=True)
class StepRuleState:
    """What a step rule needs to start again from the end of one of its cycles: SQUAREM's
    bound on the extrapolation's step length (plain EM keeps none and passes it through)."""

    step_max: float = 1.0


@dataclass(frozen=True)
class RuleStep:
    """One point a step rule yields, with what the engine needs to judge it.

    ``boundary``: the point ends a cycle of the rule (the fit may stop, or be checkpointed,
    there; ``state`` restarts the rule from it). ``extrapolated``: an extrapolation accepted
    below the point before it (with slack), not to be compared with it. ``em_step``: the
    cycle's estimate of EM's convergence (SQUAREM), which replaces the extrapolation from the
    history.
    """

    point: EvaluatedPoint
    boundary: bool = True
    extrapolated: bool = False
    em_step: EMStep | None = None
    state: StepRuleState = StepRuleState()


@dataclass(frozen=True)
class IterationInfo:
    """What a callback sees after each evaluated point."""

    restart: int
    iteration: int  # index of this point in the history (0 = the start)
    objective: float
    change: float
    params: Any
    annealing: bool
    n_samples: float = 1.0  # the objective's sample count: change / n_samples is per sample
    boundary: bool = True  # the point ends a cycle of the step rule (SQUAREM's θ1 does not)


@dataclass(frozen=True)
class EMResult:
    """The outcome of :func:`emkit.core.engine.fit_em` (the best restart).

    ``history`` holds the objective (log-likelihood + log prior) at every evaluated point of the
    best restart, the starting point first; ``decreases`` lists (iteration, amount) for every drop
    of the objective beyond round-off, ``events`` (iteration, message) for what the M-steps
    reported. ``remaining_gain`` is the estimated rise of the objective still to come when the
    fit stopped (0 when converged, ``inf`` when the objective was not yet converging
    geometrically; see :func:`emkit.core.monitor.remaining_gain`).
    """

    params: Any
    objective: float
    log_likelihood: float
    n_samples: float
    converged: bool
    n_iter: int
    history: np.ndarray
    stats: Any
    best_restart: int
    restart_objectives: tuple[float, ...]
    decreases: tuple[tuple[int, float], ...] = ()
    events: tuple[tuple[int, str], ...] = ()
    stopped_by_callback: bool = False
    remaining_gain: float = math.nan


@dataclass(frozen=True)
class MonitorState:
    """What the convergence monitor remembers of a start: the objective at every point, the
    decreases it recorded, and its recent estimates of EM's rate (SQUAREM cycles) and of the
    parameters' steps (plain EM with ``xtol``)."""

    history: tuple[float, ...] = ()
    decreases: tuple[tuple[int, float], ...] = ()
    em_rates: tuple[float, ...] = ()
    param_steps: tuple[float, ...] = ()


@dataclass(frozen=True)
class StartState:
    """One start at an iteration boundary after annealing: everything its continuation depends
    on (the current point's E-step is recomputed from ``params``).

    ``passes`` counts the E-steps made so far; ``rng_state`` is the start's random generator's
    ``bit_generator.state``; ``best`` is the best point so far (without statistics) when it is
    not the current one.
    """

    restart: int
    params: Any
    passes: int
    n_samples: float
    monitor: MonitorState
    events: tuple[tuple[int, str], ...]
    rule: StepRuleState
    rng_state: dict
    best: EvaluatedPoint | None = None


@dataclass(frozen=True)
class FitState:
    """A fit between iterations: its seeds, the starts finished (the objective of each, the best
    one's result without statistics) and the start in progress, if any."""

    seed: np.random.SeedSequence
    next_restart: int = 0
    restart_objectives: tuple[float, ...] = ()
    best: EMResult | None = None
    current: StartState | None = None


__all__ = [
    "EMResult",
    "EMStep",
    "EvaluatedPoint",
    "FitState",
    "IterationInfo",
    "MonitorState",
    "RuleStep",
    "StartState",
    "StepRuleState",
]
