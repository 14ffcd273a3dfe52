"""Time per fit of superimposed signals: EM, SAGE and EM + SQUAREM against a direct joint
least-squares fit (scipy.optimize.least_squares on all parameters at once), from the same start.

Cases: two complex tones at 0.20 and 0.23 cycles per sample (unit amplitudes, SNR 20 dB) with
N = 64, 512 and 4,096 samples; two transmitters seen by 40 receivers (noise sd 0.05). Every
method starts from the same point (emkit's greedy start) and runs to convergence (tol 1e-13 per
sample for EM — tight, because the likelihood is flat near the optimum of close tones; scipy's
tolerances tightened to 1e-12); runs alternate and the medians of
``--repeats`` are reported. The estimates are checked to agree (a fast wrong answer is no
result). The transmitter case is also timed as the reference test runs it: 10 restarts.

    python benchmarks/signals.py [--repeats 5] [--append]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")  # ConvergenceWarning of slow starts is expected


def tone_case(n, seed=0):
    from emkit.models.signals import Sinusoids

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = (np.exp(2j * np.pi * 0.2 * t) + np.exp(1j * (2 * np.pi * 0.23 * t + np.pi / 4))
         + np.sqrt(0.01 / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n)))
    return Sinusoids(complex=True), y


def transmitter_case(seed=0):
    from emkit.models.signals import Transmitters

    rng = np.random.default_rng(seed)
    signal = Transmitters(rng.uniform(size=(40, 2)))
    truth = np.array([[0.25, 0.7, 1.0], [0.65, 0.35, np.sqrt(1.5)]])
    y = signal.evaluate(truth, np.arange(40)).sum(0) + 0.05 * rng.standard_normal(40)
    return signal, y


def methods(signal, y):
    """name -> function(start) returning (theta, iterations)."""
    from scipy.optimize import least_squares

    from emkit import fit_em
    from emkit.models.superimposed import SuperimposedModel, sample_rows

    rows = sample_rows(y)
    n = len(y)

    def em(**options):
        def run(start):
            result = fit_em(SuperimposedModel(signal, 2, n, sage=options.pop("sage", False)),
                            rows, init=start, tol=1e-13, max_iter=5000, **options)
            return result.params.theta, result.n_iter
        return run

    def joint(start):
        def residual(vector):
            r = y - signal.evaluate(vector.reshape(2, -1), np.arange(n)).sum(0)
            return np.concatenate([r.real, r.imag]) if np.iscomplexobj(r) else r

        result = least_squares(residual, start.theta.ravel(), xtol=1e-12, ftol=1e-12,
                               gtol=1e-12)
        return result.x.reshape(2, -1), result.nfev

    return {"EM": lambda s: em()(s), "SAGE": lambda s: em(sage=True)(s),
            "EM+SQUAREM": lambda s: em(accelerate="squarem")(s),
            "SAGE+SQUAREM": lambda s: em(sage=True, accelerate="squarem")(s),
            "scipy least_squares (joint)": joint}


def canonical(signal, theta):
    theta = signal.wrap(theta) if hasattr(signal, "wrap") else np.asarray(theta)
    return theta[np.argsort(theta[:, 0])]


def bench_case(label, signal, y, repeats):
    from emkit.models.superimposed import SuperimposedModel, sample_rows

    start = SuperimposedModel(signal, 2, len(y)).init_params(sample_rows(y),
                                                             np.random.default_rng(0))
    runs = methods(signal, y)
    times = {name: [] for name in runs}
    results = {}
    for run in runs.values():  # warm-up (imports, caches)
        run(start)
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            theta, iterations = run(start)
            times[name].append(time.perf_counter() - t0)
            results[name] = (canonical(signal, theta), iterations)
    reference = results["EM"][0]

    def rss(theta):
        return float(np.sum(np.abs(y - signal.evaluate(theta, np.arange(len(y))).sum(0)) ** 2))

    rows = []
    for name in runs:
        theta, iterations = results[name]
        difference = float(np.max(np.abs(theta[:, :2] - reference[:, :2])))
        excess = rss(theta) / rss(reference) - 1.0  # > 0: a worse fit than EM's
        rows.append(f"| {label} | {name} | {statistics.median(times[name]) * 1e3:.2f} | "
                    f"{iterations} | {difference:.1e} | {excess:+.1e} |")
    return rows


def restarts_row(signal, y, repeats):
    import emkit

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fitted = emkit.SuperimposedSignals(signal, 2, n_init=10, random_state=0, sage=True,
                                           accelerate="squarem", tol=1e-10).fit(y)
        times.append(time.perf_counter() - t0)
    positions = np.round(fitted.positions_, 4).tolist()
    return (f"- transmitters, the reference test's fit (10 restarts, SAGE + SQUAREM): "
            f"{statistics.median(times):.3f} s per fit; positions {positions}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    from gmm import machine_description

    lines = machine_description() + [
        "",
        "| case | method | ms per fit (median) | iterations (scipy: evaluations) | "
        "max |Δ position/frequency| vs EM | residual sum of squares, relative to EM's |",
        "|---|---|---|---|---|---|",
    ]
    for label, (signal, y) in (("2 tones, N=64", tone_case(64)),
                               ("2 tones, N=512", tone_case(512)),
                               ("2 tones, N=4096", tone_case(4096)),
                               ("2 transmitters, 40 receivers", transmitter_case())):
        lines += bench_case(label, signal, y, args.repeats)
    lines.append(restarts_row(*transmitter_case(), max(1, args.repeats // 2)))
    lines.append(f"- command: python benchmarks/signals.py --repeats {args.repeats}")
    text = "\n".join(lines)
    print(text)
    if args.append:
        with Path(__file__).with_name("RESULTS.md").open("a") as handle:
            handle.write("\n### Superimposed signals (issue 7), time per fit\n" + text + "\n")


if __name__ == "__main__":
    main()
