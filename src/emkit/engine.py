"""The one EM loop of emkit: :func:`fit_em`.

A model is three functions around additive sufficient statistics (see ``EMModel``); everything
else — restarts, the convergence monitor, SQUAREM, deterministic annealing, callbacks and the
progress bar — lives here once, so every model gets it for free.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emkit import accelerate
from emkit.accelerate import EvaluatedPoint
from emkit.checkpoint import Checkpoint, FitProgress, fit_settings, saved_seed_sequence
from emkit.data import in_memory, iter_chunks
from emkit.errors import (
    ConvergenceWarning,
    LikelihoodDecreaseWarning,
    NumericalError,
    ParameterError,
)


@runtime_checkable
class EMModel(Protocol):
    """What :func:`fit_em` needs from a model.

    Required
    --------
    init_params(data, rng) -> params
        A starting point; ``data`` is the chunk source given to ``fit_em``.
    e_step(params, chunk) -> (stats, log_likelihood)
        Sufficient statistics of one chunk and its log-likelihood. Statistics must *add*:
        ``add_statistics(e_step(p, A)[0], e_step(p, B)[0]) == e_step(p, A ∪ B)[0]``.
    m_step(stats, params) -> params
        New parameters from statistics summed over all chunks.

    Optional
    --------
    log_prior(params) -> float
        Log prior density for MAP-EM (default 0: maximum likelihood).
    n_samples(stats) -> float
        Total (weighted) number of samples in ``stats``; ``tol`` is per sample when present.
    flatten(params) -> 1-D array, unflatten(vector, params) -> params
        Coordinates in an unconstrained space (log-weights, Cholesky factors, …) for SQUAREM.
    e_step(params, chunk, inverse_temperature=β)
        Accepting this keyword enables deterministic annealing: posteriors ∝ (joint density)^β.
    prepare(chunk) -> list of chunks
        Indexes an in-memory chunk once per fit (e.g. sorts rows by their pattern of missing
        values); E-steps then receive the chunks it returns, which must hold the same rows.
        Data streamed by a custom re-iterable is passed through unprepared.
    params_converged(previous_params, params) -> bool
        A second convergence test, on the parameters: when present, a start has converged only
        when the objective test (``tol``) passes *and* this returns True for the last step
        (e.g. no mixing weight moved by more than a tolerance).

    Parameters may carry an ``events`` attribute (a tuple of strings) saying what the M-step had to
    do (e.g. re-seed a collapsed component); the engine records them with the iteration number.
    """

    def init_params(self, data: Any, rng: np.random.Generator) -> Any: ...

    def e_step(self, params: Any, chunk: Any) -> tuple[Any, float]: ...

    def m_step(self, stats: Any, params: Any) -> Any: ...


def add_statistics(a: Any, b: Any) -> Any:
    """Add two sufficient statistics: tuples (and NamedTuples) and dicts field by field,
    anything else with ``+``."""
    if isinstance(a, tuple):
        return type(a)(*map(add_statistics, a, b)) if hasattr(a, "_fields") else tuple(
            map(add_statistics, a, b))
    if isinstance(a, dict):
        return {key: add_statistics(a[key], b[key]) for key in a}
    return a + b


def scale_statistics(stats: Any, factor: float) -> Any:
    """Statistics with every row weight multiplied by ``factor``: tuples (and NamedTuples) and
    dicts field by field, objects with a ``scaled(factor)`` method by it, anything else with
    ``*`` (used by online EM to average statistics)."""
    if hasattr(stats, "scaled"):
        return stats.scaled(factor)
    if isinstance(stats, tuple):
        scaled = [scale_statistics(value, factor) for value in stats]
        return type(stats)(*scaled) if hasattr(stats, "_fields") else tuple(scaled)
    if isinstance(stats, dict):
        return {key: scale_statistics(value, factor) for key, value in stats.items()}
    return stats * factor


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


@dataclass(frozen=True)
class EMResult:
    """The outcome of :func:`fit_em` (the best restart).

    ``history`` holds the objective (log-likelihood + log prior) at every evaluated point of the
    best restart, the starting point first; ``decreases`` lists (iteration, amount) for every drop
    of the objective beyond round-off, ``events`` (iteration, message) for what the M-steps
    reported. ``remaining_gain`` is the estimated rise of the objective still to come when the
    fit stopped (0 when converged, ``inf`` when the objective was not yet converging
    geometrically; see :func:`remaining_gain`).
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
    root of its own precision, so parameters to 1e-6 need this test.

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

    def record(self, objective: float, *, compare: bool = True, judge: bool = True,
               em_step: accelerate.EMStep | None = None,
               param_step: float | None = None) -> bool:
        """Add one objective; return True when the fit has converged.

        ``compare=False`` skips the decrease check against the previous point (a re-seeded
        component or an extrapolation accepted with slack may lower the objective);
        ``judge=False`` records a point that cannot end the fit (annealing, the middle of a
        SQUAREM cycle). ``em_step``, from an accelerated step rule, replaces the extrapolation
        from the history, whose rates an accelerated sequence does not follow. ``param_step``
        is the largest change of the unconstrained parameters since the previous point (plain
        EM, when ``xtol`` is set).
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
        if compare and change < -slack:
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
            self.em_rates = [*self.em_rates[-(_RATE_MEMORY - 1):], em_step.rate]
            self.last_gain = em_step_remaining_gain(em_step._replace(rate=max(self.em_rates)),
                                                    objective, self.decrease_rtol)
            change = max(abs(change), em_step.gain)
            rho = math.sqrt(max(self.em_rates))  # the objective converges at ρ², parameters at ρ
            self.last_param_distance = (math.inf if rho >= 1.0 else
                                        em_step.param_step * max(1.0, rho / (1.0 - rho)))
        limit = self.tol * self.n_samples
        if self.xtol is not None and not self.last_param_distance <= self.xtol:
            return False
        # tol = 0 runs all max_iter iterations
        return self.tol > 0 and abs(change) < limit and self.last_gain < limit

    def remaining_gain(self) -> float:
        """Estimated rise of the objective from the last judged point to its limit (inf:
        unknown)."""
        return self.last_gain


def remaining_gain(objectives: Sequence[float], window: int = 6,
                   decrease_rtol: float = 1e-10) -> float:
    """Estimated distance from the last of ``objectives`` to their limit, by Aitken's Δ².

    A linearly converging sequence rises by Δ_t = L_t − L_{t−1} ≈ r·Δ_{t−1}, so what is left is
    Δ_t·r / (1 − r). The rate is measured on sums of two consecutive steps,
    r² ≈ (Δ_t + Δ_{t−1}) / (Δ_{t−2} + Δ_{t−3}), which gives the same estimate on a geometric
    sequence and stays meaningful when steps alternate in size (SQUAREM's EM step and
    extrapolation); of the two pairings in the last ``window`` points the slower rate is used.
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
    if rate >= 1.0:
        return math.inf
    return last * rate / (1.0 - rate)


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


def em_step_remaining_gain(step: accelerate.EMStep, objective: float,
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


# Relative size of objective changes treated as round-off by the convergence test: 16 units in
# the last place (the objective's own rounding error is a few).
_ROUND_OFF = 16 * np.finfo(float).eps
# How many SQUAREM cycles' estimates of EM's rate the monitor keeps (the slowest is used).
_RATE_MEMORY = 32
# How many sizes of plain EM steps in the parameters the monitor keeps (for ``xtol``).
_STEP_MEMORY = 3


class VerboseReporter:
    """A callback that prints the progress of a fit as scikit-learn's mixtures do.

    ``verbose=1`` prints "Initialization <start>" when a start begins, "  Iteration <i>" every
    ``interval`` iterations and whether the start converged; ``verbose=2`` adds the seconds since
    the previous line, the change of the objective per sample, and the final objective per
    sample. Estimators pass their ``verbose`` and ``verbose_interval`` to :func:`fit_em`, which
    adds this reporter to the callbacks, so every model prints the same way. Lines go to
    ``sys.stdout`` as it is when they are printed.
    """

    def __init__(self, verbose: int = 1, interval: int = 10):
        self.verbose = int(verbose)
        self.interval = int(interval)
        self._start_time = self._line_time = time.perf_counter()

    def start_began(self, restart: int) -> None:
        self._start_time = self._line_time = time.perf_counter()
        print(f"Initialization {restart}", file=sys.stdout)

    def __call__(self, info: IterationInfo) -> bool:
        if info.iteration % self.interval == 0:
            if self.verbose >= 2:
                now = time.perf_counter()
                print(f"  Iteration {info.iteration}\t time lapse {now - self._line_time:.5f}s"
                      f"\t ll change {info.change / info.n_samples:.5f}", file=sys.stdout)
                self._line_time = now
            else:
                print(f"  Iteration {info.iteration}", file=sys.stdout)
        return False

    def start_ended(self, restart: int, result: EMResult) -> None:
        outcome = "converged" if result.converged else "did not converge"
        if self.verbose >= 2:
            print(f"Initialization {outcome}. time lapse "
                  f"{time.perf_counter() - self._start_time:.5f}s\t lower bound "
                  f"{result.objective / result.n_samples:.5f}.", file=sys.stdout)
        else:
            print(f"Initialization {outcome}.", file=sys.stdout)


def _notify(callbacks, event: str, *args) -> None:
    """Call ``event`` (e.g. ``start_began``) on every callback that has that method."""
    for callback in callbacks:
        method = getattr(callback, event, None)
        if method is not None:
            method(*args)


def annealing_schedule(start_temperature: float = 2.0, n_steps: int = 10) -> np.ndarray:
    """Inverse temperatures β rising geometrically from 1/start_temperature towards 1
    (exclusive)."""
    if start_temperature <= 1.0 or n_steps < 1:
        raise ParameterError("annealing needs start_temperature > 1 and n_steps >= 1.")
    return start_temperature ** -np.linspace(1.0, 0.0, n_steps, endpoint=False)


def fit_em(
    model: EMModel,
    data: Any,
    *,
    n_init: int = 1,
    max_iter: int = 1000,
    tol: float = 1e-6,
    xtol: float | None = 1e-7,
    random_state: Any = None,
    init: Any = None,
    init_history: Sequence[float] = (),
    accelerate: str | None = "auto",
    annealing: Sequence[float] | float | None = None,
    iter_per_temperature: int = 5,
    callbacks: Sequence[Callable[[IterationInfo], Any]] = (),
    progress: bool = False,
    verbose: int = 0,
    verbose_interval: int = 10,
    decrease_rtol: float = 1e-10,
    warn_not_converged: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    checkpoint_seconds: float | None = None,
    resume: bool = False,
) -> EMResult:
    """Fit ``model`` to ``data`` by EM and return the best of ``n_init`` restarts.

    Parameters
    ----------
    model : EMModel
    data : array, emkit.data.Batch, or a re-iterable collection of them (chunks)
        Chunks are passed to ``model.e_step`` one at a time and their statistics added, so a fit
        on chunks equals the fit on the concatenated data.
    n_init : int
        Number of starts; the one with the highest final objective wins.
    max_iter : int
        Maximum number of passes over the data (E-steps) after the initial one, per start;
        ``EMResult.n_iter`` counts them (with SQUAREM, rejected extrapolations count too).
    tol : float
        Stop when the last change of the objective *and* its estimated remaining rise (see
        :class:`ConvergenceMonitor`), divided by the number of samples, are below ``tol`` (and,
        for a model with a ``params_converged(previous, params)`` method, when that also returns
        True). ``tol=0`` runs ``max_iter`` iterations. The default 1e-6 puts the fit within 1e-6
        of the maximum, relative, wherever the mean log-density has magnitude ≥ 1 nat.
    xtol : float or None, default 1e-7
        Also require the parameters to have converged: the estimated remaining change of the
        model's unconstrained coordinates (``flatten``; logarithms for positive parameters, so
        a relative change) below ``xtol``. Ignored for a model without ``flatten``; None: the
        objective alone (what the estimators use, except ``DirichletMultinomial``). Where the
        likelihood is flat, the objective at 1e-6 pins the parameters only to about 1e-3.
    random_state : None, int, numpy Generator or RandomState
        Seeds the starts; the same value gives the same result bit for bit.
    init : params, optional
        Starting parameters for the first start (warm start); later starts use ``init_params``.
    init_history : sequence of float
        Objectives of the plain EM iterations that led to ``init`` (a warm start continuing
        an earlier fit, without its last point, which this fit evaluates again): the
        convergence test reads them as if this fit had run them, so a fit continued a few
        iterations at a time converges as one long fit does.
    accelerate : {"auto", "squarem", None}
        ``None`` is plain EM; ``"squarem"`` needs ``model.flatten`` and ``model.unflatten``;
        ``"auto"`` (the default) is SQUAREM for a model that has them, plain EM otherwise.
    annealing : float or sequence of float, optional
        Deterministic annealing against poor local maxima: a start temperature T0 > 1 (a geometric
        schedule of 10 temperatures down to 1), or explicit inverse temperatures β in (0, 1).
        Each is used for ``iter_per_temperature`` iterations before ordinary EM at β = 1.
    callbacks : sequence of callables
        Called with an :class:`IterationInfo` after every evaluated point; returning True stops
        the current start. A callback with a ``start_began(restart)`` or
        ``start_ended(restart, result)`` method is also told when each start begins (before its
        initialisation) and ends (with that start's :class:`EMResult`).
    progress : bool
        Show a tqdm progress bar.
    verbose, verbose_interval : int
        Print progress as scikit-learn's mixtures do (see :class:`VerboseReporter`): 0 nothing,
        1 starts and every ``verbose_interval``-th iteration, 2 with times and changes.
    decrease_rtol : float
        Relative size of an objective decrease that counts as a defect rather than round-off.
    warn_not_converged : bool
        Warn with :class:`emkit.errors.ConvergenceWarning` when the best start did not converge.
    checkpoint : path-like, optional
        Write the state of the fit to this file (atomically) every ``checkpoint_every``
        iterations, or every ``checkpoint_seconds`` seconds when given, and after every start
        (see :mod:`emkit.checkpoint`).
    resume : bool
        Continue from ``checkpoint`` if it exists, to the result of an uninterrupted run, bit for
        bit. The data, model and settings must be those of the interrupted fit; with
        ``random_state=None`` the seed is taken from the checkpoint.
    """
    if accelerate == "auto":
        squarem_ready = hasattr(model, "flatten") and hasattr(model, "unflatten")
        accelerate = "squarem" if squarem_ready else None
    _check_arguments(model, n_init, max_iter, tol, accelerate)
    callbacks = tuple(callbacks) + _verbose_callbacks(verbose, verbose_interval)
    if xtol is not None and not (isinstance(xtol, (int, float, np.floating)) and xtol >= 0):
        raise ParameterError(f"xtol must be None or a number >= 0, got {xtol!r}.")
    if not hasattr(model, "flatten"):
        xtol = None  # no coordinates to judge the parameters in
    betas = _inverse_temperatures(model, annealing)
    seed_sequence = _seed_sequence(random_state)
    prepared = _prepared(model, data)
    store = saved = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint, fit_settings(model, n_init, max_iter, tol, accelerate,
                                                    betas, iter_per_temperature, decrease_rtol,
                                                    xtol),
                           checkpoint_every, checkpoint_seconds)
        saved = store.read() if resume else None
    elif resume:
        raise ParameterError("resume=True needs checkpoint=<path of the checkpoint file>.")
    if saved is not None:
        seed_sequence = saved_seed_sequence(saved[0], seed_sequence, random_state, store.path)
    seeds = seed_sequence.spawn(n_init)
    progress_of = FitProgress(store, seed_sequence)
    best: EMResult | None = None
    restart_objectives: list[float] = []
    first_restart = 0
    if saved is not None:
        first_restart, restart_objectives, best = progress_of.finished_starts(
            saved, lambda: init if init is not None else model.init_params(
                data, np.random.default_rng(seeds[0])))
    for restart in range(first_restart, n_init):
        rng = np.random.default_rng(seeds[restart])
        _notify(callbacks, "start_began", restart)
        start = init if (init is not None and restart == 0) else model.init_params(data, rng)
        resume_from = None
        if saved is not None and restart == first_restart:
            resume_from = progress_of.current_start(saved, start, rng)
        lead_in = list(init_history) if (init is not None and restart == 0) else []
        result = _run_one(model, prepared, start, restart, rng, max_iter, (tol, xtol), accelerate,
                          betas,
                          iter_per_temperature, callbacks, progress, decrease_rtol, resume_from,
                          progress_of.saver(restart, restart_objectives, best), lead_in)
        _notify(callbacks, "start_ended", restart, result)
        restart_objectives.append(result.objective)
        if best is None or result.objective > best.objective:
            best = result
        progress_of.save(restart + 1, restart_objectives, best)
    assert best is not None
    if best.stats is None:  # the best start finished before a resume: recompute its statistics
        best = _replace(best, stats=_statistics(model, prepared, best.params))
    best = _replace(best, restart_objectives=tuple(restart_objectives))
    if warn_not_converged and not (best.converged or best.stopped_by_callback) and tol > 0:
        warnings.warn(not_converged_message(best, max_iter, tol, n_init), ConvergenceWarning,
                      stacklevel=2)
    return best


def not_converged_message(result: EMResult, max_iter: int, tol: float, n_init: int = 1) -> str:
    """What a ConvergenceWarning says: the iterations spent and the estimated gain left."""
    gain = result.remaining_gain
    if math.isfinite(gain):
        left = (f"the objective was still rising: an estimated {gain:.3g} more "
                f"({gain / result.n_samples:.3g} per sample, tol {tol:g})")
    else:
        left = "the objective was not yet converging steadily (the remaining gain is unknown)"
    starts = f" (best of {n_init} starts)" if n_init > 1 else ""
    return (f"EM did not converge in {max_iter} iterations{starts}: {left}; raise max_iter or "
            "tol, or use accelerate='squarem'.")


def _prepared(model: EMModel, data: Any) -> Any:
    """The chunks the E-steps see: ``model.prepare`` applied once to data held in memory (one
    chunk, or a list or tuple of them); other sources unchanged."""
    prepare = getattr(model, "prepare", None)
    if prepare is None or not in_memory(data):
        return data
    return [piece for chunk in iter_chunks(data) for piece in prepare(chunk)]


def e_step_sum(model, data, params, inverse_temperature: float = 1.0) -> tuple[Any, float]:
    """The statistics and log-likelihood of ``params`` summed over all chunks of ``data``. A
    source with a ``map_e_step`` method runs the E-steps itself (e.g. on a Dask cluster)."""
    if hasattr(data, "map_e_step"):
        return data.map_e_step(model, params, inverse_temperature)
    total, log_likelihood = None, 0.0
    for chunk in iter_chunks(data):
        if inverse_temperature == 1.0:
            stats, chunk_ll = model.e_step(params, chunk)
        else:
            stats, chunk_ll = model.e_step(params, chunk, inverse_temperature=inverse_temperature)
        total = stats if total is None else add_statistics(total, stats)
        log_likelihood += float(chunk_ll)
    return total, log_likelihood


def _statistics(model, data, params) -> Any:
    """The statistics of ``params`` (one more E-step, for bookkeeping)."""
    return e_step_sum(model, data, params)[0]


def _run_one(model, data, start, restart, rng, max_iter, tolerances, accelerate_name, betas,
             iter_per_temperature, callbacks, progress, decrease_rtol, resume=None,
             save_progress=None, lead_in=()) -> EMResult:
    tol, xtol = tolerances
    counter = {"passes": 0}
    log_prior = getattr(model, "log_prior", None)
    params_converged = getattr(model, "params_converged", None)

    def evaluate(params, beta: float = 1.0) -> EvaluatedPoint:
        if counter["passes"] > max_iter:
            raise _BudgetSpent
        counter["passes"] += 1
        total, log_likelihood = e_step_sum(model, data, params, beta)
        objective = log_likelihood + (float(log_prior(params)) if log_prior else 0.0)
        return EvaluatedPoint(params, objective, log_likelihood, total)

    schedule = [b for b in betas for _ in range(iter_per_temperature)]
    rule_state = {"boundary": True, "step_max": 1.0}
    n_annealing = len(schedule)  # points 0 .. n_annealing - 1 are tempered; never judged
    if resume is None:
        point = evaluate(start, schedule[0] if schedule else 1.0)
        n_samples = float(model.n_samples(point.stats)) if hasattr(model, "n_samples") else 1.0
        monitor = ConvergenceMonitor(tol, max(n_samples, 1e-300), decrease_rtol, restart,
                                     first_judged=n_annealing, xtol=xtol,
                                     lead_in=[] if n_annealing else list(lead_in))
        monitor.record(point.objective)
        events: list[tuple[int, str]] = []
        _collect_events(point.params, 0, events)
        best_point = point
    else:  # checkpoints are written after annealing, at the boundary of a step rule's cycle
        schedule = []
        point = evaluate(resume.params)
        counter["passes"] = resume.passes
        n_samples = resume.check_samples(
            float(model.n_samples(point.stats)) if hasattr(model, "n_samples") else 1.0)
        monitor = ConvergenceMonitor(tol, max(n_samples, 1e-300), decrease_rtol, restart,
                                     list(resume.history), list(resume.decreases),
                                     first_judged=n_annealing, em_rates=list(resume.em_rates),
                                     xtol=xtol, param_steps=list(resume.param_steps))
        events = list(resume.events)
        best_point = point if resume.best is None else resume.best
        rule_state["step_max"] = resume.step_max

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc=f"EM start {restart + 1}", leave=False, unit="it")

    jitter = _symmetry_breaker(model, rng)

    def points():
        nonlocal point
        # Annealing: plain EM steps whose E-step uses the next temperature (1 after the last).
        # At a high temperature components can merge into identical copies that EM never
        # separates again, so each new temperature starts from slightly jittered parameters.
        previous_beta = schedule[0] if schedule else 1.0
        for beta in schedule[1:] + [1.0] if schedule else []:
            params = model.m_step(point.stats, point.params)
            if beta != previous_beta:
                params, previous_beta = jitter(params), beta
            point = evaluate(params, beta)
            yield point, True
        if accelerate_name == "squarem":
            rule = accelerate.squarem(evaluate, model.m_step, point, model.flatten,
                                      model.unflatten, state=rule_state,
                                      slack=float(getattr(model, "squarem_slack", 0.0)))
        else:
            rule = accelerate.plain_em(evaluate, model.m_step, point)
        for p in rule:
            yield p, False

    converged = stopped = False
    generator = points()
    try:
        while True:
            previous, previous_params = monitor.history[-1], point.params
            try:
                point, annealing = next(generator)
            except _BudgetSpent:  # max_iter passes over the data are done
                break
            # Annealing points, M-steps that reported events (a re-seeded component) and
            # extrapolations accepted with slack are not compared with the point before: the
            # objective need not rise there. Only annealing points cannot end the fit (a state
            # kept unchanged at every step is an event too, and such a fit must still converge).
            reseeded = bool(getattr(point.params, "events", ()))
            unchecked = annealing or reseeded or rule_state.get("extrapolated", False)
            mid_cycle = not (annealing or rule_state["boundary"])
            em_step = None if annealing else rule_state.get("em_step")
            param_step = None
            if xtol is not None and em_step is None and not annealing:
                vector = model.flatten(point.params)
                param_step = float(np.max(np.abs(vector - model.flatten(previous_params)),
                                          initial=0.0))
            converged = monitor.record(point.objective, compare=not unchecked,
                                       judge=not (annealing or mid_cycle), em_step=em_step,
                                       param_step=param_step)
            if converged and params_converged is not None:
                converged = bool(params_converged(previous_params, point.params))
            iteration = len(monitor.history) - 1
            _collect_events(point.params, iteration, events)
            if annealing or reseeded or point.objective >= best_point.objective:
                best_point = point
            if bar is not None:
                bar.update(1)
                bar.set_postfix(objective=f"{point.objective:.6g}")
            info = IterationInfo(restart, iteration, point.objective, point.objective - previous,
                                 point.params, annealing, n_samples)
            stopped = any([bool(cb(info)) for cb in callbacks])
            if converged or stopped:
                break
            if save_progress is not None and not annealing and rule_state["boundary"]:
                save_progress(iteration, point, best_point, counter["passes"], n_samples,
                              monitor, events, rule_state["step_max"], rng)
    finally:
        generator.close()
        if bar is not None:
            bar.close()
    final = point if converged else best_point
    if final.stats is None:  # a best point restored from a checkpoint
        final = final._replace(stats=_statistics(model, data, final.params))
    return EMResult(
        params=final.params,
        objective=final.objective,
        log_likelihood=final.log_likelihood,
        n_samples=n_samples,
        converged=converged,
        stopped_by_callback=stopped and not converged,
        n_iter=counter["passes"] - 1,
        history=np.asarray(monitor.history),
        remaining_gain=0.0 if converged else monitor.remaining_gain(),
        stats=final.stats,
        best_restart=restart,
        restart_objectives=(),
        decreases=tuple(monitor.decreases),
        events=tuple(events),
    )


class _BudgetSpent(Exception):
    """Raised by the evaluation that would exceed ``max_iter`` passes over the data."""


def _symmetry_breaker(model, rng, scale: float = 1e-2):
    """Params → params with a small relative jitter in the model's unconstrained coordinates
    (identity when the model has none, or when the jittered point is invalid)."""
    if not (hasattr(model, "flatten") and hasattr(model, "unflatten")):
        return lambda params: params

    def jitter(params):
        vector = model.flatten(params)
        noisy = vector + scale * (np.abs(vector) + 1.0) * rng.standard_normal(vector.shape)
        try:
            return model.unflatten(noisy, params)
        except (ValueError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError):
            return params

    return jitter


def _collect_events(params, iteration, events) -> None:
    for message in getattr(params, "events", ()) or ():
        events.append((iteration, str(message)))


def _replace(result: EMResult, **changes) -> EMResult:
    from dataclasses import replace

    return replace(result, **changes)


def _check_arguments(model, n_init, max_iter, tol, accelerate_name) -> None:
    for name in ("init_params", "e_step", "m_step"):
        if not callable(getattr(model, name, None)):
            raise ParameterError(
                f"{type(model).__name__} is not an EM model: it has no {name}() method "
                "(see emkit.engine.EMModel)."
            )
    if not (isinstance(n_init, (int, np.integer)) and n_init >= 1):
        raise ParameterError(f"n_init must be an integer >= 1, got {n_init!r}.")
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 0):
        raise ParameterError(f"max_iter must be an integer >= 0, got {max_iter!r}.")
    if not (isinstance(tol, (int, float, np.floating)) and tol >= 0):
        raise ParameterError(f"tol must be a number >= 0, got {tol!r}.")
    if accelerate_name not in (None, "squarem"):
        raise ParameterError(
            f"accelerate must be None (plain EM), 'squarem' or 'auto', got {accelerate_name!r}.")
    if accelerate_name == "squarem" and not (hasattr(model, "flatten")
                                             and hasattr(model, "unflatten")):
        raise ParameterError(
            f"accelerate='squarem' needs {type(model).__name__}.flatten() and .unflatten() "
            "(parameters in an unconstrained space); use accelerate=None or add them."
        )


def _verbose_callbacks(verbose, interval) -> tuple[VerboseReporter, ...]:
    """The reporter that ``verbose`` asks for, checked (none for 0 or False)."""
    if not isinstance(verbose, (int, np.integer)) or verbose < 0:
        raise ParameterError(f"verbose must be an integer >= 0 (or a bool), got {verbose!r}.")
    if not isinstance(interval, (int, np.integer)) or isinstance(interval, bool) or interval < 1:
        raise ParameterError(f"verbose_interval must be an integer >= 1, got {interval!r}.")
    return (VerboseReporter(int(verbose), int(interval)),) if verbose else ()


def _inverse_temperatures(model, annealing) -> list[float]:
    if annealing is None:
        return []
    if isinstance(annealing, (int, float, np.floating)):
        betas = annealing_schedule(float(annealing))
    else:
        betas = np.asarray(annealing, dtype=float).ravel()
    if betas.size == 0 or np.any(~np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas > 1):
        raise ParameterError(
            "annealing must be a start temperature > 1 or inverse temperatures in (0, 1].")
    if "inverse_temperature" not in inspect.signature(model.e_step).parameters:
        raise ParameterError(
            f"{type(model).__name__}.e_step does not accept inverse_temperature, so it cannot "
            "be annealed; use annealing=None."
        )
    return [float(b) for b in betas]


def _seed_sequence(random_state: Any) -> np.random.SeedSequence:
    """One SeedSequence from any of the random_state forms users pass."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, (int, np.integer)):
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(0, 2**31 - 1)))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(0, 2**63 - 1)))
    raise ParameterError(
        f"random_state must be None, an int, a numpy Generator or RandomState, got "
        f"{type(random_state).__name__}."
    )


__all__ = [
    "EMModel",
    "EMResult",
    "IterationInfo",
    "ConvergenceMonitor",
    "VerboseReporter",
    "add_statistics",
    "annealing_schedule",
    "fit_em",
]
