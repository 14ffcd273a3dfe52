"""``emkit fit tones``: the tones in a mono WAV clip (superimposed signals)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from emkit.cli import common

EXAMPLES = """\
example:
  emkit fit tones src/emkit/datasets/two_tones.wav -k 2 -o tones.emkit
"""


def add_fit_parser(kinds) -> None:
    parser = kinds.add_parser(
        "tones", help="K real tones in a mono .wav clip", epilog=EXAMPLES,
        description="Find the frequencies, amplitudes and phases of K tones in noise "
        "(emkit.SuperimposedSignals) in a mono WAV clip; integer PCM is scaled to [-1, 1).")
    parser.add_argument("data", type=Path, help="mono .wav file")
    common.add_k_option(parser)
    common.add_em_options(parser, "tones")
    common.add_output_options(parser, "model file to write (e.g. tones.emkit)")
    parser.set_defaults(run=run_fit)


def build_estimator(args: argparse.Namespace, sample_rate: int | None) -> Any:
    """The SuperimposedSignals that ``emkit fit tones`` fits."""
    from emkit.estimators.superimposed import SuperimposedSignals

    return SuperimposedSignals("tones", args.n_components, sample_rate=sample_rate,
                               **common.common_keywords(args, "tones"))


def run_fit(args: argparse.Namespace) -> None:
    """``emkit fit tones recording.wav -k K``: the tones of a mono WAV clip."""
    from emkit.data.io import read_wav

    common.check_output_folders(args.output)
    rate, y = read_wav(args.data)  # integer PCM scaled to [-1, 1): amplitudes in full scale
    fitted = build_estimator(args, rate).fit(y)
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
