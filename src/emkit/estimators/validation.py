"""Parameter constraints and input checks shared by every emkit estimator.

Each estimator class declares ONE table of its constructor parameters, a class attribute
``_parameter_constraints`` mapping a parameter's name to a :class:`Constraint`; a subclass
extends its parent's table by dict merge (``{**Parent._parameter_constraints, "n_mix":
Integer(1)}``). :func:`check_parameters` checks the whole table and raises a
:class:`~emkit.errors.ParameterError` naming the parameter, its value and what is allowed::

    n_components must be an integer >= 1, got 0.

The same wording for the same kind of parameter in every estimator, written once here.
Constraints that span several parameters (e.g. an HMM's emission priors against its
covariance type) stay with the estimator (``_check_parameter_combinations``).

The input helpers (row validation, sample weights, missing-value checks, random generators)
live here too, as public names, so that the estimator modules share them without reaching into
each other's private names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

from emkit.core.engine import seed_sequence
from emkit.errors import DataError, NotFittedError, ParameterError

__all__ = [
    "Constraint", "Integer", "Real", "OneOf", "Satisfies", "Letters", "check_parameters",
    "check_value", "ACCELERATE", "BOOLEAN", "CONCENTRATIONS", "COUNT", "LEARNING_DECAY",
    "LEARNING_OFFSET", "NON_NEGATIVE", "NON_NEGATIVE_INTEGER", "RANDOM_STATE", "VERBOSE",
    "check_fitted", "check_sample_weight", "check_n_samples", "check_observed",
    "check_no_constant_column", "is_dask_collection", "random_generator", "seed_sequence",
    "validate_rows",
]


# --------------------------------------------------------------------------- constraints
class Constraint:
    """What one parameter may be: ``accepts(value)`` and the words for the error message
    (``"<name> must be <description>, got <value>."``)."""

    description: str = ""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    """A real number (bools are flags, not numbers)."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer >= ``low`` (or None when ``optional``)."""

    low: int
    optional: bool = False

    @property
    def description(self) -> str:
        text = f"an integer >= {self.low}"
        return f"None or {text}" if self.optional else text

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
                and value >= self.low)


@dataclass(frozen=True)
class Real(Constraint):
    """A finite real number in [low, high] (``low_open``: (low, high]); None when
    ``optional``; ``hint`` says what the number means."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    optional: bool = False
    hint: str = ""

    @property
    def description(self) -> str:
        if self.high < math.inf:
            text = f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        elif self.low == 0 and self.low_open:
            text = "a positive number"
        else:
            text = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        text = f"None or {text}" if self.optional else text
        return f"{text} ({self.hint})" if self.hint else text

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if not _is_number(value) or not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return bool(above and value <= self.high)


@dataclass(frozen=True, init=False)
class OneOf(Constraint):
    """One of a few fixed values (compared with ==; None allowed as a value)."""

    options: tuple
    hint: str = ""

    def __init__(self, *options: Any, hint: str = ""):
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "hint", hint)

    @property
    def description(self) -> str:
        if len(self.options) == 2:
            text = " or ".join(repr(option) for option in self.options)
        else:
            text = f"one of {self.options}"
        return f"{text} ({self.hint})" if self.hint else text

    def accepts(self, value: Any) -> bool:
        try:
            return any(value is option or (option is not None and value is not None
                                           and bool(value == option))
                       for option in self.options)
        except (TypeError, ValueError):  # e.g. an array compared with a string
            return False


@dataclass(frozen=True)
class Letters(Constraint):
    """A string of some of ``letters`` (hmmlearn's ``params``/``init_params``)."""

    letters: str

    @property
    def description(self) -> str:
        return f"a string of the letters {self.letters!r}"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and not set(value) - set(self.letters)


@dataclass(frozen=True)
class Satisfies(Constraint):
    """Whatever ``predicate`` accepts (an exception in it counts as a rejection)."""

    predicate: Callable[[Any], bool]
    description: str

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except (TypeError, ValueError, OverflowError):
            return False


def check_value(name: str, value: Any, constraint: Constraint) -> None:
    """A ParameterError naming ``name``, ``value`` and what is allowed, unless ``constraint``
    accepts the value."""
    if not constraint.accepts(value):
        raise ParameterError(f"{name} must be {constraint.description}, got {value!r}.")


def check_parameters(estimator: Any, constraints: Mapping[str, Constraint]) -> None:
    """Check every parameter of ``estimator`` named in ``constraints``; the first that breaks
    its constraint raises a ParameterError naming it, its value and what is allowed."""
    for name, constraint in constraints.items():
        check_value(name, getattr(estimator, name), constraint)


def _positive_concentrations(value: Any) -> bool:
    array = np.asarray(value, dtype=float)
    return bool(np.all(np.isfinite(array)) and np.all(array > 0))


def _seed_like(value: Any) -> bool:
    return value is None or isinstance(value, (np.random.Generator, np.random.RandomState,
                                               np.random.SeedSequence)) or (
        isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        and value >= 0)


# The constraints most estimators share, named once.
COUNT = Integer(1)
NON_NEGATIVE_INTEGER = Integer(0)
NON_NEGATIVE = Real(0)
ACCELERATE = OneOf(None, "squarem")
LEARNING_DECAY = Real(0.5, 1.0, low_open=True, hint="online EM converges only for such κ")
LEARNING_OFFSET = Real(0, hint="t₀ of the online step sizes")
CONCENTRATIONS = Satisfies(_positive_concentrations,
                           "positive Dirichlet concentrations (1 = no prior)")
BOOLEAN = Satisfies(lambda value: isinstance(value, (bool, np.bool_)), "True or False")
VERBOSE = Satisfies(lambda value: isinstance(value, (int, np.integer)) and value >= 0,
                    "a bool or an integer >= 0")
RANDOM_STATE = Satisfies(_seed_like, "None, an int >= 0, a numpy Generator or RandomState")


# --------------------------------------------------------------------------- random numbers
def random_generator(random_state: Any) -> np.random.Generator:
    """A numpy Generator from any random_state form.

    An int (or None) gives a fresh generator, so every call with the same int draws the same
    numbers; a Generator is used as it is (each call continues its stream, so the same
    Generator state gives the same draws); a RandomState seeds a new generator from one of its
    draws (which advances it, as scikit-learn's estimators do)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**31 - 1)))
    if not _seed_like(random_state):
        raise ParameterError(f"random_state must be {RANDOM_STATE.description}, got "
                             f"{type(random_state).__name__}.")
    return np.random.default_rng(random_state)


# --------------------------------------------------------------------------- fitted state
def check_fitted(estimator: Any, attributes: tuple[str, ...]) -> None:
    """Raise NotFittedError (scikit-learn's words, so code matching them keeps working) unless
    every one of ``attributes`` is set (and not None) on ``estimator``."""
    if any(getattr(estimator, name, None) is None for name in attributes):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator.")


def check_n_samples(n_samples: Any) -> None:
    """The number of rows to draw is an integer >= 1."""
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) \
            or n_samples < 1:
        raise ParameterError(f"Invalid value for 'n_samples': {n_samples!r}. The sampling "
                             "requires at least one sample: n_samples must be >= 1 (an integer).")


# --------------------------------------------------------------------------- input
def validate_rows(estimator: Any, X: Any, *, reset: bool, dtype: Any) -> np.ndarray:
    """scikit-learn's input validation (feature counts and names, 2-D numbers) with NaN allowed
    as missing values; its ValueErrors become emkit DataErrors that say what to do."""
    try:
        return validate_data(estimator, X, reset=reset, dtype=dtype, ensure_min_samples=1,
                             ensure_all_finite="allow-nan")
    except DataError:
        raise
    except ValueError as error:
        message = str(error)
        if "infinity" in message:
            message += (" Infinity is not a missing value: mark missing entries as NaN "
                        "(empty cells in a CSV) and fix or drop the infinite ones.")
        elif "features" in message and not reset:
            message += " Pass the same columns as in fit."
        raise DataError(message) from error


def is_dask_collection(data: Any) -> bool:
    """True for a Dask array or data frame (Dask is not imported to find out)."""
    return type(data).__module__.startswith("dask.") and hasattr(data, "__dask_graph__")


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Row weights: None, or ``n_samples`` finite non-negative numbers with a positive sum (a
    scalar is every row's weight)."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=float)
    except (TypeError, ValueError) as error:
        raise DataError(f"sample_weight must be numbers: {error}.") from error
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise DataError(f"sample_weight has shape {w.shape}, expected ({n_samples},).")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("sample_weight must be finite and non-negative.")
    if not w.sum() > 0:
        raise DataError("sample_weight sums to zero: at least one row needs a positive weight.")
    return w


def check_observed(X: np.ndarray, names: Any) -> None:
    """Missing values (NaN) are fine, but every column needs observed values and so does some
    row."""
    missing = np.isnan(X)
    if not missing.any():
        return
    empty_columns = np.flatnonzero(missing.all(axis=0))
    if len(empty_columns):
        shown = [str(names[i]) if names is not None else str(i) for i in empty_columns[:5]]
        raise DataError(f"column(s) {', '.join(shown)} have no observed value (all NaN): "
                        "nothing can be learned about them; drop these columns.")
    if missing.all(axis=1).all():
        raise DataError("every row is empty (all NaN): there is nothing to fit.")


def check_no_constant_column(X: np.ndarray, names: Any) -> None:
    """No column holds one value only (a Gaussian's variance there would be reg_covar)."""
    with np.errstate(invalid="ignore"):
        constant = np.flatnonzero(np.nanmax(X, axis=0) == np.nanmin(X, axis=0))
    if len(constant):
        shown = [str(names[i]) if names is not None else str(i) for i in constant[:5]]
        raise DataError(
            f"column(s) {', '.join(shown)} are constant: a Gaussian's variance there is only "
            "reg_covar, which makes the likelihood meaningless. Drop these columns.")
