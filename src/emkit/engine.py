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
    reported.
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


@dataclass
class ConvergenceMonitor:
    """Records the objective; says when the per-sample change is below ``tol``.

    A decrease larger than ``decrease_rtol`` (relative to the objective's size) cannot happen in
    exact EM: it is recorded and warned about, and never counted as convergence. A non-finite
    objective raises :class:`emkit.errors.NumericalError`.
    """

    tol: float
    n_samples: float = 1.0
    decrease_rtol: float = 1e-10
    restart: int = 0
    history: list[float] = field(default_factory=list)
    decreases: list[tuple[int, float]] = field(default_factory=list)

    def record(self, objective: float, *, check: bool = True) -> bool:
        """Add one objective; return True when the fit has converged."""
        iteration = len(self.history)
        if not math.isfinite(objective):
            raise NumericalError(
                f"the EM objective became {objective} at iteration {iteration} "
                f"(restart {self.restart}): the data or the starting point give a density of zero "
                "or overflow; check the data for extreme values, raise the regularisation "
                "(e.g. reg_covar) or use another initialisation."
            )
        self.history.append(objective)
        if not check or iteration == 0:
            return False  # convergence needs two comparable points in a row
        change = objective - self.history[-2]
        slack = self.decrease_rtol * max(1.0, abs(objective))
        if change < -slack:
            self.decreases.append((iteration, -change))
            warnings.warn(
                f"EM objective decreased by {-change:.3g} at iteration {iteration} "
                f"(restart {self.restart}); exact EM never does this, so a model's E- or M-step "
                "is inexact or buggy.",
                LikelihoodDecreaseWarning,
                stacklevel=4,
            )
            return False
        return abs(change) / self.n_samples < self.tol


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
    max_iter: int = 100,
    tol: float = 1e-3,
    random_state: Any = None,
    init: Any = None,
    accelerate: str | None = None,
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
        Stop when the change of the objective divided by the number of samples is below ``tol``
        (and, for a model with a ``params_converged(previous, params)`` method, when that also
        returns True: convergence judged on the objective and on the parameters).
    random_state : None, int, numpy Generator or RandomState
        Seeds the starts; the same value gives the same result bit for bit.
    init : params, optional
        Starting parameters for the first start (warm start); later starts use ``init_params``.
    accelerate : {None, "squarem"}
        ``None`` is plain EM; ``"squarem"`` needs ``model.flatten`` and ``model.unflatten``.
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
    _check_arguments(model, n_init, max_iter, tol, accelerate)
    callbacks = tuple(callbacks) + _verbose_callbacks(verbose, verbose_interval)
    betas = _inverse_temperatures(model, annealing)
    seed_sequence = _seed_sequence(random_state)
    prepared = _prepared(model, data)
    store = saved = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint, fit_settings(model, n_init, max_iter, tol, accelerate,
                                                    betas, iter_per_temperature, decrease_rtol),
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
        result = _run_one(model, prepared, start, restart, rng, max_iter, tol, accelerate, betas,
                          iter_per_temperature, callbacks, progress, decrease_rtol, resume_from,
                          progress_of.saver(restart, restart_objectives, best))
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
        warnings.warn(
            f"EM did not converge in {max_iter} iterations (best of {n_init} starts); raise "
            "max_iter or tol, or try accelerate='squarem'.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return best


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


def _run_one(model, data, start, restart, rng, max_iter, tol, accelerate_name, betas,
             iter_per_temperature, callbacks, progress, decrease_rtol, resume=None,
             save_progress=None) -> EMResult:
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
    if resume is None:
        point = evaluate(start, schedule[0] if schedule else 1.0)
        n_samples = float(model.n_samples(point.stats)) if hasattr(model, "n_samples") else 1.0
        monitor = ConvergenceMonitor(tol, max(n_samples, 1e-300), decrease_rtol, restart)
        monitor.record(point.objective, check=False)
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
                                     list(resume.history), list(resume.decreases))
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
            # Annealing points, re-seeded components (params with events) and extrapolations
            # accepted with slack are compared with nothing: the objective need not rise there.
            reseeded = bool(getattr(point.params, "events", ()))
            unchecked = annealing or reseeded or rule_state.get("extrapolated", False)
            converged = monitor.record(point.objective, check=not unchecked)
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
            f"accelerate must be None (plain EM) or 'squarem', got {accelerate_name!r}.")
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
