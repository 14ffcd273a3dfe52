"""Checkpoints: a fit killed with SIGKILL resumes to the result of an uninterrupted run, bit for
bit; checkpoints of another fit, other data or a damaged file are refused with clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from emkit import fit_em
from emkit.errors import ModelFileError, ParameterError
from emkit.models.mixture import GaussianMixtureModel

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

SETTINGS = {
    "plain": dict(n_init=3, max_iter=40, tol=1e-9, random_state=5),
    "squarem-annealing": dict(n_init=2, max_iter=60, tol=1e-9, random_state=6,
                              accelerate="squarem", annealing=2.0, iter_per_temperature=2),
}

DATA = """
import numpy as np
rng = np.random.default_rng(0)
X = np.vstack([rng.normal(0.0, 1.0, (150, 2)), rng.normal(2.0, 0.7, (150, 2))])
X[rng.uniform(size=X.shape) < 0.1] = np.nan  # rows sorted by pattern: prepared data too
"""


def data():
    namespace: dict = {}
    exec(DATA, namespace)
    return namespace["X"]


def model():
    return GaussianMixtureModel(3, "full")


def fit(X, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_em(model(), X, **options)


CHILD = """
import os, signal, sys, warnings
import numpy as np
from emkit import fit_em
from emkit.models.mixture import GaussianMixtureModel
warnings.simplefilter("ignore")
seen = []

def kill(info):
    seen.append((info.restart, info.iteration))
    if (info.restart, info.iteration) == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)

result = fit_em(GaussianMixtureModel(3, "full"), X, callbacks=[kill], **OPTIONS)
np.savez(OUTPUT, weights=result.params.weights, history=result.history,
         restart_objectives=np.array(result.restart_objectives),
         second=result.stats.components.second, first_seen=np.array(seen[0]),
         scalars=np.array([result.objective, result.n_iter, result.converged,
                           result.best_restart]),
         **{f"component_{i}": value for i, value in enumerate(result.params.components)})
"""


def run_child(options, output=None, kill_at=(-1, -1)):
    """Fit in a fresh Python process (as a user would: the reference, the killed and the
    resumed runs all start alike); the result is written to ``output``."""
    script = (textwrap.dedent(DATA) + f"OPTIONS = {options!r}\nOUTPUT = {str(output)!r}\n"
              f"KILL_AT = {tuple(kill_at)!r}\n" + CHILD)
    # Bit-for-bit equality across processes needs the same order of every floating-point sum:
    # BLAS's threaded kernels may split a product differently from run to run, so the children
    # run BLAS on one thread (without this a resumed fit once came out 5e-12 away).
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                       OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                               env=environment)
    return completed


def assert_same_result(resumed, reference):
    for got, want in zip(resumed.params.components, reference.params.components, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(resumed.params.weights, reference.params.weights)
    np.testing.assert_array_equal(resumed.history, reference.history)
    assert resumed.restart_objectives == reference.restart_objectives
    assert (resumed.objective, resumed.n_iter, resumed.converged, resumed.best_restart) == (
        reference.objective, reference.n_iter, reference.converged, reference.best_restart)
    np.testing.assert_array_equal(resumed.stats.components.second,
                                  reference.stats.components.second)


@pytest.mark.parametrize(("name", "kill_restart", "kill_iteration"),
                         [("plain", 1, 14), ("squarem-annealing", 0, 29)])
def test_a_killed_fit_resumes_to_the_uninterrupted_result(tmp_path, name, kill_restart,
                                                          kill_iteration):
    settings = SETTINGS[name]
    path = str(tmp_path / "fit.npz")
    killed = run_child(dict(settings, checkpoint=path, checkpoint_every=3),
                       kill_at=(kill_restart, kill_iteration))
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert os.path.exists(path)
    for run, options in (("reference", settings),
                         ("resumed", dict(settings, checkpoint=path, resume=True))):
        completed = run_child(options, tmp_path / f"{run}.npz")
        assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    reference, resumed = (np.load(tmp_path / f"{n}.npz") for n in ("reference", "resumed"))
    assert tuple(resumed["first_seen"]) > (kill_restart, 1)  # no start runs again from scratch
    assert tuple(resumed["first_seen"])[0] == kill_restart
    for key in reference.files:
        if key != "first_seen":
            np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)


def test_a_finished_checkpoint_gives_the_result_without_fitting(tmp_path):
    path = tmp_path / "fit.npz"
    settings = SETTINGS["plain"]
    first = fit(data(), checkpoint=path, **settings)
    seen = []
    again = fit(data(), checkpoint=path, resume=True, callbacks=[seen.append], **settings)
    assert seen == []
    assert_same_result(again, first)


def test_random_state_none_resumes_with_the_saved_seed(tmp_path):
    path = tmp_path / "fit.npz"
    options = dict(n_init=2, max_iter=10, tol=0.0)
    first = fit(data(), checkpoint=path, random_state=None, **options)
    again = fit(data(), checkpoint=path, resume=True, random_state=None, **options)
    assert_same_result(again, first)
    with pytest.raises(ModelFileError, match="another random_state"):
        fit(data(), checkpoint=path, resume=True, random_state=1, **options)


def test_a_missing_checkpoint_starts_afresh(tmp_path):
    path = tmp_path / "new.npz"
    result = fit(data(), checkpoint=path, resume=True, **SETTINGS["plain"])
    assert path.exists()
    assert_same_result(result, fit(data(), **SETTINGS["plain"]))


def test_checkpoints_of_another_fit_are_refused(tmp_path):
    path = tmp_path / "fit.npz"
    fit(data(), checkpoint=path, max_iter=5, tol=0.0, random_state=0)
    with pytest.raises(ModelFileError, match="another fit: its max_iter is 5"):
        fit(data(), checkpoint=path, resume=True, max_iter=6, tol=0.0, random_state=0)
    with pytest.raises(ModelFileError, match="does not hold parameters of this model"):
        fit_em(GaussianMixtureModel(4, "full"), data(), checkpoint=path, resume=True,
               max_iter=5, tol=0.0, random_state=0, warn_not_converged=False)


def test_a_checkpoint_for_other_data_is_refused(tmp_path):
    path = tmp_path / "fit.npz"
    killed = run_child(dict(SETTINGS["plain"], checkpoint=str(path), checkpoint_every=3),
                       kill_at=(0, 7))
    assert killed.returncode == -signal.SIGKILL
    with pytest.raises(ModelFileError, match="other data"):
        fit(data()[:-10], checkpoint=path, resume=True, **SETTINGS["plain"])


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 truncated"])
def test_a_damaged_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "fit.npz"
    path.write_bytes(content)
    expected = "not a readable emkit checkpoint|not an emkit"
    with pytest.raises(ModelFileError, match=expected) as error:
        fit(data(), checkpoint=path, resume=True, max_iter=3)
    assert "pickle" not in str(error.value)  # never numpy's hint to load it with allow_pickle


def test_a_npz_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(ModelFileError, match="not an emkit checkpoint"):
        fit(data(), checkpoint=path, resume=True, max_iter=3)


def test_resume_needs_a_checkpoint_path():
    with pytest.raises(ParameterError, match="resume=True needs checkpoint"):
        fit(data(), resume=True)


def test_cli_fit_resumes_from_its_checkpoint(tmp_path, capsys):
    from emkit import datasets
    from emkit.cli import main

    csv = datasets.path("faithful")
    checkpoint = tmp_path / "fit.npz"
    arguments = ["fit", "gmm", str(csv), "-k", "3", "--n-init", "2", "--tol", "1e-8",
                 "--max-iter", "300", "--json"]
    assert main(arguments + ["--checkpoint", str(checkpoint)]) == 0
    first = capsys.readouterr().out
    assert checkpoint.exists()
    assert main(arguments + ["--checkpoint", str(checkpoint), "--resume"]) == 0
    assert capsys.readouterr().out == first
    assert main(arguments + ["--resume"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err


def _every_estimator():
    """(estimator, data) for every emkit estimator that fits by EM."""
    from emkit import (
        DirichletMultinomialMixture,
        FixedMixture,
        GaussianHMM,
        GaussianMixture,
        SuperimposedSignals,
        signals,
    )

    rng = np.random.default_rng(1)
    counts = rng.multinomial(40, [0.5, 0.3, 0.2], size=60).astype(float)
    t = np.arange(64)
    tones = np.exp(2j * np.pi * 0.2 * t) + np.exp(2j * np.pi * 0.27 * t) + 0.1 * (
        rng.normal(size=64) + 1j * rng.normal(size=64))
    return [
        (GaussianMixture(2, n_init=2, random_state=0), (data(),)),
        (GaussianHMM(2, n_init=2, random_state=0), (np.nan_to_num(data()), [100, 200])),
        (DirichletMultinomialMixture(2, n_init=2, random_state=0), (counts,)),
        (FixedMixture(), (rng.uniform(0.1, 1.0, (50, 4)),)),
        (SuperimposedSignals(signals.Sinusoids(complex=True), 2, n_init=2, random_state=0),
         (tones,)),
    ]


@pytest.mark.parametrize("index", range(5))
def test_every_estimator_writes_and_resumes_checkpoints(tmp_path, index):
    from sklearn.base import clone

    estimator, arguments = _every_estimator()[index]
    path = tmp_path / "fit.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = clone(estimator).fit(*arguments, checkpoint=path)
        assert path.exists()
        again = clone(estimator).fit(*arguments, checkpoint=path, resume=True)
    np.testing.assert_array_equal(again.history_, first.history_)
    assert again.n_iter_ == first.n_iter_
