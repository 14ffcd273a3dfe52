"""What an EM iteration costs on a Dask cluster against the same iteration in-process.

GaussianMixture, full covariance, K=8, D=16, float64, N rows (default 1,000,000) in blocks of
``--block-rows``. Three ways, same start, same iterations (tol=0): in-process (numpy array),
Dask's threaded scheduler, and a LocalCluster of 2 worker processes (1 thread each). Time per
iteration is the difference of a long and a short fit divided by the difference in iterations,
so set-up (persisting the data, starting the workers) cancels; medians of alternating repeats.

    python benchmarks/dask_overhead.py [--rows 1000000] [--block-rows 125000] [--append]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.simplefilter("ignore")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--block-rows", type=int, default=125_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster
    from gmm import machine_description, make_data, starting_point

    import emkit

    k = 8
    X = make_data(args.rows, 16, k)
    init = starting_point(X, k)

    def per_iteration(data, short=2, long=6):
        t0 = time.perf_counter()
        emkit.GaussianMixture(k, max_iter=short, tol=0, accelerate=None, **init).fit(data)
        t1 = time.perf_counter()
        model = emkit.GaussianMixture(k, max_iter=long, tol=0, accelerate=None, **init).fit(data)
        t2 = time.perf_counter()
        return ((t2 - t1) - (t1 - t0)) / (long - short), model.history_[-1]

    per_iteration(X[:20_000])  # compile
    times = {"in-process": [], "dask threads": [], "dask 2 processes": []}
    objectives = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        with dask.config.set(scheduler="threads"):
            local = da.from_array(X, chunks=(args.block_rows, 16)).persist()
        remote = da.from_array(X, chunks=(args.block_rows, 16)).persist()
        per_iteration(remote)  # the workers compile (or load) the kernels
        for _ in range(args.repeats):
            for name, data in (("in-process", X), ("dask threads", local),
                               ("dask 2 processes", remote)):
                scheduler = "threads" if name == "dask threads" else None
                with dask.config.set(scheduler=scheduler):
                    seconds, objectives[name] = per_iteration(data)
                times[name].append(seconds)
    base = statistics.median(times["in-process"])
    lines = machine_description() + [
        "",
        f"N={args.rows:,}, D=16, K=8, full covariance, blocks of {args.block_rows:,} rows",
        "",
        "| where | s/iteration | against in-process | final log-likelihood |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {median / base:.2f}× | "
                     f"{objectives[name]:.10g} |")
    lines.append(f"- command: python benchmarks/dask_overhead.py --rows {args.rows} "
                 f"--block-rows {args.block_rows}")
    text = "\n".join(lines)
    print(text)
    if args.append:
        with Path(__file__).with_name("RESULTS.md").open("a") as handle:
            handle.write("\n### Dask: an EM iteration on a cluster against in-process\n"
                         + text + "\n")


if __name__ == "__main__":
    main()
