"""Online (stepwise) EM: exact averaging where the E-step does not depend on the parameters, the
batch optimum's held-out log-likelihood reached on mixtures, and partial_fit's contract."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from poisson_mixture import PoissonMixture  # docs/examples

from emkit import GaussianMixture, fit_em
from emkit.core.online import OnlineEM, fit_online
from emkit.data.chunks import Batch
from emkit.errors import DataError, ParameterError
from emkit.estimators.persist import load
from emkit.models.mixture import GaussianMixtureModel


def three_clusters(n_rows, seed):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 1.0], [0.5, 3.5]])
    labels = rng.choice(3, n_rows, p=[0.5, 0.3, 0.2])
    return centres[labels] + rng.normal(size=(n_rows, 2)) * [[1.0, 0.6]]


def test_with_steps_one_over_t_one_gaussian_is_the_batch_mle():
    # K = 1: the E-step does not depend on the parameters, and ρ_t = 1/t averages the batches'
    # statistics exactly, so the last M-step is the maximum-likelihood estimate of all rows.
    X = three_clusters(6000, seed=1)
    model = GaussianMixtureModel(1, "full", reg_covar=0.0)
    state = OnlineEM(model, model.init_params(X[:600], np.random.default_rng(0)),
                     learning_decay=1.0, learning_offset=1.0)
    for start in range(0, len(X), 600):
        state.step(X[start:start + 600])
    np.testing.assert_allclose(state.params.components.means[0], X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(state.params.components.covariances[0],
                               np.cov(X.T, bias=True), rtol=1e-10)
    assert state.n_seen == len(X)


def held_out_mean_log_likelihood(model, params, X):
    return model.e_step(params, X)[1] / len(X)


def test_mini_batch_em_reaches_the_batch_optimum_on_held_out_data():
    X, held_out = three_clusters(40_000, seed=2), three_clusters(20_000, seed=3)
    model = GaussianMixtureModel(3, "full")
    batch = fit_em(model, X, tol=1e-8, max_iter=500, random_state=0)
    online = fit_online(model, X, batch_rows=500, n_epochs=2, random_state=0)
    best = held_out_mean_log_likelihood(model, batch.params, held_out)
    reached = held_out_mean_log_likelihood(model, online.params, held_out)
    assert abs(reached - best) < 2e-3, (reached, best)  # nats per sample
    assert online.n_steps == 160


def test_online_em_works_for_any_model_with_scalable_statistics():
    rng = np.random.default_rng(4)
    counts = rng.poisson(np.where(rng.uniform(size=30_000) < 0.4, 2.0, 9.0)).astype(float)
    model = PoissonMixture(2)
    batch = fit_em(model, counts, tol=1e-10, max_iter=2000, random_state=0)
    online = fit_online(model, counts, batch_rows=300, n_epochs=2, random_state=0)
    np.testing.assert_allclose(np.sort(online.params.rates), np.sort(batch.params.rates),
                               rtol=0.02)


def test_partial_fit_streams_batches_and_saves(tmp_path):
    X, held_out = three_clusters(20_000, seed=5), three_clusters(5000, seed=6)
    online = GaussianMixture(3, random_state=0)
    for start in range(0, len(X), 500):
        online.partial_fit(X[start:start + 500])
    assert online.n_iter_ == 40 and len(online.history_) == 40
    assert not online.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    assert abs(online.score(held_out) - batch.score(held_out)) < 5e-3
    online.save(tmp_path / "online.emkit")
    np.testing.assert_array_equal(load(tmp_path / "online.emkit").predict_proba(held_out),
                                  online.predict_proba(held_out))


def test_partial_fit_continues_a_fitted_model_and_a_fit_restarts():
    X = three_clusters(4000, seed=7)
    model = GaussianMixture(3, random_state=0, max_iter=300, tol=1e-8).fit(X)
    means = model.means_.copy()
    model.partial_fit(X[:1000])  # starts from the fitted parameters: they barely move
    np.testing.assert_allclose(model.means_, means, atol=0.15)
    assert model.n_iter_ == 1
    model.fit(X)
    assert not hasattr(model, "_online") and model.converged_


def test_partial_fit_bad_input():
    X = three_clusters(1000, seed=8)
    with pytest.raises(ParameterError, match="learning_decay .* \\(0.5, 1\\]"):
        GaussianMixture(2, learning_decay=0.4).partial_fit(X)
    with pytest.raises(ParameterError, match="learning_offset"):
        GaussianMixture(2, learning_offset=-1.0).partial_fit(X)
    model = GaussianMixture(2, random_state=0).partial_fit(X[:500])
    with pytest.raises(DataError, match="features"):
        model.partial_fit(np.hstack([X[500:], X[500:, :1]]))
    with pytest.raises(ParameterError, match="batch_rows"):
        fit_online(GaussianMixtureModel(2), X, batch_rows=0)
    empty = OnlineEM(GaussianMixtureModel(2), model._params())
    assert np.isnan(empty.step(Batch(X[:10], np.zeros(10))))  # weight 0: nothing to learn
    assert empty.n_steps == 0


def test_online_em_for_hidden_markov_models_over_batches_of_sequences(tmp_path):
    from emkit import GaussianHMM

    truth = GaussianHMM(2, covariance_type="diag", init_params="")
    truth.startprob_ = np.array([0.6, 0.4])
    truth.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    truth.means_ = np.array([[0.0, 0.0], [3.0, 1.0]])
    truth.covars_ = np.array([[1.0, 0.5], [0.7, 1.0]])
    truth.n_features_in_ = 2
    X, _ = truth.sample(60_000, random_state=1)
    held_out, _ = truth.sample(20_000, random_state=2)
    lengths = np.full(600, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianHMM(2, covariance_type="diag", random_state=0, tol=1e-8,
                            max_iter=300).fit(X, lengths)
    online = GaussianHMM(2, covariance_type="diag", random_state=0)
    for _ in range(2):  # epochs
        for start in range(0, len(X), 2000):  # 20 sequences per batch
            online.partial_fit(X[start:start + 2000], np.full(20, 100))
    assert online.n_iter_ == 60
    best, reached = batch.score(held_out), online.score(held_out)
    assert abs(reached - best) < 2e-3 * abs(best), (reached, best)
    online.save(tmp_path / "hmm.emkit")
    np.testing.assert_array_equal(load(tmp_path / "hmm.emkit").predict(held_out),
                                  online.predict(held_out))
    online.fit(X, lengths)
    assert not hasattr(online, "_online")
