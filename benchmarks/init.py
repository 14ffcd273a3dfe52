"""Initialisation of GaussianMixture at the defaults: emkit, scikit-learn and mclust side by side.

For each case (data set, K), full covariance, n_init=1, seeds 0–9: the final log-likelihood of
emkit's default and of every emkit ``init_params`` method, of scikit-learn's default fit
(``GaussianMixture(K, random_state=seed)``, k-means start) and mclust's ``Mclust(X, G=K,
modelNames="VVV")`` (hierarchical-agglomeration start; deterministic, so one number). Means over
the seeds, and the time of one default fit (median over the seeds, initialisation included).

mclust needs R: ``--mclust`` runs it (``apt-get install r-base-core r-cran-mclust``) and prints the
table of values stored below in ``MCLUST_LOGLIK``; without it the stored values are used.

    python benchmarks/init.py                 # every case
    python benchmarks/init.py --quick         # iris and faithful only
    python benchmarks/init.py --append        # also append the markdown to benchmarks/RESULTS.md
    python benchmarks/init.py --mclust        # recompute the mclust references with R
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        python benchmarks/init.py --cpu-time  # CPU seconds, one thread each (a busy machine)
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")  # ConvergenceWarnings of single short fits are not the point

SEEDS = range(10)
KS = (2, 3, 4, 5, 6)
# Wall-clock seconds by default; ``--cpu-time`` takes this process's CPU seconds instead, which
# other jobs on a shared machine disturb far less (run it single-threaded, see the docstring).
CLOCK = time.perf_counter
METHODS = ("kmeans", "hierarchical", "emEM", "k-means++", "random_from_data", "random")

# Mclust(X, G=K, modelNames="VVV")$loglik (modelNames="V" for the one-dimensional galaxies),
# mclust 6.0.0 on R 4.2.2, default options (hcUse = "SVD", subset = 2000), computed by
# `python benchmarks/init.py --mclust` on 2026-12-03. NaN: mclust returned no fit (NA loglik).
MCLUST_LOGLIK = {
    "faithful K=2": -1130.264068,
    "faithful K=3": -1127.19881,
    "faithful K=4": -1111.279891,
    "faithful K=5": -1108.409915,
    "faithful K=6": -1095.406301,
    "iris K=2": -214.354704,
    "iris K=3": -180.185839,
    "iris K=4": -167.486238,
    "iris K=5": -152.909526,
    "iris K=6": -154.423642,
    "wine K=2": -3043.071866,
    "wine K=3": -2788.429858,
    "wine K=4": -2691.714533,
    "wine K=5": -2595.03906,
    "wine K=6": -2492.988685,
    "penguins K=2": -5211.045296,
    "penguins K=3": -5150.708928,
    "penguins K=4": -5130.546054,
    "penguins K=5": -5116.787265,
    "penguins K=6": -5111.060614,
    "galaxies K=2": -786.684734,
    "galaxies K=3": -778.522772,
    "galaxies K=4": -765.693991,
    "galaxies K=5": -765.791598,
    "galaxies K=6": -764.577184,
    "synthetic K=16": -1427462.740618,
}


def load_cases(quick: bool = False) -> dict[str, np.ndarray]:
    """The data sets, as float arrays (rows with a missing value dropped)."""
    from sklearn.datasets import load_iris, load_wine

    import emkit

    def bundled(name, columns=None):
        data = emkit.datasets.load(name)
        X = data.data if columns is None else np.column_stack([data.column(c) for c in columns])
        return X[~np.isnan(X).any(axis=1)]

    cases = {"faithful": bundled("faithful"), "iris": load_iris().data}
    if not quick:
        cases["wine"] = load_wine().data
        cases["penguins"] = bundled("penguins", ["bill_length_mm", "bill_depth_mm",
                                                 "flipper_length_mm", "body_mass_g"])
        cases["galaxies"] = bundled("galaxies")
        cases["synthetic"] = synthetic()
    return cases


def synthetic(n_samples=50_000, n_features=16, n_components=16, seed=0):
    """Overlapping clusters: centres N(0, 2²) per coordinate, per-cluster scales in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 2.0, (n_components, n_features))
    scales = rng.uniform(0.5, 2.0, (n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    return centers[labels] + scales[labels] * rng.normal(size=(n_samples, n_features))


def case_list(cases):
    for name, X in cases.items():
        for K in ((16,) if name == "synthetic" else KS):
            yield name, X, K


def fit_all(make, X, seeds=SEEDS):
    """Log-likelihood (total) and seconds of each seed's fit."""
    values, seconds = [], []
    for seed in seeds:
        model = make(seed)
        t0 = CLOCK()
        model.fit(X)
        seconds.append(CLOCK() - t0)
        values.append(float(model.score(X)) * len(X))
    return np.array(values), np.array(seconds)


def run_case(name, X, K, methods, seeds=SEEDS):
    from sklearn.mixture import GaussianMixture as SklearnGMM

    import emkit

    row = {"case": f"{name} K={K}", "n": len(X), "d": X.shape[1]}
    sk, sk_t = fit_all(lambda s: SklearnGMM(K, random_state=s), X, seeds)
    em, em_t = fit_all(lambda s: emkit.GaussianMixture(K, random_state=s), X, seeds)
    row.update(sklearn=sk.mean(), sklearn_s=statistics.median(sk_t), emkit=em.mean(),
               emkit_min=em.min(), emkit_s=statistics.median(em_t))
    for method in methods:
        values, _ = fit_all(lambda s, m=method: emkit.GaussianMixture(
            K, init_params=m, random_state=s), X, seeds)
        row[method] = values.mean()
    row["mclust"] = MCLUST_LOGLIK.get(f"{name} K={K}", float("nan"))
    return row


def mclust_values(cases) -> dict[str, float]:
    """Run R's mclust on every case (same rows, written to CSV files)."""
    values = {}
    with tempfile.TemporaryDirectory() as tmp:
        lines = ["suppressMessages(library(mclust))"]
        for name, X in cases.items():
            path = Path(tmp) / f"{name}.csv"
            np.savetxt(path, X, delimiter=",")
            model = "V" if X.shape[1] == 1 else "VVV"
            for _, _, K in case_list({name: X}):
                lines.append(
                    f'X <- as.matrix(read.csv("{path}", header=FALSE)); '
                    f'f <- Mclust(X, G={K}, modelNames="{model}", verbose=FALSE); '
                    f'cat("{name} K={K}", if (is.null(f)) NA else sprintf("%.6f", f$loglik), '
                    '"\\n")')
        script = Path(tmp) / "run.R"
        script.write_text("\n".join(lines) + "\n")
        out = subprocess.run(["Rscript", str(script)], capture_output=True, text=True,
                             check=True).stdout
    for line in out.splitlines():
        *key, value = line.split()
        values[" ".join(key)] = float("nan") if value == "NA" else float(value)
    return values


def markdown(rows, methods, command) -> str:
    head = ("| case | n × d | scikit-learn default | mclust VVV | **emkit default** (worst seed) | "
            + "".join(f"{m} | " for m in methods) + "sklearn s | emkit s | speed-up |")
    sep = "|" + "---|" * (head.count("|") - 1)
    lines = [head, sep]
    for r in rows:
        ok = r["emkit"] >= r["sklearn"] - 1e-6 and not r["emkit"] < r["mclust"] - 1e-6
        cells = [r["case"], f'{r["n"]:,} × {r["d"]}', f'{r["sklearn"]:.2f}',
                 f'{r["mclust"]:.2f}',
                 f'**{r["emkit"]:.2f}**{"" if ok else " ✗"} ({r["emkit_min"]:.2f})']
        cells += [f'{r[m]:.2f}' for m in methods]
        cells += [f'{r["sklearn_s"]:.3f}', f'{r["emkit_s"]:.3f}',
                  f'{r["sklearn_s"] / r["emkit_s"]:.1f}×']
        lines.append("| " + " | ".join(cells) + " |")
    import platform

    import emkit
    lines += ["", f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
              f"- machine: {platform.processor() or platform.machine()}, "
              f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}",
              f"- emkit {emkit.__version__}; log-likelihoods are totals, means over seeds "
              f"{SEEDS.start}–{SEEDS.stop - 1}; times are medians of one fit (init included), "
              + ("CPU seconds of the process" if CLOCK is time.process_time else "wall clock"),
              f"- command: {command}"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--append", action="store_true")
    parser.add_argument("--mclust", action="store_true")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="emkit init methods to run besides the default (comma-separated)")
    parser.add_argument("--only", help="run only these data sets (comma-separated)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by this process's CPU seconds instead of the wall clock")
    args = parser.parse_args(argv)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    cases = load_cases(args.quick)
    if args.only:
        cases = {name: X for name, X in cases.items() if name in args.only.split(",")}
    if args.mclust:
        for key, value in mclust_values(cases).items():
            print(f'    "{key}": {value!r},')
        return
    import emkit

    emkit.GaussianMixture(2).fit(load_cases(True)["iris"])  # compile outside the timings
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    for name, X, K in case_list(cases):
        rows.append(run_case(name, X, K, methods))
        r = rows[-1]
        print(f'{r["case"]:16s} sklearn {r["sklearn"]:10.2f} mclust {r["mclust"]:10.2f} '
              f'emkit {r["emkit"]:10.2f} (min {r["emkit_min"]:.2f}) '
              + " ".join(f"{m} {r[m]:.2f}" for m in methods)
              + f' | {r["sklearn_s"]:.3f}s vs {r["emkit_s"]:.3f}s', flush=True)
    text = markdown(rows, methods, "python benchmarks/init.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.append:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as results:
            results.write("\n## " + datetime.date.today().isoformat()
                          + " — GaussianMixture initialisation at the defaults (issue 13)\n\n"
                          + text + "\n")


if __name__ == "__main__":
    main()
