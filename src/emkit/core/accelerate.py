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
from typing import Any, NamedTuple

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


class Blocks(NamedTuple):
    """Independent blocks of a model's parameters (many small fits stacked as one model):
    SQUAREM then takes a step length per block and accepts each block's extrapolation on its
    own, as separate fits would. The model's ``flatten`` gives one row of coordinates per block.

    ``objectives(point)``: each block's objective at an evaluated point, shape (B,), summing to
    its objective; ``merge(mask, a, b)``: parameters with the blocks of ``a`` where ``mask``
    (B,) is True and those of ``b`` elsewhere; ``judge(point, em_steps)`` (optional): the
    cycle's end point after the model judged each block's convergence from its own cycle,
    ``em_steps`` an :class:`~emkit.core.results.EMStep` of (B,) arrays (a block that converged
    is typically frozen in the returned parameters). ``bounds(params)`` and
    ``with_bounds(params, bounds)`` (optional, together): each block's bound on the step
    length, (B,), read from the start's parameters and written into every cycle's end point, so
    that a fit stopped at a cycle's end and started again from there (on some of its blocks)
    takes the same steps as one that went on. ``merge_evaluated(mask, point, params,
    evaluate)`` (optional): the evaluated point with the blocks of the evaluated ``point``
    where ``mask`` is True and those of ``params`` elsewhere, from an E-step (``evaluate``) of
    the latter blocks alone (each block's statistics its own): a cycle's end point that takes
    most blocks from the extrapolation and a few from θ2 then costs only those few."""

    objectives: Callable[[EvaluatedPoint], np.ndarray]
    merge: Callable[[np.ndarray, Any, Any], Any]
    judge: Callable[[EvaluatedPoint, EMStep], EvaluatedPoint] | None = None
    bounds: Callable[[Any], np.ndarray] | None = None
    with_bounds: Callable[[Any, np.ndarray], Any] | None = None
    merge_evaluated: Callable[[np.ndarray, EvaluatedPoint, Any, Evaluate],
                              EvaluatedPoint] | None = None


def squarem(
    evaluate: Evaluate,
    m_step: MStep,
    start: EvaluatedPoint,
    flatten: Callable[[Any], np.ndarray],
    unflatten: Callable[[np.ndarray, Any], Any],
    step_factor: float = 4.0,
    state: StepRuleState = FRESH,
    slack: float = 0.0,
    blocks: Blocks | None = None,
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

    With ``blocks`` (:class:`Blocks`) all of this happens per block: each has its own step
    length, bound and acceptance against its own objective, and the cycle's end point takes each
    block from θ' or from θ2 accordingly (one more evaluation when some blocks accept their
    extrapolation and others do not).

    θ1 is yielded with ``boundary=False``; the cycle's end point with ``boundary=True``, the
    cycle's :class:`~emkit.core.results.EMStep` and the state (the step bound; with blocks, their
    largest) to restart from there.
    ``state`` is the state to start with.
    """
    if blocks is None:  # the whole parameter vector as one block
        blocks = Blocks(lambda point: np.array([point.objective]), _first_if)
        rows_of, from_rows = (lambda params: flatten(params)[None, :],
                              lambda rows, template: unflatten(rows[0], template))
    else:
        rows_of, from_rows = flatten, unflatten
    step_max = (np.float64(state.step_max) if blocks.bounds is None
                else np.asarray(blocks.bounds(start.params), dtype=np.float64))
    point0 = start
    while True:
        theta1 = m_step(point0.stats, point0.params)
        point1 = evaluate(theta1)
        yield RuleStep(point1, boundary=False, state=StepRuleState(float(np.max(step_max))))
        theta2 = m_step(point1.stats, point1.params)

        u0, u1, u2 = rows_of(point0.params), rows_of(theta1), rows_of(theta2)
        r = u1 - u0
        v = u2 - 2.0 * u1 + u0
        r_norms, v_norms = np.linalg.norm(r, axis=1), np.linalg.norm(v, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(v_norms > 0, r_norms / v_norms, 1.0)
        step = np.clip(np.where(np.isfinite(step), step, 1.0), 1.0, step_max)
        step_max = np.where(step >= step_max, step_max * step_factor, step_max)

        # Blocks whose step exceeds 1 are extrapolated; the others take θ2 as it is.
        tried = step > 1.0
        moved = tried.copy()
        accepted = np.zeros_like(moved)
        end = None
        if moved.any():
            vector = u0 + (2.0 * step)[:, None] * r + (step * step)[:, None] * v
            moved &= np.all(np.isfinite(vector), axis=1)
            candidate = _try_point(evaluate, _extrapolated, blocks.merge, from_rows, moved,
                                   vector, u2, theta2)
            if candidate is not None:
                values = blocks.objectives(candidate)
                accepted = moved & (values >= blocks.objectives(point1) - slack)
                if np.array_equal(accepted, moved):
                    end = candidate
            rejected = tried & ~accepted
            step_max = np.where(rejected & (step * step_factor >= step_max),
                                np.maximum(1.0, step_max / step_factor**2), step_max)
        if end is None:
            if accepted.any() and blocks.merge_evaluated is not None:
                # the candidate holds θ2 already where no block moved: only the rejected
                # extrapolations need θ2's E-step
                end = blocks.merge_evaluated(~(moved & ~accepted), candidate, theta2, evaluate)
            else:
                end = evaluate(blocks.merge(accepted, candidate.params, theta2)
                               if accepted.any() else theta2)
        em_step = EMStep(point1.objective - point0.objective,
                         _objective_rate(float(np.linalg.norm(r_norms)),
                                         float(np.linalg.norm(v_norms))),
                         max(0.0, point1.objective - end.objective),
                         float(np.max(np.abs(r))) if r.size else 0.0)
        if blocks.judge is not None:
            values0, values1 = blocks.objectives(point0), blocks.objectives(point1)
            end = blocks.judge(end, EMStep(
                values1 - values0, _objective_rates(r_norms, v_norms),
                np.maximum(0.0, values1 - blocks.objectives(end)),
                np.max(np.abs(r), axis=1, initial=0.0)))
        if blocks.with_bounds is not None:
            end = end._replace(params=blocks.with_bounds(end.params, step_max))
        point0 = end
        yield RuleStep(point0, boundary=True, extrapolated=bool(accepted.any()) and slack > 0,
                       em_step=em_step, state=StepRuleState(float(np.max(step_max))))


def _first_if(mask: np.ndarray, a: Any, b: Any) -> Any:
    """:attr:`Blocks.merge` of a single block."""
    return a if mask[0] else b


def _objective_rate(r_norm: float, v_norm: float) -> float:
    """EM's rate of convergence of the objective, from one SQUAREM cycle.

    Along EM's slowest direction the parameter error shrinks by ρ per step, so r = (ρ − 1)·δ and
    v = (ρ − 1)²·δ: ‖r‖ / ‖v‖ = 1 / (1 − ρ). The objective's distance to the maximum is quadratic
    in δ and shrinks by ρ² per step.
    """
    return float(_objective_rates(np.array([r_norm]), np.array([v_norm]))[0])


def _objective_rates(r_norms: np.ndarray, v_norms: np.ndarray) -> np.ndarray:
    """:func:`_objective_rate` of each block."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(r_norms > 0.0, 1.0 - v_norms / r_norms, 0.0)
    rates = np.minimum(rho * rho, 1.0)
    return np.where(v_norms == 0.0, np.where(r_norms == 0.0, 0.0, 1.0), rates)


def _extrapolated(merge, from_rows, moved, vector, u2, theta2):
    """The parameters at ``vector`` for the blocks that ``moved``, θ2's for the others."""
    return merge(moved, from_rows(np.where(moved[:, None], vector, u2), theta2), theta2)


def _try_point(evaluate, build, *args) -> EvaluatedPoint | None:
    """Evaluate the extrapolated point ``build(*args)``; None when building or evaluating it
    fails or its objective is not finite."""
    try:
        with np.errstate(all="ignore"):
            point = evaluate(build(*args))
    except (ValueError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError):
        return None
    return point if np.isfinite(point.objective) else None


__all__ = ["Blocks", "EMStep", "EvaluatedPoint", "RuleStep", "StepRuleState", "plain_em",
           "squarem"]
