"""Choosing the number of components of a mixture (and the covariance type of a Gaussian one).

:func:`select_model` fits one :class:`emkit.GaussianMixture` per (K, covariance type) — or one
mixture of another family per K (``estimator=emkit.PoissonMixture``, …) — and ranks them by BIC,
AIC or ICL, all with scikit-learn's sign convention (lower is better):

- BIC = −2 log L + p log n (Schwarz 1978),
- AIC = −2 log L + 2 p (Akaike 1974),
- ICL = BIC − 2 Σ_i log max_k τ_ik, the BIC plus the cost of the hard classification
  (Biernacki, Celeux & Govaert 2000; as mclust, with the opposite sign),

where log L is the maximised log-likelihood, p the number of free parameters and n the number of
rows. With ``sample_weight``, log L and the classification term are weighted sums and
n = Σ w, so an integer weight counts as that many copies of the row.

The chosen model's hard clustering comes with the result, as mclust's ``Mclust`` gives it: the
``classification`` (most probable component) of every row and its ``uncertainty``,
1 − max_k τ_ik (0 for a row surely in its component, up to 1 − 1/K for a row all components
explain equally).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emkit.errors import DataError, ParameterError

__all__ = ["SelectionResult", "select_model", "is_eligible", "spread_out", "CRITERIA"]

CRITERIA = ("bic", "aic", "icl")
_COLUMNS = ("n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "aic",
            "icl", "converged", "collapsed")


@dataclass
class SelectionResult:
    """What :func:`select_model` found.

    Attributes
    ----------
    table : list of dict
        One row per fitted model, in the order fitted (covariance types outer, K inner), with keys
        ``n_components``, ``covariance_type``, ``log_likelihood`` (total, not per row),
        ``n_parameters``, ``bic``, ``aic``, ``icl``, ``converged`` and ``collapsed`` (a
        component sits on fewer than D + 1 distinct points, see :func:`select_model`).
    estimators : list of fitted mixtures (GaussianMixture or the estimator given)
        The fitted models, aligned with ``table``.
    best_index : int
        Row of ``table`` with the lowest ``criterion`` (the first of equals: the simplest model).
    criterion : str
    notes : list of str
        What was skipped and why (e.g. K larger than the number of rows).
    classification : ndarray of shape (n_samples,) or None
        The most probable component of every row under the best model (mclust's
        ``classification``).
    uncertainty : ndarray of shape (n_samples,) or None
        1 − the largest posterior probability of every row under the best model (mclust's
        ``uncertainty``).
    """

    table: list[dict[str, Any]]
    estimators: list[Any]
    best_index: int
    criterion: str
    notes: list[str] = field(default_factory=list)
    classification: np.ndarray | None = None
    uncertainty: np.ndarray | None = None

    @property
    def best_estimator(self):
        """The fitted model with the lowest criterion."""
        return self.estimators[self.best_index]

    @property
    def best(self) -> dict[str, Any]:
        """The row of ``table`` of the best model."""
        return self.table[self.best_index]

    def to_text(self) -> str:
        """The table as aligned plain text, the best row marked with ``*``, notes below."""
        # Families without covariance types (Poisson, ...) have no such column.
        header = [key for key in _COLUMNS if key != "covariance_type"
                  or any(row.get(key) is not None for row in self.table)]
        rows = [[_format(row[key]) for key in header] for row in self.table]
        widths = [max(len(text) for text in column) for column in zip(header, *rows, strict=True)]
        numeric = [key not in ("covariance_type", "converged", "collapsed") for key in header]

        def line(cells, mark):
            padded = [cell.rjust(width) if right else cell.ljust(width)
                      for cell, width, right in zip(cells, widths, numeric, strict=True)]
            return f"{mark} " + "  ".join(padded).rstrip()

        lines = [line(header, " ")]
        lines += [line(cells, "*" if i == self.best_index else " ") for i, cells in enumerate(rows)]
        kind = self.best.get("covariance_type")
        lines.append(f"* lowest {self.criterion.upper()}: n_components="
                     f"{self.best['n_components']}"
                     + ("" if kind is None else f", covariance_type={kind!r}"))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_grid(self, mclust_sign: bool = False) -> str:
        """The criterion as a grid, one row per K and one column per covariance type (as
        mclust prints ``mclustBIC``), the best cell marked with ``*``; fits not eligible (not
        converged or collapsed) in parentheses. ``mclust_sign=True`` prints −criterion (mclust's
        convention: higher is better)."""
        kinds = list(dict.fromkeys(row["covariance_type"] for row in self.table))
        ks = sorted({row["n_components"] for row in self.table})
        sign = -1.0 if mclust_sign else 1.0
        cells = {}
        for i, row in enumerate(self.table):
            text = f"{sign * row[self.criterion]:.2f}"
            if not is_eligible(row):
                text = f"({text})"
            cells[row["n_components"], row["covariance_type"]] = text + (
                "*" if i == self.best_index else " ")
        header = ["K"] + kinds
        body = [[str(k)] + [cells.get((k, kind), "- ") for kind in kinds] for k in ks]
        widths = [max(len(line[j]) for line in [header, *body]) for j in range(len(header))]
        name = self.criterion.upper() + (" (mclust's sign: higher is better)" if mclust_sign
                                         else " (lower is better)")
        lines = [name]
        lines += ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
                  for line in [header, *body]]
        best = self.best
        lines.append(f"* best: K={best['n_components']}, {best['covariance_type']}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def select_model(X, n_components: int | Iterable[int] = range(1, 9),
                 covariance_types: str | Sequence[str] = ("full",), criterion: str = "bic",
                 sample_weight=None, announce: Callable[[str], None] | None = None, *,
                 estimator: type | None = None, y=None,
                 **estimator_params) -> SelectionResult:
    """Fit a mixture for every K (and covariance type) and pick the best by a criterion.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int or iterable of int, default range(1, 9)
        Numbers of components to try. Values larger than the number of rows cannot be fitted:
        they are skipped with a note in ``SelectionResult.notes`` (an error if none is left).
    covariance_types : str or sequence of str, default ("full",)
        Any of "full", "tied", "diag", "spherical" and mclust's 14 models ("EII", …, "VVV",
        see :class:`emkit.GaussianMixture`); ``"all"`` for the 14 models (mclust's
        ``mclustBIC``). Gaussian mixtures only.
    criterion : {"bic", "aic", "icl"}, default "bic"
        Lower is better (scikit-learn's convention).
    sample_weight : array-like of shape (n_samples,), optional
        Row weights, passed to every fit; see the module docstring for their effect on the
        criteria.
    announce : callable, optional
        Called with one line before each fit, saying which it is (``emkit select`` prints it
        on stderr as progress).
    estimator : class, default :class:`emkit.GaussianMixture`
        The mixture to fit for every K: ``GaussianMixture`` or a family mixture
        (:class:`emkit.PoissonMixture`, :class:`emkit.BernoulliMixture`,
        :class:`emkit.CategoricalMixture`, :class:`emkit.StudentMixture`,
        :class:`emkit.RegressionMixture`).
    y : array-like of shape (n_samples,), optional
        The response, for :class:`emkit.RegressionMixture` (which models y given X); the
        criteria then count log p(y | x).
    **estimator_params
        Other parameters of ``estimator`` (for ``GaussianMixture``: ``random_state``,
        ``n_init``, ``max_iter``, ``init_params``, …), the same for every fit. Pass
        ``random_state`` for a reproducible table. By default every fit starts as the estimator
        does (``GaussianMixture``: ``init_params="auto"``, hierarchical and k-means starts), as
        ``emkit select`` does.

    Returns
    -------
    SelectionResult
        With the ``classification`` and ``uncertainty`` of every row under the best model.
        The best row is chosen among the fits that converged and did not collapse. A component
        that collapsed onto fewer than D + 1 distinct points (its covariance is ``reg_covar``
        in some direction, or, under the models that share volumes or shapes, its rows have
        no spread in some direction: :func:`spread_out`) is a spurious maximum: its likelihood
        grows without bound as ``reg_covar`` shrinks, so its criterion says nothing about the
        number of clusters — mclust reports no BIC for such fits. They stay in the table,
        marked ``collapsed``.

    Examples
    --------
    >>> from emkit import datasets, select_model
    >>> result = select_model(datasets.load("faithful").data, range(1, 5), random_state=0)
    >>> print(result.to_text())  # doctest: +SKIP
    >>> from emkit import PoissonMixture
    >>> counts = datasets.load("discoveries").data
    >>> poisson = select_model(counts, range(1, 4), estimator=PoissonMixture, random_state=0)
    >>> poisson.uncertainty.shape == (len(counts),)
    True
    """
    from emkit.estimators.gaussian_mixture import GaussianMixture
    from emkit.families.parsimonious import COVARIANCE_TYPES, MODELS
    from emkit.models.mixture import SharedStarts

    if estimator is None:
        estimator = GaussianMixture
    gaussian = isinstance(estimator, type) and issubclass(estimator, GaussianMixture)
    if isinstance(covariance_types, str) and covariance_types == "all":
        covariance_types = MODELS
    if criterion not in CRITERIA:
        raise ParameterError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    candidates = _check_components(n_components)
    kinds = _check_covariance_types(covariance_types, COVARIANCE_TYPES)
    data = _check_estimator(estimator, gaussian, kinds, X, y)
    if not gaussian:
        kinds = [None]  # one fit per K
    name = estimator.__name__
    own = {"n_components", "covariance_type"} if gaussian else {"n_components"}
    allowed = set(estimator().get_params()) - own
    unknown = sorted(set(estimator_params) - allowed)
    if unknown:
        hint = (" (they are select_model's own arguments)" if own & set(unknown) else "")
        raise ParameterError(f"unknown {name} parameter(s) {', '.join(unknown)}"
                             f"{hint}; allowed: {', '.join(sorted(allowed))}.")

    n_samples = _count_rows(X)
    notes = []
    too_many = [k for k in candidates if k > n_samples]
    if too_many:
        candidates = [k for k in candidates if k <= n_samples]
        if not candidates:
            raise DataError(f"every n_components tried ({_ranges(too_many)}) is larger than the "
                            f"number of rows ({n_samples}): try fewer components or more data.")
        notes.append(f"skipped n_components={_ranges(too_many)}: more components than the "
                     f"{n_samples} rows.")

    table, estimators = [], []
    # The covariance models of one K share the screening of their default starts (not the
    # restarts of n_init > 1, which are there to start elsewhere).
    shared = SharedStarts() if (gaussian and len(kinds) > 1
                                and estimator_params.get("n_init", 1) == 1) else None
    cells = [(kind, k) for kind in kinds for k in candidates]
    stacked, rows = (_fit_as_grid(X, sample_weight, cells, estimator_params, announce)
                     if shared is not None else ([None] * len(cells), None))
    for (kind, k), model in zip(cells, stacked, strict=True):
        validated = rows if model is not None else None
        if model is None:  # fitted on its own
            if announce is not None:
                what = f"K={k}" if kind is None else f"K={k}, covariance {kind}"
                announce(f"fitting {what} ({len(table) + 1} of {len(cells)})")
            model = (estimator(k, covariance_type=kind, **estimator_params) if gaussian
                     else estimator(k, **estimator_params))
            if shared is not None:
                model._shared_starts = shared
            model.fit(*data, sample_weight=sample_weight)
        table.append(_criteria(model, data, sample_weight, validated))
        estimators.append(model)
    # A fit that did not converge is usually a component collapsing onto repeated values, and a
    # collapsed one has collapsed: either likelihood grows without bound. They are reported in
    # the table but chosen only if nothing else is left.
    eligible = [is_eligible(row) for row in table]
    if not any(eligible):
        eligible = [True] * len(table)
        notes.append("no fit converged without a collapsed component: the best is chosen among "
                     "all; raise max_iter or reg_covar.")
    else:
        if not all(row["converged"] for row in table):
            notes.append("fits that did not converge are listed but not chosen.")
        if any(row["collapsed"] for row in table):
            notes.append("fits with a component collapsed onto fewer than D + 1 points are "
                         "listed but not chosen.")
    scores = [row[criterion] if ok else np.inf for row, ok in zip(table, eligible, strict=True)]
    best_index = _first_best(scores)
    posteriors = estimators[best_index].predict_proba(*data)
    return SelectionResult(table, estimators, best_index, criterion, notes,
                           classification=posteriors.argmax(axis=1),
                           uncertainty=1.0 - posteriors.max(axis=1))


# Scores this close (relative) are equal: models that are the same in exact arithmetic (at K=1,
# EEE, EVE, VVV, … are all the one Gaussian) differ in their last bits by their M-steps' paths.
_SAME_SCORE_RTOL = 1e-12


def _first_best(scores: list[float]) -> int:
    """The index of the lowest score, the first of those equal to it within round-off (the
    simplest model, as the table lists simpler models first)."""
    lowest = min(scores)
    if not np.isfinite(lowest):
        return int(np.argmin(scores))
    slack = _SAME_SCORE_RTOL * max(abs(lowest), 1.0)
    return next(i for i, score in enumerate(scores) if score <= lowest + slack)


# GaussianMixture's parameters that a grid fitted as one stack (emkit.estimators.grid) honours,
# and those that do not change a fit; with any other away from its default (other starts,
# float32, given parameters, ...) each model is fitted on its own.
_GRID_PARAMETERS = {"random_state", "reg_covar", "tol", "max_iter", "accelerate",
                    "init_params", "n_init"}
_GRID_IGNORED = {"progress", "verbose", "verbose_interval", "warm_start"}


def _fit_as_grid(X, sample_weight, cells, estimator_params, announce) -> tuple[list, Any]:
    """The grid's fits as one stack (:func:`emkit.estimators.grid.fit_grid`) where its rows
    and parameters allow, None for each fit to be run on its own; and the rows as the fits
    validated them (None if no fit came from the stack)."""
    from emkit.data.chunks import Batch
    from emkit.estimators.gaussian_mixture import GaussianMixture
    from emkit.estimators.grid import fit_grid
    from emkit.models.clustering import DEFAULT_INIT

    alone = [None] * len(cells), None
    defaults = GaussianMixture().get_params()
    if (any(not _is_default(value, defaults.get(name)) for name, value in
            estimator_params.items() if name not in _GRID_PARAMETERS | _GRID_IGNORED)
            or estimator_params.get("init_params", DEFAULT_INIT) not in (DEFAULT_INIT,
                                                                         "hierarchical")
            or estimator_params.get("accelerate", "squarem") not in ("squarem", None)):
        return alone
    # Validated as every fit would validate it (the same errors: a constant column, bad
    # weights, ...); the fits then carry the column names as fitted ones do.
    template = GaussianMixture(1, **estimator_params)
    batch = template.validated_fit_input(X, sample_weight)
    if not isinstance(batch, Batch):  # streamed or distributed data
        return alone
    X, w = batch.X, batch.sample_weight
    if (X.dtype != np.float64 or not np.all(np.isfinite(X))
            or max(k for _, k in cells) > len(X)):
        return alone  # float32, gaps, or more components than rows
    if announce is not None:
        announce(f"fitting the {len(cells)} models together")
    settings = {name: estimator_params[name] for name in
                ("random_state", "reg_covar", "tol", "max_iter", "accelerate", "init_params")
                if name in estimator_params}
    fits = fit_grid(X, w, cells, **settings)
    names = getattr(template, "feature_names_in_", None)
    for fit in fits:
        if fit is not None and names is not None:
            fit.feature_names_in_ = names
    return fits, X


def _is_default(value, default) -> bool:
    """Whether a parameter's value is its default (None, a number, a type, a string)."""
    if value is None or default is None:
        return value is default
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and the like: given, so not the default
        return False


def _check_estimator(estimator, gaussian: bool, kinds: list[str], X, y) -> tuple:
    """The arguments of ``fit`` and of the posteriors: (X,) or, for a model of y given X,
    (X, y)."""
    from emkit.estimators.family_mixture import FamilyMixture

    if not gaussian and not (isinstance(estimator, type) and issubclass(estimator,
                                                                         FamilyMixture)):
        raise ParameterError(f"estimator must be GaussianMixture or a family mixture "
                             f"(PoissonMixture, BernoulliMixture, CategoricalMixture, "
                             f"StudentMixture, RegressionMixture), got {estimator!r}.")
    if not gaussian and kinds != ["full"]:
        raise ParameterError(f"covariance_types is for GaussianMixture; {estimator.__name__} "
                             "has none: leave it out.")
    needs_y = estimator().__sklearn_tags__().target_tags.required
    if needs_y and y is None:
        raise DataError(f"{estimator.__name__} models y given X: pass the response as y.")
    if not needs_y and y is not None:
        raise ParameterError(f"{estimator.__name__} takes no response: leave y out.")
    return (X,) if y is None else (X, y)


def _criteria(estimator, data, sample_weight, validated=None) -> dict[str, Any]:
    """The table row of one fitted mixture (see the module docstring for the formulas);
    ``data``: (X,) or (X, y); ``validated``: X as the estimator validated it, if known (the
    rows of a stacked grid: validating them again for each of its fits took a tenth of a small
    grid's time)."""
    if validated is not None:
        log_density, posteriors = estimator._posteriors(validated, validated=True)
    elif hasattr(estimator, "_posteriors"):  # emkit's mixtures: both from one pass
        log_density, posteriors = estimator._posteriors(*data)
    else:
        log_density, posteriors = estimator.score_samples(*data), estimator.predict_proba(*data)
    classification = np.log(posteriors.max(axis=1))
    if sample_weight is None:
        weights = np.ones(len(log_density))
    else:  # already validated by fit
        weights = np.broadcast_to(np.asarray(sample_weight, dtype=float), log_density.shape)
    used = weights > 0  # a zero-weight row does not count, even if its density is 0
    log_likelihood = float(np.dot(weights[used], log_density[used]))
    n = float(weights.sum())
    p = estimator.n_parameters()
    bic = -2.0 * log_likelihood + p * math.log(n)
    return {
        "n_components": estimator.n_components,
        "covariance_type": getattr(estimator, "covariance_type", None),
        "log_likelihood": log_likelihood,
        "n_parameters": p,
        "bic": bic,
        "aic": -2.0 * log_likelihood + 2.0 * p,
        "icl": bic - 2.0 * float(np.dot(weights[used], classification[used])),
        "converged": bool(estimator.converged_),
        "collapsed": collapsed(estimator) or (
            len(data) == 1 and spread_out(estimator, data[0] if validated is None else validated,
                                          posteriors, sample_weight) is False),
    }


def is_eligible(row: dict[str, Any]) -> bool:
    """Whether a table row may be chosen: its fit converged and no component collapsed (rows
    of older tables without these keys are eligible)."""
    return bool(row.get("converged", True)) and not row.get("collapsed", False)


def collapsed(estimator) -> bool:
    """Whether a component of a fitted Gaussian (or Student-t) mixture collapsed: its
    covariance is (within 1%) ``reg_covar`` in some direction, so its rows have no spread
    there — it sits on fewer than D + 1 distinct points. Families without covariances do not
    collapse this way (their likelihood is bounded, or, for regressions, the fit re-seeds such
    a component)."""
    if getattr(estimator, "reg_covar", 0) <= 0 or not hasattr(estimator, "covariances_"):
        return False
    from emkit.families.parsimonious import layout

    covariances = np.asarray(estimator.covariances_, dtype=float)
    kind = layout(getattr(estimator, "covariance_type", "full"))  # Student-t: full matrices
    if kind in ("full", "tied"):
        smallest = np.linalg.eigvalsh(covariances).min()
    else:  # diag: variances per feature; spherical: one variance per component
        smallest = covariances.min()
    return bool(smallest <= 1.01 * estimator.reg_covar)


# A component's weighted scatter whose smallest eigenvalue is below this fraction of its
# largest has no spread in some direction: its rows lie (to round-off and the soft weights of
# other rows) in a lower-dimensional subspace — fewer than D + 1 distinct points.
_FLAT_SCATTER = 1e-10
_SPREAD_BLOCK = 2**22


def spread_out(estimator, X, posteriors: np.ndarray, sample_weight=None) -> bool | None:
    """Whether every component of a fitted Gaussian (or Student-t) mixture has rows spread in
    every direction: its posterior-weighted scatter of the rows X is not singular. A component
    on fewer than D + 1 distinct points is not, whatever its covariance: under the models whose
    volumes or shapes are shared (EVI, EVE, …) its covariance stays away from ``reg_covar``, so
    :func:`collapsed` does not see it, yet its shape degenerates and its likelihood grows
    without bound (mclust reports no BIC for such fits). None where it does not apply (no
    covariances, gaps in X)."""
    if not hasattr(estimator, "covariances_"):
        return None
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        return None
    weights = posteriors if sample_weight is None else posteriors * np.broadcast_to(
        np.asarray(sample_weight, dtype=float), len(X))[:, None]
    counts = weights.sum(axis=0)
    used = np.flatnonzero(counts > 0)
    # Several components at once (one eigvalsh call, not one per component), within a few
    # million numbers of centred rows.
    step = max(1, _SPREAD_BLOCK // X.size)
    for block in (used[i:i + step] for i in range(0, len(used), step)):
        w, n = weights[:, block].T, counts[block, None]  # (k, rows), (k, 1)
        centred = X[None] - (w @ X / n)[:, None]  # (k, rows, D)
        scatters = (centred * w[..., None]).transpose(0, 2, 1) @ centred / n[..., None]
        values = np.linalg.eigvalsh(scatters)  # ascending, per component
        if not np.all(values[:, 0] > _FLAT_SCATTER * np.maximum(values[:, -1], 0.0)):
            return False
    return True


def _check_components(n_components) -> list[int]:
    values = [n_components] if isinstance(n_components, (int, np.integer)) else n_components
    try:
        values = list(values)
    except TypeError:
        raise ParameterError(f"n_components must be an int or an iterable of ints (e.g. "
                             f"range(1, 9)), got {n_components!r}.") from None
    if not values:
        raise ParameterError("n_components is empty: give at least one number of components, "
                             "e.g. range(1, 9).")
    for k in values:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ParameterError(f"every n_components must be an integer >= 1, got {k!r}.")
    return sorted({int(k) for k in values})


def _check_covariance_types(covariance_types, allowed) -> list[str]:
    kinds = [covariance_types] if isinstance(covariance_types, str) else list(covariance_types)
    if not kinds:
        raise ParameterError(f"covariance_types is empty: give at least one of {allowed}.")
    for kind in kinds:
        if kind not in allowed:
            raise ParameterError(f"covariance_types must be among {allowed}, got {kind!r}.")
    return list(dict.fromkeys(kinds))  # drop repeats, keep order


def _count_rows(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is None:
        X = np.asarray(X)
        shape = X.shape
    if len(shape) == 0:
        raise DataError("X must be a 2-D array (n_samples, n_features), got a scalar.")
    return int(shape[0])


def _ranges(values: list[int]) -> str:
    """Sorted integers as runs: [2, 3, 4, 7] -> '2-4, 7'."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
