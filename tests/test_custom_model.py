"""The documentation's Poisson mixture (docs/examples/poisson_mixture.py), a model written only
against the engine protocol, gets restarts, the monitor and SQUAREM from ``fit_em`` and finds the
maximum-likelihood estimate that independent computations (scipy) find."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from poisson_mixture import PoissonMixture, PoissonParams, main
from scipy import optimize, stats
from scipy.special import expit, logsumexp

import emkit
from emkit.data.chunks import Batch
from emkit.errors import DataError

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "poisson_mixture.py"
GUIDE = EXAMPLE.parents[1] / "custom_model.md"


@pytest.fixture(scope="module")
def discoveries() -> np.ndarray:
    table = np.loadtxt(files("emkit") / "datasets" / "discoveries.csv", delimiter=",",
                       skiprows=1)
    return table[:, 1]


def scipy_log_likelihood(params: PoissonParams, counts: np.ndarray) -> float:
    log_joint = np.log(params.weights) + stats.poisson.logpmf(counts[:, None], params.rates)
    return float(logsumexp(log_joint, axis=1).sum())


class CountingPoissonMixture(PoissonMixture):
    e_steps = 0

    def e_step(self, params, chunk, inverse_temperature=1.0):
        self.e_steps += 1
        return super().e_step(params, chunk, inverse_temperature)


def test_example_is_short():
    assert len(EXAMPLE.read_text().splitlines()) < 100


def test_objective_is_the_scipy_log_likelihood(discoveries):
    init = PoissonParams(np.array([0.3, 0.7]), np.array([1.0, 5.0]))
    result = emkit.fit_em(PoissonMixture(2), discoveries, init=init, tol=1e-8, max_iter=500)
    assert result.history[0] == pytest.approx(scipy_log_likelihood(init, discoveries), rel=1e-12)
    assert result.objective == pytest.approx(scipy_log_likelihood(result.params, discoveries),
                                             rel=1e-12)
    assert result.log_likelihood == result.objective  # no log prior: maximum likelihood


def test_restarts_keep_the_best_objective(discoveries):
    result = emkit.fit_em(PoissonMixture(3), discoveries, n_init=6, random_state=1,
                          accelerate="squarem", tol=1e-10, max_iter=2000)
    objectives = np.array(result.restart_objectives)
    assert len(objectives) == 6
    assert objectives.max() - objectives.min() > 0.1  # the starts did end at different maxima
    assert result.objective == objectives.max()
    assert result.best_restart == int(np.argmax(objectives))
    assert result.objective == pytest.approx(scipy_log_likelihood(result.params, discoveries),
                                             rel=1e-12)


def test_squarem_reaches_the_same_optimum_in_fewer_iterations(discoveries):
    init = PoissonMixture(2).init_params(discoveries, np.random.default_rng(0))
    results, e_steps = {}, {}
    for accelerate in (None, "squarem"):
        model = CountingPoissonMixture(2)
        results[accelerate] = emkit.fit_em(model, discoveries, init=init, tol=1e-13,
                                           max_iter=5000, accelerate=accelerate)
        e_steps[accelerate] = model.e_steps
        assert results[accelerate].converged
    assert results["squarem"].objective == pytest.approx(results[None].objective, rel=1e-8)
    assert e_steps["squarem"] < e_steps[None] / 2
    assert results["squarem"].n_iter < results[None].n_iter


def test_estimates_recover_a_known_mixture():
    rng = np.random.default_rng(42)
    weights, rates = np.array([0.35, 0.65]), np.array([2.0, 10.0])
    counts = rng.poisson(rates[(rng.uniform(size=5000) > weights[0]).astype(int)])
    result = emkit.fit_em(PoissonMixture(2), counts, n_init=3, random_state=0,
                          accelerate="squarem", tol=1e-10, max_iter=1000)
    order = np.argsort(result.params.rates)
    # Standard errors at this size are about 0.008 (weights), 0.04 and 0.06 (rates).
    np.testing.assert_allclose(result.params.weights[order], weights, atol=0.03)
    np.testing.assert_allclose(result.params.rates[order], rates, rtol=0.03)


def test_em_optimum_matches_scipy_optimize(discoveries):
    result = emkit.fit_em(PoissonMixture(2), discoveries, random_state=0, accelerate="squarem",
                          tol=1e-13, max_iter=5000)
    weights, rates = result.params

    def negative_log_likelihood(theta):
        """In (logit of the first weight, log-rates), with its gradient."""
        first_weight, component_rates = expit(theta[0]), np.exp(theta[1:])
        log_joint = (np.log([first_weight, 1 - first_weight])
                     + stats.poisson.logpmf(discoveries[:, None], component_rates))
        row_log_likelihood = logsumexp(log_joint, axis=1)
        posterior = np.exp(log_joint - row_log_likelihood[:, None])
        gradient = np.concatenate([
            [np.sum(posterior[:, 0] - first_weight)],
            np.sum(posterior * (discoveries[:, None] - component_rates), axis=0)])
        return -row_log_likelihood.sum(), -gradient

    nearby = np.concatenate([[np.log(weights[0] / weights[1])], np.log(rates)]) + 0.2
    reference = optimize.minimize(negative_log_likelihood, nearby, jac=True, method="BFGS",
                                  options={"gtol": 1e-9})
    assert np.linalg.norm(negative_log_likelihood(reference.x)[1]) < 1e-6  # a stationary point
    assert result.objective == pytest.approx(-reference.fun, rel=1e-10)
    np.testing.assert_allclose(weights[0], expit(reference.x[0]), rtol=1e-6)
    np.testing.assert_allclose(rates, np.exp(reference.x[1:]), rtol=1e-6)


def test_weighted_batches_and_chunks(discoveries):
    """A Batch with integer sample_weight is the table of distinct counts with their
    frequencies, and a list of chunks is the whole: all three give one fit."""
    values, frequencies = np.unique(discoveries, return_counts=True)
    init = PoissonParams(np.array([0.5, 0.5]), np.array([2.0, 6.0]))
    options = dict(init=init, tol=0.0, max_iter=30)
    whole = emkit.fit_em(PoissonMixture(2), discoveries, **options)
    table = emkit.fit_em(PoissonMixture(2), Batch(values, frequencies.astype(float)), **options)
    chunks = emkit.fit_em(PoissonMixture(2), [discoveries[:30], discoveries[30:]], **options)
    for other in (table, chunks):
        np.testing.assert_allclose(other.history, whole.history, rtol=1e-12)
        np.testing.assert_allclose(other.params.rates, whole.params.rates, rtol=1e-10)


def test_annealing_reaches_the_optimum(discoveries):
    annealed = emkit.fit_em(PoissonMixture(2), discoveries, random_state=0, annealing=2.0,
                            accelerate="squarem", tol=1e-13, max_iter=2000)
    plain = emkit.fit_em(PoissonMixture(2), discoveries, random_state=0, accelerate="squarem",
                         tol=1e-13, max_iter=2000)
    assert annealed.converged
    assert annealed.objective == pytest.approx(plain.objective, rel=1e-10)


@pytest.mark.parametrize("bad", [np.array([1.0, 2.5, 3.0]), np.array([1.0, -1.0]),
                                 np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, np.nan])])
def test_rejects_data_that_are_not_counts(bad):
    with pytest.raises(DataError, match="non-negative integer counts"):
        emkit.fit_em(PoissonMixture(2), bad, random_state=0)


def test_guide_shows_the_example_and_its_output(capsys):
    """Every Python block of docs/custom_model.md is an excerpt of the example file, and the
    output it shows is what the example prints."""
    guide = GUIDE.read_text()
    source = EXAMPLE.read_text()
    python_blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    assert len(python_blocks) >= 5
    for block in python_blocks:
        assert block in source, block
    main()
    printed = capsys.readouterr().out
    output_blocks = re.findall(r"```text\n(.*?)```", guide, flags=re.DOTALL)
    assert printed in output_blocks
