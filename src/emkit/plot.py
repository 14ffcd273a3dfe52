"""Plots of fits (needs the ``plot`` extra: matplotlib).

matplotlib is imported inside the functions, so ``import emkit.plot`` works without it and the
error says what to install. Figures are built as ``matplotlib.figure.Figure`` objects (rendered by
Agg when saved) rather than through ``pyplot``: no global backend is switched, no window opens and
no figure is kept alive by pyplot's registry.

Every function draws on ``ax`` when given, else on a new figure, and returns the Figure.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emkit.atomic import write_atomically
from emkit.errors import DataError, ParameterError

_CRITERIA = ("bic", "aic", "icl")
_CRITERION_NAMES = {"bic": "BIC", "aic": "AIC", "icl": "ICL"}


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


def plot_convergence(history: Any, ax=None, *, gap: bool = False):
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
    ax.set_xlabel("EM step (accepted point; SQUAREM's rejected extrapolations not shown)")
    if gap:
        ax.set_yscale("log")
        ax.set_ylabel("best log-likelihood − log-likelihood")
    else:
        ax.set_ylabel("log-likelihood")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return ax.figure


def plot_criterion(selection_result: Any, ax=None, *, criteria: Sequence[str] = _CRITERIA):
    """Information criteria against the number of components, one line per covariance type.

    Parameters
    ----------
    selection_result : emkit.selection.SelectionResult
        Its ``table`` rows hold ``n_components``, ``covariance_type`` and the criteria.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per criterion.
    criteria : sequence of {"bic", "aic", "icl"}
        Which criteria to draw, one panel each. The model the selection chose is circled, fits
        that did not converge are crossed out.

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
        figure = Figure(figsize=(4.2 * len(criteria), 4.0), layout="constrained")
        axes = list(np.atleast_1d(figure.subplots(1, len(criteria), squeeze=False)).ravel())
    else:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != len(criteria):
            raise ParameterError(f"plot_criterion got {len(axes)} Axes for {len(criteria)} "
                                 "criteria: pass one Axes per criterion.")
    best = getattr(selection_result, "best_index", None)
    covariance_types = list(dict.fromkeys(row["covariance_type"] for row in table))
    for axis, criterion in zip(axes, criteria, strict=True):
        for covariance_type in covariance_types:
            rows = sorted((row for row in table if row["covariance_type"] == covariance_type),
                          key=lambda row: row["n_components"])
            axis.plot([row["n_components"] for row in rows], [row[criterion] for row in rows],
                      marker="o", label=covariance_type)
        failed = [row for row in table if not row.get("converged", True)]
        if failed:
            axis.plot([row["n_components"] for row in failed], [row[criterion] for row in failed],
                      marker="x", markersize=10, color="red", linestyle="none",
                      label="did not converge")
        if best is not None:
            chosen = table[best]
            axis.plot(chosen["n_components"], chosen[criterion], marker="o", markersize=14,
                      markerfacecolor="none", markeredgecolor="black", linestyle="none",
                      label=f"chosen: K={chosen['n_components']}, {chosen['covariance_type']}")
        axis.set_xlabel("number of components K")
        axis.set_ylabel(f"{_CRITERION_NAMES[criterion]} (lower is better)")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    return axes[0].figure


def _component_covariance(estimator: Any, k: int, dims: Sequence[int]) -> np.ndarray:
    """The covariance of component ``k`` over the features ``dims``, any covariance type."""
    covariance_type = estimator.covariance_type
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
                       dims: tuple[int, int] = (0, 1), feature_names: Sequence[str] | None = None):
    """Data coloured by component, with the 1- and 2-sigma ellipse of every component.

    Parameters
    ----------
    estimator : fitted emkit.GaussianMixture (any covariance type)
    X : array of shape (n_samples, n_features)
    ax : matplotlib Axes, optional
    labels : array of int of shape (n_samples,), optional
        Colours of the points; default the estimator's predicted components.
    dims : pair of int
        Which two features to draw (the ellipses are the marginal covariances there).
    feature_names : sequence of str, optional
        Axis labels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    matplotlib, _ = _matplotlib()
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2:
        raise DataError(f"plot_components_2d needs X with at least 2 columns, got shape "
                        f"{X.shape}.")
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or not all(0 <= d < X.shape[1] for d in dims) or dims[0] == dims[1]:
        raise ParameterError(f"dims must be two different feature indices below {X.shape[1]}, "
                             f"got {dims}.")
    labels = estimator.predict(X) if labels is None else np.asarray(labels)
    if labels.shape != (len(X),):
        raise DataError(f"labels must have shape ({len(X)},), got {labels.shape}.")
    ax = _axes(ax)
    colours = matplotlib.colormaps["tab10"]
    _, label_codes = np.unique(labels, return_inverse=True)
    ax.scatter(X[:, dims[0]], X[:, dims[1]], c=[colours(c % 10) for c in label_codes], s=12,
               alpha=0.7, linewidths=0)
    means = np.asarray(estimator.means_)
    for k in range(len(means)):
        centre = means[k, list(dims)]
        covariance = _component_covariance(estimator, k, dims)
        for n_sigma, line in ((1, "-"), (2, "--")):
            ax.add_patch(_ellipse(centre, covariance, n_sigma, fill=False, edgecolor="black",
                                  linestyle=line, linewidth=1.2))
        ax.plot(*centre, marker="x", color="black", markersize=8)
        ax.annotate(f"{k}: π={estimator.weights_[k]:.2f}", centre, textcoords="offset points",
                    xytext=(6, 6), fontsize="small")
    names = ([feature_names[d] for d in dims] if feature_names is not None
             else [f"feature {d}" for d in dims])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"{len(means)} components ({estimator.covariance_type}); "
                 "ellipses: 1σ solid, 2σ dashed", fontsize="medium")
    ax.autoscale_view()
    return ax.figure


def plot_density_1d(estimator: Any, x: Any, ax=None, *, bins: Any = "auto",
                    n_points: int = 500, xlabel: str | None = None):
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
    ax = _axes(ax)
    ax.hist(x, bins=bins, density=True, color="0.8", edgecolor="0.5", label="data")
    spread = np.ptp(x) if np.ptp(x) > 0 else 1.0
    grid = np.linspace(x.min() - 0.1 * spread, x.max() + 0.1 * spread, n_points)
    variances = np.array([_component_covariance(estimator, k, [0])[0, 0]
                          for k in range(len(means))])
    components = (estimator.weights_[:, None]
                  * np.exp(-0.5 * (grid[None, :] - means[:, 0, None]) ** 2 / variances[:, None])
                  / np.sqrt(2 * np.pi * variances[:, None]))
    mixture = np.exp(estimator.score_samples(grid[:, None]))
    for k, density in enumerate(components):
        # Drawn over the mixture line: where a component stands alone the two coincide.
        ax.plot(grid, density, linestyle="--", linewidth=1.5, zorder=3,
                label=f"component {k} (π={estimator.weights_[k]:.2f})")
    ax.plot(grid, mixture, color="black", linewidth=2.5, alpha=0.8, zorder=2, label="mixture")
    ax.set_xlabel(xlabel or "x")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax.figure


def plot_states(series: Any, states: Any, ax=None, *, time: Any = None,
                ylabel: str | None = None):
    """A series drawn as points coloured by the hidden state of each frame (e.g. the Viterbi
    path of an HMM, ``model.predict(X)``), over a thin grey line of the series.

    Parameters
    ----------
    series : array of shape (n_frames,)
    states : array of int of shape (n_frames,)
    ax : matplotlib Axes, optional
    time : array of shape (n_frames,), optional
        The horizontal axis (default 0, 1, …).
    """
    series = np.asarray(series, dtype=float).ravel()
    states = np.asarray(states).ravel()
    if series.shape != states.shape:
        raise DataError(f"series and states must have the same length, got {len(series)} "
                        f"and {len(states)}.")
    time = np.arange(len(series)) if time is None else np.asarray(time).ravel()
    ax = _axes(ax, figsize=(8.0, 3.5))
    ax.plot(time, series, color="0.75", linewidth=0.6, zorder=1)
    for state in np.unique(states):
        chosen = states == state
        ax.scatter(time[chosen], series[chosen], s=6, zorder=2, label=f"state {state}")
    ax.set_xlabel("time")
    ax.set_ylabel(ylabel or "value")
    ax.legend(fontsize="small", markerscale=2)
    return ax.figure


def plot_alpha_heatmap(estimator: Any, ax=None, *, n_categories: int = 20,
                       category_names: Sequence[str] | None = None):
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

    Returns
    -------
    matplotlib.figure.Figure
    """
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
    proportions = alpha / alpha.sum(axis=1, keepdims=True)
    # Stable sort: ties (e.g. one component) keep the column order.
    shown = np.argsort(-proportions.std(axis=0), kind="stable")[:n_categories]
    ax = _axes(ax, figsize=(2.0 + 0.9 * len(alpha), 1.2 + 0.28 * len(shown)))
    image = ax.imshow(proportions[:, shown].T, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(alpha)), [f"{k}" for k in range(len(alpha))])
    ax.set_yticks(range(len(shown)), [names[j] for j in shown])
    ax.set_xlabel("component")
    ax.set_title("mean proportion α_kj / α_k0")
    ax.figure.colorbar(image, ax=ax)
    return ax.figure


def plot_tone_spectrum(estimator: Any, y: Any, ax=None, *, sample_rate: float = 1.0,
                       oversample: int = 8):
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
    ax.legend(fontsize="small")
    return ax.figure


def plot_separated(estimator: Any, y: Any, ax=None, *, time: Any = None):
    """The signal ``y`` and its separated components ``estimator.transform(y)`` (each fitted
    component with its share of the residual), stacked with offsets; real parts of complex
    signals.

    Parameters
    ----------
    estimator : fitted emkit.SuperimposedSignals
    y : array of shape (n_samples,)
    ax : matplotlib Axes, optional
    time : array of shape (n_samples,), optional
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
    ax.legend(fontsize="small", loc="upper right")
    return ax.figure


def save_figure(figure: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` atomically (temporary file + rename); the format follows
    the suffix (``.png``, ``.svg``, ``.pdf``)."""
    path = Path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    return write_atomically(path, buffer.getvalue())


__all__ = ["plot_alpha_heatmap", "plot_components_2d", "plot_convergence", "plot_criterion",
           "plot_density_1d", "plot_states", "save_figure"]
