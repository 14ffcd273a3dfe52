"""BernoulliMixture and CategoricalMixture (latent class analysis): the EM maximum against an
independent numerical maximisation, closed forms, missing answers, the two estimators against
each other, model files and errors."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logsumexp, softmax

import emkit
from emkit.data import ArrayChunks
from emkit.errors import DataError, NumericalError, ParameterError
from finite_differences import hessian

THETA = np.array([[0.9, 0.8, 0.75, 0.2, 0.15], [0.2, 0.3, 0.15, 0.8, 0.7]])


def binary_items(seed=0, n=500, missing=0.1):
    rng = np.random.default_rng(seed)
    classes = (rng.uniform(size=n) < 0.4).astype(int)
    X = (rng.uniform(size=(n, THETA.shape[1])) < THETA[classes]).astype(float)
    X[rng.uniform(size=X.shape) < missing] = np.nan
    return X, classes


def bernoulli_log_likelihood(weights, theta, X):
    """Σ_i log Σ_k π_k Π_d (observed) θ^x (1 − θ)^(1 − x), written directly."""
    seen = ~np.isnan(X)
    x = np.nan_to_num(X)
    log_terms = np.log(weights)[None, :] + np.stack([
        np.sum(seen * (x * np.log(t) + (1 - x) * np.log(1 - t)), axis=1) for t in theta], axis=1)
    return float(logsumexp(log_terms, axis=1).sum())


def test_bernoulli_em_maximum_is_the_numerical_maximum():
    X, _ = binary_items()
    model = emkit.BernoulliMixture(2, random_state=0).fit(X)
    K, D = model.probabilities_.shape
    em = bernoulli_log_likelihood(model.weights_, model.probabilities_, X)
    assert em == pytest.approx(model.score_samples(X).sum(), rel=1e-12)

    def negative(z):
        weights = softmax(np.concatenate([[0.0], z[:K - 1]]))
        return -bernoulli_log_likelihood(weights, expit(z[K - 1:]).reshape(K, D), X)

    rng = np.random.default_rng(1)
    start = np.concatenate([np.log(model.weights_[1:] / model.weights_[0]),
                            np.log(model.probabilities_ / (1 - model.probabilities_)).ravel()])
    found = minimize(negative, start + rng.normal(0, 0.3, start.shape), method="BFGS",
                     options={"gtol": 1e-8})
    assert -found.fun <= em + 1e-7
    assert -found.fun == pytest.approx(em, abs=1e-6)
    np.testing.assert_allclose(expit(found.x[K - 1:]).reshape(K, D), model.probabilities_,
                               atol=2e-4)


def test_one_class_is_the_item_means_over_the_answers_given():
    X, _ = binary_items(missing=0.3)
    model = emkit.BernoulliMixture(1, random_state=0).fit(X)
    np.testing.assert_allclose(model.probabilities_[0], np.nanmean(X, axis=0), rtol=1e-12)
    levels = np.column_stack([X[:, 0] + X[:, 1], X[:, 2]])  # codes 0–2 and 0–1
    categorical = emkit.CategoricalMixture(1, random_state=0).fit(levels)
    for d, n_levels in enumerate((3, 2)):
        answered = levels[~np.isnan(levels[:, d]), d]
        expected = np.bincount(answered.astype(int), minlength=n_levels) / len(answered)
        np.testing.assert_allclose(categorical.probabilities_[0, d, :n_levels], expected,
                                   rtol=1e-12)


def test_missing_answers_are_left_out_of_the_likelihood():
    X, _ = binary_items(missing=0.25)
    X[7] = np.nan
    model = emkit.BernoulliMixture(2, random_state=0).fit(X)
    for i in (0, 1, 2, 7, 50):
        seen = ~np.isnan(X[i])
        expected = np.log(sum(
            w * np.prod(np.where(X[i][seen] == 1, t[seen], 1 - t[seen]))
            for w, t in zip(model.weights_, model.probabilities_, strict=True)))
        assert model.score_samples(X[i:i + 1])[0] == pytest.approx(expected, rel=1e-12,
                                                                   abs=1e-14)


def test_classes_are_recovered():
    X, classes = binary_items(n=3000)
    model = emkit.BernoulliMixture(2, random_state=0).fit(X)
    order = np.argsort(model.probabilities_[:, 0])[::-1]
    np.testing.assert_allclose(model.probabilities_[order], THETA, atol=0.05)
    assert np.mean(order[model.predict(X)] == classes) > 0.9


def test_a_categorical_mixture_of_two_level_items_is_the_bernoulli_mixture():
    X, _ = binary_items()
    bernoulli = emkit.BernoulliMixture(2, random_state=0).fit(X)
    categorical = emkit.CategoricalMixture(2, random_state=0).fit(X)
    assert categorical.n_levels_.tolist() == [2] * X.shape[1]
    assert categorical.lower_bound_ == pytest.approx(bernoulli.lower_bound_, rel=1e-9)
    order = np.argsort(categorical.probabilities_[:, 0, 1])
    np.testing.assert_allclose(categorical.probabilities_[order, :, 1],
                               bernoulli.probabilities_[np.argsort(bernoulli.probabilities_[:, 0])],
                               atol=1e-5)
    # poLCA's count of free parameters: (K − 1) + K Σ_d (L_d − 1)
    assert categorical.n_parameters() == bernoulli.n_parameters() == 1 + 2 * 5


def polytomous(seed=0, n=800):
    rng = np.random.default_rng(seed)
    probabilities = [np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]),
                     np.array([[0.5, 0.3, 0.1, 0.1], [0.05, 0.15, 0.3, 0.5]]),
                     np.array([[0.8, 0.2], [0.3, 0.7]]),
                     np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])]
    classes = (rng.uniform(size=n) < 0.5).astype(int)
    X = np.column_stack([[rng.choice(len(p[k]), p=p[k]) for k in classes]
                         for p in probabilities]).astype(float)
    X[rng.uniform(size=X.shape) < 0.05] = np.nan
    return X, probabilities


def test_categorical_em_maximum_is_the_numerical_maximum():
    X, _ = polytomous()
    model = emkit.CategoricalMixture(2, random_state=0).fit(X)
    levels = model.n_levels_
    assert levels.tolist() == [3, 4, 2, 3]
    K = 2

    def unpack(z):
        weights = softmax(np.concatenate([[0.0], z[:K - 1]]))
        tables, at = [], K - 1
        for n_levels in levels:
            logits = np.concatenate([np.zeros((K, 1)),
                                     z[at:at + K * (n_levels - 1)].reshape(K, -1)], axis=1)
            tables.append(softmax(logits, axis=1))
            at += K * (n_levels - 1)
        return weights, tables

    def log_likelihood(weights, tables):
        terms = np.tile(np.log(weights), (len(X), 1))
        for d, table in enumerate(tables):
            seen = ~np.isnan(X[:, d])
            terms[seen] += np.log(table[:, X[seen, d].astype(int)]).T
        return float(logsumexp(terms, axis=1).sum())

    em = model.score_samples(X).sum()
    tables = [model.probabilities_[:, d, :n] for d, n in enumerate(levels)]
    assert log_likelihood(model.weights_, tables) == pytest.approx(em, rel=1e-12)
    start = np.concatenate([np.log(model.weights_[1:] / model.weights_[0])] + [
        np.log(t[:, 1:] / t[:, :1]).ravel() for t in tables])
    found = minimize(lambda z: -log_likelihood(*unpack(z)),
                     start + np.random.default_rng(2).normal(0, 0.2, start.shape),
                     method="BFGS", options={"gtol": 1e-8})
    assert -found.fun <= em + 1e-7 and -found.fun == pytest.approx(em, abs=1e-6)
    for table, fitted in zip(unpack(found.x)[1], tables, strict=True):
        np.testing.assert_allclose(table, fitted, atol=2e-4)


def test_model_files_round_trip(tmp_path):
    X, _ = polytomous()
    for model, data in ((emkit.CategoricalMixture(2, random_state=0), X),
                        (emkit.BernoulliMixture(2, random_state=0), binary_items()[0])):
        model.fit(data)
        model.save(tmp_path / "model.emkit")
        loaded = emkit.load(tmp_path / "model.emkit")
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        np.testing.assert_array_equal(loaded.predict_proba(data), model.predict_proba(data))
    np.testing.assert_array_equal(loaded.probabilities_, model.probabilities_)


def test_sampling_and_streamed_fit():
    X, _ = polytomous(n=400)
    model = emkit.CategoricalMixture(2, random_state=0).fit(X)
    drawn, labels = model.sample(5000)
    assert drawn.shape == (5000, 4) and np.all(drawn < model.n_levels_)
    for d, n_levels in enumerate(model.n_levels_):
        for k in range(2):
            frequencies = np.bincount(drawn[labels == k, d].astype(int), minlength=n_levels)
            np.testing.assert_allclose(frequencies / frequencies.sum(),
                                       model.probabilities_[k, d, :n_levels], atol=0.04)
    with pytest.raises(ParameterError, match="n_levels"):
        emkit.CategoricalMixture(2).fit(ArrayChunks(X, chunk_rows=100))
    streamed = emkit.CategoricalMixture(2, n_levels=[3, 4, 2, 3], random_state=0).fit(
        ArrayChunks(X, chunk_rows=100))
    assert streamed.score(X) == pytest.approx(model.score(X), rel=1e-6)


def test_errors_say_what_to_do():
    with pytest.raises(DataError, match="binary items coded 0 and 1"):
        emkit.BernoulliMixture(2).fit([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    with pytest.raises(DataError, match="integer codes"):
        emkit.CategoricalMixture(2).fit([[0.0, 1.5], [2.0, 0.0], [1.0, 1.0]])
    with pytest.raises(DataError, match="not an integer code in 0..1"):
        emkit.CategoricalMixture(2, n_levels=2).fit([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ParameterError, match="n_levels has 3 entries for 2 items"):
        emkit.CategoricalMixture(2, n_levels=[2, 2, 2]).fit([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ParameterError, match="n_levels must be"):
        emkit.CategoricalMixture(2, n_levels=[2, 0]).fit([[0.0, 1.0], [1.0, 0.0]])
    model = emkit.CategoricalMixture(1).fit([[0.0, 1.0], [1.0, 2.0]])
    with pytest.raises(DataError, match="not an integer code in 0..1"):
        model.predict([[2.0, 0.0]])


# ------------------------------------------------------------------ standard errors
def test_bernoulli_standard_errors_agree_with_a_finite_difference_hessian():
    """With missing answers: −∇² of Σ_i log Σ_k π_k Π_d (observed) Bernoulli(x_id | θ_kd) in
    (π_1, θ), by central differences of scipy's log-pmf, inverted, against emkit's errors."""
    from scipy import stats

    rng = np.random.default_rng(1)
    truth = np.array([[0.2, 0.3, 0.8, 0.7], [0.8, 0.6, 0.25, 0.3]])
    labels = rng.integers(0, 2, 500)
    X = (rng.uniform(size=(500, 4)) < truth[labels]).astype(float)
    X[rng.uniform(size=X.shape) < 0.05] = np.nan
    model = emkit.BernoulliMixture(2, random_state=0).fit(X)
    errors = model.standard_errors(X)
    observed = ~np.isnan(X)
    theta = np.concatenate([model.weights_[:1], model.probabilities_.ravel()])

    def log_likelihood(theta):
        p = theta[1:].reshape(2, 4)
        joint = np.stack([np.log(w) + np.where(observed, stats.bernoulli.logpmf(
            np.nan_to_num(X), p[k]), 0.0).sum(axis=1)
            for k, w in enumerate((theta[0], 1.0 - theta[0]))], axis=1)
        return float(np.logaddexp.reduce(joint, axis=1).sum())

    spread = np.sqrt(np.diag(np.linalg.inv(-hessian(log_likelihood, theta))))
    np.testing.assert_allclose(errors["weights"], [spread[0]] * 2, rtol=0.02)
    np.testing.assert_allclose(errors["probabilities"].ravel(), spread[1:], rtol=0.02)


def test_bernoulli_standard_errors_refuse_a_boundary_probability():
    X = np.array([[1, 0], [1, 1], [1, 0], [1, 1], [1, 0], [1, 1]], dtype=float)
    model = emkit.BernoulliMixture(1).fit(X)  # item 0 is always 1: θ = 1, a boundary maximum
    with pytest.raises(NumericalError, match=r"probabilities\[0, 0\] = 1 is at the edge"):
        model.standard_errors(X)


def test_categorical_standard_errors_agree_with_a_finite_difference_hessian():
    """Items of 3, 2 and 2 levels, missing answers; free coordinates π_1 and, per class and
    item, the probabilities of all levels but the last; the last level's error by the delta
    method."""
    rng = np.random.default_rng(2)
    truth = [np.array([[0.5, 0.3, 0.2], [0.15, 0.25, 0.6]]), np.array([[0.7, 0.3], [0.25, 0.75]]),
             np.array([[0.2, 0.8], [0.65, 0.35]])]
    labels = rng.integers(0, 2, 800)
    X = np.column_stack([[rng.choice(len(t[c]), p=t[c]) for c in labels] for t in truth]
                        ).astype(float)
    X[rng.uniform(size=X.shape) < 0.05] = np.nan
    model = emkit.CategoricalMixture(2, n_init=10, random_state=0).fit(X)
    errors = model.standard_errors(X)
    P = model.probabilities_  # (2, 3, 3)
    theta = np.concatenate([model.weights_[:1]] + [
        np.concatenate([P[k, 0, :2], P[k, 1, :1], P[k, 2, :1]]) for k in (0, 1)])

    def log_likelihood(theta):
        weights = (theta[0], 1.0 - theta[0])
        joint = []
        for k, start in ((0, 1), (1, 5)):
            free = theta[start:start + 4]
            items = [np.append(free[:2], 1.0 - free[:2].sum()),
                     np.array([free[2], 1.0 - free[2]]), np.array([free[3], 1.0 - free[3]])]
            log_p = np.zeros(len(X))
            for column, probabilities in enumerate(items):
                seen = ~np.isnan(X[:, column])
                log_p[seen] += np.log(probabilities[X[seen, column].astype(int)])
            joint.append(np.log(weights[k]) + log_p)
        return float(np.logaddexp(*joint).sum())

    covariance = np.linalg.inv(-hessian(log_likelihood, theta))
    spread = np.sqrt(np.diag(covariance))
    np.testing.assert_allclose(errors["weights"], [spread[0]] * 2, rtol=0.02)
    np.testing.assert_allclose(errors["probabilities"][0, 0, :2], spread[1:3], rtol=0.02)
    np.testing.assert_allclose(errors["probabilities"][1, 1, 0], spread[7], rtol=0.02)
    np.testing.assert_allclose(errors["probabilities"][1, 2, 0], spread[8], rtol=0.02)
    # the last level of item 0 in class 0: Var(1 − p0 − p1) from the covariance
    last = np.sqrt(covariance[1, 1] + covariance[2, 2] + 2 * covariance[1, 2])
    np.testing.assert_allclose(errors["probabilities"][0, 0, 2], last, rtol=0.02)
    assert errors["probabilities"][0, 1, 2] == 0.0  # item 1 has two levels: a structural zero
