"""``emkit demo``: fit the bundled real data sets and write a report folder.

The report holds PNG figures (when matplotlib is installed), ``summary.md`` for people and
``summary.json`` for programs:

- **Old Faithful** (272 eruptions, 2-D): choose K = 1..6 and the covariance type by BIC, draw the
  chosen mixture's ellipses, and compare plain EM with SQUAREM from the same start.
- **Galaxies** (82 velocities, 1-D): BIC over K = 1..8 with equal (``tied``) or unequal
  (``full``) variances, and the chosen density over the histogram.
- **Palmer penguins** (four body measurements, some missing): a 3-component mixture, compared
  with the species by the adjusted Rand index.
- **Air quality** (Ozone and Solar.R partly missing): the multivariate normal with missing data.

Every fit has a fixed seed, so the report is the same on every run.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from emkit.atomic import write_atomically
from emkit.errors import ConvergenceWarning
from emkit.io import json_default

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PENGUIN_MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


def run_demo(output_dir: str | Path = "emkit-report", *, quick: bool = False,
             seed: int = 0) -> Path:
    """Fit the bundled data sets and write the report into ``output_dir``.

    Parameters
    ----------
    output_dir : path
        The report folder, created when missing; files already there are overwritten.
    quick : bool, default False
        Fewer restarts and smaller K ranges (for tests); the full report is the default.
    seed : int
        Seed of every fit.

    Returns
    -------
    pathlib.Path
        The path of ``summary.md``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = _plotting_available()
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Fits that stop at max_iter are expected here (collapsing components); the report's
        # tables say which.
        warnings.simplefilter("ignore", ConvergenceWarning)
        sections = {
            "faithful": _faithful(output_dir, plots, quick, seed),
            "galaxies": _galaxies(output_dir, plots, quick, seed),
            "penguins": _penguins(output_dir, plots, quick, seed),
            "airquality": _airquality(seed),
        }
    from emkit import __version__

    summary = {
        "emkit_version": __version__,
        "seed": seed,
        "quick": quick,
        "figures": plots,
        "seconds": round(time.perf_counter() - started, 2),
        **sections,
    }
    write_atomically(output_dir / "summary.json",
                     json.dumps(summary, indent=2, default=json_default) + "\n")
    path = write_atomically(output_dir / "summary.md", _markdown(summary))
    return path


def _plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _gmm(n_components: int, covariance_type: str, seed: int, **params: Any):
    from emkit.estimators import GaussianMixture

    return GaussianMixture(n_components, covariance_type=covariance_type, random_state=seed,
                           **params)


def _selection_rows(result) -> list[dict]:
    return [dict(row) for row in result.table]


def _best_converged(selection):
    """The selection with its choice restricted to fits that converged.

    A fit that runs out of iterations here is a component collapsing onto repeated values (Old
    Faithful's waiting times are whole minutes): its variance shrinks towards ``reg_covar`` and its
    likelihood grows without bound, so its BIC says nothing about the number of clusters (mclust
    reports no BIC for such fits either)."""
    criterion = selection.criterion
    eligible = [i for i, row in enumerate(selection.table) if row["converged"]]
    if not eligible:
        return selection
    best = min(eligible, key=lambda i: (selection.table[i][criterion], i))
    return dataclasses.replace(selection, best_index=best)


# ------------------------------------------------------------------------------ Old Faithful
def _faithful(output_dir: Path, plots: bool, quick: bool, seed: int) -> dict:
    from emkit import datasets
    from emkit.selection import select_model

    faithful = datasets.load("faithful")
    X = faithful.data
    k_range = range(1, 4 if quick else 7)
    covariance_types = ("full", "diag") if quick else COVARIANCE_TYPES
    selection = select_model(X, k_range, covariance_types, criterion="bic", random_state=seed,
                             n_init=1 if quick else 3, tol=1e-6, max_iter=500)
    selection = _best_converged(selection)
    best = selection.best_estimator
    best_row = selection.table[selection.best_index]

    # Plain EM and SQUAREM from the same start (same seed, one start), run to a tight tolerance
    # so the iteration counts measure the speed of convergence, not the stopping rule.
    convergence = {}
    histories = {}
    for label, accelerate in (("plain EM", None), ("SQUAREM", "squarem")):
        model = _gmm(best_row["n_components"], best_row["covariance_type"], seed,
                     accelerate=accelerate, tol=1e-10, max_iter=5000).fit(X)
        histories[label] = model.history_
        convergence[label] = {"n_iter": int(model.n_iter_), "converged": bool(model.converged_),
                              "log_likelihood": float(model.history_[-1]),
                              "start_log_likelihood": float(model.history_[0])}

    figures = {}
    if plots:
        from emkit.plot import plot_components_2d, plot_convergence, plot_criterion, save_figure

        figure = plot_criterion(selection)
        figure.suptitle("Old Faithful: information criteria (lower is better)")
        figures["criteria"] = _save(figure, output_dir / "faithful_criteria.png", save_figure)
        figure = plot_components_2d(best, X, feature_names=faithful.columns)
        figures["components"] = _save(figure, output_dir / "faithful_components.png", save_figure)
        figure = _side_by_side(plot_convergence, histories)
        figure.suptitle(f"Old Faithful, K={best_row['n_components']} "
                        f"{best_row['covariance_type']}: plain EM vs SQUAREM from the same start")
        figures["convergence"] = _save(figure, output_dir / "faithful_convergence.png",
                                       save_figure)
    return {
        "n_samples": len(X),
        "columns": list(faithful.columns),
        "source": faithful.source,
        "selection": _selection_rows(selection),
        "best": dict(best_row),
        "weights": best.weights_.tolist(),
        "means": best.means_.tolist(),
        "convergence": convergence,
        "figures": figures,
    }


def _side_by_side(plot_convergence, histories) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    plot_convergence(histories, ax=left)
    plot_convergence(histories, ax=right, gap=True)
    left.set_title("log-likelihood")
    right.set_title("distance to the maximum (log scale)")
    return figure


def _save(figure, path: Path, save_figure) -> str:
    save_figure(figure, path)
    return path.name


# ------------------------------------------------------------------------------ galaxies
def _galaxies(output_dir: Path, plots: bool, quick: bool, seed: int) -> dict:
    from emkit import datasets
    from emkit.selection import select_model

    galaxies = datasets.load("galaxies")
    # In 1000 km/s, the unit of Roeder (1990): the default reg_covar (1e-6) is then negligible
    # next to the variances, as in the published analyses.
    x = galaxies.data / 1000.0
    k_range = range(1, 5 if quick else 9)
    # In one dimension "tied" is the equal-variance model and "full" the unequal-variance one.
    selection = select_model(x, k_range, ("tied", "full"), criterion="bic", random_state=seed,
                             n_init=2 if quick else 10, tol=1e-6, max_iter=1000)
    selection = _best_converged(selection)
    best = selection.best_estimator
    best_row = selection.table[selection.best_index]
    figures = {}
    if plots:
        from emkit.plot import plot_criterion, plot_density_1d, save_figure

        figure = plot_criterion(selection, criteria=("bic",))
        figure.suptitle("Galaxies: BIC (tied = equal variances)")
        figures["criteria"] = _save(figure, output_dir / "galaxies_bic.png", save_figure)
        figure = plot_density_1d(best, x, bins=20, xlabel="velocity (1000 km/s)")
        figure.axes[0].set_title(f"Galaxies: K={best_row['n_components']} "
                                 f"({_variances(best_row['covariance_type'])} variances)")
        figures["density"] = _save(figure, output_dir / "galaxies_density.png", save_figure)
    order = np.argsort(best.means_[:, 0])
    return {
        "n_samples": len(x),
        "unit": "1000 km/s",
        "source": galaxies.source,
        "selection": _selection_rows(selection),
        "best": dict(best_row),
        "weights": best.weights_[order].tolist(),
        "means": best.means_[order, 0].tolist(),
        "standard_deviations": [float(np.sqrt(_variance(best, k))) for k in order],
        "figures": figures,
    }


def _variances(covariance_type: str) -> str:
    """In one dimension, tied means one variance shared by the components."""
    return "equal" if covariance_type == "tied" else "unequal"


def _variance(model, k: int) -> float:
    covariances = np.asarray(model.covariances_)
    return float(covariances.ravel()[0] if model.covariance_type == "tied"
                 else covariances[k].ravel()[0])


# ------------------------------------------------------------------------------ penguins
def _penguins(output_dir: Path, plots: bool, quick: bool, seed: int) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from emkit import datasets

    penguins = datasets.load("penguins")
    X = np.column_stack([penguins.column(name) for name in PENGUIN_MEASUREMENTS])
    species = np.asarray(penguins.column("species"))
    # Every row is fitted (missing measurements are handled by the exact EM; a penguin with no
    # measurement contributes nothing); the clusters are compared on the measured penguins.
    measured = ~np.isnan(X).all(axis=1)
    complete = ~np.isnan(X).any(axis=1)
    # Standardised columns: body mass (grams) would otherwise dominate the k-means++ start; the
    # maximum likelihood of a full-covariance mixture does not depend on the scale.
    standardised = (X - np.nanmean(X, axis=0)) / np.nanstd(X, axis=0)
    model = _gmm(3, "full", seed, n_init=2 if quick else 10, tol=1e-6, max_iter=1000)
    model.fit(standardised)
    standardised, species = standardised[measured], species[measured]
    clusters = model.predict(standardised)
    ari = float(adjusted_rand_score(species, clusters))
    names = sorted(set(species))
    crosstab = {name: [int(np.sum((species == name) & (clusters == k))) for k in range(3)]
                for name in names}
    figures = {}
    if plots:
        from emkit.plot import plot_components_2d, save_figure

        figure = plot_components_2d(model, standardised, dims=(0, 2),
                                    feature_names=[f"{name} (standardised)"
                                                   for name in PENGUIN_MEASUREMENTS])
        figure.axes[0].set_title(f"Penguins: 3 clusters (ARI vs species {ari:.2f})",
                                 fontsize="medium")
        figures["clusters"] = _save(figure, output_dir / "penguins_clusters.png", save_figure)
    return {
        "n_samples": int(len(X)),
        "n_measured": int(measured.sum()),
        "n_incomplete": int((~complete).sum()),
        "columns": list(PENGUIN_MEASUREMENTS),
        "source": penguins.source,
        "log_likelihood_standardised": float(model.score(standardised) * len(standardised)),
        "converged": bool(model.converged_),
        "adjusted_rand_index": ari,
        "clusters_by_species": crosstab,
        "figures": figures,
    }


# ------------------------------------------------------------------------------ airquality
def _airquality(seed: int) -> dict:
    """The multivariate normal with missing data (K = 1): maximum likelihood means against the
    complete-case means, and the conditional-mean imputation of the first incomplete day."""
    from emkit import GaussianMixture, datasets
    from emkit.imputer import EMImputer

    air = datasets.load("airquality")
    columns = [c for c in ("Ozone", "Solar.R", "Wind", "Temp") if c in air.columns]
    X = np.column_stack([air.column(name) for name in columns])
    # Ozone is skewed and positive: modelled on the log scale (a normal would impute negative
    # concentrations on the raw scale), reported back in ppb.
    X[:, 0] = np.log(X[:, 0])
    model = GaussianMixture(1, random_state=seed, tol=1e-10, max_iter=1000).fit(X)
    complete = ~np.isnan(X).any(axis=1)
    filled = EMImputer(random_state=seed, tol=1e-10, max_iter=1000).fit_transform(X)
    first = int(np.flatnonzero(~complete)[0])
    X[:, 0], filled[:, 0] = np.exp(X[:, 0]), np.exp(filled[:, 0])
    return {
        "columns": columns,
        "n_samples": int(len(X)),
        "missing": {name: int(np.isnan(X[:, j]).sum()) for j, name in enumerate(columns)},
        "n_complete": int(complete.sum()),
        "em_means": [float(np.exp(model.means_[0, 0])), *model.means_[0, 1:].tolist()],
        "complete_case_means": [float(np.exp(np.log(X[complete, 0]).mean())),
                                *X[complete, 1:].mean(axis=0).tolist()],
        "example_row": first + 1,
        "example_observed": [None if np.isnan(v) else float(v) for v in X[first]],
        "example_filled": filled[first].tolist(),
        "n_iter": int(model.n_iter_),
        "source": air.source,
    }


# ------------------------------------------------------------------------------ summary
def _table(rows: list[dict], best: dict) -> list[str]:
    lines = ["| K | covariance | log-likelihood | parameters | BIC | AIC | ICL | converged |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        chosen = (row["n_components"], row["covariance_type"]) == (best["n_components"],
                                                                   best["covariance_type"])
        mark = "**" if chosen else ""
        lines.append(f"| {mark}{row['n_components']}{mark} | {row['covariance_type']} | "
                     f"{row['log_likelihood']:.2f} | {row['n_parameters']} | "
                     f"{mark}{row['bic']:.2f}{mark} | {row['aic']:.2f} | {row['icl']:.2f} | "
                     f"{'yes' if row['converged'] else 'no'} |")
    return lines


def _not_converged_note(rows: list[dict]) -> list[str]:
    failed = [f"K={row['n_components']} {row['covariance_type']}" for row in rows
              if not row["converged"]]
    if not failed:
        return []
    return ["", f"Not eligible ({', '.join(failed)}): these fits did not converge — a component "
            "collapses onto repeated values, its variance shrinks towards `reg_covar` and the "
            "likelihood grows without bound, so their BIC says nothing about the number of "
            "clusters."]


def _figure(section: dict, key: str, caption: str) -> list[str]:
    name = section["figures"].get(key)
    return [f"![{caption}]({name})", ""] if name else []


def _markdown(summary: dict) -> str:
    faithful, galaxies, penguins = (summary[k] for k in ("faithful", "galaxies", "penguins"))
    lines = [
        "# emkit demo report",
        "",
        f"emkit {summary['emkit_version']}, seed {summary['seed']}"
        + (", quick settings" if summary["quick"] else "")
        + f"; fitted in {summary['seconds']:.1f} s.",
        "",
    ]
    if not summary["figures"]:
        lines += ["Figures were skipped: install emkit[plot] (matplotlib) to draw them.", ""]

    best = faithful["best"]
    em, squarem = faithful["convergence"]["plain EM"], faithful["convergence"]["SQUAREM"]
    lines += [
        "## Old Faithful: how many clusters of eruptions?",
        "",
        f"{faithful['n_samples']} eruptions, columns {', '.join(faithful['columns'])}. "
        f"Source: {faithful['source']}",
        "",
        f"Lowest BIC: **K = {best['n_components']}, covariance `{best['covariance_type']}`** "
        f"(log-likelihood {best['log_likelihood']:.3f}).",
        "",
        *_table(faithful["selection"], best),
        *_not_converged_note(faithful["selection"]),
        "",
        "| component | weight | " + " | ".join(f"mean {c}" for c in faithful["columns"]) + " |",
        "|---:|---:|" + "---:|" * len(faithful["columns"]),
        *(f"| {k} | {w:.3f} | " + " | ".join(f"{m:.3f}" for m in mean) + " |"
          for k, (w, mean) in enumerate(zip(faithful["weights"], faithful["means"],
                                            strict=True))),
        "",
        *_figure(faithful, "criteria", "Old Faithful information criteria"),
        *_figure(faithful, "components", "Old Faithful components"),
        "Plain EM against SQUAREM from the same start, both to a change below 1e-10 per row:",
        "",
        "| method | passes over the data | converged | final log-likelihood |",
        "|---|---:|---|---:|",
        f"| plain EM | {em['n_iter']} | {em['converged']} | {em['log_likelihood']:.6f} |",
        f"| SQUAREM | {squarem['n_iter']} | {squarem['converged']} | "
        f"{squarem['log_likelihood']:.6f} |",
        "",
        *_figure(faithful, "convergence", "convergence of plain EM and SQUAREM"),
    ]

    best = galaxies["best"]
    lines += [
        "## Galaxies: velocities of 82 galaxies (1-D)",
        "",
        f"Velocities in {galaxies['unit']}. `tied` = equal variances, `full` = unequal. "
        f"Source: {galaxies['source']}",
        "",
        f"Lowest BIC: **K = {best['n_components']}, "
        f"{_variances(best['covariance_type'])} variances**.",
        "",
        *_table(galaxies["selection"], best),
        *_not_converged_note(galaxies["selection"]),
        "",
        "| component | weight | mean | standard deviation |",
        "|---:|---:|---:|---:|",
        *(f"| {k} | {w:.3f} | {m:.3f} | {s:.3f} |" for k, (w, m, s) in enumerate(zip(
            galaxies["weights"], galaxies["means"], galaxies["standard_deviations"],
            strict=True))),
        "",
        *_figure(galaxies, "criteria", "galaxies BIC"),
        *_figure(galaxies, "density", "galaxies density"),
    ]

    crosstab = penguins["clusters_by_species"]
    lines += [
        "## Palmer penguins: do three clusters find the three species?",
        "",
        f"All {penguins['n_samples']} penguins, four measurements "
        f"({', '.join(penguins['columns'])}), standardised, K = 3, full covariances; "
        f"{penguins['n_incomplete']} rows have missing measurements and are fitted by the exact "
        "EM (a row with no measurement at all contributes nothing). "
        f"Source: {penguins['source']}",
        "",
        f"Adjusted Rand index of the clusters against the species "
        f"({penguins['n_measured']} measured penguins): "
        f"**{penguins['adjusted_rand_index']:.3f}** (1 = the same partition, 0 = chance).",
        "",
        "| species | cluster 0 | cluster 1 | cluster 2 |",
        "|---|---:|---:|---:|",
        *(f"| {name} | " + " | ".join(map(str, counts)) + " |"
          for name, counts in crosstab.items()),
        "",
        *_figure(penguins, "clusters", "penguin clusters"),
    ]

    air = summary["airquality"]
    lines += [
        "",
        "## New York air quality: a multivariate normal with missing values",
        "",
        f"{air['n_samples']} days, columns {', '.join(air['columns'])}; missing: "
        + ", ".join(f"{name} {count}" for name, count in air["missing"].items())
        + f". One component (`GaussianMixture(1)`) on log Ozone and the other columns: the "
        "classic maximum likelihood estimate with missing data (Little & Rubin), "
        f"{air['n_iter']} EM iterations; Ozone is shown back in ppb (its mean is the geometric "
        "mean). "
        f"Source: {air['source']}",
        "",
        "| | " + " | ".join(air["columns"]) + " |",
        "|---|" + "---:|" * len(air["columns"]),
        "| mean, exact EM (all days) | " + " | ".join(f"{v:.2f}" for v in air["em_means"])
        + " |",
        f"| mean, complete cases only ({air['n_complete']} days) | "
        + " | ".join(f"{v:.2f}" for v in air["complete_case_means"]) + " |",
        f"| day {air['example_row']} as observed | "
        + " | ".join("—" if v is None else f"{v:.1f}" for v in air["example_observed"]) + " |",
        f"| day {air['example_row']} imputed (`EMImputer`) | "
        + " | ".join(f"{v:.1f}" for v in air["example_filled"]) + " |",
    ]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["run_demo"]
