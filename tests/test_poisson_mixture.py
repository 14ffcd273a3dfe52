"""PoissonMixture: the published death-notice maximum, missing counts, the estimator's
contract (restarts, weights, model files, online EM, sampling) and its errors."""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone

import emkit
from emkit.errors import ConvergenceWarning, DataError, NotFittedError, ParameterError
from finite_differences import hessian

# Hasselblad (1969, JASA 64: 1459–1471): deaths of women aged 80+ per day in The Times, 1910–12.
DEATHS = np.arange(10.0)
DAYS = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1], dtype=float)
# The maximum (p, λ1, λ2) and −log L as quoted in issue 17 (Hasselblad's example is also the first
# of Varadhan & Roland 2008, Scand. J. Stat. 35: 335–353, on SQUAREM).
PUBLISHED = np.array([0.6401146029910, 2.6634043566619, 1.2560951012662])
PUBLISHED_NEG_LOG_LIKELIHOOD = 1989.945860


def _p_rates(model):
    larger = int(np.argmax(model.rates_[:, 0]))
    return np.array([model.weights_[larger], model.rates_[larger, 0],
                     model.rates_[1 - larger, 0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_death_notices_weighted_reach_the_published_maximum(seed):
    model = emkit.PoissonMixture(2, random_state=seed).fit(DEATHS[:, None], sample_weight=DAYS)
    assert model.converged_
    np.testing.assert_allclose(_p_rates(model), PUBLISHED, rtol=1e-6)
    neg_log_likelihood = -float(DAYS @ model.score_samples(DEATHS[:, None]))
    assert neg_log_likelihood == pytest.approx(PUBLISHED_NEG_LOG_LIKELIHOOD, rel=1e-6, abs=0)
    # the objective the fit reports is the same log-likelihood
    assert model.lower_bound_ * DAYS.sum() == pytest.approx(-neg_log_likelihood, rel=1e-12)


def test_death_notices_as_rows_reach_the_published_maximum():
    X = np.repeat(DEATHS, DAYS.astype(int))[:, None]
    model = emkit.PoissonMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(_p_rates(model), PUBLISHED, rtol=1e-6)
    assert -model.score(X) * len(X) == pytest.approx(PUBLISHED_NEG_LOG_LIKELIHOOD, rel=1e-6)


def test_plain_em_is_not_called_converged_before_the_maximum():
    """Plain EM needs ~2,600 steps here; stopped at 2,000 it warns instead of claiming
    convergence, and with room it converges to the maximum."""
    short = emkit.PoissonMixture(2, accelerate=None, random_state=0)
    with pytest.warns(ConvergenceWarning, match="still rising"):
        short.fit(DEATHS[:, None], sample_weight=DAYS)
    assert not short.converged_
    long = emkit.PoissonMixture(2, accelerate=None, max_iter=6000, random_state=0)
    long.fit(DEATHS[:, None], sample_weight=DAYS)
    assert long.converged_ and long.n_iter_ > 2000
    np.testing.assert_allclose(_p_rates(long), PUBLISHED, rtol=1e-6)


def two_column_counts(seed=0, n=400, missing=0.0):
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=n) < 0.6).astype(int)
    rates = np.array([[1.5, 8.0], [9.0, 2.0]])
    X = rng.poisson(rates[labels]).astype(float)
    X[rng.uniform(size=X.shape) < missing] = np.nan
    return X, labels


def test_missing_counts_are_left_out_of_the_likelihood():
    X, _ = two_column_counts(missing=0.15)
    X[3] = np.nan  # a row with nothing observed
    model = emkit.PoissonMixture(2, random_state=0).fit(X)
    expected = []
    for row in X:
        seen = ~np.isnan(row)
        expected.append(np.log(sum(
            w * np.prod(stats.poisson(rate[seen]).pmf(row[seen]))
            for w, rate in zip(model.weights_, model.rates_, strict=True))))
    np.testing.assert_allclose(model.score_samples(X), expected, rtol=1e-10, atol=1e-12)
    assert model.score_samples(X)[3] == pytest.approx(0.0, abs=1e-15)  # log Σ π_k = log 1


def test_rates_are_recovered_and_components_found():
    X, labels = two_column_counts(n=3000)
    model = emkit.PoissonMixture(2, n_init=3, random_state=1).fit(X)
    order = np.argsort(model.rates_[:, 0])
    np.testing.assert_allclose(model.rates_[order], [[1.5, 8.0], [9.0, 2.0]], rtol=0.08)
    np.testing.assert_allclose(model.weights_[order], [0.4, 0.6], atol=0.03)
    agreement = np.mean(order[model.predict(X)] == labels)
    assert agreement > 0.97
    assert len(model.restart_objectives_) == 3
    assert model.lower_bound_ * len(X) == pytest.approx(max(model.restart_objectives_))


def test_bic_aic_and_parameter_count():
    X, _ = two_column_counts()
    model = emkit.PoissonMixture(2, random_state=0).fit(X)
    assert model.n_parameters() == 1 + 2 * 2
    log_likelihood = model.score_samples(X).sum()
    assert model.bic(X) == pytest.approx(-2 * log_likelihood + 5 * np.log(len(X)))
    assert model.aic(X) == pytest.approx(-2 * log_likelihood + 10)


def test_model_file_round_trip(tmp_path):
    X, _ = two_column_counts(missing=0.1)
    model = emkit.PoissonMixture(2, random_state=0).fit(X)
    path = tmp_path / "poisson.emkit"
    model.save(path)
    loaded = emkit.load(path)
    assert type(loaded) is emkit.PoissonMixture
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.rates_, model.rates_)
    assert loaded.n_iter_ == model.n_iter_


def test_sampling_draws_from_the_fitted_rates():
    X, _ = two_column_counts()
    model = emkit.PoissonMixture(2, random_state=0).fit(X)
    drawn, labels = model.sample(20000)
    assert drawn.shape == (20000, 2) and np.all(drawn == np.round(drawn))
    for k in range(2):
        np.testing.assert_allclose(drawn[labels == k].mean(axis=0), model.rates_[k], rtol=0.05)
    again, _ = model.sample(50)
    np.testing.assert_array_equal(again, model.sample(50)[0])  # an int seed repeats


def test_online_em_on_mini_batches_approaches_the_batch_fit():
    X, _ = two_column_counts(n=4000, seed=3)
    batch = emkit.PoissonMixture(2, random_state=0).fit(X)
    online = emkit.PoissonMixture(2, random_state=0)
    for start in range(0, len(X), 200):
        online.partial_fit(X[start:start + 200])
    np.testing.assert_allclose(np.sort(online.rates_, axis=0), np.sort(batch.rates_, axis=0),
                               rtol=0.1)


def test_warm_start_and_clone():
    X, _ = two_column_counts()
    model = emkit.PoissonMixture(2, warm_start=True, random_state=0).fit(X)
    rates = model.rates_.copy()
    model.fit(X)
    np.testing.assert_allclose(model.rates_, rates, rtol=1e-6)
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize("bad, message", [
    ([[1.0], [2.5]], "non-negative integer counts"),
    ([[1.0], [-1.0]], "non-negative integer counts"),
    ([[1.0], [np.inf]], "infinity"),
])
def test_bad_counts_are_refused(bad, message):
    with pytest.raises(DataError, match=message):
        emkit.PoissonMixture(1).fit(np.array(bad))


def test_errors_say_what_to_do():
    with pytest.raises(ParameterError, match="n_components"):
        emkit.PoissonMixture(0).fit([[1.0], [2.0]])
    with pytest.raises(ParameterError, match="rate_prior_shape"):
        emkit.PoissonMixture(1, rate_prior_shape=0.0).fit([[1.0], [2.0]])
    with pytest.raises(DataError, match="n_components=3 is larger"):
        emkit.PoissonMixture(3).fit([[1.0], [2.0]])
    with pytest.raises(NotFittedError):
        emkit.PoissonMixture(2).predict([[1.0]])
    model = emkit.PoissonMixture(1).fit([[1.0, 2.0], [2.0, 3.0]])
    with pytest.raises(DataError, match="features"):
        model.predict([[1.0]])


def test_a_column_of_zeros_keeps_a_finite_positive_rate():
    X = np.column_stack([np.arange(20.0) % 4, np.zeros(20)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = emkit.PoissonMixture(2, random_state=0).fit(X)
    assert np.all(model.rates_ > 0) and np.all(np.isfinite(model.score_samples(X)))


def test_streamed_chunks_and_dask_arrays_give_the_in_memory_fit():
    from emkit.data import ArrayChunks

    X, _ = two_column_counts(n=1500, seed=5)
    whole = emkit.PoissonMixture(2, random_state=0).fit(X)
    streamed = emkit.PoissonMixture(2, random_state=0).fit(ArrayChunks(X, chunk_rows=400))
    np.testing.assert_allclose(streamed.rates_, whole.rates_, rtol=1e-7)
    da = pytest.importorskip("dask.array")
    on_dask = emkit.PoissonMixture(2, random_state=0).fit(da.from_array(X, chunks=(500, -1)))
    np.testing.assert_allclose(on_dask.rates_, whole.rates_, rtol=1e-7)
    with pytest.raises(DataError, match="non-negative integer counts"):
        emkit.PoissonMixture(2).fit(ArrayChunks(X + 0.5, chunk_rows=400))


# ------------------------------------------------------------------ standard errors
def observed_information_by_finite_differences(model, X, w):
    """−∇² of Σ_i w_i log Σ_k π_k Π_d Poisson(x_id | λ_kd) in (π_1 … π_{K−1}, λ), by central
    differences of scipy's log-pmf, written apart from emkit's code; and the coordinates."""
    K, D = model.rates_.shape
    theta = np.concatenate([model.weights_[:-1], model.rates_.ravel()])

    def log_likelihood(theta):
        weights = np.append(theta[:K - 1], 1.0 - theta[:K - 1].sum())
        rates = theta[K - 1:].reshape(K, D)
        joint = np.stack([np.log(weights[k]) + stats.poisson.logpmf(X, rates[k]).sum(axis=1)
                          for k in range(K)], axis=1)
        return float(w @ np.logaddexp.reduce(joint, axis=1))

    return -hessian(log_likelihood, theta)


def test_standard_errors_agree_with_a_finite_difference_hessian():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.concatenate([rng.poisson(2.0, 150), rng.poisson(9.0, 100)]),
                         np.concatenate([rng.poisson(5.0, 150), rng.poisson(1.0, 100)])])
    w = rng.integers(1, 3, len(X)).astype(float)
    model = emkit.PoissonMixture(2, random_state=0).fit(X, sample_weight=w)
    errors = model.standard_errors(X, sample_weight=w)
    covariance = np.linalg.inv(observed_information_by_finite_differences(model, X, w))
    spread = np.sqrt(np.diag(covariance))
    np.testing.assert_allclose(errors["weights"][:-1], spread[:1], rtol=0.02)
    np.testing.assert_allclose(errors["weights"][-1], spread[0], rtol=0.02)  # π_K = 1 − π_1
    np.testing.assert_allclose(errors["rates"].ravel(), spread[1:], rtol=0.02)


def test_one_component_has_the_closed_form():
    """K = 1: λ̂ = mean, SE = sqrt(λ̂ / n) per column; missing counts shorten their column."""
    rng = np.random.default_rng(0)
    X = rng.poisson([3.0, 7.0], size=(400, 2)).astype(float)
    X[:50, 1] = np.nan
    model = emkit.PoissonMixture(1).fit(X)
    errors = model.standard_errors(X)
    counts = np.array([400, 350])
    np.testing.assert_allclose(errors["rates"][0], np.sqrt(model.rates_[0] / counts),
                               rtol=1e-8)


def test_families_without_the_pieces_say_so():
    """A family mixture whose family has no information(params) (a user's own) says so."""
    from emkit.families.poisson import PoissonFamily

    class Bare(PoissonFamily):
        information = None

    class BareMixture(emkit.PoissonMixture):
        def _family(self):
            return Bare()

    X = np.random.default_rng(0).poisson(3.0, size=(60, 2))
    model = BareMixture(2, random_state=0).fit(X)
    with pytest.raises(ParameterError, match="standard errors are not available for "
                                             "BareMixture"):
        model.standard_errors(X)
