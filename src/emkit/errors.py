"""Errors and warnings raised by emkit.

Every error says what was wrong and what to do about it. They subclass the built-in
exception a caller would expect (``ValueError`` for bad input), so generic handlers keep working.
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class EmkitError(Exception):
    """Base class of every error emkit raises on purpose."""


class DataError(EmkitError, ValueError):
    """The data given to a model or the command line cannot be used as it is."""


class ParameterError(EmkitError, ValueError):
    """A constructor or function argument is out of its allowed range."""


class NumericalError(EmkitError, FloatingPointError):
    """The fit produced a non-finite objective or invalid parameters."""


class ModelFileError(EmkitError, ValueError):
    """A model file is missing, truncated, of an unknown version, or not an emkit file."""


class NotFittedError(EmkitError, _SklearnNotFittedError):
    """The estimator is used before ``fit``."""


class LikelihoodDecreaseWarning(UserWarning):
    """EM lowered its objective: with exact E- and M-steps this cannot happen, so it signals a bug
    in a model (or severe round-off). The decrease is recorded in the fit's history."""


class ConvergenceWarning(_SklearnConvergenceWarning):
    """A fit stopped at ``max_iter`` before the change in objective fell below ``tol``.

    It is scikit-learn's ``sklearn.exceptions.ConvergenceWarning`` (a ``UserWarning``) by
    inheritance, so filters and ``pytest.warns`` written for scikit-learn catch it too."""
