"""FixedMixture on a sparse reads × transcripts likelihood matrix: time per EM iteration against
two scipy CSR matrix-vector products, and iterations to 1e-10 with SQUAREM against plain EM.

The problem: genes of 20 transcripts (isoforms); a read comes from transcript t with probability
∝ abundance_t × length_t (abundances log-normal, 20% of transcripts not expressed) and is
compatible with t and with each other isoform of its gene with probability 9/19 (about 10
compatible transcripts per read, strongly overlapping); its likelihood under a compatible
transcript j is 1 / length_j. Headline: 1,000,000 reads × 10,000 transcripts, 10,000,000
non-zeros.

* Time per iteration: the difference between fits of ``long`` and ``short`` plain-EM iterations
  (tol=0, same start) divided by the difference — so set-up (validation, row scaling) cancels —
  against two scipy CSR products p = L λ and Lᵀ (1 / p) on the same matrix, the cost floor of an
  EM step. Runs alternate (scipy, emkit, scipy, …); medians. The kernel's Lᵀ (w / L λ) is
  checked against scipy's.
* Iterations: both methods from uniform weights until the objective is within 1e-10
  (relative) of the optimum F*, found by a long SQUAREM run; every E-step counts.

    python benchmarks/fixed_mixture.py             # headline and scaling rows
    python benchmarks/fixed_mixture.py --quick     # small sizes, a smoke test
    python benchmarks/fixed_mixture.py --append    # also append the markdown to RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp

warnings.simplefilter("ignore")  # ConvergenceWarning at tol=0 is expected

ISOFORMS = 20


def make_reads(n_reads: int, n_transcripts: int, seed: int = 0) -> sp.csr_matrix:
    """The reads × transcripts likelihood matrix described in the module docstring."""
    rng = np.random.default_rng(seed)
    abundance = rng.lognormal(0.0, 1.5, n_transcripts) * (rng.uniform(size=n_transcripts) > 0.2)
    length = rng.uniform(500.0, 3000.0, n_transcripts)
    p = abundance * length
    source = rng.choice(n_transcripts, n_reads, p=p / p.sum())
    first = (source // ISOFORMS) * ISOFORMS
    compatible = rng.uniform(size=(n_reads, ISOFORMS)) < 9.0 / (ISOFORMS - 1)
    compatible[np.arange(n_reads), source - first] = True
    rows, offsets = np.nonzero(compatible)
    columns = (first[rows] + offsets).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(compatible.sum(axis=1))])
    return sp.csr_matrix((1.0 / length[columns], columns, indptr),
                         shape=(n_reads, n_transcripts))


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def two_matvecs(L: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
    p = L @ weights
    return L.T @ (1.0 / p)


def time_iteration(L: sp.csr_matrix, repeats: int, short: int = 2, long: int = 12) -> dict:
    from emkit import fit_em
    from emkit.models.fixed_mixture import (
        FixedMixtureModel,
        FixedMixtureParams,
        likelihood_matrix,
        sparse_em_pass,
    )

    model = FixedMixtureModel()
    data = likelihood_matrix(L)
    start = FixedMixtureParams(np.full(L.shape[1], 1.0 / L.shape[1]))

    def emkit_iteration():
        t_short = _timed(lambda: fit_em(model, data, init=start, tol=0.0, max_iter=short))
        t_long = _timed(lambda: fit_em(model, data, init=start, tol=0.0, max_iter=long))
        return (t_long - t_short) / (long - short)

    # Same work: the kernel's gradient equals scipy's on the scaled matrix.
    g_kernel, _ = sparse_em_pass(data.matrix, start.weights, np.ones(L.shape[0]))
    g_scipy = two_matvecs(data.matrix, start.weights)
    agreement = float(np.max(np.abs(g_kernel - g_scipy)) / np.max(np.abs(g_scipy)))
    emkit_iteration()  # warm-up: compilation (cached) and first touch
    two_matvecs(L, start.weights)
    scipy_times, emkit_times = [], []
    for _ in range(repeats):
        scipy_times.append(statistics.median(
            _timed(lambda: two_matvecs(L, start.weights)) for _ in range(5)))
        emkit_times.append(emkit_iteration())
    setup = _timed(lambda: likelihood_matrix(L))
    return {"scipy": statistics.median(scipy_times), "emkit": statistics.median(emkit_times),
            "agreement": agreement, "setup": setup}


def iterations_to_optimum(L: sp.csr_matrix, rtol: float = 1e-10, max_iter: int = 20000) -> dict:
    from emkit import fit_em
    from emkit.models.fixed_mixture import FixedMixtureModel, FixedMixtureParams, likelihood_matrix

    model = FixedMixtureModel()
    data = likelihood_matrix(L)
    start = FixedMixtureParams(np.full(L.shape[1], 1.0 / L.shape[1]))
    t0 = time.perf_counter()
    best = fit_em(model, data, init=start, tol=0.0, max_iter=3000, accelerate="squarem")
    polished = fit_em(model, data, init=best.params, tol=0.0, max_iter=1000,
                      accelerate="squarem")
    optimum = max(best.history.max(), polished.history.max())
    reference_seconds = time.perf_counter() - t0
    out = {"optimum": optimum, "reference_seconds": reference_seconds}
    for name, accelerate in (("plain", None), ("squarem", "squarem")):
        t0 = time.perf_counter()
        result = fit_em(model, data, init=start, tol=0.0, max_iter=max_iter,
                        accelerate=accelerate,
                        callbacks=[lambda info: optimum - info.objective
                                   <= rtol * abs(optimum)])
        reached = optimum - result.history[-1] <= rtol * abs(optimum)
        out[name] = (result.n_iter if reached else None, time.perf_counter() - t0)
    # What the estimator's defaults (tol=1e-10 per row, weights_tol=1e-8, SQUAREM) do.
    from emkit import FixedMixture

    t0 = time.perf_counter()
    fitted = FixedMixture(max_iter=max_iter).fit(L)
    out["estimator"] = (fitted.n_iter_, time.perf_counter() - t0,
                        (optimum - fitted.history_[-1]) / abs(optimum))
    return out


def machine_description() -> list[str]:
    import numba
    from threadpoolctl import threadpool_info

    import emkit

    cpu = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    blas = "; ".join(f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                     for i in threadpool_info() if i["user_api"] == "blas")
    openblas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                    if k in os.environ}
    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- BLAS: {blas}; OPENBLAS_CORETYPE/L2_SIZE set: {openblas_env or 'no'} (not used: "
        "sparse products are scipy's own C++ and numba)",
        f"- numba threads: {numba.get_num_threads()}",
        f"- versions: emkit {emkit.__version__}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, numba {numba.__version__}",
        f"- load average before the run: {os.getloadavg()[0]:.2f}",
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-iterations", action="store_true",
                        help="skip the SQUAREM / plain EM iteration counts")
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args(argv)

    headline = (50_000, 500) if args.quick else (1_000_000, 10_000)
    scaling = [(n, headline[1]) for n in (headline[0] // 8, headline[0] // 4,
                                          headline[0] // 2)]
    lines = ["", "### FixedMixture: sparse reads × transcripts, one EM iteration", "",
             *machine_description(), "",
             "| reads | transcripts | non-zeros | 2 scipy mat-vecs s | emkit EM iteration s | "
             "ratio | row scaling (once) s | gradient rel. diff |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines))
    headline_matrix = None
    for n_reads, n_transcripts in [headline, *scaling]:
        L = make_reads(n_reads, n_transcripts)
        if (n_reads, n_transcripts) == headline:
            headline_matrix = L
        timing = time_iteration(L, args.repeats)
        row = (f"| {n_reads:,} | {n_transcripts:,} | {L.nnz:,} | {timing['scipy']:.4f} | "
               f"{timing['emkit']:.4f} | {timing['emkit'] / timing['scipy']:.2f}× | "
               f"{timing['setup']:.2f} | {timing['agreement']:.1e} |")
        print(row)
        lines.append(row)
    lines.append(f"- command: python benchmarks/fixed_mixture.py{' --quick' if args.quick else ''}")

    if not args.no_iterations:
        counts = iterations_to_optimum(headline_matrix)
        plain, squarem = counts["plain"], counts["squarem"]

        def shown(entry):
            return "not reached" if entry[0] is None else f"{entry[0]} ({entry[1]:.1f} s)"

        ratio = (f"{plain[0] / squarem[0]:.1f}×" if plain[0] is not None
                 and squarem[0] is not None else "n/a")
        n_iter, seconds, gap = counts["estimator"]
        block = ["", "Iterations (E-steps) from uniform weights until the objective is within "
                 "1e-10 (relative) of the optimum, same matrix:", "",
                 "| plain EM | SQUAREM | ratio | FixedMixture() defaults: iterations, "
                 "relative gap |", "|---|---|---|---|",
                 f"| {shown(plain)} | {shown(squarem)} | {ratio} | {n_iter} ({seconds:.1f} s), "
                 f"{gap:.1e} |"]
        print("\n".join(block))
        lines += block
    if args.append:
        with open(Path(__file__).with_name("RESULTS.md"), "a", encoding="utf-8") as results:
            results.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
