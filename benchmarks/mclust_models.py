"""mclust's 14 × 9 BIC grid: ``emkit.select_model(X, range(1, 10), "all")`` against R's
``mclustBIC(X, G=1:9)``, side by side on the same data.

For each data set: the wall time of the whole grid (emkit at its defaults, and with
``init_params="hierarchical"``, mclust's kind of start, to show what the starts cost), mclust's
time measured inside R (``system.time``, so R's start-up is not counted), the model and K each
chooses, their BICs (mclust's sign, higher is better), and in how many of the cells emkit's
BIC is at least mclust's (−0.01). Runs alternate (R, emkit default, emkit hierarchical) and
the median of ``--repeats`` is reported. As R's time leaves out loading mclust, emkit's leaves
out its first call in the process (imports, loading compiled kernels from numba's cache): a
small grid is fitted once before the timed runs.

mclust stops EM once a step changes the log-likelihood by less than 1e-5 of its size; on a few
hundred rows that is ~40 times looser than emkit's rule (a change, and an estimated remaining
rise, below 1e-6 per row), and it loosens as the rows grow. So mclustBIC also runs to emkit's
change threshold (its relative tolerance set to 1e-6 · n / |log-likelihood of its choice|;
emkit's remaining-rise test has no counterpart there): the time of the same grid from mclust's
one start, converged as emkit converges, and the cells against that table. The other way
round, emkit also runs at mclust's settings: its start (``init_params="hierarchical"``, with
the neighbours' starts every grid adds) and its tolerance (``tol`` = 1e-5 · (1 + |L|) / n per
row, L the log-likelihood of mclust's choice; emkit's remaining-rise test still applies) —
the same work as mclustBIC's, or a little more. Last, mclust's own algorithm in emkit's
engine: its start alone, one EM per cell (the neighbours' starts that every grid adds removed,
a patch for this benchmark only), at emkit's tolerance: its time, and its cells against
mclust's — what the default's other starts are for.

Needs R with mclust (``apt-get install r-base-core r-cran-mclust``).

    python benchmarks/mclust_models.py                  # faithful, geyser, iris, penguins and four
                                                        # data sets of R's mclust package
    python benchmarks/mclust_models.py --quick          # faithful only, one repeat
    python benchmarks/mclust_models.py --append         # also append to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")  # ConvergenceWarnings of over-fitted cells are not the point

R_SCRIPT = """
suppressMessages(library(mclust))
X <- as.matrix(read.csv("{path}", header=FALSE))
t <- system.time(b <- mclustBIC(X, G=1:9, verbose=FALSE))[["elapsed"]]
write.csv(as.data.frame(unclass(b)[,]), "{out}")
# emkit's stopping rule in mclust's terms: a step's change below 1e-6 per row, as a fraction
# of |log-likelihood| (mclust's rule is relative: |change| / (1 + |L|) < tol)
tol <- 1e-6 * nrow(X) / abs(summary(b, X)$loglik)
t2 <- system.time(b2 <- mclustBIC(X, G=1:9, verbose=FALSE,
                                  control=emControl(tol=c(tol, sqrt(.Machine$double.eps)))))
write.csv(as.data.frame(unclass(b2)[,]), "{out2}")
cat(t, as.character(packageVersion("mclust")), t2[["elapsed"]], tol, "\\n")
"""


# Data sets of R's mclust package (the numeric columns; diabetes and thyroid without their
# class column), written out by R for the benchmark.
R_DATA_SETS = {"diabetes": "diabetes[, -1]", "banknote": "banknote[, -1]",
               "thyroid": "thyroid[, -1]", "wreath": "wreath"}


def data_sets(quick: bool) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_iris

    from emkit import datasets
    from emkit.report import PENGUIN_MEASUREMENTS

    sets = {"faithful": datasets.load("faithful").data}
    if not quick:
        sets["geyser"] = datasets.load("geyser").data
        sets["iris"] = load_iris().data
        penguins = datasets.load("penguins")
        measurements = np.column_stack([penguins.column(name) for name in PENGUIN_MEASUREMENTS])
        sets["penguins"] = measurements[~np.isnan(measurements).any(axis=1)]
        with tempfile.TemporaryDirectory() as tmp:
            for name, expression in R_DATA_SETS.items():
                path = Path(tmp) / f"{name}.csv"
                subprocess.run(["Rscript", "-e", f"suppressMessages(library(mclust)); "
                                f"data({name}); write.table(as.matrix({expression}), "
                                f"'{path}', sep=',', row.names=FALSE, col.names=FALSE)"],
                               check=True, capture_output=True)
                sets[name] = np.loadtxt(path, delimiter=",")
    return sets


def run_mclust(X: np.ndarray, folder: Path, converged: bool = False):
    """(seconds inside R, mclust's version, BIC per model: list over K = 1..9, NaN for NA);
    with ``converged``, also mclustBIC's seconds and BIC table when it stops by emkit's rule
    (a step's change below 1e-6 per row) rather than its own (a relative change below 1e-5),
    and |log-likelihood| of mclust's choice."""
    path, out, out2 = folder / "X.csv", folder / "bic.csv", folder / "bic_converged.csv"
    np.savetxt(path, X, delimiter=",", fmt="%.17g")
    script = folder / "bic.R"
    script.write_text(R_SCRIPT.format(path=path, out=out, out2=out2))
    line = subprocess.run(["Rscript", str(script)], capture_output=True, text=True,
                          check=True).stdout.split()
    if converged:
        return (float(line[0]), line[1], _bic_table(out), float(line[2]), _bic_table(out2),
                1e-6 * len(X) / float(line[3]))
    return float(line[0]), line[1], _bic_table(out)


def _bic_table(path: Path) -> dict[str, list[float]]:
    lines = path.read_text().splitlines()
    models = [name.strip('"') for name in lines[0].split(",")[1:]]
    values = np.array([[np.nan if cell == "NA" else float(cell)
                        for cell in row.split(",")[1:]] for row in lines[1:]])
    return {m: list(values[:, j]) for j, m in enumerate(models)}


def run_emkit(X: np.ndarray, n_components=range(1, 10), **options):
    from emkit import select_model

    start = time.perf_counter()
    result = select_model(X, n_components, "all", random_state=0, **options)
    return time.perf_counter() - start, result


@contextlib.contextmanager
def mclust_start_alone():
    """emkit's grid with each fit from mclust's start alone (``init_params="hierarchical"``
    without the neighbours' starts every grid adds): for this benchmark only, it patches the
    grid's private function that makes those starts."""
    from emkit.estimators import grid

    def none(grid_rows, cells, raced, present, valid):
        empty = np.zeros(0, dtype=int)
        return empty, grid._take_start(raced, empty), present[empty], valid[empty]

    original, grid._neighbour_starts = grid._neighbour_starts, none
    try:
        yield
    finally:
        grid._neighbour_starts = original


def _bic_of(result, models) -> dict[str, list[float]]:
    """emkit's BIC table in mclust's sign and layout."""
    table = {m: [np.nan] * 9 for m in models}
    for row in result.table:
        table[row["covariance_type"]][row["n_components"] - 1] = -row["bic"]
    return table


def _below(ours, theirs, max_k: int = 9) -> list[tuple[str, int, float]]:
    """The cells (model, K ≤ max_k, shortfall) where emkit's BIC is below mclust's (−0.01)."""
    return [(m, k + 1, ours[m][k] - theirs[m][k]) for m in theirs for k in range(max_k)
            if np.isfinite(theirs[m][k]) and not ours[m][k] >= theirs[m][k] - 0.01]


def best_cell(bic: dict[str, list[float]]) -> tuple[str, int, float]:
    model, k = max(((m, k) for m in bic for k in range(9) if np.isfinite(bic[m][k])),
                   key=lambda cell: bic[cell[0]][cell[1]])
    return model, k + 1, bic[model][k]


def _choice(cell: tuple[str, int, float]) -> str:
    return f"{cell[0]},{cell[1]} ({cell[2]:.2f})"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines()
        if line.startswith("Model name")), platform.processor())
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    import emkit

    rows = []
    sets = data_sets(args.quick)
    run_emkit(next(iter(sets.values()))[:60], n_components=range(1, 3))  # the first call
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, X in sets.items():
            r_times, converged_times, default_times, hier_times, same_times = [], [], [], [], []
            alone_times = []
            for _ in range(repeats):  # alternating
                (seconds, version, mclust_bic, converged_seconds, converged_bic,
                 log_likelihood) = run_mclust(X, folder, converged=True)
                r_times.append(seconds)
                converged_times.append(converged_seconds)
                seconds, result = run_emkit(X)
                default_times.append(seconds)
                seconds, _ = run_emkit(X, init_params="hierarchical")
                hier_times.append(seconds)
                seconds, _ = run_emkit(X, init_params="hierarchical",
                                       tol=1e-5 * (1.0 + log_likelihood) / len(X))
                same_times.append(seconds)
                with mclust_start_alone():
                    seconds, alone = run_emkit(X, init_params="hierarchical")
                alone_times.append(seconds)
            ours = _bic_of(result, mclust_bic)
            alone_below = (_below(_bic_of(alone, mclust_bic), mclust_bic, 6),
                           _below(_bic_of(alone, mclust_bic), mclust_bic))
            cells = [(m, k) for m in mclust_bic for k in range(9)
                     if np.isfinite(mclust_bic[m][k])]
            at_least = sum(ours[m][k] >= mclust_bic[m][k] - 0.01 for m, k in cells)
            converged_cells = [(m, k) for m in converged_bic for k in range(9)
                               if np.isfinite(converged_bic[m][k])]
            at_least_converged = sum(ours[m][k] >= converged_bic[m][k] - 0.01
                                     for m, k in converged_cells)
            best = result.best
            rows.append((name, X.shape, statistics.median(r_times),
                         statistics.median(converged_times), statistics.median(default_times),
                         statistics.median(hier_times), statistics.median(same_times),
                         best_cell(mclust_bic),
                         best_cell(converged_bic), (best["covariance_type"],
                                                    best["n_components"], -best["bic"]),
                         f"{at_least} of {len(cells)}",
                         f"{at_least_converged} of {len(converged_cells)}",
                         statistics.median(alone_times), alone_below, version))
    header = ("| data | n × d | mclustBIC (s) | mclustBIC to emkit's tolerance (s) "
              "| emkit default (s) | emkit hierarchical start (s) "
              "| emkit at mclust's start and tolerance (s) | mclust's choice (BIC) "
              "| mclust's choice at emkit's tolerance (BIC) | emkit's choice (BIC) "
              "| cells emkit ≥ mclust | cells emkit ≥ mclust at emkit's tolerance |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for (name, shape, r, r_converged, ours, hier, same, mclust_best, converged_best,
         emkit_best, at_least, at_least_converged, *_) in rows:
        lines.append(f"| {name} | {shape[0]} × {shape[1]} | {r:.2f} | {r_converged:.2f} | "
                     f"{ours:.1f} ({ours / r:.1f}×; {ours / r_converged:.1f}×) | {hier:.1f} "
                     f"({hier / r:.1f}×; {hier / r_converged:.1f}×) | {same:.2f} "
                     f"({same / r:.1f}×) | "
                     f"{_choice(mclust_best)} | {_choice(converged_best)} | "
                     f"{_choice(emkit_best)} | {at_least} | {at_least_converged} |")
    lines += ["", "mclust's algorithm in emkit (its start alone, one EM per cell, emkit's "
              "tolerance):", "",
              "| data | time (s) | ÷ mclustBIC | cells below mclust, K ≤ 6 | all K "
              "| largest shortfall (BIC) |", "|---|---|---|---|---|---|"]
    for name, _, r, *_, alone_time, (below_6, below_all), _ in rows:
        worst = min(below_all, key=lambda cell: cell[2], default=None)
        lines.append(f"| {name} | {alone_time:.2f} | {alone_time / r:.1f}× | {len(below_6)} | "
                     f"{len(below_all)} | " + ("–" if worst is None else
                                               f"{worst[0]},{worst[1]} {worst[2]:.2f}") + " |")
    text = "\n".join(lines)
    # In a new environment the grid's M-step runs in numpy until tiers' rule compiles it.
    from emkit.kernels import parsimonious as kernels

    m_step = "compiled" if kernels._MODELS._ready else "numpy (not compiled yet)"
    footer = (f"\n- date: {datetime.datetime.now().isoformat(timespec='minutes')}; emkit "
              f"{emkit.__version__}; mclust {rows[0][-1]}; medians of {repeats} alternating "
              f"runs; emkit's grid M-step {m_step}\n- machine: {machine()}\n- command: "
              f"`python benchmarks/mclust_models.py{' --quick' if args.quick else ''}`\n")
    print(text + footer)
    if args.append:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as results:
            results.write("\n## " + datetime.date.today().isoformat()
                          + " — mclust's 14 × 9 BIC grid, emkit against mclustBIC (issue 16)\n\n"
                          + text + footer)


if __name__ == "__main__":
    main()
