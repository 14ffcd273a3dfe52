"""``emkit fit tones``: the tones in a mono WAV clip (superimposed signals)."""

from __future__ import annotations

from emkit.io import read_wav
from emkit.superimposed import SuperimposedSignals


def _is_default(value) -> bool:
    from emkit.cli import DefaultValue

    return isinstance(value, DefaultValue)


def run_fit(args) -> None:
    """``emkit fit tones recording.wav -k K``: the tones of a mono WAV clip."""
    import json

    rate, y = read_wav(args.data)
    # The command line's defaults (tol 1e-3, 100 iterations) suit mixtures; tones need tighter
    # ones unless given explicitly.
    tol = 1e-8 if args.tol == 1e-3 else args.tol
    max_iter = 500 if args.max_iter == 100 else args.max_iter
    # Close tones make plain EM slow: SAGE, and SQUAREM unless --accelerate none was given.
    accelerate = None if args.accelerate == "none" and not _is_default(args.accelerate) \
        else "squarem"
    fitted = SuperimposedSignals(
        "tones", args.n_components, sage=True, n_init=args.n_init, tol=tol, max_iter=max_iter,
        random_state=args.seed, accelerate=accelerate, progress=bool(args.progress)).fit(y)
    summary = {
        "model": "tones", "data": str(args.data), "sample_rate": rate, "n_samples": len(y),
        "n_components": args.n_components,
        "frequencies_hz": (fitted.frequencies_ * rate).tolist(),
        "amplitudes": fitted.amplitudes_.tolist(), "phases": fitted.phases_.tolist(),
        "noise_variance": fitted.noise_variance_,
        "log_likelihood": fitted.lower_bound_ * len(y),
        "converged": bool(fitted.converged_), "n_iter": int(fitted.n_iter_),
    }
    if args.output is not None:
        fitted.save(args.output)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{len(y)} samples at {rate} Hz, {args.n_components} tone(s); converged: "
          f"{summary['converged']} after {summary['n_iter']} iterations")
    print(f"{'frequency (Hz)':>16} {'amplitude':>10} {'phase (rad)':>12}")
    for f, a, p in zip(summary["frequencies_hz"], summary["amplitudes"], summary["phases"],
                       strict=True):
        print(f"{f:16.4f} {a:10.4f} {p:12.4f}")
    print(f"noise variance {fitted.noise_variance_:.4g}, log-likelihood "
          f"{summary['log_likelihood']:.6g}")
    if args.output is not None:
        print(f"saved to {args.output}")
