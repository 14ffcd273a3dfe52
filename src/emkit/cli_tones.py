"""``emkit fit tones``: the tones in a mono WAV clip (superimposed signals)."""

from __future__ import annotations

from emkit.io import read_wav
from emkit.superimposed import SuperimposedSignals


def run_fit(args) -> None:
    """``emkit fit tones recording.wav -k K``: the tones of a mono WAV clip."""
    import json

    from emkit.cli import estimator_options

    rate, y = read_wav(args.data)  # integer PCM scaled to [-1, 1): amplitudes in full scale
    fitted = SuperimposedSignals("tones", args.n_components, n_init=args.n_init,
                                 random_state=args.seed, progress=bool(args.progress),
                                 sample_rate=rate, **estimator_options(args)).fit(y)
    summary = {
        "model": "tones", "data": str(args.data), "sample_rate": rate, "n_samples": len(y),
        "n_components": args.n_components,
        "frequencies_hz": fitted.frequencies_hz_.tolist(),
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
