"""Checkpoints of a running fit, so that a fit killed half-way can resume where it stopped.

``fit_em(..., checkpoint=path)`` writes the state of the fit to ``path`` every few iterations and
after every start; ``fit_em(..., checkpoint=path, resume=True)`` continues from it, to the result
an uninterrupted run gives, bit for bit. That works because a fit is a deterministic function of
its state at an iteration boundary, a :class:`emkit.core.results.FitState`: the current parameters
(their E-step is recomputed), the monitor's memory, the random generator's state, the step
rule's state (SQUAREM's step bound), and what the finished starts gave. A checkpoint is the
encoding of that value (:func:`encode_fit_state`, :func:`decode_fit_state`); the engine builds it
and reads it back, and this module knows nothing of the loop itself.

The layout (schema 1) is the one written before the state was typed, so older checkpoints
resume (``tests/data/checkpoints`` holds two such files).

The file is a ``.npz`` archive (a zip of ``.npy`` arrays) written atomically: a crash during a
write leaves the previous checkpoint. Its ``state`` member is UTF-8 JSON; floats are stored as
``float.hex`` strings so that they survive exactly. It is read with ``allow_pickle=False`` and
parameters are rebuilt on a template made by the model (never from class names in the file),
so reading a checkpoint cannot run code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from emkit import __version__
from emkit.core.atomic import write_atomically
from emkit.core.options import FitOptions
from emkit.core.results import (
    EMResult,
    EvaluatedPoint,
    FitState,
    MonitorState,
    StartState,
    StepRuleState,
)
from emkit.errors import ModelFileError

FORMAT_NAME = "emkit-checkpoint"
SCHEMA_VERSION = 1
_STATE = "state"


# ---------------------------------------------------------------------------- exact numbers
def exact(value: float) -> str:
    """A float as text that reads back to the same bits (NaN and infinities included)."""
    return float(value).hex()


def inexact(text: str) -> float:
    return float.fromhex(text)


# ---------------------------------------------------------------------------- parameter trees
def encode_tree(value: Any, arrays: dict[str, np.ndarray], name: str) -> Any:
    """A JSON node for ``value`` (NamedTuples, dataclasses, tuples, lists, str-keyed dicts,
    arrays, numbers, strings, None); arrays go into ``arrays`` under names starting with
    ``name``."""
    if isinstance(value, np.ndarray):
        key = f"{name}_{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {"fields": {field: encode_tree(getattr(value, field), arrays, name)
                           for field in value._fields}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"fields": {field.name: encode_tree(getattr(value, field.name), arrays, name)
                           for field in dataclasses.fields(value)}}
    if isinstance(value, (tuple, list)):
        return {"tuple" if isinstance(value, tuple) else "list":
                [encode_tree(item, arrays, name) for item in value]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("only dicts with string keys can be checkpointed")
        return {"dict": {key: encode_tree(item, arrays, name) for key, item in value.items()}}
    if isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)}
    if isinstance(value, (int, np.integer)):
        return {"int": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"float": exact(value)}
    if isinstance(value, str) or value is None:
        return {"str": value}
    raise TypeError(f"cannot checkpoint a {type(value).__name__} inside the parameters")


def decode_tree(node: Any, arrays: dict[str, np.ndarray], template: Any) -> Any:
    """The value that :func:`encode_tree` encoded as ``node``. NamedTuples and dataclasses take
    their class from ``template`` (parameters the model made), and arrays must match the
    template's shapes and dtypes; anything else raises ValueError."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError("malformed parameter tree")
    (kind, content), = node.items()
    if kind == "array":
        array = arrays[content]
        if isinstance(template, np.ndarray) and (array.shape != template.shape
                                                 or array.dtype != template.dtype):
            raise ValueError(f"an array of shape {array.shape} ({array.dtype}) where the model "
                             f"has {template.shape} ({template.dtype})")
        return array
    if kind == "fields":
        if isinstance(template, tuple) and hasattr(template, "_fields"):
            names = list(template._fields)
        elif dataclasses.is_dataclass(template) and not isinstance(template, type):
            names = [field.name for field in dataclasses.fields(template)]
        else:
            raise ValueError(f"parameters with fields where the model has a "
                             f"{type(template).__name__}")
        if sorted(names) != sorted(content):
            raise ValueError(f"fields {sorted(content)} where the model has {sorted(names)}")
        values = {key: decode_tree(content[key], arrays, getattr(template, key))
                  for key in names}
        if isinstance(template, tuple):
            return type(template)(**values)
        return dataclasses.replace(template, **values)
    if kind in ("tuple", "list"):
        items = list(template) if isinstance(template, (tuple, list)) else []
        decoded = [decode_tree(item, arrays, items[i] if i < len(items) else None)
                   for i, item in enumerate(content)]
        return tuple(decoded) if kind == "tuple" else decoded
    if kind == "dict":
        items = template if isinstance(template, dict) else {}
        return {key: decode_tree(item, arrays, items.get(key)) for key, item in content.items()}
    if kind == "float":
        return inexact(content)
    if kind in ("bool", "int", "str"):
        return content
    raise ValueError(f"unknown node kind {kind!r}")


# ---------------------------------------------------------------------------- the file
class Checkpoint:
    """Where and how often a fit writes its state.

    Parameters
    ----------
    path : path-like
        The checkpoint file (conventionally ``.npz``); overwritten atomically.
    settings : dict
        What the fit was asked to do (model, n_init, max_iter, …); a checkpoint resumes only a
        fit with the same settings.
    every : int
        Write at most every ``every`` iterations …
    seconds : float or None
        … or, when given, as soon as this many seconds passed since the last write.
    """

    def __init__(self, path: str | os.PathLike, settings: dict, every: int = 10,
                 seconds: float | None = None):
        self.path = os.fspath(path)
        self.settings = settings
        self.every = max(1, int(every))
        self.seconds = seconds
        self._last_iteration = 0
        self._last_time = time.monotonic()

    def due(self, iteration: int) -> bool:
        """Whether a checkpoint should be written after ``iteration``."""
        if iteration - self._last_iteration >= self.every:
            return True
        return self.seconds is not None and time.monotonic() - self._last_time >= self.seconds

    def write(self, state: dict, trees: dict[str, Any], arrays: dict[str, np.ndarray],
              iteration: int = 0) -> None:
        """Write ``state`` (JSON-safe), parameter ``trees`` and named ``arrays`` atomically."""
        members = dict(arrays)
        state = dict(state, format=FORMAT_NAME, schema_version=SCHEMA_VERSION,
                     emkit_version=__version__, settings=self.settings,
                     trees={name: encode_tree(tree, members, f"tree_{name}")
                            for name, tree in trees.items()})
        text = json.dumps(state, sort_keys=True, allow_nan=False).encode("utf-8")
        members[_STATE] = np.frombuffer(text, dtype=np.uint8)
        try:
            write_atomically(self.path, lambda stream: np.savez(stream, **members))
        except OSError as error:
            raise ModelFileError(f"cannot write the checkpoint {self.path}: "
                                 f"{error.strerror or error}.") from error
        self._last_iteration = iteration
        self._last_time = time.monotonic()

    def save(self, fit: FitState, iteration: int = 0) -> None:
        """Write ``fit`` (see :func:`encode_fit_state`); ``iteration`` is the current start's,
        from which the next write is counted."""
        self.write(*encode_fit_state(fit), iteration)

    def read(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The saved state and arrays, or None when there is no checkpoint yet. Raises
        ModelFileError for a file that is not a checkpoint of this fit."""
        if not os.path.exists(self.path):
            return None
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                members = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            # numpy's own message would suggest allow_pickle=True, which a checkpoint never needs
            raise ModelFileError(f"{self.path} is not a readable emkit checkpoint (not an .npz "
                                 "archive of plain arrays); delete it to start the fit afresh.") \
                from None
        raw = members.pop(_STATE, None)
        try:
            state = json.loads(bytes(raw).decode("utf-8")) if raw is not None else None
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"{self.path}: the checkpoint state is damaged ({error}).") \
                from None
        if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{self.path} is not an emkit checkpoint.")
        if state.get("schema_version") != SCHEMA_VERSION:
            raise ModelFileError(
                f"{self.path} is a checkpoint of schema {state.get('schema_version')!r} "
                f"(emkit {state.get('emkit_version')}); this emkit ({__version__}) reads "
                f"schema {SCHEMA_VERSION}: delete it to start the fit afresh.")
        differences = [key for key in sorted(set(state.get("settings", {})) | set(self.settings))
                       if state.get("settings", {}).get(key) != self.settings.get(key)]
        if differences:
            key = differences[0]
            raise ModelFileError(
                f"{self.path} is a checkpoint of another fit: its {key} is "
                f"{state['settings'].get(key)!r}, this fit's is {self.settings.get(key)!r}. "
                "Resume with the same model and settings, or delete the checkpoint.")
        return state, members


def restore(state: dict, arrays: dict[str, np.ndarray], name: str, template: Any,
            path: str) -> Any:
    """Parameters ``name`` of a checkpoint, rebuilt on the model's ``template``."""
    try:
        return decode_tree(state["trees"][name], arrays, template)
    except (KeyError, ValueError, TypeError) as error:
        raise ModelFileError(f"{path} does not hold parameters of this model ({error}); "
                             "resume with the same model, or delete the checkpoint.") from None


# ---------------------------------------------------------------------------- fit_em's state
def fit_settings(model: Any, options: FitOptions) -> dict:
    """What a checkpoint must agree on to resume a fit: the model's class and the options that
    change the result (``options`` as the engine settled them for the model: ``accelerate``
    "squarem" or None, ``xtol`` None for a model without coordinates)."""
    settings = {"xtol": exact(options.xtol)} if options.xtol is not None else {}
    return {**settings, "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "n_init": int(options.n_init), "max_iter": int(options.max_iter),
            "tol": exact(options.tol), "accelerate": options.accelerate,
            "annealing": [exact(beta) for beta in options.inverse_temperatures()],
            "iter_per_temperature": int(options.iter_per_temperature),
            "decrease_rtol": exact(options.decrease_rtol)}


def encode_fit_state(fit: FitState) -> tuple[dict, dict[str, Any], dict[str, np.ndarray]]:
    """The JSON state, parameter trees and arrays of a checkpoint holding ``fit`` (schema 1)."""
    state: dict[str, Any] = {"restart": int(fit.next_restart), "seed": _encode_seed(fit.seed),
                             "restart_objectives": [exact(o) for o in fit.restart_objectives],
                             "best": None, "current": None}
    trees: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    best = fit.best
    if best is not None:
        state["best"] = {
            "objective": exact(best.objective), "log_likelihood": exact(best.log_likelihood),
            "n_samples": exact(best.n_samples), "converged": bool(best.converged),
            "stopped_by_callback": bool(best.stopped_by_callback),
            "n_iter": int(best.n_iter), "best_restart": int(best.best_restart),
            "decreases": _encode_decreases(best.decreases),
            "events": _encode_events(best.events)}
        trees["best_params"] = best.params
        arrays["best_history"] = np.asarray(best.history, dtype=np.float64)
    current = fit.current
    if current is not None:
        monitor = current.monitor
        state["current"] = {
            "passes": int(current.passes), "n_samples": exact(current.n_samples),
            "step_max": exact(current.rule.step_max), "rng": current.rng_state,
            "decreases": _encode_decreases(monitor.decreases),
            "em_rates": [exact(r) for r in monitor.em_rates],
            "param_steps": [exact(r) for r in monitor.param_steps],
            "events": _encode_events(current.events), "best": None}
        trees["current_params"] = current.params
        if current.best is not None:
            state["current"]["best"] = {"objective": exact(current.best.objective),
                                        "log_likelihood": exact(current.best.log_likelihood)}
            trees["current_best_params"] = current.best.params
        arrays["current_history"] = np.asarray(monitor.history, dtype=np.float64)
    return state, trees, arrays


def decode_fit_state(saved: tuple[dict, dict[str, np.ndarray]], template: Callable[[], Any],
                     path: str) -> FitState:
    """The :class:`FitState` a checkpoint holds (what :meth:`Checkpoint.read` returned).

    Parameters are rebuilt on ``template()``, parameters the model made for these data (called
    only when the checkpoint holds parameters); the best finished start comes without its
    statistics. Raises ModelFileError for a damaged state or parameters of another model.
    """
    state, arrays = saved
    try:
        seed = _decode_seed(state["seed"])
        next_restart = int(state["restart"])
        objectives = tuple(inexact(o) for o in state["restart_objectives"])
        best, current = state["best"], state["current"]
        made: list[Any] = []

        def params(name: str) -> Any:
            if not made:
                made.append(template())
            return restore(state, arrays, name, made[0], path)

        result = None
        if best is not None:
            result = EMResult(
                params=params("best_params"), objective=inexact(best["objective"]),
                log_likelihood=inexact(best["log_likelihood"]),
                n_samples=inexact(best["n_samples"]), converged=bool(best["converged"]),
                n_iter=int(best["n_iter"]), history=arrays["best_history"], stats=None,
                best_restart=int(best["best_restart"]), restart_objectives=(),
                decreases=_decode_decreases(best["decreases"]),
                events=_decode_events(best["events"]),
                stopped_by_callback=bool(best["stopped_by_callback"]))
        start = None
        if current is not None:
            best_point = None
            if current["best"] is not None:
                best_point = EvaluatedPoint(params("current_best_params"),
                                            inexact(current["best"]["objective"]),
                                            inexact(current["best"]["log_likelihood"]), None)
            monitor = MonitorState(
                history=tuple(float(h) for h in arrays["current_history"]),
                decreases=_decode_decreases(current["decreases"]),
                em_rates=tuple(inexact(r) for r in current.get("em_rates", [])),
                param_steps=tuple(inexact(r) for r in current.get("param_steps", [])))
            if not isinstance(current["rng"], dict):
                raise TypeError("the random generator's state is not a mapping")
            start = StartState(
                restart=next_restart, params=params("current_params"),
                passes=int(current["passes"]), n_samples=inexact(current["n_samples"]),
                monitor=monitor, events=_decode_events(current["events"]),
                rule=StepRuleState(inexact(current["step_max"])), rng_state=current["rng"],
                best=best_point)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the checkpoint state is damaged ({error}).") from None
    return FitState(seed, next_restart, objectives, result, start)


def read_seed(saved: tuple[dict, dict[str, np.ndarray]], path: str) -> np.random.SeedSequence:
    """The seeds of the fit a checkpoint (what :meth:`Checkpoint.read` returned) holds."""
    try:
        return _decode_seed(saved[0]["seed"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: the checkpoint's seed is damaged.") from None


def checked_seed(saved: np.random.SeedSequence, seed_sequence: np.random.SeedSequence,
                 random_state: Any, path: str) -> np.random.SeedSequence:
    """The seeds of the interrupted fit: the checkpoint's (``saved``) when ``random_state`` is
    None, else ``seed_sequence``, which must be the same."""
    if random_state is None:
        return saved
    if (_entropy(seed_sequence), tuple(seed_sequence.spawn_key)) != (
            _entropy(saved), tuple(saved.spawn_key)):
        raise ModelFileError(f"{path} was written by a fit with another random_state; resume "
                             "with the same random_state (or None), or delete the checkpoint.")
    return seed_sequence


def _encode_seed(seed_sequence: np.random.SeedSequence) -> dict:
    return {"entropy": _entropy(seed_sequence),
            "spawn_key": [int(k) for k in seed_sequence.spawn_key]}


def _decode_seed(seed: dict) -> np.random.SeedSequence:
    try:
        entropy = seed["entropy"]
        return np.random.SeedSequence([int(e) for e in entropy] if isinstance(entropy, list)
                                      else int(entropy), spawn_key=tuple(seed["spawn_key"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError("the seed is damaged") from None


def _entropy(seed_sequence: np.random.SeedSequence) -> Any:
    entropy = seed_sequence.entropy
    if isinstance(entropy, (int, np.integer)):
        return str(int(entropy))
    return [str(int(e)) for e in entropy]


def _encode_decreases(decreases) -> list:
    return [[int(i), exact(d)] for i, d in decreases]


def _decode_decreases(decreases) -> tuple[tuple[int, float], ...]:
    return tuple((int(i), inexact(d)) for i, d in decreases)


def _encode_events(events) -> list:
    return [[int(i), str(m)] for i, m in events]


def _decode_events(events) -> tuple[tuple[int, str], ...]:
    return tuple((int(i), str(m)) for i, m in events)
