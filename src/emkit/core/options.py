"""The options of the EM loop as one checked value, :class:`FitOptions`.

:func:`emkit.core.engine.fit_em` takes them as keywords (or as ``options=FitOptions(...)``) and
checks them here once, so every estimator that calls it gets the same messages. What depends on the
model (whether SQUAREM or annealing are possible) is settled by the engine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from emkit.errors import ParameterError

#: ``accelerate`` values: SQUAREM, plain EM, or SQUAREM where the model allows it.
ACCELERATIONS = ("auto", "squarem", None)


@dataclass(frozen=True)
class FitOptions:
    """How :func:`emkit.core.engine.fit_em` runs; see its docstring for the meaning of each field.

    Constructing one checks every field (a :class:`emkit.errors.ParameterError` says which is
    wrong and what it must be); ``callbacks`` are kept as a tuple.
    """

    n_init: int = 1
    max_iter: int = 1000
    tol: float = 1e-6
    xtol: float | None = 1e-7
    random_state: Any = None
    accelerate: str | None = "auto"
    annealing: Sequence[float] | float | None = None
    iter_per_temperature: int = 5
    callbacks: Sequence[Callable[[Any], Any]] = ()
    progress: bool = False
    verbose: int = 0
    verbose_interval: int = 10
    decrease_rtol: float = 1e-10
    warn_not_converged: bool = True
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 10
    checkpoint_seconds: float | None = None
    resume: bool = False

    def __post_init__(self):
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        _check_integer("n_init", self.n_init, 1)
        _check_integer("max_iter", self.max_iter, 0)
        if not (_is_number(self.tol) and self.tol >= 0):
            raise ParameterError(f"tol must be a number >= 0, got {self.tol!r}.")
        if self.xtol is not None and not (_is_number(self.xtol) and self.xtol >= 0):
            raise ParameterError(f"xtol must be None or a number >= 0, got {self.xtol!r}.")
        if self.accelerate not in ACCELERATIONS:
            raise ParameterError(f"accelerate must be None (plain EM), 'squarem' or 'auto', got "
                                 f"{self.accelerate!r}.")
        self.inverse_temperatures()  # checks annealing
        _check_integer("iter_per_temperature", self.iter_per_temperature, 1)
        if not isinstance(self.verbose, (int, np.integer)) or self.verbose < 0:
            raise ParameterError(
                f"verbose must be an integer >= 0 (or a bool), got {self.verbose!r}.")
        if isinstance(self.verbose_interval, bool):
            raise ParameterError(
                f"verbose_interval must be an integer >= 1, got {self.verbose_interval!r}.")
        _check_integer("verbose_interval", self.verbose_interval, 1)
        if not (_is_number(self.decrease_rtol) and self.decrease_rtol >= 0):
            raise ParameterError(
                f"decrease_rtol must be a number >= 0, got {self.decrease_rtol!r}.")
        _check_integer("checkpoint_every", self.checkpoint_every, 1)
        if self.checkpoint_seconds is not None and not (
                _is_number(self.checkpoint_seconds) and self.checkpoint_seconds > 0):
            raise ParameterError(f"checkpoint_seconds must be None or a number > 0, got "
                                 f"{self.checkpoint_seconds!r}.")
        if self.resume and self.checkpoint is None:
            raise ParameterError("resume=True needs checkpoint=<path of the checkpoint file>.")

    def inverse_temperatures(self) -> list[float]:
        """The annealing schedule: inverse temperatures β in (0, 1], one per temperature (empty
        without annealing)."""
        annealing = self.annealing
        if annealing is None:
            return []
        if _is_number(annealing):
            betas = annealing_schedule(float(annealing))
        else:
            try:
                betas = np.asarray(annealing, dtype=float).ravel()
            except (TypeError, ValueError):
                betas = np.array([math.nan])
        if (betas.size == 0 or np.any(~np.isfinite(betas)) or np.any(betas <= 0)
                or np.any(betas > 1)):
            raise ParameterError(
                "annealing must be a start temperature > 1 or inverse temperatures in (0, 1].")
        return [float(b) for b in betas]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names (``fit_em``'s keywords besides ``init`` and ``init_history``)."""
        return tuple(field.name for field in fields(cls))


def annealing_schedule(start_temperature: float = 2.0, n_steps: int = 10) -> np.ndarray:
    """Inverse temperatures β rising geometrically from 1/start_temperature towards 1
    (exclusive)."""
    if start_temperature <= 1.0 or n_steps < 1:
        raise ParameterError("annealing needs start_temperature > 1 and n_steps >= 1.")
    return start_temperature ** -np.linspace(1.0, 0.0, n_steps, endpoint=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))


def _check_integer(name: str, value: Any, minimum: int) -> None:
    if not (isinstance(value, (int, np.integer)) and value >= minimum):
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}.")


__all__ = ["ACCELERATIONS", "FitOptions", "annealing_schedule"]
