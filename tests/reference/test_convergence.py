""""Converged" means near the maximum: the stopping rule and the defaults against published
maxima.

- Death notices (Hasselblad 1969, "Estimation of finite mixtures of distributions from the
  exponential family", JASA 64:1459–1471; the classic example of slow EM, e.g. McLachlan &
  Krishnan, "The EM Algorithm and Extensions", §3.9): deaths of women aged 80+ per day in
  The Times, 1910–1912, 0..9 deaths with frequencies 162, 267, 271, 185, 111, 61, 27, 8, 3, 1.
  The two-component Poisson mixture's MLE is (p, λ1, λ2) = (0.6401146029910, 2.6634043566619,
  1.2560951012662), −log L = 1989.945860 (log L including the log x! terms); plain EM needs
  about 2,600 iterations to get there.
- Old Faithful K=2 (full covariances): mclust's maximum, see test_faithful.py.
- Twins (Holmes et al. 2012): Dirichlet-multinomial, the EM and fixed-point solvers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import emkit
from emkit import datasets
from emkit.core.engine import ConvergenceMonitor, remaining_gain
from emkit.data.chunks import Batch
from emkit.errors import ConvergenceWarning
from emkit.estimators.compound_dirichlet import DirichletMultinomial

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "examples"))
from poisson_mixture import PoissonMixture  # noqa: E402

from .test_faithful import FAITHFUL_CSV, MCLUST_VVV2_LOGLIK  # noqa: E402

DEATHS = np.arange(10.0)
DAYS = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1], dtype=float)
HASSELBLAD_MLE = np.array([0.6401146029910, 2.6634043566619, 1.2560951012662])
HASSELBLAD_NEG_LOGLIK = 1989.945860


def death_notices() -> Batch:
    return Batch(DEATHS[:, None], DAYS)


def p_and_rates(params) -> np.ndarray:
    """(weight of the larger rate, larger rate, smaller rate)."""
    order = np.argsort(-params.rates)
    return np.array([params.weights[order[0]], *params.rates[order]])


# ------------------------------------------------------------------ the remaining-gain estimate
@pytest.mark.parametrize("rate", [0.3, 0.9, 0.999])
def test_aitken_estimate_is_exact_on_a_geometric_sequence(rate):
    limit, first_gap = -1234.5, 10.0
    objectives = limit - first_gap * rate ** np.arange(12)
    for t in range(6, 12):
        assert remaining_gain(objectives[:t]) == pytest.approx(limit - objectives[t - 1],
                                                               rel=1e-6)


def test_aitken_estimate_is_exact_when_steps_alternate_in_size():
    """SQUAREM-like: an EM step, then a longer one, each pair shrinking by q."""
    q, limit = 0.6, 50.0
    steps = np.ravel([[1.0 * q ** k, 7.0 * q ** k] for k in range(80)])  # the tail is 1e-17
    objectives = limit - steps.sum() + np.concatenate([[0.0], np.cumsum(steps)])
    for t in range(6, 20):
        assert remaining_gain(objectives[:t]) == pytest.approx(limit - objectives[t - 1],
                                                               rel=1e-9)


def test_estimate_is_unknown_while_the_objective_is_not_converging():
    assert remaining_gain([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]) == np.inf  # rate 1
    assert remaining_gain([0.0, 1.0, 3.0, 7.0, 15.0, 31.0]) == np.inf  # speeding up
    assert remaining_gain([0.0, 1.0, 2.0, 1.0, 1.5, 1.6]) == np.inf  # a real drop (re-seed)
    assert remaining_gain([5.0] * 6) == 0.0  # stationary
    assert remaining_gain([0.0, 1.0, 1.5]) == np.inf  # too few points


def test_slowly_rising_objective_is_not_called_converged():
    """The old rule (last change per sample below tol) stops this sequence at once; the
    remaining gain, 100× the last step, is not below tol."""
    objectives = -10.0 - 1.0 * 0.99 ** np.arange(1000)
    monitor = ConvergenceMonitor(tol=1e-3)
    stops = [monitor.record(value) for value in objectives]
    first = stops.index(True)
    assert objectives[first] - objectives[first - 1] < 1e-3 * 0.1  # long after small steps
    assert -10.0 - objectives[first] < 1e-3


# ------------------------------------------------------------------ the death-notice mixture
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_death_notices_at_the_defaults_reach_the_published_maximum(seed):
    result = emkit.fit_em(PoissonMixture(2), death_notices(), random_state=seed)
    assert result.converged
    np.testing.assert_allclose(p_and_rates(result.params), HASSELBLAD_MLE, rtol=1e-6)
    assert -result.objective == pytest.approx(HASSELBLAD_NEG_LOGLIK, abs=5e-7)


def test_slow_fit_stopped_by_max_iter_names_the_gap():
    """Plain EM after 300 iterations is about 0.11 below the maximum, still rising: not
    converged, and the warning names the estimated gap (the true one within 10 %)."""
    with pytest.warns(ConvergenceWarning, match=r"still rising: an estimated 0\.1\d+ more"):
        result = emkit.fit_em(PoissonMixture(2), death_notices(), random_state=0,
                              accelerate=None, max_iter=300)
    assert not result.converged and result.n_iter == 300
    true_gap = -HASSELBLAD_NEG_LOGLIK - result.objective
    assert result.remaining_gain == pytest.approx(true_gap, rel=0.1)


def test_the_old_rule_stopped_the_death_notices_far_from_the_maximum():
    """Why the rule changed: the change per sample falls below scikit-learn's tol=1e-3 within
    four iterations, where the rates are off by more than 0.5."""
    result = emkit.fit_em(PoissonMixture(2), death_notices(), random_state=0, accelerate=None,
                          tol=0.0, max_iter=20, warn_not_converged=False)
    steps = np.diff(result.history) / DAYS.sum()
    old_stop = int(np.flatnonzero(steps < 1e-3)[0]) + 1
    assert old_stop <= 4
    early = emkit.fit_em(PoissonMixture(2), death_notices(), random_state=0, accelerate=None,
                         tol=0.0, max_iter=old_stop, warn_not_converged=False)
    assert np.max(np.abs(p_and_rates(early.params) - HASSELBLAD_MLE)) > 0.5


# ------------------------------------------------------------------ Old Faithful, twins
@pytest.mark.parametrize("seed", range(4))
def test_faithful_two_components_at_the_defaults_reach_mclusts_maximum(seed):
    X = np.loadtxt(FAITHFUL_CSV, delimiter=",", skiprows=1)
    model = emkit.GaussianMixture(2, random_state=seed).fit(X)
    assert model.converged_
    # reg_covar=1e-6 (the default) moves the maximum by 1e-11 relative, mclust has none
    assert model.score(X) * len(X) == pytest.approx(MCLUST_VVV2_LOGLIK, rel=1e-6)


@pytest.mark.parametrize("prior", [None, "gamma"])
def test_twins_solvers_agree_at_their_defaults(prior):
    twins = datasets.load("twins").data
    em = DirichletMultinomial(prior=prior, random_state=0).fit(twins)
    fixed_point = DirichletMultinomial(prior=prior, solver="fixed-point", random_state=0).fit(
        twins)
    assert em.converged_ and fixed_point.converged_
    np.testing.assert_allclose(em.alpha_, fixed_point.alpha_, rtol=1e-6)
    assert em.lower_bound_ == pytest.approx(fixed_point.lower_bound_, rel=1e-12)
