"""One EM iteration with missing values against the complete-data fit of the same size.

N=100,000 rows, D=10, K=5, full covariance; 20% of the entries missing completely at random
(so about 89% of the rows are incomplete, in ~1,000 distinct patterns). Both fits start from the
same parameters; time per iteration is the difference of a long and a short run divided by the
difference in iterations (set-up cancels), medians of alternating repetitions.

    python benchmarks/missing.py [--repeats 3] [--append]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")  # ConvergenceWarning at tol=0 is expected


def per_iteration(make, X, short=2, long=7):
    t0 = time.perf_counter()
    make(short).fit(X)
    t1 = time.perf_counter()
    model = make(long).fit(X)
    t2 = time.perf_counter()
    return ((t2 - t1) - (t1 - t0)) / (long - short), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    from gmm import machine_description, make_data, starting_point

    import emkit

    n, d, k = 100_000, 10, 5
    X = make_data(n, d, k)
    rng = np.random.default_rng(1)
    X_missing = np.where(rng.uniform(size=X.shape) < args.fraction, np.nan, X)
    init = starting_point(X, k)

    def gmm(n_iter):
        return emkit.GaussianMixture(k, max_iter=n_iter, tol=0, accelerate=None, **init)

    gmm(1).fit(X_missing[:20_000])  # compile the kernels
    gmm(1).fit(X[:20_000])
    times = {"complete": [], "missing": []}
    for _ in range(args.repeats):
        for name, data in (("complete", X), ("missing", X_missing)):
            times[name].append(per_iteration(gmm, data)[0])
    complete, missing = (statistics.median(times[name]) for name in ("complete", "missing"))
    n_incomplete = int(np.isnan(X_missing).any(axis=1).sum())
    n_patterns = len(np.unique(np.isnan(X_missing), axis=0))
    lines = machine_description() + [
        "",
        "| N | D | K | missing entries | incomplete rows | patterns | complete s/it | "
        "missing s/it | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {n:,} | {d} | {k} | {args.fraction:.0%} | {n_incomplete:,} | {n_patterns} | "
        f"{complete:.4f} | {missing:.4f} | {missing / complete:.1f}× |",
        f"- command: python benchmarks/missing.py --fraction {args.fraction}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with Path(__file__).with_name("RESULTS.md").open("a") as handle:
            handle.write("\n### GaussianMixture with missing values, one EM iteration\n" + text
                         + "\n")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
