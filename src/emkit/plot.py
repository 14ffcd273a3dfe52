"""Plots of fits (needs the ``plot`` extra: matplotlib).

matplotlib is imported inside the functions, so ``import emkit.plot`` works without it and the
error says what to install. Figures are built as ``matplotlib.figure.Figure`` objects (rendered by
Agg when saved) rather than through ``pyplot``: no global backend is switched, no window opens and
no figure is kept alive by pyplot's registry.

Every function draws on ``ax`` when given, else on a new figure, and returns the Figure.

Components are numbered and coloured in one order: ``order`` (where a function takes it) lists
the model's components in the order to show them, so that a figure agrees with a table sorted,
say, by mean; shown component ``i`` is the model's ``order[i]``, drawn in colour ``C{i}``.
Legends stand outside the axes, where they cover no data.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emkit.core.atomic import write_atomically
from emkit.errors import DataError, ParameterError
from emkit.estimators.selection import is_eligible

_CRITERIA = ("bic", "aic", "icl")
_CRITERION_NAMES = {"bic": "BIC", "aic": "AIC", "icl": "ICL"}
#: plot_criterion's zoom shows at least this many units of a criterion above its lowest value.
ZOOM_BAND = 30.0
#: Legend placement outside the right edge of the axes (constrained layout makes room).
_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("emkit's plots need matplotlib: install emkit[plot].") from None
    return matplotlib, Figure


def _axes(ax, figsize=(6.0, 4.5)):
    """``ax`` itself, or the single Axes of a new figure."""
    if ax is not None:
        return ax
    _, Figure = _matplotlib()
    figure = Figure(figsize=figsize, layout="constrained")
    return figure.add_subplot()


def _order(order: Any, n_components: int) -> np.ndarray:
    """``order`` checked to be a permutation of the components (default the model's order)."""
    if order is None:
        return np.arange(n_components)
    order = np.asarray(order)
    if order.shape != (n_components,) or sorted(order.tolist()) != list(range(n_components)):
        raise ParameterError(f"order must list each of the {n_components} components once, "
                             f"got {order.tolist()!r}.")
    return order.astype(int)


def component_colour(i: int) -> str:
    """The colour of shown component ``i`` in every emkit figure."""
    return f"C{i % 10}"


def plot_convergence(history: Any, ax=None, *, gap: bool = False,
                     title: str | None = "log-likelihood per EM step"):
    """Objective per EM iteration.

    Parameters
    ----------
    history : array of shape (n_points,), or a mapping {label: array}
        The objective at every evaluated point (e.g. ``GaussianMixture.history_``), the start
        first. A mapping draws one line per entry (e.g. plain EM against SQUAREM).
    ax : matplotlib Axes, optional
    gap : bool, default False
        Draw the distance to the best objective reached by any of the histories,
        ``max L − L_t``, on a log scale: the rate of convergence shows as the slope.
    title : str or None
        The Axes' title (None: none).

    Returns
    -------
    matplotlib.figure.Figure
    """
    histories = dict(history) if isinstance(history, Mapping) else {"EM": history}
    histories = {label: np.asarray(values, dtype=float).ravel()
                 for label, values in histories.items()}
    if not histories or any(values.size == 0 for values in histories.values()):
        raise DataError("plot_convergence needs at least one non-empty history.")
    ax = _axes(ax)
    best = max(float(values.max()) for values in histories.values())
    for label, values in histories.items():
        iterations = np.arange(values.size)
        if gap:
            distance = best - values
            # The best point itself has distance 0, which a log scale cannot show.
            shown = distance > 0
            ax.plot(iterations[shown], distance[shown], marker=".",
                    label=f"{label} ({values.size - 1} steps)")
        else:
            ax.plot(iterations, values, marker=".", label=f"{label} ({values.size - 1} steps)")
    # SQUAREM's rejected extrapolations are not in the history: only accepted points.
    ax.set_xlabel("EM step (accepted points)")
    if gap:
        ax.set_yscale("log")
        ax.set_ylabel("best log-likelihood − log-likelihood")
    else:
        ax.set_ylabel("log-likelihood")
        # Plain values: an offset ("1e-7 − 1.13e3") above the axis is hard to read.
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax.figure


def criterion_choices(selection_result: Any,
                      criteria: Sequence[str] = _CRITERIA) -> dict[str, int]:
    """The row of ``selection_result.table`` each criterion chooses (its lowest value).

    The selection's own criterion keeps the selection's choice (``best_index``). The others take
    the lowest value among the same eligible rows (:func:`emkit.estimators.selection.is_eligible`:
    converged, no component collapsed) when the selection's choice is eligible (it was then
    restricted to them, or nothing failed), else among every row. Ties go to the first row, the
    simplest model.
    """
    table = list(selection_result.table)
    best = getattr(selection_result, "best_index", None)
    own = getattr(selection_result, "criterion", None)
    restricted = best is None or is_eligible(table[best])
    eligible = [i for i, row in enumerate(table) if is_eligible(row) or not restricted]
    eligible = eligible or list(range(len(table)))
    choices = {}
    for criterion in criteria:
        if criterion == own and best is not None:
            choices[criterion] = int(best)
        else:
            choices[criterion] = min(eligible, key=lambda i: (table[i][criterion], i))
    return choices


def plot_criterion(selection_result: Any, ax=None, *, criteria: Sequence[str] = _CRITERIA,
                   zoom: bool = True,
                   title: str | None = "Information criteria against the number of components "
                                       "(lower is better)"):
    """Information criteria against the number of components, one line per covariance type.

    Parameters
    ----------
    selection_result : emkit.estimators.selection.SelectionResult
        Its ``table`` rows hold ``n_components``, ``covariance_type`` and the criteria.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per criterion.
    criteria : sequence of {"bic", "aic", "icl"}
        Which criteria to draw, one panel each. Each panel circles its own criterion's choice
        (:func:`criterion_choices`); fits that are not eligible (did not converge, or a
        component collapsed) are crossed out.
    zoom : bool, default True
        Show the band of the better models (from the lowest value to the median, and at least
        ``ZOOM_BAND`` above the lowest) rather than every value: poor models (K = 1,
        spherical covariances) would otherwise squash the differences between the good ones
        into one line. The panel's title says how many points lie above its top.
    title : str or None
        The figure's title, when the figure is created here (None: none).

    Returns
    -------
    matplotlib.figure.Figure
    """
    criteria = [criteria] if isinstance(criteria, str) else list(criteria)
    unknown = [c for c in criteria if c not in _CRITERIA]
    if not criteria or unknown:
        raise ParameterError(f"criteria must be a non-empty selection of {_CRITERIA}, got "
                             f"{criteria!r}.")
    table = list(selection_result.table)
    if not table:
        raise DataError("the selection result has an empty table: nothing to plot.")
    if ax is None:
        _, Figure = _matplotlib()
        figure = Figure(figsize=(4.6 * len(criteria) + 1.6, 4.2), layout="constrained")
        axes = list(np.atleast_1d(figure.subplots(1, len(criteria), squeeze=False)).ravel())
        if title:
            figure.suptitle(title)
    else:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != len(criteria):
            raise ParameterError(f"plot_criterion got {len(axes)} Axes for {len(criteria)} "
                                 "criteria: pass one Axes per criterion.")
    choices = criterion_choices(selection_result, criteria)
    covariance_types = list(dict.fromkeys(row["covariance_type"] for row in table))
    for axis, criterion in zip(axes, criteria, strict=True):
        name = _CRITERION_NAMES[criterion]
        for i, covariance_type in enumerate(covariance_types):
            rows = sorted((row for row in table if row["covariance_type"] == covariance_type),
                          key=lambda row: row["n_components"])
            axis.plot([row["n_components"] for row in rows], [row[criterion] for row in rows],
                      marker="os^"[i // 10 % 3], linestyle="-" if i < 10 else "--",
                      color=component_colour(i), label=covariance_type)  # 14 mclust models
        failed = [row for row in table if not is_eligible(row)]
        if failed:
            axis.plot([row["n_components"] for row in failed], [row[criterion] for row in failed],
                      marker="x", markersize=10, color="red", linestyle="none",
                      label="not eligible: did not converge or collapsed")
        chosen = table[choices[criterion]]
        axis.plot(chosen["n_components"], chosen[criterion], marker="o", markersize=15,
                  markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.5,
                  linestyle="none",
                  label=f"{name}'s choice: K={chosen['n_components']}, "
                        f"{chosen['covariance_type']}")
        values = np.array([row[criterion] for row in table], dtype=float)
        heading = f"{name}: chooses K={chosen['n_components']}, {chosen['covariance_type']}"
        if zoom and len(values) >= 4:
            low = float(values.min())
            # At least ZOOM_BAND units above the best: differences of a few units matter
            # (above 10 is "very strong" evidence for BIC, Kass & Raftery 1995).
            high = max(float(np.median(values)), low + ZOOM_BAND)
            margin = 0.08 * (high - low)
            axis.set_ylim(low - margin, high + margin)
            above = int(np.sum(values > high + margin))
            if above:
                heading += f"\n(zoomed: {above} of {len(values)} points above the top)"
        axis.set_title(heading, fontsize="medium")
        axis.set_xlabel("number of components K")
        axis.set_ylabel(f"{name} (lower is better)")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(True, alpha=0.3)
    # One legend for the figure: the covariance types are the same lines in every panel; the
    # choice differs per panel and is in each panel's title and circle.
    handles, labels = axes[-1].get_legend_handles_labels()
    keep = [j for j, label in enumerate(labels) if "'s choice" not in label]
    axes[-1].legend([handles[j] for j in keep] + [_choice_handle()],
                    [labels[j] for j in keep] + ["the criterion's choice"],
                    fontsize="small", **_OUTSIDE)
    return axes[0].figure


def _choice_handle():
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", markersize=12, markerfacecolor="none",
                  markeredgecolor="black", markeredgewidth=1.5, linestyle="none")


def _component_covariance(estimator: Any, k: int, dims: Sequence[int]) -> np.ndarray:
    """The covariance of component ``k`` over the features ``dims``, any covariance type."""
    from emkit.families.parsimonious import COVARIANCE_TYPES, layout

    covariance_type = estimator.covariance_type
    if covariance_type in COVARIANCE_TYPES:  # mclust's models are stored as one of the four
        covariance_type = layout(covariance_type)
    covariances = np.asarray(estimator.covariances_)
    n_features = estimator.means_.shape[1]
    if covariance_type == "full":
        full = covariances[k]
    elif covariance_type == "tied":
        full = covariances
    elif covariance_type == "diag":
        full = np.diag(covariances[k])
    elif covariance_type == "spherical":
        full = np.eye(n_features) * covariances[k]
    else:
        raise ParameterError(f"unknown covariance_type {covariance_type!r}.")
    return full[np.ix_(dims, dims)]


def _ellipse(mean: np.ndarray, covariance: np.ndarray, n_sigma: float, **style):
    """The ellipse of Mahalanobis radius ``n_sigma`` around ``mean``."""
    from matplotlib.patches import Ellipse

    variances, axes = np.linalg.eigh(covariance)
    variances = np.clip(variances, 0.0, None)
    major = axes[:, 1]
    angle = np.degrees(np.arctan2(major[1], major[0]))
    width, height = 2 * n_sigma * np.sqrt(variances[::-1])
    return Ellipse(tuple(mean), width, height, angle=angle, **style)


def plot_components_2d(estimator: Any, X: Any, ax=None, labels: Any = None, *,
                       dims: tuple[int, int] = (0, 1), feature_names: Sequence[str] | None = None,
                       order: Any = None, component_name: str = "component",
                       title: str | None = "{k} components ({covariance}); ellipses: 1σ solid, "
                                           "2σ dashed"):
    """Data coloured by component, with the 1- and 2-sigma ellipse of every component.

    Parameters
    ----------
    estimator : fitted emkit.GaussianMixture (any covariance type)
    X : array of shape (n_samples, n_features)
    ax : matplotlib Axes, optional
    labels : array of int of shape (n_samples,), optional
        Colours of the points (a palette apart from the components'); default the estimator's
        predicted components, in their components' colours.
    dims : pair of int
        Which two features to draw (the ellipses are the marginal covariances there).
    feature_names : sequence of str, optional
        Axis labels.
    order : sequence of int, optional
        The model's components in the order to number and colour them (see the module's
        docstring); the legend lists them in this order with their weights.
    component_name : str, default "component"
        What the legend calls a component (e.g. "cluster", as the table beside it).
    title : str or None
        The Axes' title; ``{k}`` and ``{covariance}`` are filled in.

    Returns
    -------
    matplotlib.figure.Figure
    """
    matplotlib, _ = _matplotlib()
    from matplotlib.lines import Line2D

    X, dims = _checked_pair(X, dims, "plot_components_2d")
    means = np.asarray(estimator.means_)
    order = _order(order, len(means))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))  # model component -> shown number
    if labels is None:
        colours = [component_colour(i) for i in rank[estimator.predict(X)]]
    else:
        labels = np.asarray(labels)
        if labels.shape != (len(X),):
            raise DataError(f"labels must have shape ({len(X)},), got {labels.shape}.")
        palette = matplotlib.colormaps["Set2"]
        _, label_codes = np.unique(labels, return_inverse=True)
        colours = [palette(c % 8) for c in label_codes]
    ax = _axes(ax, figsize=(7.0, 4.5))
    ax.scatter(X[:, dims[0]], X[:, dims[1]], c=colours, s=12, alpha=0.7, linewidths=0)
    handles = []
    for i, k in enumerate(order):
        centre = means[k, list(dims)]
        covariance = _component_covariance(estimator, k, dims)
        colour = component_colour(i)
        for n_sigma, line in ((1, "-"), (2, "--")):
            ax.add_patch(_ellipse(centre, covariance, n_sigma, fill=False, edgecolor=colour,
                                  linestyle=line, linewidth=1.4))
        ax.plot(*centre, marker="x", color="black", markersize=8)
        handles.append(Line2D([], [], color=colour, marker="o", linewidth=1.4,
                              label=f"{component_name} {i}: π={estimator.weights_[k]:.2f}"))
    names = ([feature_names[d] for d in dims] if feature_names is not None
             else [f"feature {d}" for d in dims])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title.format(k=len(means), covariance=estimator.covariance_type),
                     fontsize="medium")
    ax.legend(handles=handles, fontsize="small", **_OUTSIDE)
    ax.autoscale_view()
    return ax.figure


def _checked_pair(X: Any, dims: Any, name: str) -> tuple[np.ndarray, tuple[int, int]]:
    """X as a float array of at least two columns, and ``dims`` as two different indices."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2:
        raise DataError(f"{name} needs X with at least 2 columns, got shape {X.shape}.")
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or not all(0 <= d < X.shape[1] for d in dims) or dims[0] == dims[1]:
        raise ParameterError(f"dims must be two different feature indices below {X.shape[1]}, "
                             f"got {dims}.")
    return X, dims


def classification_uncertainty(estimator: Any, X: Any) -> np.ndarray:
    """1 − max_k P(k | x) per row: how uncertain the row's classification is (mclust's
    ``uncertainty``; 0 for a row one component certainly explains, up to 1 − 1/K)."""
    return 1.0 - np.max(estimator.predict_proba(X), axis=1)


def plot_uncertainty_2d(estimator: Any, X: Any, ax=None, *, dims: tuple[int, int] = (0, 1),
                        feature_names: Sequence[str] | None = None, order: Any = None,
                        title: str | None = "Classification uncertainty (larger: less certain)"):
    """Data coloured by their most probable component, each point's area proportional to its
    classification uncertainty 1 − max_k P(k | x) (:func:`classification_uncertainty`), as
    mclust's uncertainty plot: the rows between components stand out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, dims = _checked_pair(X, dims, "plot_uncertainty_2d")
    order = _order(order, len(np.asarray(estimator.means_)))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    uncertainty = classification_uncertainty(estimator, X)
    top = float(uncertainty.max())
    sizes = 2.0 + 80.0 * (uncertainty / top if top > 0 else uncertainty)
    ax = _axes(ax, figsize=(6.0, 4.5))
    ax.scatter(X[:, dims[0]], X[:, dims[1]], s=sizes, alpha=0.6, linewidths=0,
               c=[component_colour(i) for i in rank[estimator.predict(X)]])
    names = ([feature_names[d] for d in dims] if feature_names is not None
             else [f"feature {d}" for d in dims])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(f"{title}; largest {top:.2f}", fontsize="medium")
    return ax.figure


def marginal_density_2d(estimator: Any, points: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """The mixture's density of the features ``dims`` (the other features integrated out) at
    ``points`` (n, 2): Σ_k π_k N(points | μ_k[dims], Σ_k[dims, dims])."""
    means = np.asarray(estimator.means_)
    density = np.zeros(len(points))
    for k, weight in enumerate(np.asarray(estimator.weights_)):
        covariance = _component_covariance(estimator, k, dims)
        centred = points - means[k, list(dims)]
        solved = np.linalg.solve(covariance, centred.T).T
        quadratic = np.einsum("ij,ij->i", centred, solved)
        density += weight * np.exp(-0.5 * quadratic) / (
            2.0 * np.pi * np.sqrt(np.linalg.det(covariance)))
    return density


def plot_density_contours_2d(estimator: Any, X: Any, ax=None, *,
                             dims: tuple[int, int] = (0, 1), n_levels: int = 8,
                             grid_size: int = 150,
                             feature_names: Sequence[str] | None = None,
                             title: str | None = "Fitted mixture density{marginal}"):
    """Contours of the fitted mixture's two-dimensional marginal density over the data
    (:func:`marginal_density_2d`), levels evenly spaced on a log scale between the density's
    maximum and 1/1000 of it. Any covariance type. In ``title``, ``{marginal}`` says which
    features are drawn when there are more than two.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, dims = _checked_pair(X, dims, "plot_density_contours_2d")
    if int(n_levels) < 1 or int(grid_size) < 10:
        raise ParameterError(f"n_levels must be ≥ 1 and grid_size ≥ 10, got {n_levels} and "
                             f"{grid_size}.")
    low, high = X[:, dims].min(axis=0), X[:, dims].max(axis=0)
    pad = 0.08 * np.where(high > low, high - low, 1.0)
    xs, ys = (np.linspace(low[j] - pad[j], high[j] + pad[j], int(grid_size)) for j in (0, 1))
    gx, gy = np.meshgrid(xs, ys)
    density = marginal_density_2d(estimator, np.column_stack([gx.ravel(), gy.ravel()]),
                                  dims).reshape(gx.shape)
    peak = float(density.max())
    levels = np.geomspace(peak * 1e-3, peak, int(n_levels) + 1)[:-1]
    ax = _axes(ax, figsize=(6.0, 4.5))
    ax.scatter(X[:, dims[0]], X[:, dims[1]], s=6, color="0.55", alpha=0.6, linewidths=0)
    ax.contour(gx, gy, density, levels=levels, cmap="viridis", linewidths=1.1)
    names = ([feature_names[d] for d in dims] if feature_names is not None
             else [f"feature {d}" for d in dims])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        marginal = (f" of features {dims[0]} and {dims[1]} (the others integrated out)"
                    if X.shape[1] > 2 else "")
        ax.set_title(title.format(marginal=marginal), fontsize="medium")
    return ax.figure


def plot_density_1d(estimator: Any, x: Any, ax=None, *, bins: Any = "auto",
                    n_points: int = 500, xlabel: str | None = None, order: Any = None,
                    title: str | None = "{k}-component mixture density over the histogram"):
    """Histogram of one-dimensional data with the fitted mixture density and its components.

    Parameters
    ----------
    estimator : fitted emkit.GaussianMixture on one feature
    x : array of shape (n_samples,) or (n_samples, 1)
    ax : matplotlib Axes, optional
    bins : as ``numpy.histogram``
    n_points : int
        Points of the density curves.
    xlabel : str, optional
    order : sequence of int, optional
        The model's components in the order to number, colour and list them.
    title : str or None
        The Axes' title; ``{k}`` is filled in.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or x.size == 0:
        raise DataError(f"plot_density_1d needs one-dimensional data, got shape {x.shape}.")
    means = np.asarray(estimator.means_)
    if means.shape[1] != 1:
        raise DataError(f"plot_density_1d needs a model of one feature, this one has "
                        f"{means.shape[1]}.")
    order = _order(order, len(means))
    ax = _axes(ax, figsize=(7.5, 4.5))
    ax.hist(x, bins=bins, density=True, color="0.85", edgecolor="0.55", label="data")
    spread = np.ptp(x) if np.ptp(x) > 0 else 1.0
    grid = np.linspace(x.min() - 0.1 * spread, x.max() + 0.1 * spread, n_points)
    variances = np.array([_component_covariance(estimator, k, [0])[0, 0]
                          for k in range(len(means))])
    components = (estimator.weights_[:, None]
                  * np.exp(-0.5 * (grid[None, :] - means[:, 0, None]) ** 2 / variances[:, None])
                  / np.sqrt(2 * np.pi * variances[:, None]))
    mixture = np.exp(estimator.score_samples(grid[:, None]))
    for i, k in enumerate(order):
        # Drawn over the mixture line: where a component stands alone the two coincide.
        ax.plot(grid, components[k], linestyle="--", linewidth=1.5, zorder=3,
                color=component_colour(i),
                label=f"component {i} (π={estimator.weights_[k]:.2f})")
    ax.plot(grid, mixture, color="black", linewidth=2.5, alpha=0.8, zorder=2, label="mixture")
    ax.set_xlabel(xlabel or "x")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title.format(k=len(means)), fontsize="medium")
    ax.legend(fontsize="small", **_OUTSIDE)
    return ax.figure


def plot_states(series: Any, states: Any, ax=None, *, time: Any = None,
                ylabel: str | None = None, order: Any = None, legend: bool = True,
                title: str | None = None):
    """A series drawn as points coloured by the hidden state of each frame (e.g. the Viterbi
    path of an HMM, ``model.predict(X)``), over a thin grey line of the series.

    Parameters
    ----------
    series : array of shape (n_frames,)
    states : array of int of shape (n_frames,)
    ax : matplotlib Axes, optional
    time : array of shape (n_frames,), optional
        The horizontal axis (default 0, 1, …).
    ylabel : str, optional
    order : sequence of int, optional
        The states 0 … n_states − 1 in the order to number and colour them (shown state ``i``
        is ``order[i]``); default the states' own numbers.
    legend : bool, default True
        Draw the legend (False when several panels share one).
    title : str, optional
    """
    series = np.asarray(series, dtype=float).ravel()
    states = np.asarray(states).ravel()
    if series.shape != states.shape:
        raise DataError(f"series and states must have the same length, got {len(series)} "
                        f"and {len(states)}.")
    n_states = int(states.max()) + 1 if states.size else 0
    if order is not None:
        n_states = max(n_states, len(order))
    order = _order(order, n_states)
    time = np.arange(len(series)) if time is None else np.asarray(time).ravel()
    ax = _axes(ax, figsize=(8.0, 3.5))
    ax.plot(time, series, color="0.75", linewidth=0.6, zorder=1)
    for i, state in enumerate(order):
        chosen = states == state
        ax.scatter(time[chosen], series[chosen], s=6, zorder=2, color=component_colour(i),
                   label=f"state {i}")
    ax.set_xlabel("time")
    ax.set_ylabel(ylabel or "value")
    if title:
        ax.set_title(title, fontsize="medium")
    if legend:
        ax.legend(fontsize="small", markerscale=2, **_OUTSIDE)
    return ax.figure


def plot_alpha_heatmap(estimator: Any, ax=None, *, n_categories: int = 20,
                       category_names: Sequence[str] | None = None, order: Any = None,
                       log: bool = True,
                       title: str | None = "mean proportion α_kj / α_k0"):
    """Heatmap of the components' mean proportions α_kj / α_k0 for the categories that differ
    most between components (largest standard deviation across components).

    Parameters
    ----------
    estimator : fitted emkit.DirichletMultinomialMixture (or DirichletMultinomial, Dirichlet)
    ax : matplotlib Axes, optional
    n_categories : int, default 20
        How many categories (rows of the heatmap) to show, most variable first.
    category_names : sequence of str, optional
        Names of all categories (e.g. taxa); default ``feature_names_in_`` or the column numbers.
    order : sequence of int, optional
        The components in the order of the columns (column ``i`` is component ``order[i]``).
    log : bool, default True
        Colour on a log scale: proportions span decades, and a linear scale shows only the few
        largest.
    title : str or None

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import LogNorm, Normalize

    alpha = np.atleast_2d(np.asarray(getattr(estimator, "alpha_", None), dtype=float))
    if alpha.ndim != 2 or alpha.size == 0:
        raise DataError("plot_alpha_heatmap needs a fitted Dirichlet(-multinomial) estimator "
                        "(with alpha_).")
    n_features = alpha.shape[1]
    if not (isinstance(n_categories, (int, np.integer)) and n_categories >= 1):
        raise DataError(f"n_categories must be an integer >= 1, got {n_categories!r}.")
    if category_names is None:
        category_names = getattr(estimator, "feature_names_in_", None)
    names = [str(j) for j in range(n_features)] if category_names is None \
        else [str(name) for name in category_names]
    if len(names) != n_features:
        raise DataError(f"category_names has {len(names)} names for {n_features} categories.")
    order = _order(order, len(alpha))
    proportions = (alpha / alpha.sum(axis=1, keepdims=True))[order]
    # Stable sort: ties (e.g. one component) keep the column order.
    shown = np.argsort(-proportions.std(axis=0), kind="stable")[:n_categories]
    values = proportions[:, shown].T
    norm = (LogNorm(vmin=max(float(values.min()), 1e-12), vmax=float(values.max()))
            if log and values.max() > 0 else Normalize())
    ax = _axes(ax, figsize=(3.0 + 0.9 * len(alpha), 1.4 + 0.28 * len(shown)))
    image = ax.imshow(values, aspect="auto", cmap="viridis", norm=norm)
    ax.set_xticks(range(len(alpha)), [f"{i}" for i in range(len(alpha))])
    ax.set_yticks(range(len(shown)), [names[j] for j in shown])
    ax.set_xlabel("component")
    if title:
        ax.set_title(title, fontsize="medium")
    colourbar = ax.figure.colorbar(image, ax=ax)
    colourbar.set_label("mean proportion" + (" (log scale)" if log else ""))
    return ax.figure


def plot_tone_spectrum(estimator: Any, y: Any, ax=None, *, sample_rate: float = 1.0,
                       oversample: int = 8,
                       title: str | None = "periodogram and the fitted tones"):
    """Periodogram |Y(f)|²/N of ``y`` (zero-padded) with the fitted tones of a
    :class:`emkit.SuperimposedSignals` marked at their frequencies and powers a² N / 4 (real
    tones; a² N for complex ones), the height of a lone tone's periodogram peak.

    Parameters
    ----------
    estimator : fitted SuperimposedSignals with tones (``frequencies_``, ``amplitudes_``)
    y : array of shape (n_samples,)
    ax : matplotlib Axes, optional
    sample_rate : float, default 1
        Frequencies are drawn in cycles per sample × ``sample_rate`` (e.g. Hz).
    oversample : int
        Zero-padding factor of the periodogram.
    title : str or None
    """
    frequencies = getattr(estimator, "frequencies_", None)
    if frequencies is None:
        raise DataError("plot_tone_spectrum needs a SuperimposedSignals fitted with tones "
                        "(with frequencies_).")
    y = np.asarray(y).ravel()
    n = len(y)
    size = int(2 ** np.ceil(np.log2(max(oversample * n, 16))))
    power = np.abs(np.fft.fft(y, size)) ** 2 / n
    grid = np.fft.fftfreq(size)
    complex_ = np.iscomplexobj(y)
    if not complex_:
        power, grid = power[: size // 2 + 1], np.abs(grid[: size // 2 + 1])
    order = np.argsort(grid)
    ax = _axes(ax, figsize=(7.0, 4.0))
    ax.semilogy(grid[order] * sample_rate, power[order], color="0.4", linewidth=0.8,
                label="periodogram")
    peaks = estimator.amplitudes_**2 * n * (1.0 if complex_ else 0.25)
    ax.vlines(frequencies * sample_rate, power.min(), peaks, color="C3", linewidth=1.2)
    ax.scatter(frequencies * sample_rate, peaks, color="C3", zorder=3,
               label="fitted tones")
    ax.set_xlabel("frequency" + (" (cycles per sample)" if sample_rate == 1.0 else ""))
    ax.set_ylabel("power")
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    return ax.figure


def plot_separated(estimator: Any, y: Any, ax=None, *, time: Any = None,
                   title: str | None = "the signal and its separated components"):
    """The signal ``y`` and its separated components ``estimator.transform(y)`` (each fitted
    component with its share of the residual), stacked with offsets; real parts of complex
    signals.

    Parameters
    ----------
    estimator : fitted emkit.SuperimposedSignals
    y : array of shape (n_samples,)
    ax : matplotlib Axes, optional
    time : array of shape (n_samples,), optional
    title : str or None
    """
    parts = np.real(estimator.transform(y))
    y = np.real(np.asarray(y).ravel())
    xlabel = "sample" if time is None else "time"
    time = np.arange(len(y)) if time is None else np.asarray(time).ravel()
    if len(time) != len(y):
        raise DataError(f"time has {len(time)} values for {len(y)} samples.")
    spread = 2.5 * max(float(np.max(np.abs(y))), 1e-12)
    ax = _axes(ax, figsize=(8.0, 1.5 + 1.2 * (parts.shape[1] + 1)))
    ax.plot(time, y, color="0.3", linewidth=0.8, label="signal")
    for k in range(parts.shape[1]):
        ax.plot(time, parts[:, k] - (k + 1) * spread, linewidth=0.8, label=f"component {k}")
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", **_OUTSIDE)
    return ax.figure


def save_figure(figure: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` atomically (temporary file + rename); the format follows
    the suffix (``.png``, ``.svg``, ``.pdf``)."""
    path = Path(path)
    buffer = io.BytesIO()
    # bbox_inches="tight": nothing (a long axis label, an outside legend) is cut at the edge.
    figure.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi,
                   bbox_inches="tight", pad_inches=0.08)
    return write_atomically(path, buffer.getvalue())


__all__ = ["classification_uncertainty", "component_colour", "criterion_choices",
           "marginal_density_2d", "plot_alpha_heatmap", "plot_components_2d", "plot_convergence",
           "plot_criterion", "plot_density_1d", "plot_density_contours_2d", "plot_separated",
           "plot_states", "plot_tone_spectrum", "plot_uncertainty_2d", "save_figure"]
