"""Step rules over the EM map θ → M(E(θ)).

A step rule is a generator: given an ``EvaluatedPoint`` (parameters whose E-step has been run),
it yields an endless sequence of :class:`~emkit.core.results.RuleStep` values — new evaluated
points, each at least as good as the one before, with what the engine needs to judge them and the
rule's state at the end of each cycle (a :class:`~emkit.core.results.StepRuleState`, from which the
rule starts again when a checkpointed fit resumes). The engine (`emkit.core.engine.fit_em`) records
every yielded point, checks convergence and stops the generator; a rule never loops over the
data itself — it calls ``evaluate`` and ``m_step``.

- :func:`plain_em`: one M-step then one E-step per point.
- :func:`squarem`: SQUAREM (Varadhan & Roland 2008, Scand. J. Statist. 35:335–353), scheme S3 with
  the global step-length adaptation of their R package and a monotonicity safeguard (strict by
  default; relaxed by the model's ``squarem_slack``, see below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from emkit.core.results import EMStep, EvaluatedPoint, RuleStep, StepRuleState

Evaluate = Callable[[Any], EvaluatedPoint]
MStep = Callable[[Any, Any], Any]
FRESH = StepRuleState()  # a rule's state at the start of a fit


def plain_em(evaluate: Evaluate, m_step: MStep, start: EvaluatedPoint,
             state: StepRuleState = FRESH) -> Iterator[RuleStep]:
    """Plain EM: θ_{t+1} = M(E(θ_t)); every point ends a cycle (``state`` is passed through)."""
    point = start
    while True:
        point = evaluate(m_step(point.stats, point.params))
        yield RuleStep(point, state=state)


def squarem(
    evaluate: Evaluate,
    m_step: MStep,
    start: EvaluatedPoint,
    flatten: Callable[[Any], np.ndarray],
    unflatten: Callable[[np.ndarray, Any], Any],
    step_factor: float = 4.0,
    state: StepRuleState = FRESH,
    slack: float = 0.0,
) -> Iterator[RuleStep]:
    """SQUAREM with step length S3, s = ‖r‖ / ‖v‖ (in the model's unconstrained coordinates).

    From θ0: θ1 = M(θ0), θ2 = M(θ1), r = θ1 − θ0, v = θ2 − 2θ1 + θ0 and the extrapolated point
    θ' = θ0 + 2 s r + s² v (s = 1 gives θ2). θ1 is yielded as an ordinary EM point. θ' is accepted
    only when it is valid and its objective is not below θ1's minus ``slack``; otherwise the plain
    EM point θ2 is used. The next cycle starts with an M-step at θ', the "stabilisation" step of
    the method.

    With ``slack = 0`` the yielded objectives never decrease (EM's own guarantee). A positive
    slack (the R package's ``objfn.inc``, 1 there by default) lets an extrapolation that overshoots
    the fast-contracting directions through: the stabilising EM steps damp them again, and the
    long steps along the slow direction are kept. Such a point is yielded with
    ``extrapolated=True`` so the engine does not compare it with the point before it;
    every EM step (θ → M(θ)) is still compared with its input. Models offer a slack only where the
    objective is concave (one optimum), so a dip cannot move the fit to another one's basin.

    The largest allowed step grows by ``step_factor`` each time s reaches it, and shrinks after a
    rejected extrapolation at that bound (the global adaptation of the SQUAREM R package).

    θ1 is yielded with ``boundary=False``; the cycle's end point with ``boundary=True``, the
    cycle's :class:`~emkit.core.results.EMStep` and the state (the step bound) to restart from
    there.
    ``state`` is the state to start with.
    """
    step_max = float(state.step_max)
    point0 = start
    while True:
        theta1 = m_step(point0.stats, point0.params)
        point1 = evaluate(theta1)
        yield RuleStep(point1, boundary=False, state=StepRuleState(step_max))
        theta2 = m_step(point1.stats, point1.params)

        u0, u1, u2 = flatten(point0.params), flatten(theta1), flatten(theta2)
        r = u1 - u0
        v = u2 - 2.0 * u1 + u0
        r_norm, v_norm = float(np.linalg.norm(r)), float(np.linalg.norm(v))
        step = r_norm / v_norm if v_norm > 0 and np.isfinite(r_norm / v_norm) else 1.0
        step = min(max(step, 1.0), step_max)
        if step >= step_max:
            step_max *= step_factor

        accepted = None
        if step > 1.0:
            accepted = _try_point(evaluate, unflatten, u0 + 2.0 * step * r + step * step * v,
                                  theta2, point1.objective - slack)
            if accepted is None and step * step_factor >= step_max:
                step_max = max(1.0, step_max / step_factor**2)
        em_gain = point1.objective - point0.objective
        point0 = accepted if accepted is not None else evaluate(theta2)
        em_step = EMStep(em_gain, _objective_rate(r_norm, v_norm),
                         max(0.0, point1.objective - point0.objective),
                         float(np.max(np.abs(r))) if r.size else 0.0)
        yield RuleStep(point0, boundary=True, extrapolated=accepted is not None and slack > 0,
                       em_step=em_step, state=StepRuleState(step_max))


def _objective_rate(r_norm: float, v_norm: float) -> float:
    """EM's rate of convergence of the objective, from one SQUAREM cycle.

    Along EM's slowest direction the parameter error shrinks by ρ per step, so r = (ρ − 1)·δ and
    v = (ρ − 1)²·δ: ‖r‖ / ‖v‖ = 1 / (1 − ρ). The objective's distance to the maximum is quadratic
    in δ and shrinks by ρ² per step.
    """
    if v_norm == 0.0:
        return 0.0 if r_norm == 0.0 else 1.0
    rho = 1.0 - v_norm / r_norm if r_norm > 0.0 else 0.0
    return min(rho * rho, 1.0)


def _try_point(evaluate, unflatten, vector, template, floor) -> EvaluatedPoint | None:
    """Evaluate an extrapolated point; None when it is invalid or not at least ``floor``."""
    if not np.all(np.isfinite(vector)):
        return None
    try:
        with np.errstate(all="ignore"):
            point = evaluate(unflatten(vector, template))
    except (ValueError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError):
        return None
    if not np.isfinite(point.objective) or point.objective < floor:
        return None
    return point


__all__ = ["EMStep", "EvaluatedPoint", "RuleStep", "StepRuleState", "plain_em", "squarem"]
