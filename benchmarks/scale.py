"""A Gaussian mixture fitted to a .npy file larger than the memory the fit may use.

N = 100,000,000 rows × D = 16 float32 (6.4 GB), K = 16, full covariance, read in chunks with
:class:`emkit.data.NpyChunks`. The fit runs in a child process so that its peak resident memory
(``ru_maxrss``) is its own; the goal is below 1.5 GB. Reported: time per pass (one E-step over
the file), the time of a plain read of the file for comparison, and the peak memory.

    python benchmarks/scale.py [--rows 100000000] [--folder /tmp/emkit-scale] [--append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

N_FEATURES, N_COMPONENTS = 16, 16


def write_data(path: Path, n_rows: int, chunk_rows: int = 1 << 20) -> None:
    """n_rows float32 rows from a 16-component mixture, written chunk by chunk."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 4.0, (N_COMPONENTS, N_FEATURES)).astype(np.float32)
    header = {"descr": npformat.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (n_rows, N_FEATURES)}
    with open(path, "wb") as stream:
        npformat.write_array_header_2_0(stream, header)
        for start in range(0, n_rows, chunk_rows):
            rows = min(chunk_rows, n_rows - start)
            labels = rng.integers(0, N_COMPONENTS, rows)
            chunk = centres[labels] + rng.standard_normal((rows, N_FEATURES), dtype=np.float32)
            chunk.tofile(stream)


CHILD = """
import json, resource, sys, time, warnings
import numpy as np
import emkit
from emkit.data.chunks import NpyChunks
warnings.simplefilter("ignore")
path, n_iter = sys.argv[1], int(sys.argv[2])
source = NpyChunks(path, chunk_rows=1 << 18)
start = time.perf_counter()
for chunk in source:
    pass
read_seconds = time.perf_counter() - start
rng = np.random.default_rng(1)
first = next(iter(source))
means = first[rng.choice(len(first), 16, replace=False)].astype(float)
model = emkit.GaussianMixture(16, dtype=np.float32, max_iter=n_iter, tol=0.0, accelerate=None,
                              means_init=means,
                              weights_init=np.full(16, 1 / 16), precisions_init=np.repeat(
                                  np.eye(16)[None], 16, axis=0))
start = time.perf_counter()
model.fit(source)
fit_seconds = time.perf_counter() - start
print(json.dumps({"read_seconds": read_seconds, "fit_seconds": fit_seconds,
                  "passes": model.n_iter_ + 1, "log_likelihood": float(model.history_[-1]),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/emkit-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    from gmm import machine_description

    args.folder.mkdir(parents=True, exist_ok=True)
    path = args.folder / f"rows-{args.rows}.npy"
    if not path.exists():
        start = time.perf_counter()
        write_data(path, args.rows)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.1f} GB) in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    try:
        completed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CHILD), str(path), str(args.iterations)],
            capture_output=True, text=True, check=True)
    finally:
        if not args.keep:
            os.unlink(path)
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    per_pass = figures["fit_seconds"] / figures["passes"]
    size_gb = args.rows * N_FEATURES * 4 / 1e9
    lines = machine_description() + [
        "",
        "| rows × features | file | K | passes | s/pass | plain read s | peak RSS |",
        "|---|---|---|---|---|---|---|",
        f"| {args.rows:,} × {N_FEATURES} float32 | {size_gb:.1f} GB | {N_COMPONENTS} | "
        f"{figures['passes']} | {per_pass:.1f} | {figures['read_seconds']:.1f} | "
        f"{figures['peak_rss_mb']:.0f} MB |",
        f"- command: python benchmarks/scale.py --rows {args.rows} --iterations "
        f"{args.iterations}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with Path(__file__).with_name("RESULTS.md").open("a") as handle:
            handle.write("\n### Out of core: GaussianMixture on a .npy file, read in chunks\n"
                         + text + "\n")


if __name__ == "__main__":
    main()
