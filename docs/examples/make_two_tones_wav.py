"""Make ``src/emkit/datasets/two_tones.wav``: two close tones in noise, for ``emkit fit tones``.

0.25 s of mono 16-bit PCM at 8 kHz (2,000 samples, about 4 KB): tones at 440 Hz (amplitude 0.5)
and 443 Hz (amplitude 0.3, phase 1 rad) — 3 Hz apart, closer than the 4 Hz resolution of the
clip's periodogram — plus white Gaussian noise of standard deviation 0.05 (full scale 1).

    python docs/examples/make_two_tones_wav.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

RATE, N_SAMPLES = 8000, 2000
TONES = ((440.0, 0.5, 0.0), (443.0, 0.3, 1.0))  # (Hz, amplitude, phase)
NOISE_SD = 0.05


def main() -> Path:
    rng = np.random.default_rng(440)
    t = np.arange(N_SAMPLES) / RATE
    y = sum(a * np.cos(2 * np.pi * f * t + p) for f, a, p in TONES)
    y = y + NOISE_SD * rng.standard_normal(N_SAMPLES)
    path = Path(__file__).resolve().parents[2] / "src" / "emkit" / "datasets" / "two_tones.wav"
    wavfile.write(path, RATE, np.round(y * 32767).astype(np.int16))
    return path


if __name__ == "__main__":
    print(main())
