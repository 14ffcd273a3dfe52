"""The one EM loop of emkit: :func:`fit_em`.

A model is three functions around additive sufficient statistics (see ``EMModel``); everything
else — restarts, the convergence monitor, SQUAREM, deterministic annealing, callbacks and the
progress bar — lives here once, so every model gets it for free.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emkit.core.accelerate import Blocks, plain_em, squarem
from emkit.core.checkpoint import (
    Checkpoint,
    checked_seed,
    decode_fit_state,
    fit_settings,
    read_seed,
)
from emkit.core.monitor import (
    ConvergenceMonitor,
    em_step_remaining_gain,
    remaining_distance,
    remaining_gain,
)
from emkit.core.options import FitOptions, annealing_schedule
from emkit.core.results import (
    EMResult,
    EvaluatedPoint,
    FitState,
    IterationInfo,
    RuleStep,
    StartState,
    StepRuleState,
)
from emkit.core.statistics import add_statistics, scale_statistics
from emkit.data.chunks import in_memory, iter_chunks
from emkit.errors import ConvergenceWarning, ModelFileError, ParameterError


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
    block_objectives(point) -> (B,) array, merge_blocks(mask, params_a, params_b) -> params
        For parameters made of B independent blocks (many small fits as one model, as
        :mod:`emkit.models.batched_gaussian`): each block's objective at an evaluated point,
        and parameters taking the blocks of ``params_a`` where ``mask`` is True. ``flatten``
        then returns (B, n) coordinates, one row per block, and SQUAREM steps and accepts
        each block on its own (:class:`emkit.core.accelerate.Blocks`); with
        ``judge_blocks(point, em_steps) -> point`` the model also judges each block's
        convergence from its own SQUAREM cycle; with ``block_bounds(params) -> (B,)`` and
        ``with_block_bounds(params, bounds) -> params`` each block's step bound travels in its
        parameters (a fit stopped at a cycle's end, ``IterationInfo.boundary``, and started
        again from there goes on exactly); with ``merge_evaluated(mask, point, params,
        evaluate) -> point`` a cycle's end point that mixes blocks of the evaluated
        extrapolation and of the EM point costs the E-step of the latter blocks alone.
    e_step(params, chunk, inverse_temperature=β)
        Accepting this keyword enables deterministic annealing: posteriors ∝ (joint density)^β.
    prepare(chunk) -> list of chunks
        Indexes an in-memory chunk once per fit (e.g. sorts rows by their pattern of missing
        values); E-steps then receive the chunks it returns, which must hold the same rows.
        Data streamed by a custom re-iterable is passed through unprepared.
    dtype
        The floating type the E-step computes in (default float64). With float32, parameters
        that bounce at its round-off while the objective is stationary at its resolution meet
        ``xtol`` (see :class:`ConvergenceMonitor`).
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
    options: FitOptions | None = None,
) -> EMResult:
    """Fit ``model`` to ``data`` by EM and return the best of ``n_init`` restarts.

    Parameters
    ----------
    model : EMModel
    data : array, emkit.data.chunks.Batch, or a re-iterable collection of them (chunks)
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
        (see :mod:`emkit.core.checkpoint`).
    resume : bool
        Continue from ``checkpoint`` if it exists, to the result of an uninterrupted run, bit for
        bit. The data, model and settings must be those of the interrupted fit; with
        ``random_state=None`` the seed is taken from the checkpoint.
    options : FitOptions, optional
        All of the above (except ``init`` and ``init_history``) as one checked value
        (:class:`emkit.core.options.FitOptions`); the keywords must then be left at their defaults.
    """
    keywords = dict(n_init=n_init, max_iter=max_iter, tol=tol, xtol=xtol,
                    random_state=random_state, accelerate=accelerate, annealing=annealing,
                    iter_per_temperature=iter_per_temperature, callbacks=callbacks,
                    progress=progress, verbose=verbose, verbose_interval=verbose_interval,
                    decrease_rtol=decrease_rtol, warn_not_converged=warn_not_converged,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                    checkpoint_seconds=checkpoint_seconds, resume=resume)
    options = settled_options(model, _options(options, keywords))
    callbacks = options.callbacks + _verbose_callbacks(options)
    root_seed = seed_sequence(options.random_state)
    prepared = _prepared(model, data)
    store = saved = fit = None
    if options.checkpoint is not None:
        store = Checkpoint(options.checkpoint, fit_settings(model, options),
                           options.checkpoint_every, options.checkpoint_seconds)
        saved = store.read() if options.resume else None
        if saved is not None:
            root_seed = checked_seed(read_seed(saved, store.path), root_seed,
                                         options.random_state, store.path)
    seeds = root_seed.spawn(options.n_init)
    if store is not None and saved is not None:
        # Parameters in the file are rebuilt on parameters the model makes for these data.
        fit = decode_fit_state(saved, lambda: init if init is not None else model.init_params(
            data, np.random.default_rng(seeds[0])), store.path)
    fit = replace(fit, seed=root_seed) if fit is not None else FitState(root_seed)
    best, restart_objectives = fit.best, list(fit.restart_objectives)
    for restart in range(fit.next_restart, options.n_init):
        rng = np.random.default_rng(seeds[restart])
        _notify(callbacks, "start_began", restart)
        start = init if (init is not None and restart == 0) else model.init_params(data, rng)
        resume_from = fit.current if restart == fit.next_restart else None
        if resume_from is not None:
            _restore_generator(rng, resume_from.rng_state, store.path)
        lead_in = list(init_history) if (init is not None and restart == 0) else []
        saver = None if store is None else _Saver(
            store, FitState(root_seed, restart, tuple(restart_objectives), best))
        result = _run_one(model, prepared, options, callbacks, restart, start, rng,
                          resume_from, lead_in, saver)
        _notify(callbacks, "start_ended", restart, result)
        restart_objectives.append(result.objective)
        if best is None or result.objective > best.objective:
            best = result
        if store is not None:
            store.save(FitState(root_seed, restart + 1, tuple(restart_objectives), best))
    assert best is not None
    if best.stats is None:  # the best start finished before a resume: recompute its statistics
        best = replace(best, stats=_statistics(model, prepared, best.params))
    best = replace(best, restart_objectives=tuple(restart_objectives))
    if (options.warn_not_converged and not (best.converged or best.stopped_by_callback)
            and options.tol > 0):
        warnings.warn(not_converged_message(best, options.max_iter, options.tol, options.n_init,
                                            accelerated=options.accelerate == "squarem"),
                      ConvergenceWarning, stacklevel=2)
    return best


def settled_options(model: EMModel, options: FitOptions) -> FitOptions:
    """``options`` settled for ``model``: ``accelerate="auto"`` becomes SQUAREM for a model with
    unconstrained coordinates (``flatten`` and ``unflatten``) and plain EM (None) otherwise;
    ``xtol`` becomes None for a model without ``flatten``. Raises ParameterError when the model
    is not an EM model or cannot do what the options ask (SQUAREM, annealing)."""
    for name in ("init_params", "e_step", "m_step"):
        if not callable(getattr(model, name, None)):
            raise ParameterError(
                f"{type(model).__name__} is not an EM model: it has no {name}() method "
                "(see emkit.core.engine.EMModel)."
            )
    has_coordinates = hasattr(model, "flatten") and hasattr(model, "unflatten")
    accelerate = options.accelerate
    if accelerate == "auto":
        accelerate = "squarem" if has_coordinates else None
    if accelerate == "squarem" and not has_coordinates:
        raise ParameterError(
            f"accelerate='squarem' needs {type(model).__name__}.flatten() and .unflatten() "
            "(parameters in an unconstrained space); use accelerate=None or add them."
        )
    if (options.inverse_temperatures()
            and "inverse_temperature" not in inspect.signature(model.e_step).parameters):
        raise ParameterError(
            f"{type(model).__name__}.e_step does not accept inverse_temperature, so it cannot "
            "be annealed; use annealing=None."
        )
    # without coordinates there is nothing to judge the parameters in
    xtol = options.xtol if hasattr(model, "flatten") else None
    return replace(options, accelerate=accelerate, xtol=xtol)


def _options(options: FitOptions | None, keywords: dict[str, Any]) -> FitOptions:
    """The options of a fit: ``options`` when given (then every keyword must be left at its
    default), else the keywords."""
    if options is None:
        return FitOptions(**keywords)
    if not isinstance(options, FitOptions):
        raise ParameterError(f"options must be an emkit.core.options.FitOptions, got "
                             f"{type(options).__name__}.")
    defaults = FitOptions()
    changed = [name for name, value in keywords.items()
               if not _same(value, getattr(defaults, name))]
    if changed:
        raise ParameterError(f"pass the options either as keywords or as options=FitOptions(...),"
                             f" not both: {', '.join(changed)} given with options.")
    return options


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, tuple):
        return len(value) == 0 and len(default) == 0
    return value is default or (type(value) is type(default) and value == default)


def _restore_generator(rng: np.random.Generator, state: dict, path: str) -> None:
    try:
        rng.bit_generator.state = state
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the checkpoint state is damaged ({error}).") from None


@dataclass
class _Saver:
    """Writes the state of the start in progress, with the finished starts' ``fit``, when the
    checkpoint is due."""

    store: Checkpoint
    fit: FitState

    def due(self, iteration: int) -> bool:
        return self.store.due(iteration)

    def __call__(self, current: StartState, iteration: int) -> None:
        self.store.save(replace(self.fit, current=current), iteration)


def not_converged_message(result: EMResult, max_iter: int, tol: float, n_init: int = 1,
                          accelerated: bool = False) -> str:
    """What a ConvergenceWarning says: the iterations spent and the estimated gain left."""
    gain = result.remaining_gain
    if math.isfinite(gain):
        left = (f"the objective was still rising: an estimated {gain:.3g} more "
                f"({gain / result.n_samples:.3g} per sample, tol {tol:g})")
    else:
        left = "the objective was not yet converging steadily (the remaining gain is unknown)"
    starts = f" (best of {n_init} starts)" if n_init > 1 else ""
    remedy = "raise max_iter or tol" + ("" if accelerated else ", or use accelerate='squarem'")
    return f"EM did not converge in {max_iter} iterations{starts}: {left}; {remedy}."


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


def _run_one(model, data, options: FitOptions, callbacks: tuple, restart: int, start: Any,
             rng: np.random.Generator, resume: StartState | None = None,
             lead_in: Sequence[float] = (), saver: _Saver | None = None) -> EMResult:
    """One start: from ``start`` (or from where ``resume`` stood) until the monitor says it
    converged, a callback stops it or ``options.max_iter`` passes are spent."""
    max_iter, xtol = options.max_iter, options.xtol
    passes = 0
    log_prior = getattr(model, "log_prior", None)
    params_converged = getattr(model, "params_converged", None)

    expected_complete = getattr(model, "expected_complete_log_likelihood", None)
    # How far the latest M-step lowered Q (0.0: not at all, or unknown), asked for only when
    # the objective falls: evaluating Q twice per step costs a small fit a fifth of its time.
    q_shortfall: Callable[[], float] | float = 0.0

    def q_fall(stats, params, new) -> float:
        before, after = expected_complete(stats, params), expected_complete(stats, new)
        return max(0.0, before - after) if before is not None and after is not None else 0.0

    def m_step(stats, params):
        # Generalised EM's inequality: L(new) − L(old) ≥ Q(new) − Q(old). An M-step that is
        # not an exact maximiser (reg_covar's) can lower Q, and L by as much: that decrease
        # is explained, not a defect, so the monitor is told how large it may be.
        nonlocal q_shortfall
        new = model.m_step(stats, params)
        if expected_complete is not None:
            q_shortfall = functools.partial(q_fall, stats, params, new)
        return new

    def evaluate(params, beta: float = 1.0) -> EvaluatedPoint:
        nonlocal passes
        if passes > max_iter:
            raise _BudgetSpent
        passes += 1
        total, log_likelihood = e_step_sum(model, data, params, beta)
        objective = log_likelihood + (float(log_prior(params)) if log_prior else 0.0)
        return EvaluatedPoint(params, objective, log_likelihood, total)

    schedule = [b for b in options.inverse_temperatures()
                for _ in range(options.iter_per_temperature)]
    n_annealing = len(schedule)  # points 0 .. n_annealing - 1 are tempered; never judged
    rule_state = StepRuleState()
    if resume is None:
        point = evaluate(start, schedule[0] if schedule else 1.0)
        n_samples = _sample_count(model, point.stats)
        monitor = ConvergenceMonitor(options.tol, max(n_samples, 1e-300), options.decrease_rtol,
                                     restart, first_judged=n_annealing, xtol=xtol,
                                     lead_in=[] if n_annealing else list(lead_in),
                                     working_eps=working_eps(model, start))
        monitor.record(point.objective)
        events: list[tuple[int, str]] = []
        _collect_events(point.params, 0, events)
        best_point = point
    else:  # checkpoints are written after annealing, at the boundary of a step rule's cycle
        schedule = []
        point = evaluate(resume.params)
        passes = resume.passes
        n_samples = _sample_count(model, point.stats)
        if abs(n_samples - resume.n_samples) > 1e-9 * max(1.0, abs(resume.n_samples)):
            raise ModelFileError(
                f"{saver.store.path if saver else 'the checkpoint'} was written for other data "
                f"({resume.n_samples:g} samples, these data have {n_samples:g}); resume with "
                "the same data, or delete it.")
        n_samples = resume.n_samples
        monitor = ConvergenceMonitor(options.tol, max(n_samples, 1e-300), options.decrease_rtol,
                                     restart, first_judged=n_annealing, xtol=xtol,
                                     working_eps=working_eps(model, resume.params))
        monitor.restore(resume.monitor)
        events = list(resume.events)
        best_point = point if resume.best is None else resume.best
        rule_state = resume.rule

    bar = None
    if options.progress:
        from tqdm.auto import tqdm  # an optional dependency, loaded only when asked for

        bar = tqdm(total=max_iter, desc=f"EM start {restart + 1}", leave=False, unit="it")

    jitter = _symmetry_breaker(model, rng)

    def steps():
        nonlocal point
        # Annealing: plain EM steps whose E-step uses the next temperature (1 after the last).
        # At a high temperature components can merge into identical copies that EM never
        # separates again, so each new temperature starts from slightly jittered parameters.
        previous_beta = schedule[0] if schedule else 1.0
        for beta in schedule[1:] + [1.0] if schedule else []:
            params = m_step(point.stats, point.params)
            if beta != previous_beta:
                params, previous_beta = jitter(params), beta
            point = evaluate(params, beta)
            yield RuleStep(point, state=rule_state), True
        if options.accelerate == "squarem":
            rule = squarem(evaluate, m_step, point, model.flatten, model.unflatten,
                           state=rule_state, slack=float(getattr(model, "squarem_slack", 0.0)),
                           blocks=_blocks(model))
        else:
            rule = plain_em(evaluate, m_step, point, rule_state)
        for step in rule:
            yield step, False

    converged = stopped = False
    generator = steps()
    try:
        while True:
            previous, previous_params = monitor.history[-1], point.params
            try:
                step, annealing = next(generator)
            except _BudgetSpent:  # max_iter passes over the data are done
                break
            point = step.point
            # Annealing points, M-steps that reported events (a re-seeded component) and
            # extrapolations accepted with slack are not compared with the point before: the
            # objective need not rise there. Only annealing points cannot end the fit (a state
            # kept unchanged at every step is an event too, and such a fit must still converge).
            reseeded = bool(getattr(point.params, "events", ()))
            unchecked = annealing or reseeded or step.extrapolated
            mid_cycle = not (annealing or step.boundary)
            em_step = None if annealing else step.em_step
            param_step = None
            if xtol is not None and em_step is None and not annealing:
                vector = model.flatten(point.params)
                param_step = float(np.max(np.abs(vector - model.flatten(previous_params)),
                                          initial=0.0))
            converged = monitor.record(point.objective, compare=not unchecked,
                                       judge=not (annealing or mid_cycle), em_step=em_step,
                                       param_step=param_step, explained_decrease=q_shortfall)
            q_shortfall = 0.0
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
                                 point.params, annealing, n_samples, step.boundary)
            stopped = any([bool(cb(info)) for cb in callbacks])
            if converged or stopped:
                break
            if (saver is not None and not annealing and step.boundary
                    and saver.due(iteration)):
                saver(StartState(
                    restart, point.params, passes, n_samples, monitor.state(), tuple(events),
                    step.state, rng.bit_generator.state,
                    None if best_point is point else best_point._replace(stats=None)),
                    iteration)
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
        n_iter=passes - 1,
        history=np.asarray(monitor.history),
        remaining_gain=0.0 if converged else monitor.remaining_gain(),
        stats=final.stats,
        best_restart=restart,
        restart_objectives=(),
        decreases=tuple(monitor.decreases),
        events=tuple(events),
    )


def _blocks(model: Any) -> Blocks | None:
    """The model's independent blocks for SQUAREM, if it declares them (see :class:`EMModel`)."""
    if not hasattr(model, "block_objectives"):
        return None
    return Blocks(model.block_objectives, model.merge_blocks, getattr(model, "judge_blocks", None),
                  getattr(model, "block_bounds", None), getattr(model, "with_block_bounds", None),
                  getattr(model, "merge_evaluated", None))


def working_eps(model: Any, params: Any) -> float:
    """The machine epsilon of the coarsest floating type the model computes in: its ``dtype``
    attribute (e.g. ``GaussianMixtureModel(dtype=np.float32)``, which keeps float64 parameters)
    and the arrays and numbers in ``params`` (NamedTuples, dataclasses, tuples, lists and dicts
    are searched). float64 when neither says otherwise."""
    eps = float(np.finfo(np.float64).eps)
    try:
        dtype = np.dtype(getattr(model, "dtype", np.float64))
    except TypeError:
        dtype = np.dtype(np.float64)
    if np.issubdtype(dtype, np.inexact):
        eps = max(eps, float(np.finfo(dtype).eps))
    stack = [params]
    while stack:
        value = stack.pop()
        if isinstance(value, (np.ndarray, np.floating)):
            if np.issubdtype(value.dtype, np.inexact):
                eps = max(eps, float(np.finfo(value.dtype).eps))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (tuple, list)):
            stack.extend(value)
        elif is_dataclass(value) and not isinstance(value, type):
            stack.extend(getattr(value, f.name) for f in fields(value))
    return eps


def _sample_count(model, stats) -> float:
    """The objective's number of samples (``tol`` is per sample); 1 for a model that does not
    say."""
    return float(model.n_samples(stats)) if hasattr(model, "n_samples") else 1.0


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


def _verbose_callbacks(options: FitOptions) -> tuple[VerboseReporter, ...]:
    """The reporter that ``options.verbose`` asks for (none for 0 or False)."""
    if not options.verbose:
        return ()
    return (VerboseReporter(int(options.verbose), int(options.verbose_interval)),)


def seed_sequence(random_state: Any) -> np.random.SeedSequence:
    """One SeedSequence from any random_state form (None, int, SeedSequence, Generator,
    RandomState); a Generator or RandomState is advanced by one draw."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(0, 2**31 - 1)))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(0, 2**63 - 1)))
    raise ParameterError(
        f"random_state must be None, an int >= 0, a numpy Generator or RandomState, got "
        f"{type(random_state).__name__}."
    )


# Names that other modules and users import from here, defined in the loop's own modules.
__all__ = [
    "EMModel",
    "EMResult",
    "IterationInfo",
    "ConvergenceMonitor",
    "FitOptions",
    "VerboseReporter",
    "add_statistics",
    "annealing_schedule",
    "e_step_sum",
    "em_step_remaining_gain",
    "fit_em",
    "not_converged_message",
    "remaining_distance",
    "remaining_gain",
    "scale_statistics",
    "settled_options",
]
