"""The rule that chooses between a kernel's numpy form and its compiled form (emkit.kernels.tiers):
numpy on small inputs until the compiled form is in numba's cache or has paid for itself."""

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numba
import numpy as np
import pytest

from emkit.kernels import tiers


@numba.njit
def _double(x):
    return 2.0 * x


@pytest.fixture
def adaptive(monkeypatch):
    monkeypatch.setattr(tiers, "MODE", "adaptive")


def test_small_inputs_run_numpy_until_their_time_pays_for_compiling(adaptive, monkeypatch):
    monkeypatch.setattr(tiers, "is_compiled", lambda dispatcher, args: False)
    forms = tiers.TwoForms(_double, numpy_max_work=100, compile_seconds=0.05)
    args = (np.ones(3),)
    assert not forms.use_compiled("d", 10, args)
    assert forms.use_compiled("d", 100, args)  # a large input: compiled at once
    assert not forms.use_compiled("d", 10, args)  # ... which is not counted as paid
    ran = forms.run_numpy(lambda x: sum(i for i in range(200_000)) * x, 2.0)
    assert ran == 2.0 * sum(range(200_000))
    while forms._numpy_seconds < 0.05:
        forms.run_numpy(sum, range(100_000))
    assert forms.use_compiled("d", 10, args)
    assert forms.use_compiled("f", 10, args)  # the budget is the kernel's, whatever the types


def test_keep_compiled_holds_for_that_key_only(adaptive, monkeypatch):
    monkeypatch.setattr(tiers, "is_compiled", lambda dispatcher, args: False)
    forms = tiers.TwoForms(_double, numpy_max_work=100, compile_seconds=1e9)
    forms.keep_compiled("d")
    assert forms.use_compiled("d", 1, (np.ones(2),))
    assert not forms.use_compiled("f", 1, (np.ones(2, dtype=np.float32),))


def test_a_compiled_form_in_memory_or_in_the_cache_is_used(adaptive, monkeypatch):
    looked_up = []
    monkeypatch.setattr(tiers, "is_compiled",
                        lambda dispatcher, args: looked_up.append(args) or True)
    forms = tiers.TwoForms(_double, numpy_max_work=100, compile_seconds=1e9)
    assert forms.use_compiled("d", 1, (np.ones(2),))
    assert forms.use_compiled("d", 1, (np.ones(2),))
    assert len(looked_up) == 1  # once per key


def test_numpy_time_adds_up_across_processes(adaptive, tmp_path, monkeypatch):
    # a stand-in for a cached dispatcher: the ledger lives in its numba cache directory
    cached = SimpleNamespace(py_func=_double.py_func,
                             _cache=SimpleNamespace(_cache_path=str(tmp_path)))
    monkeypatch.setattr(tiers, "_ALL", [])
    first = tiers.TwoForms(cached, numpy_max_work=100, compile_seconds=0.1)
    assert not first.use_compiled("d", 1, (1.0,))
    first.run_numpy(time.sleep, 0.06)
    assert not first.use_compiled("d", 1, (1.0,))
    tiers._save_ledgers()  # what the first process leaves at exit
    assert tiers._ledger(cached)[tiers._name(cached)] >= 0.06
    monkeypatch.setattr(tiers, "_ALL", [])
    second = tiers.TwoForms(cached, numpy_max_work=100, compile_seconds=0.1)
    assert not second.use_compiled("d", 1, (1.0,))
    second.run_numpy(time.sleep, 0.06)  # alone below the budget, with the first's above it
    assert second.use_compiled("d", 1, (1.0,))
    (tmp_path / tiers._LEDGER).write_text("not json")  # a damaged ledger counts as empty
    assert tiers._ledger(cached) == {}


def test_the_fixed_modes_ignore_history(monkeypatch):
    forms = tiers.TwoForms(_double, numpy_max_work=100, compile_seconds=0.0)
    for mode, small, large in [("size", False, True), ("numpy", False, False),
                               ("compiled", True, True)]:
        monkeypatch.setattr(tiers, "MODE", mode)
        assert forms.use_compiled("d", 1, (1.0,)) is small
        assert forms.use_compiled("d", 1000, (1.0,)) is large


def test_is_compiled_finds_only_what_is_there():
    fresh = numba.njit(lambda x: x + 1.0)  # no cache: nothing to load
    assert not tiers.is_compiled(fresh, (1.0,))
    assert fresh.signatures == []  # and nothing compiled by asking
    fresh(1.0)
    assert tiers.is_compiled(fresh, (1.0,))  # in memory now


_CHILD = """
import json, sys
import numpy as np
from numba.core import event
import emkit
from emkit.kernels import gaussian
compiled = []


class Compilations(event.Listener):
    def on_start(self, e):
        compiled.append(str(e.data["dispatcher"]))

    def on_end(self, e):
        pass


event.register("numba:compile", Compilations())
ready = 0
if sys.argv[1] == "fit":
    faithful = emkit.datasets.load("faithful").data
    emkit.GaussianMixture(2, random_state=0).fit(faithful)
    # and many small mixtures in one call: 8 groups of 34 rows
    emkit.fit_gaussian_mixtures(faithful, np.arange(len(faithful)) % 8, 2, random_state=0)
elif sys.argv[1] == "fit_nan":  # 42 of 153 rows with NaN, in 3 patterns
    emkit.GaussianMixture(2, random_state=0).fit(emkit.datasets.load("airquality").data[:, :4])
elif sys.argv[1] == "dmm":
    twins = emkit.datasets.load("twins").data
    for k in (1, 2):
        emkit.DirichletMultinomialMixture(k, random_state=0).fit(twins)
    emkit.DirichletMultinomial().fit(twins)  # the latent-probability EM and its Newton M-step
    from emkit.families import dirichlet
    ready = len(dirichlet._MAXIMISE._ready)
elif sys.argv[1] == "hmm":
    X = 100 * np.diff(np.log(emkit.datasets.load("eustock").data[:400, 1:]), axis=0)
    emkit.GaussianHMM(2, random_state=0).fit(X, [150, 249]).predict(X, [150, 249])
else:
    gaussian.precision_cholesky_factors(np.eye(2)[None] * 2.0, 1e-7)
    ready = len(gaussian._FACTORS._ready)
print(json.dumps({"compiled": compiled, "ready": ready}))
"""


def _child(what, cache, mode):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), EMKIT_KERNELS=mode)
    done = subprocess.run([sys.executable, "-c", _CHILD, what], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_first_small_fit_in_a_new_environment_compiles_nothing(tmp_path):
    assert _child("fit", tmp_path, "adaptive")["compiled"] == []
    # once a process has compiled a kernel, the next one loads it from the cache
    assert _child("factors", tmp_path, "compiled")["compiled"]
    again = _child("factors", tmp_path, "adaptive")
    assert again == {"compiled": [], "ready": 1}


def test_a_first_small_fit_with_missing_values_compiles_nothing(tmp_path):
    assert _child("fit_nan", tmp_path, "adaptive")["compiled"] == []


def test_a_first_small_hmm_fit_and_predict_in_a_new_environment_compile_nothing(tmp_path):
    """GaussianHMM: the forward-backward and Viterbi passes (kernels/hmm.py) run in numpy, and
    so does the mixture-style start of the emission."""
    assert _child("hmm", tmp_path, "adaptive")["compiled"] == []


def test_a_first_small_dmm_fit_compiles_nothing_and_a_later_one_loads_the_cache(tmp_path):
    assert _child("dmm", tmp_path, "adaptive") == {"compiled": [], "ready": 0}
    compiled = _child("dmm", tmp_path / "compiled", "compiled")["compiled"]
    assert any("_polya_maximise" in name for name in compiled)
    assert _child("dmm", tmp_path / "compiled", "adaptive") == {"compiled": [], "ready": 1}
