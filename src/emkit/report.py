"""``emkit demo``: fit the bundled real data sets and write a report folder.

The report holds PNG figures (when matplotlib is installed), ``summary.md`` for people,
``summary.json`` for programs and ``report.html``, the same report as one self-contained page
(figures embedded as data URIs, each beside its table; nothing loaded from elsewhere). Each data
set numbers its components in one order (by mean, or by weight) in its tables, legends and
colours:

- **Old Faithful** (272 eruptions, 2-D): choose K = 1..6 and the covariance type by BIC, draw the
  chosen mixture's ellipses, and compare plain EM with SQUAREM from the same start.
- **Galaxies** (82 velocities, 1-D): BIC over K = 1..8 with equal (``tied``) or unequal
  (``full``) variances, and the chosen density over the histogram.
- **Palmer penguins** (four body measurements, some missing): a 3-component mixture, compared
  with the species by the adjusted Rand index.
- **Air quality** (Ozone and Solar.R partly missing): the multivariate normal with missing data.
- **Twins gut microbiome** (278 samples × 130 taxa): Dirichlet-multinomial mixtures with
  K = 1..4, Holmes et al.'s objective, the Laplace evidence (which chooses K), BIC and AIC, and
  the heatmap of the chosen components' mean proportions.
- **Two close tones** (the bundled WAV clip): superimposed signals (Feder & Weinstein), the
  fitted frequencies, amplitudes and phases against the true ones, the Cramér–Rao bound and the
  periodogram's peaks.
- **Optimal mixture of fixed models**: the weights of Gaussian mixtures K = 1..5, fitted on one
  half of Old Faithful, learned on the other half, against the best single model.
- **Old Faithful geyser** (299 consecutive eruptions): Gaussian hidden Markov models with 2 and
  3 states against the mixture, their transition matrices and the Viterbi path.
- **Great discoveries** (yearly counts, 1860–1959): Poisson mixtures, K chosen by BIC, the
  rates and weights with standard errors, observed against expected years.
- **Ethanol engine runs** (mixtools' ``NOdata``): mixtures of linear regressions, K chosen by
  BIC, the lines with standard errors against mixtools' best maximum, drawn over the runs.
- **European stock returns** (DAX and FTSE daily log-returns): Student-t against Gaussian
  mixtures by BIC, ν and the means with standard errors, the tails against the Gaussian's.

Every fit has a fixed seed, so the report is the same on every run; ``summary.json`` also
records the seconds each section took.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from emkit.core.atomic import write_atomically
from emkit.data.io import json_default
from emkit.errors import ConvergenceWarning

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PENGUIN_MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


def run_demo(output_dir: str | Path = "emkit-report", *, quick: bool = False,
             seed: int = 0, html_page: bool = True, figures: dict | None = None,
             announce: Callable[[str], None] | None = None) -> Path:
    """Fit the bundled data sets and write the report into ``output_dir``.

    Parameters
    ----------
    output_dir : path
        The report folder, created when missing; files already there are overwritten.
    quick : bool, default False
        Fewer restarts and smaller K ranges (for tests); the full report is the default.
    seed : int
        Seed of every fit.
    html_page : bool, default True
        Also write ``report.html``: the same report as one self-contained page (figures
        embedded, nothing loaded from elsewhere).
    figures : dict, optional
        When given, receives the matplotlib Figure behind every PNG, by file name (to check or
        restyle one).
    announce : callable, optional
        Called with one line before each data set is fitted, saying what is fitted (the
        command line prints it on stderr).

    Returns
    -------
    pathlib.Path
        The path of ``summary.md``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = _Figures(output_dir, _plotting_available(), figures)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Fits that stop at max_iter are expected here (collapsing components); the report's
        # tables say which.
        warnings.simplefilter("ignore", ConvergenceWarning)
        sections, section_seconds = {}, {}
        for name, build in (("faithful", _faithful), ("galaxies", _galaxies),
                            ("penguins", _penguins), ("airquality", _airquality),
                            ("twins", _twins), ("tones", _tones),
                            ("fixed_mixture", _fixed_mixture), ("geyser", _geyser),
                            ("discoveries", _discoveries), ("ethanol", _ethanol),
                            ("eustock", _eustock)):
            if announce is not None:
                announce(f"fitting {name}: {_SECTIONS[name]}")
            section_started = time.perf_counter()
            sections[name] = build(output_dir, plots, quick, seed)
            section_seconds[name] = round(time.perf_counter() - section_started, 2)
    from emkit import __version__

    summary = {
        "emkit_version": __version__,
        "seed": seed,
        "quick": quick,
        "figures": plots.enabled,
        "seconds": round(time.perf_counter() - started, 2),
        "section_seconds": section_seconds,
        **sections,
    }
    write_atomically(output_dir / "summary.json",
                     json.dumps(summary, indent=2, default=json_default) + "\n")
    markdown = _markdown(summary)
    path = write_atomically(output_dir / "summary.md", markdown)
    if html_page:
        write_atomically(output_dir / "report.html", _html(markdown, output_dir))
    return path


# What each section fits, in a line (for ``announce``).
_SECTIONS = {
    "faithful": "Gaussian mixtures of Old Faithful, K and covariance type chosen by BIC",
    "galaxies": "Gaussian mixtures of the galaxy velocities, K chosen by BIC",
    "penguins": "3 Gaussian clusters of the penguin measurements (with missing values)",
    "airquality": "one multivariate normal of airquality, with missing values, and imputation",
    "twins": "Dirichlet-multinomial mixtures of the twins' gut microbiomes",
    "tones": "two tones in a WAV clip (superimposed signals)",
    "fixed_mixture": "the weights of fixed Gaussian mixtures of Old Faithful",
    "geyser": "Gaussian hidden Markov models of consecutive geyser eruptions",
    "discoveries": "Poisson mixtures of the yearly counts of discoveries, K chosen by BIC",
    "ethanol": "mixtures of linear regressions of the ethanol engine runs",
    "eustock": "Student-t and Gaussian mixtures of DAX and FTSE daily returns",
}


def _plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _gmm(n_components: int, covariance_type: str, seed: int, **params: Any):
    from emkit.estimators.gaussian_mixture import GaussianMixture

    return GaussianMixture(n_components, covariance_type=covariance_type, random_state=seed,
                           **params)


def _selection_rows(result) -> list[dict]:
    return [dict(row) for row in result.table]


# ------------------------------------------------------------------------------ Old Faithful
def _faithful(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    from emkit import datasets
    from emkit.estimators.selection import select_model

    faithful = datasets.load("faithful")
    X = faithful.data
    k_range = range(1, 4 if quick else 7)
    covariance_types = ("full", "diag") if quick else COVARIANCE_TYPES
    # One start per fit, the default: its screened starts reach the maxima that three restarts
    # reach (every cell within the stopping tolerance), in a third of the time.
    selection = select_model(X, k_range, covariance_types, criterion="bic", random_state=seed,
                             tol=1e-6, max_iter=500)
    best = selection.best_estimator
    best_row = selection.table[selection.best_index]
    # One order of the components everywhere (table, legend, colours): by mean eruption time.
    order = np.argsort(best.means_[:, 0], kind="stable")

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
        from emkit.plot import plot_components_2d, plot_convergence, plot_criterion

        figure = plot_criterion(selection,
                                title="Old Faithful: information criteria (lower is better)")
        figures["criteria"] = plots.save(figure, "faithful_criteria.png")
        figure = plot_components_2d(best, X, feature_names=faithful.columns, order=order)
        figures["components"] = plots.save(figure, "faithful_components.png")
        figure = _side_by_side(plot_convergence, histories)
        figure.suptitle(f"Old Faithful, K={best_row['n_components']} "
                        f"{best_row['covariance_type']}: plain EM vs SQUAREM from the same start")
        figures["convergence"] = plots.save(figure, "faithful_convergence.png")
    return {
        "n_samples": len(X),
        "columns": list(faithful.columns),
        "source": faithful.source,
        "selection": _selection_rows(selection),
        "best": dict(best_row),
        "weights": best.weights_[order].tolist(),
        "means": best.means_[order].tolist(),
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


class _Figures:
    """Where the sections' figures go: PNG files in the report folder, and the Figure objects
    into ``kept`` when given (``run_demo(figures=...)``). False when matplotlib is missing."""

    def __init__(self, output_dir: Path, enabled: bool, kept: dict | None):
        self.output_dir, self.enabled, self.kept = output_dir, enabled, kept

    def __bool__(self) -> bool:
        return self.enabled

    def save(self, figure, name: str) -> str:
        from emkit.plot import save_figure

        save_figure(figure, self.output_dir / name)
        if self.kept is not None:
            self.kept[name] = figure
        return name


# ------------------------------------------------------------------------------ galaxies
def _galaxies(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    from emkit import datasets
    from emkit.estimators.selection import select_model

    galaxies = datasets.load("galaxies")
    # In 1000 km/s, the unit of Roeder (1990): the default reg_covar (1e-6) is then negligible
    # next to the variances, as in the published analyses.
    x = galaxies.data / 1000.0
    k_range = range(1, 5 if quick else 9)
    # In one dimension "tied" is the equal-variance model and "full" the unequal-variance one.
    # The default start finds the maxima of ten restarts (every cell within 2e-5 nats).
    selection = select_model(x, k_range, ("tied", "full"), criterion="bic", random_state=seed,
                             tol=1e-6, max_iter=1000)
    best = selection.best_estimator
    best_row = selection.table[selection.best_index]
    order = np.argsort(best.means_[:, 0], kind="stable")  # the table's order: by mean
    figures = {}
    if plots:
        from emkit.plot import plot_criterion, plot_density_1d

        figure = plot_criterion(selection, criteria=("bic",),
                                title="Galaxies: BIC (tied = equal variances)")
        figures["criteria"] = plots.save(figure, "galaxies_bic.png")
        figure = plot_density_1d(best, x, bins=20, xlabel="velocity (1000 km/s)", order=order,
                                 title=f"Galaxies: K={best_row['n_components']} "
                                       f"({_variances(best_row['covariance_type'])} variances)")
        figures["density"] = plots.save(figure, "galaxies_density.png")
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
def _penguins(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
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
    model = _gmm(3, "full", seed, tol=1e-6, max_iter=1000)
    model.fit(standardised)
    standardised, species = standardised[measured], species[measured]
    # One order of the clusters (crosstab columns, legend, colours): by mean flipper length.
    order = np.argsort(model.means_[:, 2], kind="stable")
    rank = np.argsort(order)
    clusters = rank[model.predict(standardised)]
    ari = float(adjusted_rand_score(species, clusters))
    names = sorted(set(species))
    crosstab = {name: [int(np.sum((species == name) & (clusters == k))) for k in range(3)]
                for name in names}
    figures = {}
    if plots:
        from emkit.plot import plot_components_2d

        figure = plot_components_2d(model, standardised, dims=(0, 2),
                                    feature_names=[f"{name} (standardised)"
                                                   for name in PENGUIN_MEASUREMENTS],
                                    order=order, component_name="cluster",
                                    title=f"Penguins: 3 clusters (ARI vs species {ari:.2f})")
        figures["clusters"] = plots.save(figure, "penguins_clusters.png")
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
def _airquality(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """The multivariate normal with missing data (K = 1): maximum likelihood means against the
    complete-case means, and the conditional-mean imputation of the first incomplete day."""
    from emkit import GaussianMixture, datasets
    from emkit.estimators.imputer import EMImputer

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


# ------------------------------------------------------------------------------ twins (DMM)
def _twins(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Dirichlet-multinomial mixtures of the twins' gut microbiomes (Holmes et al. 2012)."""
    from emkit import DirichletMultinomialMixture, datasets
    from emkit.errors import NumericalError

    twins = datasets.load("twins")
    X = twins.data
    rows, models = [], {}
    for k in range(1, 3 if quick else 5):
        # The settings of docs/compound_dirichlet.md: a tight tolerance, so that every fit
        # reaches a maximum and gets a Laplace value; SQUAREM is the estimator's default.
        model = DirichletMultinomialMixture(k, n_init=2 if quick else 3, random_state=seed,
                                            tol=1e-7, max_iter=500).fit(X)
        try:
            laplace = float(model.laplace(X))
        except NumericalError:  # stopped short of a maximum: no evidence for this K
            laplace = None
        models[k] = model
        rows.append({"n_components": k, "objective": float(model.objective(X)),
                     "laplace": laplace, "bic": float(model.bic(X)),
                     "aic": float(model.aic(X)), "n_parameters": int(model.n_parameters()),
                     "converged": bool(model.converged_), "n_iter": int(model.n_iter_)})
    eligible = [row for row in rows if row["laplace"] is not None] or rows
    best_k = min(eligible, key=lambda row: (row["laplace"] is None, row["laplace"] or 0.0))[
        "n_components"]
    best = models[best_k]
    order = np.argsort(-best.weights_, kind="stable")  # the table's order: by weight
    alpha = best.alpha_[order]
    precision = alpha.sum(axis=1)
    proportions = alpha / precision[:, None]
    top = [[[twins.columns[j], float(p[j])] for j in np.argsort(-p)[:3]] for p in proportions]
    figures = {}
    if plots:
        from emkit.plot import plot_alpha_heatmap

        figure = plot_alpha_heatmap(best, n_categories=20, category_names=twins.columns,
                                    order=order,
                                    title=f"Twins: mean proportions of the K={best_k} "
                                          "components\n(20 most variable taxa)")
        figures["heatmap"] = plots.save(figure, "twins_heatmap.png")
    return {
        "n_samples": int(X.shape[0]),
        "n_taxa": int(X.shape[1]),
        "source": twins.source,
        "selection": rows,
        "best_n_components": best_k,
        "weights": best.weights_[order].tolist(),
        "precisions": precision.tolist(),
        "top_taxa": top,
        "figures": figures,
    }


# ------------------------------------------------------------------------------ two tones
#: The tones of src/emkit/datasets/two_tones.wav (docs/examples/make_two_tones_wav.py):
#: (frequency in Hz, amplitude, phase in rad) and the noise's standard deviation.
TWO_TONES = ((440.0, 0.5, 0.0), (443.0, 0.3, 1.0))
TWO_TONES_NOISE_SD = 0.05
#: EM's frequency errors are reported against this many Cramér–Rao standard deviations.
TONE_TOLERANCE_CRB_SD = 3.0


def _tones(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Two tones 3 Hz apart in a 0.25 s clip: EM (Feder & Weinstein) against the periodogram."""
    from emkit import SuperimposedSignals, datasets
    from emkit.data.io import read_wav
    from emkit.models.signals import Sinusoids, crb_sinusoids

    path = datasets.recording_path("two_tones")
    rate, y = read_wav(path)
    n = len(y)
    # SAGE with SQUAREM and a tight tolerance, as `emkit fit tones` (the likelihood is flat
    # near the optimum of close tones).
    model = SuperimposedSignals(Sinusoids(), 2, sage=True, n_init=1 if quick else 2,
                                random_state=seed, tol=1e-8, max_iter=500,
                                accelerate="squarem").fit(y)
    true_f, true_a, true_p = (np.array(column) for column in zip(*TWO_TONES, strict=True))
    bound = crb_sinusoids(true_f / rate, true_a, TWO_TONES_NOISE_SD**2, n, phases=true_p,
                          complex=False)
    crb_f = np.sqrt(bound.frequency_variance) * rate
    peaks = _periodogram_peaks(y, rate, 2)
    estimated_f = model.frequencies_ * rate
    figures = {}
    if plots:
        from emkit.plot import plot_tone_spectrum

        figure = plot_tone_spectrum(
            model, y, sample_rate=rate, oversample=64,
            title="Two tones 3 Hz apart: the periodogram's peaks are pulled apart,\n"
                  "EM finds the tones (dotted: the true frequencies)")
        ax = figure.axes[0]
        ax.set_xlim(398, 486)  # the corner: the first tick label clear of the y axis's
        ax.set_ylim(bottom=1e-3)  # the zero-padded periodogram's nulls say nothing here
        ax.set_xlabel("frequency (Hz)")
        for f in true_f:
            ax.axvline(f, color="0.2", linestyle=":", linewidth=0.8)
        figures["spectrum"] = plots.save(figure, "tones_spectrum.png")
    return {
        "sample_rate": int(rate),
        "n_samples": int(n),
        "resolution_hz": rate / n,
        "true": {"frequencies_hz": true_f.tolist(), "amplitudes": true_a.tolist(),
                 "phases": true_p.tolist(), "noise_variance": TWO_TONES_NOISE_SD**2},
        "em": {"frequencies_hz": estimated_f.tolist(),
               "amplitudes": model.amplitudes_.tolist(), "phases": model.phases_.tolist(),
               "noise_variance": float(model.noise_variance_),
               "n_iter": int(model.n_iter_), "converged": bool(model.converged_)},
        "frequency_errors_hz": (estimated_f - true_f).tolist(),
        "crb_sd": {"frequencies_hz": crb_f.tolist(),
                   "amplitudes": np.sqrt(bound.amplitude_variance).tolist(),
                   "phases": np.sqrt(bound.phase_variance).tolist()},
        "tolerance_crb_sd": TONE_TOLERANCE_CRB_SD,
        "periodogram_peaks_hz": peaks.tolist(),
        "periodogram_errors_hz": (peaks - true_f).tolist(),
        "figures": figures,
    }


def _periodogram_peaks(y: np.ndarray, rate: float, count: int) -> np.ndarray:
    """The ``count`` highest local maxima of the periodogram (zero-padded 64×, so the grid's
    spacing is far below the errors it shows), sorted by frequency, in Hz."""
    size = 64 * len(y)
    power = np.abs(np.fft.rfft(y, size)) ** 2
    local = np.flatnonzero((power[1:-1] > power[:-2]) & (power[1:-1] >= power[2:])) + 1
    highest = local[np.argsort(power[local])[::-1][:count]]
    return np.sort(np.fft.rfftfreq(size)[highest] * rate)


# ------------------------------------------------------------------------------ fixed mixture
def _fixed_mixture(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Weights of Gaussian mixtures K = 1..5 fitted on one half of Old Faithful, learned on the
    other half (Gupta & Chen 2011, §3.1)."""
    from emkit import FixedMixture, datasets

    X = datasets.load("faithful").data
    order = np.random.default_rng(seed).permutation(len(X))
    half = len(X) // 2
    fit_rows, weight_rows = X[order[:half]], X[order[half:]]
    k_range = range(1, 6)
    members = [_gmm(k, "full", seed, n_init=1 if quick else 3, tol=1e-6, max_iter=500)
               .fit(fit_rows) for k in k_range]
    ensemble = FixedMixture(models=members).fit(weight_rows)
    scores = [float(member.score(weight_rows)) for member in members]
    # The learned weights are scored on the rows they were learned on (optimistic by about
    # four free parameters); cross-fitting the two quarters of the held-out half measures the
    # ensemble on rows its weights never saw.
    quarter = len(weight_rows) // 2
    first, second = weight_rows[:quarter], weight_rows[quarter:]
    cross = [FixedMixture(models=members).fit(a).score_samples(b)
             for a, b in ((first, second), (second, first))]
    figures = {}
    if plots:
        figure = _fixed_mixture_figure(list(k_range), ensemble.weights_, scores,
                                       float(ensemble.score(weight_rows)))
        figures["weights"] = plots.save(figure, "fixed_mixture.png")
    return {
        "n_fit": int(len(fit_rows)),
        "n_held_out": int(len(weight_rows)),
        "members": [f"GaussianMixture K={k}" for k in k_range],
        "weights": ensemble.weights_.tolist(),
        "member_scores": scores,
        "best_member": int(np.argmax(scores)),
        "ensemble_score": float(ensemble.score(weight_rows)),
        "cross_fitted_score": float(np.concatenate(cross).mean()),
        "n_iter": int(ensemble.n_iter_),
        "converged": bool(ensemble.converged_),
        "figures": figures,
    }


def _fixed_mixture_figure(k_range: list[int], weights, scores: list[float],
                          ensemble_score: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = figure.subplots(1, 2)
    labels = [f"K={k}" for k in k_range]
    left.bar(labels, weights, color="C0")
    left.set_ylabel("learned weight")
    left.set_title("weights of the fixed models")
    right.plot(labels, scores, "o", color="C1", markersize=8, label="model alone")
    right.axhline(ensemble_score, color="C3", linestyle="--", label="learned mixture")
    right.set_ylabel("held-out log-likelihood per eruption")
    right.set_title("each model alone vs the learned mixture")
    right.legend(fontsize="small")
    figure.suptitle("Old Faithful: an optimal mixture of Gaussian mixtures fitted on the other "
                    "half")
    return figure


# ------------------------------------------------------------------------------ geyser (HMM)
def _geyser(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Gaussian HMMs on 299 consecutive eruptions, against the mixture that ignores the order."""
    from emkit import GaussianHMM, GaussianMixture, datasets

    geyser = datasets.load("geyser")
    columns = ["waiting", "duration"]
    X = np.column_stack([geyser.column(name) for name in columns])
    n_init = 2 if quick else 5
    mixture = GaussianMixture(2, n_init=n_init, random_state=seed, tol=1e-6,
                              max_iter=500).fit(X)
    rows = [{"model": "GaussianMixture", "n_components": 2,
             "log_likelihood": float(mixture.score(X) * len(X)), "bic": float(mixture.bic(X)),
             "converged": bool(mixture.converged_)}]
    chains = {}
    for k in (2, 3):
        hmm = GaussianHMM(k, n_init=n_init, random_state=seed, tol=1e-6, max_iter=500).fit(X)
        # One order of the states (tables, legend, colours): by mean waiting time.
        order = np.argsort(hmm.means_[:, 0], kind="stable")
        states = np.argsort(order)[hmm.predict(X)]  # renumbered: state i is hmm's order[i]
        chains[str(k)] = {
            "startprob": hmm.startprob_[order].tolist(),
            "transmat": hmm.transmat_[np.ix_(order, order)].tolist(),
            "means": hmm.means_[order].tolist(),
            "frames_per_state": np.bincount(states, minlength=k).tolist(),
        }
        rows.append({"model": "GaussianHMM", "n_components": k,
                     "log_likelihood": float(hmm.score(X)), "bic": float(hmm.bic(X)),
                     "converged": bool(hmm.converged_)})
        if k == 2:
            two_state_path = states
    figures = {}
    if plots:
        from matplotlib.figure import Figure

        from emkit.plot import plot_states

        figure = Figure(figsize=(10, 5.5), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True)
        plot_states(X[:, 0], two_state_path, ax=top, ylabel="waiting (min)", legend=False)
        plot_states(X[:, 1], two_state_path, ax=bottom, ylabel="duration (min)", legend=False)
        # One legend for both panels (the states are the same): beside the top one.
        top.legend(*top.get_legend_handles_labels(), fontsize="small", markerscale=2,
                   loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        top.set_xlabel("")
        bottom.set_xlabel("eruption")
        figure.suptitle("Old Faithful, eruption after eruption: the 2-state HMM's Viterbi path")
        figures["states"] = plots.save(figure, "geyser_states.png")
    return {
        "n_samples": int(len(X)),
        "columns": columns,
        "source": geyser.source,
        "models": rows,
        "chains": chains,
        "figures": figures,
    }


# ------------------------------------------------------------------------------ discoveries
def _discoveries(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Poisson mixtures of the yearly counts of great discoveries, K chosen by BIC."""
    from emkit import PoissonMixture, datasets
    from emkit.estimators.selection import select_model

    discoveries = datasets.load("discoveries")
    counts = discoveries.column("count")[:, None]
    selection = select_model(counts, range(1, 4 if quick else 5), estimator=PoissonMixture,
                             criterion="bic", random_state=seed, n_init=3 if quick else 10)
    best = selection.best_estimator
    order = np.argsort(best.rates_[:, 0], kind="stable")  # the table's order: by rate
    errors = best.standard_errors(counts)
    figures = {}
    if plots:
        figure = _discoveries_figure(counts[:, 0], best.weights_[order], best.rates_[order, 0])
        figures["frequencies"] = plots.save(figure, "discoveries_frequencies.png")
    return {
        "n_samples": int(len(counts)),
        "years": [int(discoveries.column("year")[0]), int(discoveries.column("year")[-1])],
        "mean": float(counts.mean()),
        "variance": float(counts.var()),
        "source": discoveries.source,
        "selection": _selection_rows(selection),
        "best": dict(selection.table[selection.best_index]),
        "weights": best.weights_[order].tolist(),
        "weights_se": errors["weights"][order].tolist(),
        "rates": best.rates_[order, 0].tolist(),
        "rates_se": errors["rates"][order, 0].tolist(),
        "figures": figures,
    }


def _discoveries_figure(counts: np.ndarray, weights: np.ndarray, rates: np.ndarray) -> Any:
    from matplotlib.figure import Figure
    from scipy import stats

    from emkit.plot import component_colour

    values = np.arange(int(counts.max()) + 1)
    expected = len(counts) * weights[:, None] * stats.poisson.pmf(values, rates[:, None])
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    ax = figure.add_subplot()
    ax.bar(values, np.bincount(counts.astype(int), minlength=len(values)), color="0.82",
           label="observed years")
    ax.plot(values, expected.sum(axis=0), "o-", color="0.2", label="mixture")
    for k, (rate, share) in enumerate(zip(rates, expected, strict=True)):
        ax.plot(values, share, "--", color=component_colour(k),
                label=f"component {k} (rate {rate:.2f})")
    ax.set_xticks(values)
    ax.set_xlabel("great discoveries in the year")
    ax.set_ylabel("years")
    ax.set_title(f"Discoveries 1860–1959: observed and expected years (K={len(rates)})")
    ax.legend(fontsize="small")
    return figure


# ------------------------------------------------------------------------------ ethanol
#: mixtools 2.0.0 (R 4.2.2): the best of 200 starts of regmixEM(NOdata$Equivalence, NOdata$NO,
#: k = 2, epsilon = 1e-10), reached by 188 of them (tests/test_regression_mixture.py).
MIXTOOLS_ETHANOL_LOG_LIKELIHOOD = 122.038355785

def _ethanol(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Mixtures of linear regressions of the equivalence ratio on NO (mixtools' NOdata)."""
    from emkit import RegressionMixture, datasets
    from emkit.estimators.selection import select_model

    ethanol = datasets.load("ethanol")
    # mixtools' regmixEM(NOdata$Equivalence, NOdata$NO): y = equivalence ratio, x = NO.
    X, y = ethanol.column("NO")[:, None], ethanol.column("Equivalence")
    selection = select_model(X, range(1, 3 if quick else 4), estimator=RegressionMixture, y=y,
                             criterion="bic", random_state=seed, n_init=2 if quick else 5)
    best = selection.best_estimator
    order = np.argsort(-best.coef_[:, 0], kind="stable")  # the table's order: by slope
    errors = best.standard_errors(X, y)
    figures = {}
    if plots:
        figure = _ethanol_figure(best, X, y, order)
        figures["lines"] = plots.save(figure, "ethanol_lines.png")
    return {
        "n_samples": int(len(y)),
        "response": "Equivalence",
        "predictor": "NO",
        "source": ethanol.source,
        "selection": _selection_rows(selection),
        "best": dict(selection.table[selection.best_index]),
        "log_likelihood": float(best.score(X, y) * len(y)),
        "converged": bool(best.converged_),
        "n_iter": int(best.n_iter_),
        "weights": best.weights_[order].tolist(),
        "weights_se": errors["weights"][order].tolist(),
        "intercepts": best.intercept_[order].tolist(),
        "intercepts_se": errors["intercept"][order].tolist(),
        "slopes": best.coef_[order, 0].tolist(),
        "slopes_se": errors["coef"][order, 0].tolist(),
        "noise_variances": best.noise_variance_[order].tolist(),
        "noise_variances_se": errors["noise_variance"][order].tolist(),
        "figures": figures,
    }


def _ethanol_figure(model, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> Any:
    from matplotlib.figure import Figure

    from emkit.plot import component_colour

    rank = np.argsort(order)
    lines = rank[model.predict_component(X, y)]  # renumbered: line k is model's order[k]
    grid = np.linspace(X.min(), X.max(), 2)
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    for k, j in enumerate(order):
        ax.scatter(X[lines == k, 0], y[lines == k], s=14, color=component_colour(k),
                   alpha=0.7)
        ax.plot(grid, model.intercept_[j] + model.coef_[j, 0] * grid,
                color=component_colour(k), label=f"line {k} (weight {model.weights_[j]:.2f})")
    ax.set_xlabel("NO emission")
    ax.set_ylabel("equivalence ratio")
    ax.set_title("Ethanol engine runs: a mixture of two regressions")
    ax.legend(fontsize="small")
    return figure


# ------------------------------------------------------------------------------ eustock
def _eustock(output_dir: Path, plots: _Figures, quick: bool, seed: int) -> dict:
    """Student-t against Gaussian mixtures of daily DAX and FTSE log-returns."""
    from emkit import GaussianMixture, StudentMixture, datasets

    stocks = datasets.load("eustock")
    columns = ["DAX", "FTSE"]
    prices = np.column_stack([stocks.column(name) for name in columns])
    returns = 100 * np.diff(np.log(prices), axis=0)  # percent per day
    n_init = 1 if quick else 3
    rows, students = [], {}
    for k in (1, 2):
        for name, estimator in (("StudentMixture", StudentMixture),
                                ("GaussianMixture", GaussianMixture)):
            model = estimator(k, n_init=n_init, random_state=seed).fit(returns)
            dof = model.dof_.tolist() if name == "StudentMixture" else None
            rows.append({"model": name, "n_components": k,
                         "log_likelihood": float(model.score(returns) * len(returns)),
                         "n_parameters": int(model.n_parameters()),
                         "bic": float(model.bic(returns)), "dof": dof,
                         "converged": bool(model.converged_)})
            if name == "StudentMixture":
                students[k] = model
    best = min(rows, key=lambda row: row["bic"])
    # The one-component t: its centre, scale and ν with their standard errors.
    student = students[1]
    errors = student.standard_errors(returns)
    figures = {}
    if plots:
        gaussian = returns[:, 0].mean(), returns[:, 0].std()
        figure = _eustock_figure(returns[:, 0], student, gaussian)
        figures["tails"] = plots.save(figure, "eustock_tails.png")
    return {
        "n_samples": int(len(returns)),
        "columns": columns,
        "source": stocks.source,
        "models": rows,
        "best": {"model": best["model"], "n_components": best["n_components"]},
        "student": {"means": student.means_[0].tolist(),
                    "means_se": errors["means"][0].tolist(),
                    "scale": student.covariances_[0].tolist(),
                    "dof": float(student.dof_[0]), "dof_se": float(errors["dof"][0])},
        "figures": figures,
    }


def _eustock_figure(returns: np.ndarray, student, gaussian: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure
    from scipy import stats

    grid = np.linspace(returns.min(), returns.max(), 400)
    # A multivariate t's margin is a t with the same ν and the margin of the scale matrix.
    t_density = stats.t.pdf(grid, student.dof_[0], loc=student.means_[0, 0],
                            scale=np.sqrt(student.covariances_[0, 0, 0]))
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    ax = figure.add_subplot()
    ax.hist(returns, bins=60, density=True, color="0.82", label="DAX daily returns")
    ax.plot(grid, t_density, color="C0", label=f"Student t (ν = {student.dof_[0]:.1f})")
    ax.plot(grid, stats.norm.pdf(grid, *gaussian), "--", color="C1", label="Gaussian")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-4)
    ax.set_xlabel("log-return (% per day)")
    ax.set_ylabel("density (log scale)")
    ax.set_title("DAX returns 1991–1998: the tails are heavier than a Gaussian's")
    ax.legend(fontsize="small")
    return figure


# ------------------------------------------------------------------------------ summary
def _table(rows: list[dict], best: dict) -> list[str]:
    """The selection table, each criterion's own choice in bold (as in its figure's panel).
    The covariance column only for Gaussian mixtures (other families' rows have none)."""
    from emkit.plot import criterion_choices

    best_index = next(i for i, row in enumerate(rows)
                      if (row["n_components"], row["covariance_type"])
                      == (best["n_components"], best["covariance_type"]))
    choices = criterion_choices(SimpleNamespace(table=rows, best_index=best_index,
                                                criterion="bic"))
    gaussian = any(row["covariance_type"] is not None for row in rows)
    lines = ["| K | " + ("covariance | " if gaussian else "") + "log-likelihood | parameters | "
             "BIC | AIC | ICL | converged | collapsed |",
             "|---:|" + ("---|" if gaussian else "") + "---:|---:|---:|---:|---:|---|---|"]
    for i, row in enumerate(rows):
        mark = "**" if i == best_index else ""
        cells = [f"{row[c]:.2f}" if choices[c] != i else f"**{row[c]:.2f}**"
                 for c in ("bic", "aic", "icl")]
        lines.append(f"| {mark}{row['n_components']}{mark} | "
                     + (f"{row['covariance_type']} | " if gaussian else "")
                     + f"{row['log_likelihood']:.2f} | {row['n_parameters']} | "
                     + " | ".join(cells) + f" | {'yes' if row['converged'] else 'no'} | "
                     f"{'yes' if row.get('collapsed') else 'no'} |")
    return lines


def _not_converged_note(rows: list[dict]) -> list[str]:
    failed = [_row_name(row) for row in rows if not row["converged"]]
    collapsed = [_row_name(row) for row in rows if row.get("collapsed")]
    notes = []
    if failed:
        notes += ["", f"Not eligible ({', '.join(failed)}): these fits did not converge — a "
                  "component collapses onto repeated values, its variance shrinks towards "
                  "`reg_covar` and the likelihood grows without bound, so their BIC says nothing "
                  "about the number of clusters."]
    if collapsed:
        notes += ["", f"Not eligible ({', '.join(collapsed)}): a component sits on fewer points "
                  "than it has dimensions plus one (its variance is `reg_covar`), a spurious "
                  "maximum whose likelihood grows without bound as `reg_covar` shrinks; mclust "
                  "gives such fits no BIC."]
    return notes


def _row_name(row: dict) -> str:
    """A selection row's model: K, and the covariance type of a Gaussian mixture."""
    covariance = row["covariance_type"]
    return f"K={row['n_components']}" + (f" {covariance}" if covariance is not None else "")


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
        "Every model here is fitted by the EM algorithm. Its E-step asks, for each observation, "
        "how likely each hidden cause is (which cluster an eruption belongs to, which community "
        "type a sample is, which state the geyser is in, which tone carries which part of the "
        "signal); its M-step refits each part of the model to the observations weighted by those "
        "probabilities. Each round never lowers the likelihood, and the rounds repeat until it "
        "stops changing. The sections say what the hidden causes are for each data set; "
        "components are numbered in one order per data set, the same in its tables and figures.",
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
        "EM's hidden cause is the cluster each eruption comes from: the E-step gives each "
        "eruption its probabilities of belonging to each Gaussian, the M-step refits each "
        "Gaussian's weight, mean and covariance to the eruptions weighted by them. A mixture "
        "per number of clusters K and covariance shape; the criteria (lower is better) trade the "
        "likelihood against the parameters, each criterion's choice in bold:",
        "",
        *_table(faithful["selection"], best),
        "",
        *_figure(faithful, "criteria", "Old Faithful information criteria"),
        *_not_converged_note(faithful["selection"]),
        "",
        "The chosen mixture's components, by mean eruption time:",
        "",
        "| component | weight | " + " | ".join(f"mean {c}" for c in faithful["columns"]) + " |",
        "|---:|---:|" + "---:|" * len(faithful["columns"]),
        *(f"| {k} | {w:.3f} | " + " | ".join(f"{m:.3f}" for m in mean) + " |"
          for k, (w, mean) in enumerate(zip(faithful["weights"], faithful["means"],
                                            strict=True))),
        "",
        *_figure(faithful, "components", "Old Faithful components"),
        "## Convergence: plain EM against SQUAREM",
        "",
        "Plain EM takes small steps near the maximum when the clusters overlap: each step "
        "shrinks the distance to the maximum by a constant factor, the fraction of information "
        "the hidden clusters hide. SQUAREM (Varadhan & Roland 2008) extrapolates along two EM "
        "steps and falls back to a plain step when that would lower the likelihood, so it keeps "
        "EM's stability. The chosen Old Faithful mixture, plain EM against SQUAREM from the same "
        "start, both to a change below 1e-10 per row:",
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
        "EM's hidden cause is the group of galaxies each velocity belongs to (clusters of "
        "galaxies along the line of sight); with one variance shared or one per group.",
        "",
        *_table(galaxies["selection"], best),
        "",
        *_figure(galaxies, "criteria", "galaxies BIC"),
        *_not_converged_note(galaxies["selection"]),
        "",
        "The chosen mixture's components, by mean velocity:",
        "",
        "| component | weight | mean | standard deviation |",
        "|---:|---:|---:|---:|",
        *(f"| {k} | {w:.3f} | {m:.3f} | {s:.3f} |" for k, (w, m, s) in enumerate(zip(
            galaxies["weights"], galaxies["means"], galaxies["standard_deviations"],
            strict=True))),
        "",
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
        "EM's hidden causes here are the cluster of each penguin and its missing "
        "measurements: the E-step fills each missing value with its conditional expectation "
        "given the measured ones and the cluster, the M-step refits the clusters. Clusters are "
        "numbered by mean flipper length.",
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
    lines += [*_twins_markdown(summary["twins"]), *_tones_markdown(summary["tones"]),
              *_fixed_mixture_markdown(summary["fixed_mixture"]),
              *_geyser_markdown(summary["geyser"]),
              *_discoveries_markdown(summary["discoveries"]),
              *_ethanol_markdown(summary["ethanol"]), *_eustock_markdown(summary["eustock"]),
              *_reproduce_markdown(summary)]
    return "\n".join(lines).rstrip() + "\n"


def _twins_markdown(twins: dict) -> list[str]:
    best_k = twins["best_n_components"]
    lines = [
        "",
        "## Twins gut microbiome: Dirichlet-multinomial mixtures (community types)",
        "",
        f"Genus-level counts of {twins['n_taxa']} taxa in {twins['n_samples']} fecal samples. "
        "Each sample's taxon proportions are drawn from a Dirichlet, its counts from a "
        "multinomial; a mixture of such Dirichlet-multinomials finds community types "
        "(Holmes, Harris & Quince 2012), here with their Gamma(0.1, 0.1) prior on every α. "
        "The objective is theirs (−log-likelihood − log prior, lower is better; K = 1 gives "
        "their published 39162.112), and K is chosen by the Laplace approximation to "
        "−log evidence, as they do. "
        f"Source: {twins['source']}",
        "",
        f"Lowest Laplace value: **K = {best_k}**.",
        "",
        "| K | objective | Laplace | BIC | AIC | parameters | converged |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in twins["selection"]:
        mark = "**" if row["n_components"] == best_k else ""
        laplace = "—" if row["laplace"] is None else f"{mark}{row['laplace']:.3f}{mark}"
        lines.append(f"| {mark}{row['n_components']}{mark} | {row['objective']:.3f} | "
                     f"{laplace} | {row['bic']:.1f} | {row['aic']:.1f} | "
                     f"{row['n_parameters']} | {'yes' if row['converged'] else 'no'} |")
    lines += [
        "",
        "BIC penalises the 130 parameters of each extra component harder than the Laplace "
        "evidence; AIC keeps decreasing. The chosen mixture's components (precision α₀: a small "
        "value means the samples of that type vary more around its mean proportions):",
        "",
        "| component | weight | precision α₀ | largest mean proportions |",
        "|---:|---:|---:|---|",
        *(f"| {k} | {w:.3f} | {a0:.1f} | "
          + ", ".join(f"{name} {p:.2f}" for name, p in top) + " |"
          for k, (w, a0, top) in enumerate(zip(twins["weights"], twins["precisions"],
                                                twins["top_taxa"], strict=True))),
        "",
        *_figure(twins, "heatmap", "twins mean proportions by component"),
    ]
    return lines


def _tones_markdown(tones: dict) -> list[str]:
    true, em, crb = tones["true"], tones["em"], tones["crb_sd"]
    sd = np.asarray(crb["frequencies_hz"])
    em_ratio = float(np.max(np.abs(tones["frequency_errors_hz"]) / sd))
    periodogram_ratio = float(np.max(np.abs(tones["periodogram_errors_hz"]) / sd))
    lines = [
        "",
        "## Two close tones: superimposed signals (Feder & Weinstein)",
        "",
        f"A {tones['n_samples'] / tones['sample_rate']:.2f} s clip at {tones['sample_rate']} Hz "
        f"(the bundled `two_tones.wav`): two tones "
        f"{true['frequencies_hz'][1] - true['frequencies_hz'][0]:.0f} Hz apart, closer than the "
        f"periodogram's resolution of {tones['resolution_hz']:.0f} Hz, in white noise of "
        f"variance {true['noise_variance']:g}. EM gives each tone its share of the noise, so "
        "the two-tone fit becomes two single-tone fits per iteration "
        f"(`SuperimposedSignals` with `Sinusoids`, SAGE + SQUAREM: {em['n_iter']} iterations, "
        f"converged: {em['converged']}). The Cramér–Rao bound is the smallest standard "
        "deviation any unbiased estimator can have; the periodogram's two highest peaks are the "
        "classic estimate.",
        "",
        "| tone | true frequency (Hz) | EM | EM error | Cramér–Rao sd | periodogram peak | "
        "periodogram error |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in range(len(true["frequencies_hz"])):
        lines.append(
            f"| {k} | {true['frequencies_hz'][k]:.3f} | {em['frequencies_hz'][k]:.4f} | "
            f"{tones['frequency_errors_hz'][k]:+.4f} | {crb['frequencies_hz'][k]:.4f} | "
            f"{tones['periodogram_peaks_hz'][k]:.3f} | "
            f"{tones['periodogram_errors_hz'][k]:+.3f} |")
    lines += [
        "",
        "| tone | true amplitude | EM (± Cramér–Rao sd) | true phase (rad) | "
        "EM (± Cramér–Rao sd) |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {k} | {true['amplitudes'][k]:.3f} | {em['amplitudes'][k]:.4f} "
          f"(± {crb['amplitudes'][k]:.4f}) | {true['phases'][k]:.3f} | "
          f"{em['phases'][k]:.4f} (± {crb['phases'][k]:.4f}) |"
          for k in range(len(true["amplitudes"]))),
        "",
        f"EM's frequency errors are at most {em_ratio:.1f} Cramér–Rao standard deviations "
        f"(the report's tolerance is {tones['tolerance_crb_sd']:g}); the periodogram's peaks, "
        f"pulled by the overlapping main lobes, are off by up to {periodogram_ratio:.0f} of them. "
        f"Noise variance: EM {em['noise_variance']:.5f}, true {true['noise_variance']:g}.",
        "",
        *_figure(tones, "spectrum", "two tones periodogram and fitted tones"),
    ]
    return lines


def _fixed_mixture_markdown(fixed: dict) -> list[str]:
    best = fixed["best_member"]
    best_score = fixed["member_scores"][best]
    lines = [
        "",
        "## Old Faithful again: an optimal mixture of fixed models",
        "",
        f"Gaussian mixtures with K = 1 … {len(fixed['members'])} (full covariances) are fitted "
        f"on one random half of the eruptions ({fixed['n_fit']}); `FixedMixture` then learns "
        f"only their mixing weights on the other half ({fixed['n_held_out']}) — EM on the "
        "weights of fixed densities, a concave problem with one maximum (Gupta & Chen 2011, "
        f"§3.1; {fixed['n_iter']} SQUAREM iterations). Log-likelihood per eruption of the "
        "held-out half:",
        "",
        "| model | learned weight | held-out log-likelihood |",
        "|---|---:|---:|",
        *(f"| {name} | {w:.3f} | " + ("**" if j == best else "") + f"{s:.4f}"
          + ("**" if j == best else "") + " |"
          for j, (name, w, s) in enumerate(zip(fixed["members"], fixed["weights"],
                                               fixed["member_scores"], strict=True))),
        f"| learned mixture | 1 | **{fixed['ensemble_score']:.4f}** |",
        f"| learned mixture, cross-fitted | | {fixed['cross_fitted_score']:.4f} |",
        "",
        "The weights are not a ranking: a model that scores well alone can get weight 0 when "
        "the others already explain its eruptions. The mixture's score is measured on the rows "
        "its weights were learned on, so it can never fall below the best single model (that "
        "model alone is one of the weightings considered); it is optimistic, and so is picking "
        "the best single model on the same rows. The cross-fitted line learns the weights on "
        "one quarter of the held-out half and scores the other quarter, both ways: "
        + ("still above" if fixed["cross_fitted_score"] > best_score else "below")
        + f" the best single model, by {abs(fixed['cross_fitted_score'] - best_score):.4f} "
        "per eruption.",
        "",
        *_figure(fixed, "weights", "fixed mixture weights and held-out scores"),
    ]
    return lines


def _geyser_markdown(geyser: dict) -> list[str]:
    two = geyser["chains"]["2"]
    short = int(np.argmin([mean[1] for mean in two["means"]]))
    short_mean, short_stays = two["means"][short][1], two["transmat"][short][short]
    log_likelihood = {(row["model"], row["n_components"]): row["log_likelihood"]
                      for row in geyser["models"]}
    gain = log_likelihood["GaussianHMM", 2] - log_likelihood["GaussianMixture", 2]
    best = min(geyser["models"], key=lambda row: row["bic"])
    lines = [
        "",
        "## Old Faithful, eruption after eruption: a hidden Markov model",
        "",
        f"{geyser['n_samples']} consecutive eruptions ({', '.join(geyser['columns'])}, "
        "minutes). A mixture treats them as exchangeable; a Gaussian HMM (Baum-Welch, which "
        "is EM with the forward-backward pass as its E-step) lets each eruption's type depend "
        f"on the previous one. Source: {geyser['source']}",
        "",
        "| model | K | log-likelihood | BIC | converged |",
        "|---|---:|---:|---:|---|",
        *(f"| {row['model']} | {row['n_components']} | {row['log_likelihood']:.2f} | "
          f"{row['bic']:.1f} | {'yes' if row['converged'] else 'no'} |"
          for row in geyser["models"]),
    ]
    for k, chain in geyser["chains"].items():
        states = range(len(chain["transmat"]))
        lines += [
            "",
            f"{k}-state HMM: transition probabilities (row: this eruption's state, column: the "
            "next one's), with each state's mean and its number of eruptions on the Viterbi "
            "path:",
            "",
            "| state | " + " | ".join(f"→ {j}" for j in states) + " | "
            + " | ".join(f"mean {c}" for c in geyser["columns"]) + " | eruptions |",
            "|---:|" + "---:|" * (len(chain["transmat"]) + len(geyser["columns"]) + 1),
            *(f"| {i} | " + " | ".join(f"{p:.3f}" for p in chain["transmat"][i]) + " | "
              + " | ".join(f"{m:.2f}" for m in chain["means"][i]) + " | "
              + f"{chain['frames_per_state'][i]} |" for i in states),
        ]
    lines += [
        "",
        f"With two states, the state of short eruptions (mean {short_mean:.2f} min) is "
        f"followed by another short one with probability {short_stays:.3f} only: the order "
        f"carries information no mixture can use, worth {gain:.1f} log-likelihood units, far "
        "more than BIC charges for the transition probabilities. Lowest BIC: "
        f"{best['model']} with K = {best['n_components']}.",
        "",
        *_figure(geyser, "states", "geyser states along the series"),
    ]
    return lines



def _discoveries_markdown(discoveries: dict) -> list[str]:
    best = discoveries["best"]
    first, last = discoveries["years"]
    return [
        "",
        f"## Great discoveries, {first}–{last}: a Poisson mixture of counts",
        "",
        f"The number of great inventions and scientific discoveries in each of "
        f"{discoveries['n_samples']} years. One Poisson has its variance equal to its mean; "
        f"the counts' variance, {discoveries['variance']:.2f}, is well above their mean, "
        f"{discoveries['mean']:.2f}. EM's hidden cause is the kind of year each "
        "count comes from: the E-step gives each year its probabilities of being of each kind, "
        "the M-step refits each kind's rate as the weighted mean count (`PoissonMixture`, K "
        f"chosen by BIC with `select_model`). Source: {discoveries['source']}",
        "",
        f"Lowest BIC: **K = {best['n_components']}**.",
        "",
        *_table(discoveries["selection"], best),
        *_not_converged_note(discoveries["selection"]),
        "",
        "The chosen mixture's components, by rate, ± standard errors from the observed "
        "information (`standard_errors`):",
        "",
        "| component | weight | rate (discoveries a year) |",
        "|---:|---:|---:|",
        *(f"| {k} | {_pm(w, w_se, 3)} | {_pm(r, r_se, 3)} |"
          for k, (w, w_se, r, r_se) in enumerate(zip(
              discoveries["weights"], discoveries["weights_se"], discoveries["rates"],
              discoveries["rates_se"], strict=True))),
        "",
        *_figure(discoveries, "frequencies", "discoveries observed and expected years"),
    ]


def _ethanol_markdown(ethanol: dict) -> list[str]:
    best = ethanol["best"]
    sigmas = np.sqrt(ethanol["noise_variances"])
    # σ's standard error from σ²'s (delta method: dσ = dσ² / 2σ).
    sigmas_se = np.asarray(ethanol["noise_variances_se"]) / (2 * sigmas)
    return [
        "",
        "## Ethanol engine runs: a mixture of two regressions",
        "",
        f"{ethanol['n_samples']} runs of an ethanol-fuelled engine (mixtools' `NOdata`): the "
        f"fuel-air equivalence ratio (`{ethanol['response']}`) against the peak nitrogen oxide "
        f"emission (`{ethanol['predictor']}`). EM's hidden cause is the regime of each run: "
        "the E-step gives each run its probabilities of lying on each line, the M-step refits "
        "each line by weighted least squares (`RegressionMixture`, mixtools' `regmixEM`). "
        f"Source: {ethanol['source']}",
        "",
        f"Lowest BIC: **K = {best['n_components']} lines**, log-likelihood "
        f"**{ethanol['log_likelihood']:.3f}** ({ethanol['n_iter']} iterations, converged: "
        f"{'yes' if ethanol['converged'] else 'no'}); the best of 200 starts of mixtools' "
        f"`regmixEM` is {MIXTOOLS_ETHANOL_LOG_LIKELIHOOD:.3f}. The regimes cross: at low NO "
        "the equivalence ratio rises with the emission, on the other line it falls.",
        "",
        *_table(ethanol["selection"], best),
        *_not_converged_note(ethanol["selection"]),
        "",
        "The chosen lines, by slope, ± standard errors from the observed information:",
        "",
        "| line | weight | intercept | slope | noise sd σ |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {k} | {_pm(w, w_se, 3)} | {_pm(a, a_se, 3)} | {_pm(b, b_se, 4)} | "
          f"{_pm(s, s_se, 4)} |"
          for k, (w, w_se, a, a_se, b, b_se, s, s_se) in enumerate(zip(
              ethanol["weights"], ethanol["weights_se"], ethanol["intercepts"],
              ethanol["intercepts_se"], ethanol["slopes"], ethanol["slopes_se"], sigmas,
              sigmas_se, strict=True))),
        "",
        *_figure(ethanol, "lines", "ethanol runs and the fitted lines"),
    ]


def _eustock_markdown(eustock: dict) -> list[str]:
    best = eustock["best"]
    student = eustock["student"]
    bic = {(row["model"], row["n_components"]): row["bic"] for row in eustock["models"]}
    heavy_tailed = (best["model"], best["n_components"]) == ("StudentMixture", 1)
    lines = [
        "",
        "## European stock returns: heavy tails, a Student-t mixture",
        "",
        f"{eustock['n_samples']} daily log-returns (percent) of the "
        f"{' and '.join(eustock['columns'])} indices, 1991–1998. A Student t is a Gaussian "
        "whose scale is drawn anew for each day: EM's hidden causes are each day's component "
        "and its scale, so a day far out weighs little in the component's mean and scale "
        "(`StudentMixture`, degrees of freedom ν estimated per component), against Gaussian "
        f"mixtures of the same days. Source: {eustock['source']}",
        "",
        "| model | K | ν | log-likelihood | parameters | BIC | converged |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in eustock["models"]:
        mark = "**" if (row["model"], row["n_components"]) == (best["model"],
                                                               best["n_components"]) else ""
        dof = "—" if row["dof"] is None else ", ".join(f"{v:.2f}" for v in row["dof"])
        lines.append(f"| {row['model']} | {row['n_components']} | {dof} | "
                     f"{row['log_likelihood']:.1f} | {row['n_parameters']} | "
                     f"{mark}{row['bic']:.1f}{mark} | {'yes' if row['converged'] else 'no'} |")
    lines += [
        "",
        f"Lowest BIC: **{best['model']}, K = {best['n_components']}**. The one-component t, "
        "± standard errors from the observed information: mean "
        + ", ".join(f"{name} {_pm(m, se, 3)}" for name, m, se in zip(
            eustock["columns"], student["means"], student["means_se"], strict=True))
        + f" % per day, ν = {_pm(student['dof'], student['dof_se'], 2)} (a Gaussian is "
        "ν = ∞). Two Gaussians improve on one by giving some of the days a wider component "
        f"(BIC {bic['GaussianMixture', 2]:.1f}), against {bic['StudentMixture', 1]:.1f} for "
        "one t"
        + (": the days are heavy-tailed rather than of two kinds" if heavy_tailed else "")
        + " (for regimes in time, see the hidden Markov models of docs/hmm.md).",
        "",
        *_figure(eustock, "tails", "DAX returns against the t and Gaussian margins"),
    ]
    return lines


def _pm(value: float, error: float, digits: int) -> str:
    """A value ± its standard error, both to ``digits`` decimals."""
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _reproduce_markdown(summary: dict) -> list[str]:
    quick = " --quick" if summary["quick"] else ""
    quick_py = ", quick=True" if summary["quick"] else ""
    return [
        "",
        "## How to reproduce this",
        "",
        f"Every fit has a fixed seed ({summary['seed']}): the same emkit gives the same numbers. "
        "The whole report, from a shell or from Python:",
        "",
        "```",
        f"emkit demo --output emkit-report{quick}",
        "```",
        "",
        "```python",
        "from emkit.report import run_demo",
        f"run_demo(\"emkit-report\"{quick_py}, seed={summary['seed']})",
        "```",
        "",
        "One step of it, the Old Faithful selection with its criteria figure (the CSV file "
        "ships with emkit: `python -c \"from emkit import datasets; "
        "print(datasets.path('faithful'))\"`):",
        "",
        "```",
        f"emkit select gmm faithful.csv --k 1-6 --covariance full,tied,diag,spherical "
        f"--seed {summary['seed']} --plot criteria.png",
        "```",
        "",
        "```python",
        "from emkit import datasets",
        "from emkit.plot import plot_criterion, save_figure",
        "from emkit.estimators.selection import select_model",
        "",
        "X = datasets.load(\"faithful\").data",
        "result = select_model(X, range(1, 7), (\"full\", \"tied\", \"diag\", \"spherical\"),",
        f"                      criterion=\"bic\", random_state={summary['seed']})",
        "print(result.to_text())",
        "save_figure(plot_criterion(result), \"criteria.png\")",
        "```",
    ]


# ------------------------------------------------------------------------------ report.html
#: The page may load nothing from anywhere: images are data URIs, the style is inline, and
#: there is no script. The policy makes a browser refuse (and report) anything else.
_CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

#: A figure wider than this many times its height is shown below its table, not beside it.
WIDE_FIGURE = 2.2

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 1280px; margin: 0 auto; padding: 1em 1.5em 3em; line-height: 1.45;
       color: #1d1d1f; background: #fff; }
h1 { font-size: 1.8em; margin-bottom: 0.2em; }
h2 { margin-top: 2.2em; padding-top: 0.6em; border-top: 1px solid #ddd; }
nav ol { columns: 2; padding-left: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em;
        font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.25em 0.6em; }
th { border-bottom: 2px solid #bbb; background: #f6f6f6; }
.right { text-align: right; }
.left { text-align: left; }
code { background: #f3f3f3; padding: 0.05em 0.3em; border-radius: 3px; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.7em 1em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.85em; margin-top: 0.3em; }
.pair { display: flex; flex-wrap: wrap; gap: 1.2em 2em; align-items: flex-start; }
.pair > .table { flex: 0 1 auto; overflow-x: auto; max-width: 100%; }
.pair > .table > p { max-width: 38em; }
.pair > figure { flex: 1 1 440px; min-width: 0; margin-top: 0.6em; }
figure.wide img { width: 100%; }
"""


def _html(markdown: str, output_dir: Path) -> str:
    """``summary.md`` as one self-contained HTML page: its figures embedded as PNG data URIs,
    each figure beside the table just before it, a table of contents after the introduction.

    The Markdown here is the report's own, a small subset (headings, paragraphs, pipe tables,
    fenced code, images, ``**bold**`` and ```code```), so a few rules convert it."""
    body, kinds, contents = [], [], []
    for kind, text in _blocks(markdown.splitlines(), output_dir):
        if kind == "figure" and 'class="wide"' not in text:
            # Beside the table before it (with the paragraph that comments on that table); a
            # wide figure (several panels) stays below its table, at full width.
            start = next((j for j in (len(kinds) - 1, len(kinds) - 2) if j >= 0
                          and kinds[j] == "table" and all(k == "p" for k in kinds[j + 1:])),
                         None)
            if start is not None:
                left = "\n".join(body[start:])
                del body[start:], kinds[start:]
                text = f'<div class="pair">\n<div class="table">{left}</div>\n{text}\n</div>'
                kind = "pair"
        elif kind == "h2":
            anchor, title = text
            contents.append(f'<li><a href="#{anchor}">{title}</a></li>')
            text = f'<h2 id="{anchor}">{title}</h2>'
        body.append(text)
        kinds.append(kind)
    first_section = next((j for j, text in enumerate(body) if text.startswith("<h2")),
                         len(body))
    nav = ['<nav aria-label="contents"><ol>', *contents, "</ol></nav>"]
    title = html.escape(markdown.splitlines()[0].lstrip("# ").strip())
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        *body[:first_section], *nav, *body[first_section:],
        "</body>",
        "</html>",
        "",
    ])


def _blocks(lines: list[str], output_dir: Path) -> list[tuple[str, Any]]:
    """The Markdown lines as (kind, HTML) blocks; ``h2`` blocks carry (anchor, title)."""
    blocks: list[tuple[str, Any]] = []
    paragraph: list[str] = []

    def end_paragraph():
        if paragraph:
            blocks.append(("p", f"<p>{_inline(' '.join(paragraph))}</p>"))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        image = re.fullmatch(r"!\[(.*)\]\((.+)\)", line.strip())
        if not line.strip():
            end_paragraph()
        elif line.startswith("```"):
            end_paragraph()
            end = lines.index("```", i + 1)
            code = html.escape("\n".join(lines[i + 1:end]))
            blocks.append(("pre", f"<pre><code>{code}</code></pre>"))
            i = end
        elif line.startswith("## "):
            end_paragraph()
            title = _inline(line[3:])
            anchor = re.sub(r"[^a-z0-9]+", "-", line[3:].lower()).strip("-")
            blocks.append(("h2", (anchor, title)))
        elif line.startswith("# "):
            end_paragraph()
            blocks.append(("h1", f"<h1>{_inline(line[2:])}</h1>"))
        elif image:
            end_paragraph()
            blocks.append(("figure", _figure_html(image[1], output_dir / image[2])))
        elif line.startswith("|"):
            end_paragraph()
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            blocks.append(("table", _table_html(lines[i:end])))
            i = end - 1
        else:
            paragraph.append(line.strip())
        i += 1
    end_paragraph()
    return blocks


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_html(lines: list[str]) -> str:
    header, rule, *rows = lines
    align = ["right" if cell.endswith(":") else "left" for cell in _cells(rule)]
    head = "".join(f'<th class="{a}">{_inline(cell)}</th>'
                   for cell, a in zip(_cells(header), align, strict=True))
    body = "\n".join("<tr>" + "".join(f'<td class="{a}">{_inline(cell)}</td>'
                                      for cell, a in zip(_cells(row), align, strict=True))
                     + "</tr>" for row in rows)
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n"
            "</tbody></table>")


def _figure_html(caption: str, path: Path) -> str:
    data = path.read_bytes()
    # A PNG's IHDR chunk holds its width and height (big-endian) at bytes 16 to 24.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    wide = ' class="wide"' if width > WIDE_FIGURE * height else ""
    caption = html.escape(caption)
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure{wide}><img src="data:image/png;base64,{encoded}" alt="{caption}" '
            f'width="{width}" height="{height}"><figcaption>{caption}</figcaption></figure>')


__all__ = ["run_demo"]
