"""Online (stepwise) EM through ``partial_fit`` for FixedMixture and the compound-Dirichlet
estimators: exact averaging where the E-step does not depend on the parameters, the batch
optimum reached by mini-batches where it does, continuing a fit, bad input, model files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from emkit.errors import DataError, ParameterError
from emkit.estimators.compound_dirichlet import (
    Dirichlet,
    DirichletMultinomial,
    DirichletMultinomialMixture,
)
from emkit.estimators.fixed_mixture import FixedMixture
from emkit.estimators.persist import load
from emkit.families.dirichlet import count_histogram, sparse_counts


# ---------------------------------------------------------------------------- data
def dm_counts(n_rows, alpha, seed, totals=(20, 60)):
    """Rows of a Dirichlet-multinomial with parameters ``alpha`` (rows of a mixture when
    ``alpha`` is 2-D, components chosen uniformly)."""
    rng = np.random.default_rng(seed)
    alpha = np.atleast_2d(alpha)
    component = rng.integers(len(alpha), size=n_rows)
    q = np.vstack([rng.dirichlet(alpha[k]) for k in component])
    n = rng.integers(*totals, size=n_rows)
    return np.vstack([rng.multinomial(t, p) for t, p in zip(n, q, strict=True)]).astype(float)


def proportions(n_rows, alpha, seed):
    rng = np.random.default_rng(seed)
    return np.clip(rng.dirichlet(alpha, n_rows), 1e-12, None)


MEANS = np.array([-2.0, 0.0, 2.5])


def fixed_log_likelihoods(n_rows, seed):
    """Log-likelihoods of rows from the mixture 0.5 N(−2, 1) + 0.3 N(0, 1) + 0.2 N(2.5, 1) under
    its three (overlapping) components: the weights are learned slowly, so the E-step matters."""
    rng = np.random.default_rng(seed)
    x = MEANS[rng.choice(3, n_rows, p=[0.5, 0.3, 0.2])] + rng.standard_normal(n_rows)
    return norm.logpdf(x[:, None], MEANS[None, :], 1.0)


def shuffled(X):
    return X[np.random.default_rng(99).permutation(len(X))]


def batches(X, n_batches):
    return np.array_split(X, n_batches)


def estimator_cases():
    """(unfitted estimator, training rows, held-out rows) for each estimator."""
    return [
        (FixedMixture(log=True), fixed_log_likelihoods(1200, 0), fixed_log_likelihoods(400, 1)),
        (DirichletMultinomial(), dm_counts(600, [2.0, 5.0, 1.0, 3.0], 2),
         dm_counts(200, [2.0, 5.0, 1.0, 3.0], 3)),
        (DirichletMultinomialMixture(2, random_state=0),
         dm_counts(600, [[8.0, 1.0, 1.0, 4.0], [1.0, 6.0, 3.0, 1.0]], 4),
         dm_counts(200, [[8.0, 1.0, 1.0, 4.0], [1.0, 6.0, 3.0, 1.0]], 5)),
        (Dirichlet(2, random_state=0),
         shuffled(np.vstack([proportions(300, [8.0, 2.0, 3.0], 6),
                             proportions(300, [1.0, 5.0, 2.0], 7)])),
         np.vstack([proportions(100, [8.0, 2.0, 3.0], 8), proportions(100, [1.0, 5.0, 2.0], 9)])),
    ]


CASES = estimator_cases()
IDS = [type(case[0]).__name__ for case in CASES]


def parameters(estimator):
    return np.asarray(estimator.weights_ if isinstance(estimator, FixedMixture)
                      else estimator.alpha_)


# ---------------------------------------------------------------------------- (1) the optimum
@pytest.mark.parametrize("estimator, rows", [
    (DirichletMultinomialMixture(1, prior=None), dm_counts(900, [2.0, 5.0, 1.0, 3.0], 10)),
    (DirichletMultinomialMixture(1, prior="gamma"), dm_counts(900, [2.0, 5.0, 1.0, 3.0], 11)),
    (Dirichlet(1), proportions(900, [3.0, 1.0, 6.0], 12)),
], ids=["dmm-ml", "dmm-map", "dirichlet"])
def test_steps_one_over_t_with_one_component_give_the_batch_fit(estimator, rows):
    # K = 1: every row belongs to the one component whatever the parameters, so the E-step does
    # not depend on them; ρ_t = 1/t on equal batches averages the batches' statistics exactly,
    # and the M-step (an exact maximisation) then gives the batch estimate, MAP prior included
    # (online EM weighs it against the rows seen).
    batch = estimator.set_params(tol=1e-12).fit(rows)
    online = estimator.__class__(**{**estimator.get_params(), "learning_decay": 1.0,
                                    "learning_offset": 1.0})
    for part in batches(rows, 6):
        online.partial_fit(part)
    assert online.n_iter_ == 6 and len(online.history_) == 6
    np.testing.assert_allclose(online.alpha_, batch.alpha_, rtol=1e-10)  # measured: 1e-14
    np.testing.assert_allclose(online._online.n_seen, len(rows))
    # The default steps (κ = 0.6) weigh the later batches more: a different, noisier estimate.
    default = estimator.__class__(**estimator.get_params())
    for part in batches(rows, 6):
        default.partial_fit(part)
    assert np.max(np.abs(default.alpha_ / batch.alpha_ - 1)) > 1e-4


def test_dirichlet_multinomial_averages_the_count_histograms_of_all_rows():
    # DirichletMultinomial's EM also treats each row's probabilities q_i as missing, so a step
    # is one EM iteration (not the maximum). Its statistics, the count histograms, still do not
    # depend on α: with ρ_t = 1/t they are exactly those of all rows, and the batch fit's α is
    # a fixed point of the M-step on them.
    rows = dm_counts(900, [2.0, 5.0, 1.0, 3.0], 13)
    online = DirichletMultinomial(learning_decay=1.0, learning_offset=1.0)
    for part in batches(rows, 6):
        online.partial_fit(part)
    state = online._online
    averaged = state.average.scaled(state.n_seen)
    full = count_histogram(sparse_counts(rows), np.ones((len(rows), 1)))

    def as_dict(histogram):
        pairs = zip(histogram.pair_columns, histogram.pair_values, histogram.pair_weight[0],
                    strict=True)
        totals = zip(histogram.total_values, histogram.total_weight[0], strict=True)
        return ({(int(j), float(c)): w for j, c, w in pairs}, dict(totals))

    (pairs, totals), (full_pairs, full_totals) = as_dict(averaged), as_dict(full)
    assert pairs.keys() == full_pairs.keys() and totals.keys() == full_totals.keys()
    np.testing.assert_allclose([pairs[key] for key in full_pairs], list(full_pairs.values()),
                               rtol=1e-12)
    np.testing.assert_allclose([totals[key] for key in full_totals],
                               list(full_totals.values()), rtol=1e-12)
    np.testing.assert_allclose(averaged.weight, [len(rows)], rtol=1e-12)

    batch = DirichletMultinomial(tol=1e-13, max_iter=20_000).fit(rows)
    model = online._model()
    step = model.m_step(averaged, online._params()._replace(alpha=batch.alpha_[None, :]))
    np.testing.assert_allclose(step.alpha[0], batch.alpha_, rtol=1e-6)
    # One epoch of single EM steps falls short of the optimum, but not by much.
    # (measured: 9e-5 nats per row).
    assert batch.score(rows) - 1e-3 < online.score(rows) <= batch.score(rows) + 1e-9


@pytest.mark.parametrize("index", [0, 2, 3], ids=[IDS[0], IDS[2], IDS[3]])
def test_mini_batches_reach_the_batch_optimum_on_held_out_rows(index):
    # Here the E-step depends on the parameters (posteriors over overlapping components), so
    # online EM with the default steps is compared with the batch optimum after 3 epochs.
    estimator, rows, held_out = CASES[index]
    batch = estimator.__class__(**estimator.get_params()).fit(rows)
    online = estimator.__class__(**estimator.get_params())
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(rows))
        for part in batches(rows[order], 12):
            online.partial_fit(part)
    assert online.n_iter_ == 36
    # Measured: at most 1.6e-3 nats per row on held-out rows, 7.5e-4 on the training rows.
    assert abs(online.score(held_out) - batch.score(held_out)) < 3e-3
    assert batch.score(rows) - 1e-3 < online.score(rows) <= batch.score(rows) + 1e-9
    assert np.all(np.isfinite(online.history_))


# ---------------------------------------------------------------------------- (2) continuing
@pytest.mark.parametrize("estimator, rows, held_out", CASES, ids=IDS)
def test_partial_fit_continues_a_fit_and_a_fit_ends_the_online_state(estimator, rows,
                                                                      held_out):
    model = estimator.__class__(**estimator.get_params()).fit(rows)
    before, score = parameters(model).copy(), model.score(held_out)
    model.partial_fit(rows[:200])  # starts from the fitted parameters: they barely move
    assert model.n_iter_ == 1 and len(model.history_) == 1 and not model.converged_
    np.testing.assert_allclose(parameters(model), before, rtol=0.3, atol=0.02)
    assert abs(model.score(held_out) - score) < 0.05
    model.partial_fit(rows[200:400])
    assert model.n_iter_ == 2 and model._online.n_steps == 2
    model.fit(rows)
    assert not hasattr(model, "_online") and model.converged_
    np.testing.assert_allclose(model.history_[-1] / len(rows), model.lower_bound_,
                               rtol=1e-9)


# ---------------------------------------------------------------------------- (3) bad input
@pytest.mark.parametrize("estimator, rows, held_out", CASES, ids=IDS)
def test_bad_learning_rates_are_parameter_errors(estimator, rows, held_out):
    params = estimator.get_params()
    for bad in (0.4, 1.5, "fast"):
        with pytest.raises(ParameterError, match="learning_decay"):
            estimator.__class__(**{**params, "learning_decay": bad}).partial_fit(rows[:50])
    with pytest.raises(ParameterError, match="learning_offset"):
        estimator.__class__(**{**params, "learning_offset": -1.0}).partial_fit(rows[:50])
    with pytest.raises(ParameterError, match="learning_decay"):
        estimator.__class__(**{**params, "learning_decay": 0.5}).fit(rows)


@pytest.mark.parametrize("estimator, rows, held_out", CASES, ids=IDS)
def test_a_batch_with_other_columns_is_a_data_error(estimator, rows, held_out):
    model = estimator.__class__(**estimator.get_params()).partial_fit(rows[:100])
    with pytest.raises(DataError, match="expecting|features"):
        model.partial_fit(np.hstack([rows[100:200], rows[100:200, :1]]))


def test_fixed_mixture_online_revives_a_model_the_first_batch_did_not_need():
    # Sparse likelihoods: the first batch's rows are explained by models 0 and 1 only. Batch
    # EM would give model 2 weight exactly 0 for ever; online EM keeps it tiny, so rows only
    # model 2 explains still have a likelihood and pull its weight up.
    first = np.array([[1.0, 0.5, 0.0], [0.2, 1.0, 0.0]] * 20)
    second = np.array([[0.0, 0.0, 1.0], [0.3, 0.0, 1.0]] * 20)
    model = FixedMixture().partial_fit(first)
    assert 0 < model.weights_[2] < 1e-11
    model.partial_fit(second)
    assert model.weights_[2] > 0.2 and np.all(np.isfinite(model.history_))
    with pytest.raises(DataError, match="likelihood zero under every model"):
        model.partial_fit(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))


def test_dirichlet_multinomial_first_batch_needs_every_category():
    rows = dm_counts(200, [2.0, 5.0, 1.0, 3.0], 14)
    rows[:100, 2] = 0.0
    with pytest.raises(DataError, match="first batch"):
        DirichletMultinomial().partial_fit(rows[:100])
    model = DirichletMultinomial().partial_fit(rows[100:])
    model.partial_fit(rows[:100])  # later batches are averaged with earlier ones: fine
    assert np.all(model.alpha_ > 0) and model.n_trials_ >= 20


# ---------------------------------------------------------------------------- (4) model files
@pytest.mark.parametrize("estimator, rows, held_out", CASES, ids=IDS)
def test_save_and_load_after_partial_fit(tmp_path, estimator, rows, held_out):
    model = estimator.__class__(**estimator.get_params())
    for part in batches(rows, 3):
        model.partial_fit(part, sample_weight=np.full(len(part), 2.0))
    path = tmp_path / "online.emkit"
    model.save(path)
    loaded = load(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(held_out), model.predict_proba(held_out))
    np.testing.assert_array_equal(loaded.score_samples(held_out), model.score_samples(held_out))
    np.testing.assert_array_equal(loaded.history_, model.history_)
    assert loaded.n_iter_ == 3 and loaded.learning_decay == model.learning_decay
    # A loaded model continues online from its saved parameters.
    loaded.partial_fit(held_out[:100])
    assert loaded.n_iter_ == 1 and np.all(np.isfinite(parameters(loaded)))
