"""Gaussian HMMs at the defaults: emkit's restarts against hmmlearn's, side by side.

The bundled EuStock closing prices (DAX, SMI, CAC, FTSE, 1,860 trading days; R's ``EuStockMarkets``)
as daily log-returns, one sequence of 1,859 frames, full covariances. hmmlearn 0.3:
``GaussianHMM(K, covariance_type="full", random_state=s, n_iter=1000, tol=1e-4)`` for s = 0–9
(its default k-means start, its default covariance prior), the best and the mean of the ten
log-likelihoods; emkit: ``GaussianHMM(K, covariance_type="full", n_init=10, random_state=s)``
(its defaults otherwise), for a few seeds s. Every log-likelihood is the plain log-likelihood of
the data under the fitted model (``score``), so the two are comparable although hmmlearn's
M-step adds its covariance prior and emkit's ``reg_covar``. Times are wall-clock per call.

    python benchmarks/hmm_defaults.py              # K = 2 and 3
    python benchmarks/hmm_defaults.py --append     # also append the markdown to RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")  # hmmlearn reports its own non-monotone steps on stderr


def log_returns() -> np.ndarray:
    import emkit

    prices = np.asarray(emkit.datasets.load("eustock").data, dtype=float)[:, 1:]
    return np.diff(np.log(prices), axis=0)


def run(K: int, emkit_seeds) -> dict:
    from hmmlearn.hmm import GaussianHMM as HmmlearnHMM

    import emkit

    X = log_returns()
    peer, peer_s = [], []
    for seed in range(10):
        t0 = time.perf_counter()
        model = HmmlearnHMM(K, covariance_type="full", random_state=seed, n_iter=1000,
                            tol=1e-4).fit(X)
        peer_s.append(time.perf_counter() - t0)
        peer.append(model.score(X))
    ours, ours_s, converged = [], [], []
    for seed in emkit_seeds:
        t0 = time.perf_counter()
        model = emkit.GaussianHMM(K, covariance_type="full", n_init=10, random_state=seed).fit(X)
        ours_s.append(time.perf_counter() - t0)
        ours.append(model.score(X))
        converged.append(model.converged_)
    return {"K": K, "hmmlearn_best": max(peer), "hmmlearn_mean": float(np.mean(peer)),
            "hmmlearn_s": sum(peer_s), "emkit": ours, "emkit_s": float(np.median(ours_s)),
            "converged": all(converged)}


def markdown(rows) -> str:
    lines = [f"## {datetime.date.today()} — GaussianHMM restarts at the defaults, EuStock "
             "log-returns (issue 13)", "",
             "`python benchmarks/hmm_defaults.py`. 1 × 1,859 frames, D=4, full covariances.", "",
             "| K | hmmlearn best of 10 | hmmlearn mean of 10 | hmmlearn s (10 fits) | "
             "emkit n_init=10, seeds | emkit s (median) | emkit converged |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['K']} | {row['hmmlearn_best']:.3f} | {row['hmmlearn_mean']:.3f} | "
                     f"{row['hmmlearn_s']:.1f} | "
                     f"{', '.join(f'{v:.3f}' for v in row['emkit'])} | {row['emkit_s']:.1f} | "
                     f"{row['converged']} |")
    import hmmlearn

    import emkit
    lines += ["", f"- machine: {platform.machine()}, {platform.python_version()}; load "
              f"{' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}; emkit "
              f"{emkit.__version__}, hmmlearn {hmmlearn.__version__}", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--append", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [run(K, range(args.seeds)) for K in (2, 3)]
    text = markdown(rows)
    print(text)
    if args.append:
        with open(Path(__file__).parent / "RESULTS.md", "a") as results:
            results.write("\n" + text)


if __name__ == "__main__":
    main()
