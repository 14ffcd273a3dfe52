"""One Baum-Welch iteration of a Gaussian HMM: emkit against hmmlearn, side by side.

K=8 states, D=4 features, full covariances, on 1×200,000, 50×4,000 and 20,000×10 frames. Both
start from the same parameters (``init_params=""``; hmmlearn's covariance prior off, emkit's
``reg_covar=0``) and run a fixed number of iterations. The time per iteration is the difference
between a long and a short fit divided by the difference in iterations (emkit 8 − 2, hmmlearn
3 − 1), so that set-up — validation, the start's evaluation — cancels for both; each is preceded
by an untimed short fit (except hmmlearn's on 20,000 sequences). Runs alternate
(hmmlearn 'scaling', hmmlearn 'log', emkit, …), medians are compared against the better hmmlearn
implementation, and the log-likelihoods after the same iterations are checked to agree. On
20,000 sequences hmmlearn takes seconds per iteration, so it runs 2 − 1 iterations, once.

    python benchmarks/hmm.py              # the three headline shapes
    python benchmarks/hmm.py --quick      # small sizes, for a smoke test
    python benchmarks/hmm.py --append     # also append the markdown to benchmarks/RESULTS.md
    python benchmarks/hmm.py --dynamax-python /path/to/venv/bin/python   # add dynamax (JAX)
    python benchmarks/hmm.py --only 50x4000,20000x10   # some of the shapes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from gmm import machine_description, matmul_gflops  # noqa: E402

warnings.simplefilter("ignore")  # convergence warnings at a fixed number of iterations
N_STATES, N_FEATURES = 8, 4


def true_chain(seed=0):
    rng = np.random.default_rng(seed)
    transmat = rng.dirichlet(np.ones(N_STATES), N_STATES) + 4 * np.eye(N_STATES)
    transmat /= transmat.sum(axis=1, keepdims=True)
    means = rng.normal(0, 3, (N_STATES, N_FEATURES))
    factors = rng.normal(0, 0.4, (N_STATES, N_FEATURES, N_FEATURES))
    covars = factors @ np.swapaxes(factors, 1, 2) + 0.5 * np.eye(N_FEATURES)
    return np.full(N_STATES, 1 / N_STATES), transmat, means, covars


def simulate(n_sequences, n_frames, seed=0):
    """Frames (n_sequences · n_frames, D) drawn from the true chain."""
    startprob, transmat, means, covars = true_chain()
    rng = np.random.default_rng(seed + 1)
    states = np.empty((n_sequences, n_frames), dtype=int)
    states[:, 0] = rng.choice(N_STATES, n_sequences, p=startprob)
    cumulative = np.cumsum(transmat, axis=1)
    for t in range(1, n_frames):
        u = rng.uniform(size=(n_sequences, 1))
        states[:, t] = np.minimum((u > cumulative[states[:, t - 1]]).sum(axis=1), N_STATES - 1)
    states = states.ravel()
    noise = np.einsum("nij,nj->ni", np.linalg.cholesky(covars)[states],
                      rng.standard_normal((len(states), N_FEATURES)))
    return means[states] + noise


def start_point(seed=0):
    """The common start: the true means moved, unit covariances, a uniform-ish chain."""
    _, _, means, _ = true_chain()
    rng = np.random.default_rng(seed + 2)
    transmat = np.full((N_STATES, N_STATES), 0.5 / (N_STATES - 1))
    np.fill_diagonal(transmat, 0.5)
    return dict(startprob_=np.full(N_STATES, 1 / N_STATES), transmat_=transmat,
                means_=means + rng.normal(0, 0.7, means.shape),
                covars_=np.array([np.eye(N_FEATURES)] * N_STATES))


def hmmlearn_model(implementation, n_iter):
    from hmmlearn import hmm

    model = hmm.GaussianHMM(N_STATES, covariance_type="full", n_iter=n_iter, tol=-np.inf,
                            init_params="", covars_prior=0.0, implementation=implementation)
    for name, value in start_point().items():
        setattr(model, name, value.copy())
    return model


def emkit_model(n_iter):
    import emkit

    model = emkit.GaussianHMM(N_STATES, covariance_type="full", max_iter=n_iter, tol=0.0,
                              reg_covar=0.0, init_params="")
    for name, value in start_point().items():
        setattr(model, name, value.copy())
    return model


def fit_seconds(make, X, lengths, n_iter):
    """Wall and process CPU seconds (all threads) of one fit, and the fitted model."""
    model = make(n_iter)
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(X, lengths)
    return (time.perf_counter() - t0, time.process_time() - c0), model


def final_log_likelihood(name, model, n_iter):
    """The log-likelihood before the last M-step (hmmlearn keeps only its last two)."""
    if name == "emkit":
        return float(model.history_[n_iter - 1])
    return float(model.monitor_.history[-1])


def compare(n_sequences, n_frames, repeats, peer_repeats, peer_iter=(1, 3), emkit_iter=(2, 8)):
    """Seconds per iteration of each contender: the difference between a long and a short fit
    from the same start, divided by the difference in iterations, so that set-up (validation,
    allocation, the first evaluation) cancels."""
    X = simulate(n_sequences, n_frames)
    lengths = np.full(n_sequences, n_frames)
    contenders = {"hmmlearn scaling": lambda n: hmmlearn_model("scaling", n),
                  "hmmlearn log": lambda n: hmmlearn_model("log", n),
                  "emkit": emkit_model}
    t0 = time.perf_counter()  # the first call compiles the numba kernels (cached on disk after)
    emkit_model(1).fit(X[:2000], np.full(len(X[:2000]) // 10, 10))
    compile_seconds = time.perf_counter() - t0
    emkit_model(1).fit(X, lengths)  # warm-up: first touch of the work arrays
    runs = {name: [] for name in contenders}
    log_likelihoods = {}
    for repeat in range(repeats):  # alternate so that machine noise hits every one alike
        for name, make in contenders.items():
            if name != "emkit" and repeat >= peer_repeats:
                continue
            short, long = emkit_iter if name == "emkit" else peer_iter
            if name == "emkit" or n_sequences <= 1000:
                # an untimed fit first: the one after another library's run finds its data out
                # of the caches (measured: emkit's first fit took twice as long)
                fit_seconds(make, X, lengths, short)
            t_short, _ = fit_seconds(make, X, lengths, short)
            t_long, model = fit_seconds(make, X, lengths, long)
            runs[name].append([(after - before) / (long - short)  # wall, CPU
                               for before, after in zip(t_short, t_long, strict=True)])
            # the log-likelihood after peer_iter[1] − 1 M-steps (what both have computed)
            log_likelihoods[name] = final_log_likelihood(name, model, peer_iter[1])
    medians = {name: statistics.median(v[0] for v in values) for name, values in runs.items()}
    cpu = {name: statistics.median(v[1] for v in values) for name, values in runs.items()}
    return dict(medians=medians, cpu=cpu, log_likelihoods=log_likelihoods,
                compile_seconds=compile_seconds)


def dynamax_worker(n_sequences, n_frames, repeats, dtype="float64", n_iter=4):
    """Run in a Python that has dynamax (JAX): seconds per EM iteration after compilation (wall
    and process CPU), the log-likelihood at the common start, and the compile time, as JSON.

    ``fit_em`` defines and jit-compiles its loop anew at every call (about a second of
    compilation per call), so its time divided by its iterations is mostly compilation. The
    loop is written here as dynamax's ``fit_em`` writes it — its own ``e_step`` vmapped over the
    sequences, ``log_prior``, ``m_step``, under ``lax.scan`` and ``jit`` — compiled once, then
    timed."""
    import json
    from functools import partial

    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    from dynamax.hidden_markov_model import GaussianHMM as DynamaxHMM

    X = simulate(n_sequences, n_frames).reshape(n_sequences, n_frames, N_FEATURES)
    emissions = jnp.asarray(X.astype(dtype))  # (n_sequences, n_frames, D): always batched
    start = start_point()
    # Priors as weak as dynamax allows (its M-step is MAP; the E-step is the same work).
    model = DynamaxHMM(N_STATES, N_FEATURES, initial_probs_concentration=1.0,
                       transition_matrix_concentration=1.0)
    params, props = model.initialize(**{
        name: jnp.asarray(start[key].astype(dtype)) for name, key in [
            ("initial_probs", "startprob_"), ("transition_matrix", "transmat_"),
            ("emission_means", "means_"), ("emission_covariances", "covars_")]})

    def em_step(carry, _):
        params, m_step_state = carry
        stats, lls = jax.vmap(partial(model.e_step, params))(emissions, None)
        lp = model.log_prior(params) + lls.sum()
        params, m_step_state = model.m_step(params, props, stats, m_step_state)
        return (params, m_step_state), lp

    @partial(jax.jit, static_argnums=1)
    def run_em(carry, num_steps):
        return jax.lax.scan(em_step, carry, xs=None, length=num_steps)

    carry = (params, model.initialize_m_step_state(params, props))

    def run():
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(run_em(carry, n_iter))
        return ((time.perf_counter() - t0) / n_iter, (time.process_time() - c0) / n_iter)

    t0 = time.perf_counter()
    _, log_probs = run_em(carry, n_iter)  # compiles
    jax.block_until_ready(log_probs)
    compile_seconds = time.perf_counter() - t0
    times = [run() for _ in range(repeats)]
    print(json.dumps({"seconds": statistics.median(t for t, _ in times),
                      "cpu_seconds": statistics.median(c for _, c in times),
                      "start_log_likelihood": float(log_probs[0] - model.log_prior(params)),
                      "compile_seconds": compile_seconds, "jax": jax.__version__,
                      "dtype": dtype}))


def run_dynamax(python, n_sequences, n_frames, repeats, dtype):
    """dynamax's figures from a worker process in the Python that has it (or None)."""
    import json
    import subprocess

    command = [python, __file__, "--dynamax-worker", f"{n_sequences}x{n_frames}",
               "--repeats", str(repeats), "--dynamax-dtype", dtype]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"dynamax worker failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def emkit_start_log_likelihood(X, lengths):
    return float(emkit_model(0).fit(X, lengths).history_[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument("--dynamax-python", metavar="PYTHON",
                        help="a Python interpreter with dynamax installed (JAX; it need not "
                             "have emkit): adds dynamax's column")
    parser.add_argument("--dynamax-worker", metavar="SxT", help=argparse.SUPPRESS)
    parser.add_argument("--dynamax-dtype", default="float64", help=argparse.SUPPRESS)
    parser.add_argument("--only", metavar="SxT,…", help="only these shapes, e.g. 50x4000")
    args = parser.parse_args(argv)
    if args.dynamax_worker:
        n_sequences, n_frames = map(int, args.dynamax_worker.split("x"))
        return dynamax_worker(n_sequences, n_frames, args.repeats, args.dynamax_dtype)
    import hmmlearn

    shapes = [(1, 5_000), (100, 50)] if args.quick else [(1, 200_000), (50, 4_000),
                                                          (20_000, 10)]
    if args.only:
        shapes = [tuple(map(int, shape.split("x"))) for shape in args.only.split(",")]
    lines = machine_description()
    lines.append(f"- hmmlearn {hmmlearn.__version__}")
    lines.append(f"- 2000×2000 float64 matmul in this run: {matmul_gflops():.1f} GFLOP/s")
    lines += ["", "| sequences × frames | hmmlearn scaling s/it | hmmlearn log s/it | emkit s/it "
              "| speed-up vs better hmmlearn | CPU s/it: better hmmlearn, emkit | CPU speed-up "
              "| log-lik rel. diff |", "|---|---|---|---|---|---|---|---|"]
    dynamax_rows = []
    for n_sequences, n_frames in shapes:
        # hmmlearn needs seconds per iteration on 20,000 short sequences: one repeat, 1 and 2
        peer_repeats, peer_iter = ((1, (1, 2)) if n_sequences > 1000
                                   else (args.repeats, (1, 3)))
        r = compare(n_sequences, n_frames, args.repeats, peer_repeats, peer_iter=peer_iter)
        m = r["medians"]
        best = min(m["hmmlearn scaling"], m["hmmlearn log"])
        better = "hmmlearn scaling" if best == m["hmmlearn scaling"] else "hmmlearn log"
        cpu = r["cpu"]
        ll = r["log_likelihoods"]
        diff = max(abs(ll["emkit"] - ll[name]) / abs(ll[name])
                   for name in ("hmmlearn scaling", "hmmlearn log"))
        lines.append(f"| {n_sequences:,} × {n_frames:,} | {m['hmmlearn scaling']:.4f} | "
                     f"{m['hmmlearn log']:.4f} | {m['emkit']:.4f} | {best / m['emkit']:.1f}× | "
                     f"{cpu[better]:.4f}, {cpu['emkit']:.4f} | "
                     f"{cpu[better] / cpu['emkit']:.1f}× | {diff:.1e} |")
        print(lines[-1], flush=True)
        if diff > 1e-8:
            lines.append(f"  WARNING: log-likelihoods differ by {diff:.2e}")
        if args.dynamax_python:
            X = simulate(n_sequences, n_frames)
            ours = emkit_start_log_likelihood(X, np.full(n_sequences, n_frames))
            for dtype in ("float32", "float64"):
                dyn = run_dynamax(args.dynamax_python, n_sequences, n_frames, args.repeats,
                                  dtype)
                if dyn is None:
                    continue
                agree = abs(dyn["start_log_likelihood"] - ours) / abs(ours)
                dynamax_rows.append(
                    f"| {n_sequences:,} × {n_frames:,} | {dtype} | {dyn['seconds']:.4f} | "
                    f"{dyn['cpu_seconds']:.4f} | {m['emkit']:.4f} | {cpu['emkit']:.4f} | "
                    f"{dyn['seconds'] / m['emkit']:.1f}× | "
                    f"{dyn['cpu_seconds'] / cpu['emkit']:.1f}× | "
                    f"{dyn['compile_seconds']:.1f} | {agree:.1e} |")
                print(dynamax_rows[-1], flush=True)
    if dynamax_rows:
        lines += ["", "dynamax (JAX, CPU) in a worker process; its time per iteration after "
                  "compilation (wall, and process CPU over all its threads), against emkit's "
                  "(float64) from the table above:", "",
                  "| sequences × frames | dynamax dtype | dynamax s/it | dynamax CPU s/it | "
                  "emkit s/it | emkit CPU s/it | speed-up vs dynamax | CPU speed-up | "
                  "dynamax compile s | start log-lik rel. diff |",
                  "|---|---|---|---|---|---|---|---|---|---|", *dynamax_rows]
    lines.append(f"- numba compile time (first call, before caching): "
                 f"{r['compile_seconds']:.1f} s")
    flags = (" --quick" if args.quick else "") + (" --dynamax-python PY" if args.dynamax_python
                                                  else "")
    lines.append(f"- command: python benchmarks/hmm.py{flags}")
    text = "\n".join(lines)
    print(text)
    if args.append:
        path = Path(__file__).with_name("RESULTS.md")
        with path.open("a") as handle:
            handle.write("\n### GaussianHMM, one Baum-Welch iteration (K=8, D=4, full "
                         "covariance)\n" + text + "\n")


if __name__ == "__main__":
    main()
