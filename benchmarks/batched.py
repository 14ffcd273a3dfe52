"""Many small Gaussian mixtures in one call: emkit.fit_gaussian_mixtures against a Python loop
over scikit-learn's GaussianMixture (issue 20).

Each group holds two Gaussian clusters (random centres, so some groups overlap and some are
well separated). emkit fits every group in one call (its defaults: best of three k-means starts,
SQUAREM group by group, tol=1e-6 per sample with its remaining-gain rule); scikit-learn fits the
groups one by one at its defaults (k-means start, plain EM, tol=1e-3). scikit-learn's loop is
timed on the first ``--sklearn-groups`` groups and scaled to all of them (its time per group
does not depend on the others). The mean log-likelihood per row of each group (scikit-learn:
``score``; emkit: ``lower_bound_``, the same quantity) is compared on the groups both fitted.

    python benchmarks/batched.py                 # 10,000 × 200, D=2, K=2, and a smaller case
    python benchmarks/batched.py --quick         # smaller sizes, a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
import warnings

import numpy as np

import emkit


def grouped_data(n_groups, n_rows, n_features, n_clusters, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_groups, n_clusters, n_features))
    labels = rng.integers(0, n_clusters, size=(n_groups, n_rows))
    scales = rng.uniform(0.5, 1.5, size=(n_groups, n_clusters))
    noise = rng.normal(size=(n_groups, n_rows, n_features))
    groups = np.arange(n_groups)[:, None]
    return centres[groups, labels] + scales[groups, labels][..., None] * noise


def time_emkit(arrays, K, covariance_type):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few slow groups reach max_iter; counted below
        fit = emkit.fit_gaussian_mixtures(list(arrays), n_components=K,
                                          covariance_type=covariance_type, random_state=0)
    return time.perf_counter() - start, fit


def time_sklearn(arrays, K, covariance_type):
    from sklearn.mixture import GaussianMixture

    scores = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for g, X in enumerate(arrays):
            model = GaussianMixture(K, covariance_type=covariance_type, random_state=g).fit(X)
            scores.append(model.score(X))
    return time.perf_counter() - start, np.asarray(scores)


def case(n_groups, n_rows, n_features, K, covariance_type, sklearn_groups):
    arrays = grouped_data(n_groups, n_rows, n_features, K)
    subset = min(sklearn_groups, n_groups)
    emkit_first, fit = time_emkit(arrays, K, covariance_type)
    sklearn_time, sklearn_scores = time_sklearn(arrays[:subset], K, covariance_type)
    emkit_second, _ = time_emkit(arrays, K, covariance_type)
    emkit_time = min(emkit_first, emkit_second)
    sklearn_all = sklearn_time * n_groups / subset
    ours = fit.lower_bound_[:subset]
    return {
        "case": f"{n_groups:,} × {n_rows}, D={n_features}, K={K}, {covariance_type}",
        "emkit_s": emkit_time, "emkit_runs": (emkit_first, emkit_second),
        "sklearn_s": sklearn_all, "sklearn_measured": (subset, sklearn_time),
        "ratio": sklearn_all / emkit_time,
        "ll_emkit": float(ours.mean()), "ll_sklearn": float(sklearn_scores.mean()),
        "higher": int(np.sum(ours > sklearn_scores + 1e-9)),
        "lower": int(np.sum(ours < sklearn_scores - 1e-9)), "subset": subset,
        "converged": float(fit.converged_.mean()), "n_iter": float(fit.n_iter_.mean()),
    }


def machine() -> list[str]:
    import sklearn
    from threadpoolctl import threadpool_info

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                   if line.startswith("Model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    blas = "; ".join(f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)"
                     for p in threadpool_info())
    return [f"- machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
            f"- BLAS: {blas}; OPENBLAS_CORETYPE/L2_SIZE set: "
            f"{'yes' if os.environ.get('OPENBLAS_CORETYPE') else 'no'}",
            f"- versions: emkit {emkit.__version__}, numpy {np.__version__}, scikit-learn "
            f"{sklearn.__version__}",
            f"- load average before the run: {os.getloadavg()[0]:.2f}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sklearn-groups", type=int, default=500)
    args = parser.parse_args()
    cases = ([(1_000, 200, 2, 2, "full"), (300, 100, 3, 3, "diag")] if args.quick else
             [(10_000, 200, 2, 2, "full"), (1_000, 100, 3, 3, "full"),
              (1_000, 100, 3, 3, "diag")])
    # compile the kernels first: a user pays this once per environment (numba caches it)
    start = time.perf_counter()
    for kind in ("full", "diag"):
        emkit.fit_gaussian_mixtures(list(grouped_data(4, 20, 2, 2)), n_components=2,
                                    covariance_type=kind, random_state=0)
    compile_s = time.perf_counter() - start
    lines = machine() + [f"- first calls (numba compilation or cache load): {compile_s:.1f} s",
                         "", "| case | emkit s | sklearn s (scaled) | ratio | mean log-lik/row "
                         "emkit / sklearn | groups higher / lower | emkit converged, mean "
                         "n_iter |", "|---|---|---|---|---|---|---|"]
    for spec in cases:
        r = case(*spec, sklearn_groups=args.sklearn_groups)
        lines.append(
            f"| {r['case']} | {r['emkit_s']:.2f} ({r['emkit_runs'][0]:.2f}, "
            f"{r['emkit_runs'][1]:.2f}) | {r['sklearn_s']:.1f} ({r['sklearn_measured'][0]} "
            f"fits in {r['sklearn_measured'][1]:.2f} s) | {r['ratio']:.1f}× | "
            f"{r['ll_emkit']:.5f} / {r['ll_sklearn']:.5f} | {r['higher']} / {r['lower']} of "
            f"{r['subset']} | {r['converged']:.2%}, {r['n_iter']:.1f} |")
        print(lines[-1], flush=True)
    lines.append(f"- load average after the run: {os.getloadavg()[0]:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
