"""One EM iteration of a Gaussian mixture: emkit against scikit-learn, side by side.

Both start from the same parameters and run a fixed number of iterations (tol=0); the time per
iteration is the difference between a long and a short run divided by the difference in iterations,
so set-up and initialisation cancel. Runs alternate (sklearn, emkit float64, emkit float32, …) and
the medians are compared. Log-likelihoods are checked to agree: a fast wrong answer is no result.

    python benchmarks/gmm.py                 # headline N=200,000, D=16, K=16 plus scaling rows
    python benchmarks/gmm.py --quick         # small sizes, for a smoke test
    python benchmarks/gmm.py --append        # also append the markdown to benchmarks/RESULTS.md
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

warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at tol=0 is expected


def make_data(n_samples, n_features, n_components, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 4.0, (n_components, n_features))
    scales = rng.uniform(0.5, 2.0, (n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    return centers[labels] + scales[labels] * rng.normal(size=(n_samples, n_features))


def starting_point(X, n_components, seed=0):
    """Weights, means and precisions from one short sklearn fit: a realistic mid-fit start."""
    from sklearn.mixture import GaussianMixture

    start = GaussianMixture(n_components, max_iter=2, random_state=seed,
                            init_params="random_from_data").fit(X[:20_000])
    return dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)


def fit_seconds(make, X, n_iter):
    model = make(n_iter)
    t0 = time.perf_counter()
    model.fit(X)
    return time.perf_counter() - t0, model


def per_iteration(make, X, short, long):
    t_short, _ = fit_seconds(make, X, short)
    t_long, model = fit_seconds(make, X, long)
    return (t_long - t_short) / (long - short), model


def matmul_gflops(repeats=3):
    A = np.random.default_rng(1).normal(size=(2000, 2000))
    A @ A
    best = min(_timed(lambda: A @ A) for _ in range(repeats))
    return 2 * 2000**3 / best / 1e9


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def compare(n_samples, n_features, n_components, repeats, short=2, long=7):
    from sklearn.mixture import GaussianMixture as SklearnGMM

    import emkit

    X = make_data(n_samples, n_features, n_components)
    X32 = X.astype(np.float32)
    init = starting_point(X, n_components)

    def sklearn(n_iter):
        return SklearnGMM(n_components, max_iter=n_iter, tol=0, init_params="random_from_data",
                          **init)

    def ours(dtype):
        # Plain EM: the same iterations as scikit-learn's (the default SQUAREM is not).
        return lambda n_iter: emkit.GaussianMixture(n_components, max_iter=n_iter, tol=0,
                                                    dtype=dtype, accelerate=None, **init)

    t0 = time.perf_counter()  # first call compiles the numba kernels (cached on disk after)
    ours(np.float64)(1).fit(X[:20_000])  # large enough for the threaded kernels too
    ours(np.float32)(1).fit(X32[:20_000])
    compile_seconds = time.perf_counter() - t0

    runs = {"sklearn": [], "emkit float64": [], "emkit float32": []}
    fitted = {}
    for _ in range(repeats):  # alternate so that machine noise hits every contender alike
        for name, make, data in (("sklearn", sklearn, X), ("emkit float64", ours(np.float64), X),
                                 ("emkit float32", ours(np.float32), X32)):
            seconds, fitted[name] = per_iteration(make, data, short, long)
            runs[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    scores = {name: fitted[name].score(X) for name in fitted}
    # Flops of one iteration: whitening every row for every component (E) and the weighted second
    # moments (M), 2·N·K·D² each; the rest is O(N·K·D).
    gflop = 4 * n_samples * n_components * n_features**2 / 1e9
    return dict(n_samples=n_samples, n_features=n_features, n_components=n_components,
                medians=medians, scores=scores, compile_seconds=compile_seconds, gflop=gflop,
                runs=runs)


def machine_description():
    import numba
    import sklearn
    from threadpoolctl import threadpool_info

    import emkit

    cpu = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    blas = "; ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, "
                     f"{i['num_threads']} threads)" for i in threadpool_info()
                     if i["user_api"] == "blas")
    openblas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                    if k in os.environ}
    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- BLAS: {blas}; OPENBLAS_CORETYPE/L2_SIZE set: {openblas_env or 'no'}",
        f"- numba threads: {numba.get_num_threads()}",
        f"- versions: emkit {emkit.__version__}, numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, numba {numba.__version__}",
        f"- load average before the run: {os.getloadavg()[0]:.2f}",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--headline", action="store_true", help="only N=200,000, D=16, K=16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    if args.quick:
        sizes = [(5_000, 4, 3)]
    elif args.headline:
        sizes = [(200_000, 16, 16)]
    else:
        sizes = [(200_000, 16, 16), (50_000, 16, 16), (800_000, 16, 16), (200_000, 16, 4),
                 (200_000, 4, 16), (200_000, 32, 16)]
    lines = machine_description()
    peak = matmul_gflops()
    lines.append(f"- 2000×2000 float64 matmul in this run: {peak:.1f} GFLOP/s")
    lines += ["", "| N | D | K | sklearn s/it | emkit f64 s/it | ratio | emkit f32 s/it | ratio "
              "| f64 GFLOP/s (% of matmul) | log-lik rel. diff f64 / f32 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for n, d, k in sizes:
        r = compare(n, d, k, args.repeats)
        m = r["medians"]
        ref = r["scores"]["sklearn"]
        diff64 = abs(r["scores"]["emkit float64"] - ref) / abs(ref)
        diff32 = abs(r["scores"]["emkit float32"] - ref) / abs(ref)
        gflops = r["gflop"] / m["emkit float64"]
        lines.append(
            f"| {n:,} | {d} | {k} | {m['sklearn']:.4f} | {m['emkit float64']:.4f} | "
            f"{m['sklearn'] / m['emkit float64']:.1f}× | {m['emkit float32']:.4f} | "
            f"{m['sklearn'] / m['emkit float32']:.1f}× | {gflops:.1f} ({100 * gflops / peak:.0f}%) "
            f"| {diff64:.1e} / {diff32:.1e} |")
        print(lines[-1], flush=True)
        if diff64 > 1e-8:
            lines.append(f"  WARNING: float64 log-likelihood differs from sklearn by {diff64:.2e}")
    lines.append(f"- numba compile time (first call, before caching): {r['compile_seconds']:.1f} s")
    flags = "".join(f" --{name}" for name in ("quick", "headline") if getattr(args, name))
    lines.append(f"- command: python benchmarks/gmm.py{flags}")
    text = "\n".join(lines)
    print(text)
    if args.append:
        path = Path(__file__).with_name("RESULTS.md")
        with path.open("a") as handle:
            handle.write("\n### GaussianMixture, one EM iteration (full covariance)\n" + text +
                         "\n")


if __name__ == "__main__":
    main()
