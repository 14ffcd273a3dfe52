"""Checkpoints of a running fit, so that a fit killed half-way can resume where it stopped.

``fit_em(..., checkpoint=path)`` writes the state of the fit to ``path`` every few iterations and
after every start; ``fit_em(..., checkpoint=path, resume=True)`` continues from it, to the result
an uninterrupted run gives, bit for bit. That works because a fit is a deterministic function of
its state at an iteration boundary: the current parameters (their E-step is recomputed), the
monitor's history, the random generator's state, the acceleration's step bound, and what the
finished starts gave.

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
from typing import Any

import numpy as np

from emkit import __version__
from emkit.atomic import write_atomically
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

    def read(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The saved state and arrays, or None when there is no checkpoint yet. Raises
        ModelFileError for a file that is not a checkpoint of this fit."""
        if not os.path.exists(self.path):
            return None
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                members = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ModelFileError(f"{self.path} is not a readable emkit checkpoint ({error}); "
                                 "delete it to start the fit afresh.") from None
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
def fit_settings(model: Any, n_init: int, max_iter: int, tol: float, accelerate: str | None,
                 betas: list[float], iter_per_temperature: int, decrease_rtol: float,
                 xtol: float | None = None) -> dict:
    """What a checkpoint must agree on to resume a fit."""
    settings = {"xtol": exact(xtol)} if xtol is not None else {}
    return {**settings, "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "n_init": int(n_init), "max_iter": int(max_iter), "tol": exact(tol),
            "accelerate": accelerate, "annealing": [exact(beta) for beta in betas],
            "iter_per_temperature": int(iter_per_temperature),
            "decrease_rtol": exact(decrease_rtol)}


def saved_seed_sequence(state: dict, seed_sequence: np.random.SeedSequence, random_state: Any,
                        path: str) -> np.random.SeedSequence:
    """The seeds of the interrupted fit: taken from the checkpoint when ``random_state`` is None,
    else they must be the same."""
    seed = state.get("seed", {})
    try:
        entropy = seed["entropy"]
        saved = np.random.SeedSequence([int(e) for e in entropy] if isinstance(entropy, list)
                                       else int(entropy), spawn_key=tuple(seed["spawn_key"]))
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: the checkpoint's seed is damaged.") from None
    if random_state is None:
        return saved
    if (_entropy(seed_sequence), tuple(seed_sequence.spawn_key)) != (entropy, saved.spawn_key):
        raise ModelFileError(f"{path} was written by a fit with another random_state; resume "
                             "with the same random_state (or None), or delete the checkpoint.")
    return seed_sequence


def _entropy(seed_sequence: np.random.SeedSequence) -> Any:
    entropy = seed_sequence.entropy
    if isinstance(entropy, (int, np.integer)):
        return str(int(entropy))
    return [str(int(e)) for e in entropy]


@dataclasses.dataclass(frozen=True)
class ResumedStart:
    """The start that was in progress when the checkpoint was written, at an iteration
    boundary after annealing."""

    params: Any
    passes: int  # passes over the data (E-steps) made so far
    n_samples: float
    history: list[float]
    decreases: list[tuple[int, float]]
    events: list[tuple[int, str]]
    best: Any  # the best point (an EvaluatedPoint without stats) when it is not the current one
    step_max: float  # the SQUAREM step bound
    path: str
    em_rates: tuple[float, ...] = ()  # the monitor's recent SQUAREM estimates of EM's rate
    param_steps: tuple[float, ...] = ()  # the monitor's recent parameter steps (xtol)

    def check_samples(self, n_samples: float) -> float:
        """The saved fit's number of samples, after checking that the data being fitted (with
        ``n_samples``, up to round-off) are that fit's."""
        if abs(n_samples - self.n_samples) > 1e-9 * max(1.0, abs(self.n_samples)):
            raise ModelFileError(
                f"{self.path} was written for other data ({self.n_samples:g} samples, these "
                f"data have {n_samples:g}); resume with the same data, or delete it.")
        return self.n_samples


class FitProgress:
    """Saves the state of :func:`emkit.fit_em` to a :class:`Checkpoint` and reads it back (does
    nothing without one)."""

    def __init__(self, store: Checkpoint | None, seed_sequence: np.random.SeedSequence):
        self.store = store
        self.seed = {"entropy": _entropy(seed_sequence),
                     "spawn_key": [int(k) for k in seed_sequence.spawn_key]}

    # ------------------------------------------------------------------ writing
    def save(self, next_restart: int, objectives: list[float], best: Any,
             current: tuple[dict, dict, dict] | None = None, iteration: int = 0) -> None:
        """Write the finished starts (and the start in progress, ``current``)."""
        if self.store is None:
            return
        state: dict[str, Any] = {"restart": next_restart, "seed": self.seed,
                                 "restart_objectives": [exact(o) for o in objectives],
                                 "best": None, "current": None}
        trees: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        if best is not None:
            state["best"] = {
                "objective": exact(best.objective), "log_likelihood": exact(best.log_likelihood),
                "n_samples": exact(best.n_samples), "converged": bool(best.converged),
                "stopped_by_callback": bool(best.stopped_by_callback),
                "n_iter": int(best.n_iter), "best_restart": int(best.best_restart),
                "decreases": [[int(i), exact(d)] for i, d in best.decreases],
                "events": [[int(i), str(m)] for i, m in best.events]}
            trees["best_params"] = best.params
            arrays["best_history"] = np.asarray(best.history, dtype=np.float64)
        if current is not None:
            state["current"], current_trees, current_arrays = current
            trees.update(current_trees)
            arrays.update(current_arrays)
        self.store.write(state, trees, arrays, iteration)

    def saver(self, restart: int, objectives: list[float], best: Any):
        """The engine's hook for the start in progress: writes when a checkpoint is due."""
        if self.store is None:
            return None
        objectives = list(objectives)

        def save_progress(iteration, point, best_point, passes, n_samples, monitor, events,
                          step_max, rng) -> None:
            if not self.store.due(iteration):
                return
            state = {"passes": int(passes), "n_samples": exact(n_samples),
                     "step_max": exact(step_max), "rng": rng.bit_generator.state,
                     "decreases": [[int(i), exact(d)] for i, d in monitor.decreases],
                     "em_rates": [exact(r) for r in monitor.em_rates],
                     "param_steps": [exact(r) for r in monitor.param_steps],
                     "events": [[int(i), str(m)] for i, m in events], "best": None}
            trees = {"current_params": point.params}
            if best_point is not point:
                state["best"] = {"objective": exact(best_point.objective),
                                 "log_likelihood": exact(best_point.log_likelihood)}
                trees["current_best_params"] = best_point.params
            arrays = {"current_history": np.asarray(monitor.history, dtype=np.float64)}
            self.save(restart, objectives, best, (state, trees, arrays), iteration)

        return save_progress

    # ------------------------------------------------------------------ reading
    def finished_starts(self, saved: tuple[dict, dict], make_template) -> tuple[int, list, Any]:
        """(index of the first start to run, objectives of the finished ones, the best of them
        as an EMResult without statistics, or None)."""
        from emkit.engine import EMResult

        state, arrays = saved
        path = self.store.path
        try:
            first = int(state["restart"])
            objectives = [inexact(o) for o in state["restart_objectives"]]
            best = state["best"]
            if best is None:
                return first, objectives, None
            result = EMResult(
                params=restore(state, arrays, "best_params", make_template(), path),
                objective=inexact(best["objective"]),
                log_likelihood=inexact(best["log_likelihood"]),
                n_samples=inexact(best["n_samples"]), converged=bool(best["converged"]),
                n_iter=int(best["n_iter"]), history=arrays["best_history"], stats=None,
                best_restart=int(best["best_restart"]), restart_objectives=(),
                decreases=tuple((int(i), inexact(d)) for i, d in best["decreases"]),
                events=tuple((int(i), str(m)) for i, m in best["events"]),
                stopped_by_callback=bool(best["stopped_by_callback"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: the checkpoint state is damaged ({error}).") from None
        return first, objectives, result

    def current_start(self, saved: tuple[dict, dict], template: Any,
                      rng: np.random.Generator) -> ResumedStart | None:
        """The start in progress (None when it had not reached a checkpoint); puts ``rng`` in
        the state it had."""
        from emkit.accelerate import EvaluatedPoint

        state, arrays = saved
        current = state.get("current")
        if current is None:
            return None
        path = self.store.path
        try:
            best = None
            if current["best"] is not None:
                best = EvaluatedPoint(
                    restore(state, arrays, "current_best_params", template, path),
                    inexact(current["best"]["objective"]),
                    inexact(current["best"]["log_likelihood"]), None)
            resumed = ResumedStart(
                params=restore(state, arrays, "current_params", template, path),
                passes=int(current["passes"]), n_samples=inexact(current["n_samples"]),
                history=[float(h) for h in arrays["current_history"]],
                decreases=[(int(i), inexact(d)) for i, d in current["decreases"]],
                events=[(int(i), str(m)) for i, m in current["events"]], best=best,
                step_max=inexact(current["step_max"]), path=path,
                em_rates=tuple(inexact(r) for r in current.get("em_rates", [])),
                param_steps=tuple(inexact(r) for r in current.get("param_steps", [])))
            rng.bit_generator.state = current["rng"]
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: the checkpoint state is damaged ({error}).") from None
        return resumed
