"""First fit in a new environment: each estimator's first fit in a fresh process, with an empty
numba cache (cold) and then again with the cache the cold run left (warm).

    python benchmarks/first_fit.py [--repeats 3] [--only gmm,hmm] [--profile] [--append]

Every run is a new Python process (``--child``) that imports emkit, builds its data, and times
the first ``fit`` call (compilation or cache loading included) and the whole process. A fresh
NUMBA_CACHE_DIR per repetition makes the cold run cold; the warm run reuses it. ``--profile``
also lists, per scenario, the compiled functions that took the longest (numba's compile events,
time spent in each function's own compilation, callees excluded) and the signatures compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (what it fits, the code run in the child; ``fit()`` is the timed call)
SCENARIOS = {
    "gmm": ("GaussianMixture(2) on Old Faithful", """
from emkit import GaussianMixture, datasets
X = datasets.load("faithful").data
def fit():
    GaussianMixture(2, random_state=0).fit(X)
"""),
    "gmm_f32": ("GaussianMixture(2) on Old Faithful, float32", """
import numpy as np
from emkit import GaussianMixture, datasets
X = datasets.load("faithful").data.astype(np.float32)
def fit():
    GaussianMixture(2, random_state=0).fit(X)
"""),
    "gmm_diag": ("GaussianMixture(2, diag) on Old Faithful", """
from emkit import GaussianMixture, datasets
X = datasets.load("faithful").data
def fit():
    GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
"""),
    "gmm_nan": ("GaussianMixture(2) on airquality (NaN)", """
from emkit import GaussianMixture, datasets
X = datasets.load("airquality").data[:, :4]
def fit():
    GaussianMixture(2, random_state=0).fit(X)
"""),
    "imputer": ("EMImputer().fit_transform on airquality", """
from emkit import EMImputer, datasets
X = datasets.load("airquality").data[:, :4]
def fit():
    EMImputer(random_state=0).fit_transform(X)
"""),
    "hmm": ("GaussianHMM(2) on eustock log returns (%)", """
import numpy as np
from emkit import GaussianHMM, datasets
X = 100 * np.diff(np.log(datasets.load("eustock").data[:, 1:]), axis=0)
def fit():
    GaussianHMM(2, random_state=0).fit(X)
"""),
    "dmm": ("DirichletMultinomialMixture K=1..5 on twins", """
from emkit import DirichletMultinomialMixture, datasets
X = datasets.load("twins").data
def fit():
    for k in range(1, 6):
        DirichletMultinomialMixture(k, random_state=0).fit(X)
"""),
    "fixed": ("FixedMixture of GaussianMixture K=1..3 on Old Faithful", """
from emkit import FixedMixture, GaussianMixture, datasets
X = datasets.load("faithful").data
def fit():
    members = [GaussianMixture(k, random_state=0).fit(X[::2]) for k in (1, 2, 3)]
    FixedMixture(models=members).fit(X[1::2])
"""),
    "groups": ("fit_gaussian_mixtures: 500 groups of 200 rows, K=2", """
import numpy as np
import emkit
rng = np.random.default_rng(0)
X = rng.normal(size=(100_000, 2)) + 4 * rng.integers(0, 2, (100_000, 1))
groups = np.repeat(np.arange(500), 200)
def fit():
    emkit.fit_gaussian_mixtures(X, groups, 2, random_state=0)
"""),
    "signals": ("SuperimposedSignals(Sinusoids(), 2) on two_tones", """
from emkit import SuperimposedSignals, datasets
from emkit.data.io import read_wav
from emkit.models.signals import Sinusoids
rate, y = read_wav(datasets.recording_path("two_tones"))
def fit():
    SuperimposedSignals(Sinusoids(), 2, random_state=0).fit(y)
"""),
}

_PROFILE = """
import numba
from numba.core import event

_events = []
class _Listener(event.Listener):
    def on_start(self, e):
        _events.append((time.perf_counter(), e))
    def on_end(self, e):
        _events.append((time.perf_counter(), e))
event.register("numba:compile", _Listener())

def _own_compile_times():
    # Nested compile events (a callee compiled inside its caller) are subtracted from the
    # caller: each function's own time.
    own, stack = {}, []
    for when, e in _events:
        if e.is_start:
            stack.append([when, 0.0])
        else:
            started, inner = stack.pop()
            spent = when - started
            d = e.data["dispatcher"]
            module = d.py_func.__module__.split(".")[-1]
            key = f"{module}.{d.py_func.__name__}{tuple(e.data['args'])}"
            own[key] = own.get(key, 0.0) + spent - inner
            if stack:
                stack[-1][1] += spent
    return own

def _signatures():
    import sys
    from numba.core.registry import CPUDispatcher
    out = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("emkit"):
            continue
        for attr, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.signatures:
                out[f"{name.split('.')[-1]}.{attr}"] = [str(s) for s in value.signatures]
    return out
"""


def child(name: str, profile: bool) -> None:
    started = time.perf_counter()
    namespace: dict = {"time": time}
    if profile:
        exec(_PROFILE, namespace)
    exec(SCENARIOS[name][1], namespace)
    loaded, loaded_cpu = time.perf_counter(), time.process_time()
    namespace["fit"]()
    done = time.perf_counter()
    # CPU time too: on a shared machine it varies less with the load than the wall time.
    result = {"setup_s": loaded - started, "fit_s": done - loaded,
              "fit_cpu_s": time.process_time() - loaded_cpu}
    if profile:
        result["compile"] = namespace["_own_compile_times"]()
        result["signatures"] = namespace["_signatures"]()
    print(json.dumps(result))


def run_child(name: str, cache_dir: str, profile: bool) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    started = time.perf_counter()
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    if profile:
        command.append("--profile")
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def machine() -> str:
    import platform

    import numba
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}; {os.cpu_count()} "
            f"cores; load {os.getloadavg()[0]:.2f}; Python {platform.python_version()}, numpy "
            f"{np.__version__}, numba {numba.__version__}, numba threads "
            f"{numba.config.NUMBA_NUM_THREADS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--profile", action="store_true",
                        help="list the slowest compilations and the signatures compiled")
    parser.add_argument("--append", action="store_true", help="append the table to RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.profile)
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    lines = [f"### First fit in a new environment ({machine()})", "",
             f"`python benchmarks/first_fit.py --repeats {args.repeats}"
             + (f" --only {args.only}" if args.only != ",".join(SCENARIOS) else "") + "`: "
             "each a fresh process; cold = empty NUMBA_CACHE_DIR, warm = the cache the cold "
             "run left. Medians; fit = the first `fit` call, process = the whole process "
             "(interpreter, imports, data, fit); CPU = the fit's process CPU time (all "
             "threads).", "",
             "| scenario | cold fit (s) | cold fit CPU (s) | cold process (s) | warm fit (s) "
             "| warm process (s) |",
             "|---|---|---|---|---|---|"]
    for name in names:
        cold, warm = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="emkit-numba-") as cache_dir:
                cold.append(run_child(name, cache_dir, args.profile))
                warm.append(run_child(name, cache_dir, False))
        row = (f"| {SCENARIOS[name][0]} | "
               f"{statistics.median(r['fit_s'] for r in cold):.2f} | "
               f"{statistics.median(r['fit_cpu_s'] for r in cold):.2f} | "
               f"{statistics.median(r['process_s'] for r in cold):.2f} | "
               f"{statistics.median(r['fit_s'] for r in warm):.2f} | "
               f"{statistics.median(r['process_s'] for r in warm):.2f} |")
        lines.append(row)
        print(row, flush=True)
        if args.profile:
            compile_times = cold[-1]["compile"]
            total = sum(compile_times.values())
            print(f"    compiled {len(compile_times)} specialisations, {total:.2f} s in all; "
                  "slowest:")
            for key, spent in sorted(compile_times.items(), key=lambda kv: -kv[1])[:12]:
                print(f"      {spent:6.2f} s  {key}")
            for key, sigs in sorted(cold[-1]["signatures"].items()):
                print(f"    {key}: {len(sigs)} {sigs}")
    print("\n".join(lines))
    if args.append:
        with open(HERE / "RESULTS.md", "a") as handle:
            handle.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
