"""Writes the schema-1 checkpoints in this folder with the emkit of commit 539d502 (before the
loop state was typed), so ``tests/test_loop_state.py`` can check that such files still resume.

Run from the repository root: ``python tests/data/checkpoints/make_legacy.py``. Each fit is
interrupted by a callback at a fixed (start, iteration) after writing checkpoints; the
uninterrupted fit's history, objectives per start and parameters are stored beside it
(``*_expected.npz``) as that emkit computed them.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "docs" / "examples"))

from poisson_mixture import PoissonMixture  # noqa: E402

from emkit import fit_em  # noqa: E402
from emkit.data.chunks import Batch  # noqa: E402

# Deaths per day of women over 80 in The Times, 1910-1912 (Hasselblad 1969): days with 0..9.
DEATHS = Batch(np.arange(10.0)[:, None],
               np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1], dtype=float))

FITS = {
    # SQUAREM, two starts, interrupted in the second: a finished best start, step bound, rates.
    "squarem": (dict(n_init=2, random_state=3, max_iter=400, tol=1e-10, accelerate="squarem",
                     checkpoint_every=2), (1, 13)),
    # Plain EM with xtol: the monitor's recent parameter steps.
    "plain": (dict(n_init=1, random_state=4, max_iter=300, tol=1e-10, accelerate=None,
                   checkpoint_every=5), (0, 42)),
}


class Interrupted(Exception):
    pass


def main() -> None:
    for name, (options, stop_at) in FITS.items():
        path = HERE / f"legacy_{name}.npz"
        path.unlink(missing_ok=True)

        def stop(info, stop_at=stop_at):
            if (info.restart, info.iteration) == stop_at:
                raise Interrupted

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit_em(PoissonMixture(2), DEATHS, checkpoint=path, callbacks=[stop], **options)
            except Interrupted:
                pass
            full = {key: value for key, value in options.items() if key != "checkpoint_every"}
            result = fit_em(PoissonMixture(2), DEATHS, **full)
        np.savez(HERE / f"legacy_{name}_expected.npz", history=result.history,
                 restart_objectives=np.array(result.restart_objectives),
                 weights=result.params.weights, rates=result.params.rates,
                 scalars=np.array([result.objective, result.n_iter, result.converged,
                                   result.best_restart]))


if __name__ == "__main__":
    main()
