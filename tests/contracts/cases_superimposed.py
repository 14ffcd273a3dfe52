"""Superimposed tones through the contracts.

A row is one sample ``[point, real, imag]`` (see :mod:`emkit.models.superimposed`): given the
parameters, samples are independent, so the contracts' splitting, dropping, repeating and
weighting of rows apply. The samples are taken at random points of a design of ``N_POINTS``
time steps (with repeats and gaps), so every contract also exercises irregular sampling.
"""

from __future__ import annotations

import numpy as np

from emkit.models.signals import DelayedWaveform, Sinusoids
from emkit.models.superimposed import SuperimposedModel, sample_rows

from .registry import ModelCase, register

N_POINTS = 32
PULSE = np.sin(2 * np.pi * (0.05 * np.arange(12) + 0.01 * np.arange(12) ** 2)) * np.hanning(12)


def two_complex_tones(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Tones at 0.12 and 0.21 cycles per sample (amplitudes 1 and 0.7) in complex noise of
    variance 0.1, sampled at random time steps."""
    points = rng.integers(0, N_POINTS, n_rows)
    clean = (np.exp(2j * np.pi * 0.12 * points)
             + 0.7 * np.exp(1j * (2 * np.pi * 0.21 * points + 1.0)))
    noise = np.sqrt(0.05) * (rng.standard_normal(n_rows) + 1j * rng.standard_normal(n_rows))
    return sample_rows(clean + noise, points)


def two_real_tones(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    points = rng.integers(0, N_POINTS, n_rows)
    clean = np.cos(2 * np.pi * 0.1 * points + 0.4) + 0.8 * np.cos(2 * np.pi * 0.3 * points - 1.0)
    return sample_rows(clean + 0.3 * rng.standard_normal(n_rows), points)


def two_echoes(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    points = rng.integers(0, N_POINTS, n_rows)
    signal = DelayedWaveform(PULSE)
    clean = signal.evaluate(np.array([[6.3, 1.0], [14.6, -0.8]]), points).sum(axis=0)
    return sample_rows(clean + 0.1 * rng.standard_normal(n_rows), points)


register(ModelCase("superimposed-complex-tones",
                   lambda: SuperimposedModel(Sinusoids(complex=True), 2, N_POINTS),
                   two_complex_tones, min_rows=20))
register(ModelCase("superimposed-real-tones",
                   lambda: SuperimposedModel(Sinusoids(), 2, N_POINTS),
                   two_real_tones, min_rows=20))
register(ModelCase("superimposed-echoes",
                   lambda: SuperimposedModel(DelayedWaveform(PULSE), 2, N_POINTS),
                   two_echoes, min_rows=20))

# SAGE is not registered: it converges in a few iterations, after which the contracts compare the
# engine's "best point" of an unconverged fit, and which of the equal late objectives is highest
# is decided by round-off (the iterates themselves agree bit for bit). tests/test_superimposed.py
# checks SAGE's monotonicity, chunking and seeds directly.
