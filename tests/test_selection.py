"""Choosing K: the right K on clear data, and criteria checked against formulas by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from emkit import datasets, select_model
from emkit.errors import DataError, ParameterError
from emkit.estimators import selection
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.selection import SelectionResult


@pytest.fixture(scope="module")
def three_blobs():
    """Three well-separated 2-D Gaussians with different shapes."""
    rng = np.random.default_rng(0)
    parts = [rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], size=120),
             rng.multivariate_normal([8, 0], [[0.6, 0.0], [0.0, 1.2]], size=100),
             rng.multivariate_normal([4, 7], [[0.8, -0.2], [-0.2, 0.8]], size=80)]
    return rng.permutation(np.concatenate(parts))


@pytest.fixture(scope="module")
def result(three_blobs):
    return select_model(three_blobs, range(1, 6), random_state=0)


def test_bic_picks_the_three_generating_components(result):
    assert result.criterion == "bic"
    assert result.best["n_components"] == 3
    assert [row["n_components"] for row in result.table] == [1, 2, 3, 4, 5]
    assert all(row["covariance_type"] == "full" for row in result.table)


def test_best_row_is_the_best_estimator(result, three_blobs):
    best = result.best_estimator
    row = result.table[result.best_index]
    assert isinstance(best, GaussianMixture)
    assert best is result.estimators[result.best_index]
    assert row["n_components"] == best.n_components == 3
    assert row["bic"] == min(r["bic"] for r in result.table)
    # the estimator's own criteria, computed by a different code path
    assert row["bic"] == pytest.approx(best.bic(three_blobs), rel=1e-12)
    assert row["aic"] == pytest.approx(best.aic(three_blobs), rel=1e-12)
    assert row["icl"] == pytest.approx(best.icl(three_blobs), rel=1e-12)
    assert row["converged"] is bool(best.converged_)


def hand_counted_parameters(covariance_type, K, D):
    mixing = K - 1
    means = K * D
    covariance = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D,
                  "spherical": K}[covariance_type]
    return mixing + means + covariance


def covariance_matrix(estimator, k):
    cov = estimator.covariances_
    D = estimator.means_.shape[1]
    return {"full": lambda: cov[k], "tied": lambda: cov, "diag": lambda: np.diag(cov[k]),
            "spherical": lambda: cov[k] * np.eye(D)}[estimator.covariance_type]()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_criteria_equal_formulas_by_hand(three_blobs, covariance_type):
    X = three_blobs[:150]
    n, D = X.shape
    result = select_model(X, [2, 3], covariance_types=covariance_type, random_state=1)
    for row, estimator in zip(result.table, result.estimators, strict=True):
        K = row["n_components"]
        # densities from scipy with the fitted parameters: independent of emkit's kernels
        joint = np.column_stack([
            estimator.weights_[k] * stats.multivariate_normal(
                estimator.means_[k], covariance_matrix(estimator, k)).pdf(X)
            for k in range(K)])
        log_likelihood = float(np.sum(np.log(joint.sum(axis=1))))
        posterior = joint / joint.sum(axis=1, keepdims=True)
        p = hand_counted_parameters(covariance_type, K, D)
        assert row["n_parameters"] == p
        assert row["log_likelihood"] == pytest.approx(log_likelihood, rel=1e-9)
        bic = -2 * log_likelihood + p * math.log(n)
        assert row["bic"] == pytest.approx(bic, rel=1e-9)
        assert row["aic"] == pytest.approx(-2 * log_likelihood + 2 * p, rel=1e-9)
        icl = bic - 2 * np.sum(np.log(posterior.max(axis=1)))
        assert row["icl"] == pytest.approx(icl, rel=1e-9)


def test_several_covariance_types_and_each_criterion(three_blobs):
    X = three_blobs[::2]
    result = select_model(X, [1, 2, 3], covariance_types=["diag", "spherical"],
                          criterion="aic", random_state=0)
    assert [(r["covariance_type"], r["n_components"]) for r in result.table] == [
        ("diag", 1), ("diag", 2), ("diag", 3), ("spherical", 1), ("spherical", 2),
        ("spherical", 3)]
    assert result.best_index == int(np.argmin([r["aic"] for r in result.table]))
    for criterion in ("bic", "icl"):
        other = SelectionResult(result.table, result.estimators,
                                int(np.argmin([r[criterion] for r in result.table])), criterion)
        assert other.best[criterion] == min(r[criterion] for r in result.table)
    # with K = 1 the classification is certain, so ICL equals BIC
    for row in result.table:
        if row["n_components"] == 1:
            assert row["icl"] == pytest.approx(row["bic"], rel=1e-12)


def test_integer_weights_count_as_repeated_rows(three_blobs):
    X = three_blobs[:90]
    weights = np.random.default_rng(3).integers(0, 3, size=len(X))
    repeated = np.repeat(X, weights, axis=0)
    # a fixed start, so both fits follow the same path
    start = {"weights_init": [0.5, 0.5], "means_init": [[0.0, 0.0], [8.0, 0.0]],
             "precisions_init": np.array([np.eye(2), np.eye(2)])}
    weighted = select_model(X, 2, sample_weight=weights, tol=1e-10, max_iter=500, **start)
    plain = select_model(repeated, 2, tol=1e-10, max_iter=500, **start)
    for key in ("log_likelihood", "bic", "aic", "icl"):
        assert weighted.table[0][key] == pytest.approx(plain.table[0][key], rel=1e-8), key
    assert plain.table[0]["bic"] == pytest.approx(
        -2 * plain.table[0]["log_likelihood"] + 11 * math.log(weights.sum()), rel=1e-12)


def test_to_text_is_an_aligned_table(result):
    lines = result.to_text().splitlines()
    header, rows = lines[0], lines[1:6]
    assert header.split() == ["n_components", "covariance_type", "log_likelihood",
                              "n_parameters", "bic", "aic", "icl", "converged", "collapsed"]
    assert [line.startswith("*") for line in rows] == [i == result.best_index for i in range(5)]
    bic_end = header.index(" bic") + len(" bic")
    for line, row in zip(rows, result.table, strict=True):
        assert line[:bic_end].endswith(f"{row['bic']:.2f}")  # right-aligned under "bic"
    assert "lowest BIC: n_components=3" in result.to_text()
    assert str(result) == result.to_text()


def test_too_many_components_are_skipped_with_a_note():
    X = np.random.default_rng(1).normal(size=(4, 2))
    result = select_model(X, range(1, 9), random_state=0)
    assert [row["n_components"] for row in result.table] == [1, 2, 3, 4]
    assert result.notes[0] == "skipped n_components=5-8: more components than the 4 rows."
    # Four points in two dimensions: every K >= 2 puts a component on at most two points.
    assert [row["collapsed"] for row in result.table] == [False, True, True, True]
    assert result.best_index == 0
    assert "note: skipped n_components=5-8" in result.to_text()
    with pytest.raises(DataError, match=r"every n_components tried \(5-6, 9\).*4"):
        select_model(X, [5, 6, 9])


@pytest.mark.parametrize("arguments, message", [
    ({"n_components": []}, "n_components is empty"),
    ({"n_components": range(1, 1)}, "n_components is empty"),
    ({"n_components": [0, 1]}, "integer >= 1"),
    ({"n_components": [2.5]}, "integer >= 1"),
    ({"n_components": "3"}, "integer >= 1"),
    ({"n_components": None}, "int or an iterable"),
    ({"covariance_types": []}, "covariance_types is empty"),
    ({"covariance_types": ["full", "banded"]}, "'banded'"),
    ({"criterion": "likelihood"}, "criterion must be one of"),
    ({"covariance_type": "diag"}, "select_model's own arguments"),
    ({"n_componets": 3}, "unknown GaussianMixture parameter.*n_componets"),
])
def test_bad_arguments_raise_clear_errors(three_blobs, arguments, message):
    with pytest.raises(ParameterError, match=message):
        select_model(three_blobs, **arguments)


def test_single_int_and_repeats_are_accepted(three_blobs):
    result = select_model(three_blobs[:60], [2, 1, 2], covariance_types="diag", random_state=0)
    assert [row["n_components"] for row in result.table] == [1, 2]
    assert select_model(three_blobs[:60], 2, random_state=0).table[0]["n_components"] == 2


def test_bad_data_is_reported_by_the_estimator():
    with pytest.raises(DataError, match="infinity"):
        select_model(np.array([[1.0, np.inf], [2.0, 3.0], [0.0, 1.0]]), [1])


def test_a_collapsed_component_is_listed_but_not_chosen():
    # Galaxies (in 1000 km/s): with ten random starts the best 8-component fit puts components
    # on single galaxies (variance = reg_covar) and so has the lowest BIC; mclust reports no
    # BIC for such fits. The choice is among the others: three unequal variances.
    from emkit import datasets

    x = datasets.load("galaxies").data / 1000
    result = select_model(x, range(1, 9), ("full",), random_state=0, n_init=10,
                          init_params="random")
    rows = {row["n_components"]: row for row in result.table}
    assert rows[8]["collapsed"] and rows[8]["bic"] < min(r["bic"] for r in result.table
                                                          if not r["collapsed"])
    best = result.best_estimator
    assert not result.best["collapsed"] and result.best["n_components"] == 3
    assert np.sqrt(best.covariances_).min() > 0.3  # no component on one galaxy
    assert any("collapsed" in note for note in result.notes)
    spike = result.estimators[7]
    assert spike.covariances_.min() <= 1.01 * spike.reg_covar  # a component on one galaxy


# ------------------------------------------------------------------ the chosen model's rows
def test_classification_and_uncertainty_are_the_best_models_posteriors(result, three_blobs):
    # Posteriors from scipy's densities with the chosen model's parameters: independent of
    # emkit's kernels and of predict_proba.
    best = result.best_estimator
    joint = np.column_stack([best.weights_[k] * stats.multivariate_normal(
        best.means_[k], best.covariances_[k]).pdf(three_blobs) for k in range(best.n_components)])
    posteriors = joint / joint.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(result.classification, posteriors.argmax(axis=1))
    np.testing.assert_allclose(result.uncertainty, 1 - posteriors.max(axis=1), atol=1e-10)
    assert result.uncertainty.shape == (len(three_blobs),)
    assert np.all((result.uncertainty >= 0) & (result.uncertainty <= 1 - 1 / 3 + 1e-12))


@pytest.fixture(scope="module")
def two_poisson():
    """400 counts from 0.4 Poisson(2) + 0.6 Poisson(9), with their true components."""
    rng = np.random.default_rng(3)
    labels = (rng.uniform(size=400) >= 0.4).astype(int)
    return rng.poisson(np.array([2.0, 9.0])[labels])[:, None].astype(float), labels


def test_poisson_selection_finds_two_components_and_their_rows(two_poisson):
    from emkit import PoissonMixture

    X, labels = two_poisson
    result = select_model(X, range(1, 5), estimator=PoissonMixture, random_state=0)
    assert result.best["n_components"] == 2 and "covariance_type" not in result.to_text()
    best = result.best_estimator
    assert isinstance(best, PoissonMixture)
    assert sorted(best.rates_[:, 0]) == pytest.approx([2.0, 9.0], rel=0.15)
    # Posteriors from scipy's Poisson pmf with the fitted rates.
    joint = best.weights_ * stats.poisson.pmf(X, best.rates_[:, 0])
    posteriors = joint / joint.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(result.classification, posteriors.argmax(axis=1))
    np.testing.assert_allclose(result.uncertainty, 1 - posteriors.max(axis=1), atol=1e-12)
    # The criteria are the estimator's own (a different code path).
    row = result.best
    assert row["bic"] == pytest.approx(best.bic(X), rel=1e-12)
    assert row["n_parameters"] == 3  # one weight, two rates
    # Most rows land with their generating component (the two overlap a little).
    low = int(np.argmin(best.rates_[:, 0]))
    assert np.mean((result.classification != low) == labels.astype(bool)) > 0.9


def test_bernoulli_and_student_selection(three_blobs):
    from emkit import BernoulliMixture, StudentMixture

    rng = np.random.default_rng(5)
    z = rng.uniform(size=300) < 0.5
    # Two latent classes answering six yes/no items in opposite ways.
    probabilities = np.where(z[:, None], [0.9, 0.9, 0.8, 0.2, 0.1, 0.1],
                             [0.1, 0.2, 0.2, 0.8, 0.9, 0.9])
    items = (rng.uniform(size=(300, 6)) < probabilities).astype(float)
    result = select_model(items, range(1, 4), estimator=BernoulliMixture, n_init=3,
                          random_state=0)
    assert result.best["n_components"] == 2
    student = select_model(three_blobs, [2, 3, 4], estimator=StudentMixture, random_state=0)
    assert student.best["n_components"] == 3
    assert not any(row["collapsed"] for row in student.table)


def test_regression_selection_on_the_ethanol_data():
    # mixtools' NOdata: two lines, the best regmixEM maximum has log-likelihood 122.038.
    from emkit import RegressionMixture, datasets

    data = datasets.load("ethanol")
    X, y = data.data[:, :1], data.column("Equivalence")
    result = select_model(X, range(1, 4), estimator=RegressionMixture, y=y, random_state=0)
    assert result.best["n_components"] == 2
    assert result.best["log_likelihood"] == pytest.approx(122.038, abs=1e-3)
    best = result.best_estimator
    posteriors = best.predict_proba(X, y)
    np.testing.assert_array_equal(result.classification, posteriors.argmax(axis=1))
    np.testing.assert_allclose(result.uncertainty, 1 - posteriors.max(axis=1), atol=1e-12)


@pytest.mark.parametrize("arguments, error, message", [
    ({"estimator": "PoissonMixture"}, ParameterError, "GaussianMixture or a family mixture"),
    ({"estimator": "poisson", "covariance_types": "diag"}, ParameterError,
     "covariance_types is for GaussianMixture; PoissonMixture has none"),
    ({"estimator": "poisson", "rates": 3}, ParameterError,
     "unknown PoissonMixture parameter.*rates"),
    ({"estimator": "poisson", "y": np.zeros(5)}, ParameterError, "takes no response"),
    ({"y": np.zeros(5)}, ParameterError, "GaussianMixture takes no response"),
    ({"estimator": "regression"}, DataError, "pass the response as y"),
])
def test_bad_family_arguments_raise_clear_errors(arguments, error, message):
    from emkit import PoissonMixture, RegressionMixture

    classes = {"poisson": PoissonMixture, "regression": RegressionMixture}
    arguments = dict(arguments)
    if arguments.get("estimator") in classes:
        arguments["estimator"] = classes[arguments["estimator"]]
    with pytest.raises(error, match=message):
        select_model(np.arange(10.0).reshape(5, 2), [1, 2], **arguments)


def test_the_covariance_models_of_one_k_share_the_screening_of_their_starts(monkeypatch):
    from emkit.models.mixture import GaussianMixtureModel

    screened = []
    original = GaussianMixtureModel._screening

    def counting(self, *args, **kwargs):
        screened.append((self.n_components, self.family.model))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GaussianMixtureModel, "_screening", counting)
    X = datasets.load("faithful").data
    kinds = ["EII", "VII", "EEI", "VEI", "VVI", "EEE", "VEV", "VVV"]
    with monkeypatch.context() as alone:  # one fit at a time, not the stacked grid
        alone.setattr(selection, "_fit_as_grid",
                      lambda X, w, cells, *_: ([None] * len(cells), None))
        result = select_model(X, [2, 3], kinds, random_state=0)
    # Once per K and layout, under that layout's separable model; 16 fits without sharing.
    assert sorted(screened) == [(2, "VII"), (2, "VVI"), (2, "VVV"),
                                (3, "VII"), (3, "VVI"), (3, "VVV")]
    assert (result.best["n_components"], result.best["covariance_type"]) == (3, "EEE")
    # The stacked grid draws each K's partitions once, for all layouts.
    drawn = []
    entrants = GaussianMixtureModel.screening_entrants
    monkeypatch.setattr(GaussianMixtureModel, "screening_entrants",
                        lambda self, *a: drawn.append(self.n_components) or entrants(self, *a))
    stacked = select_model(X, [2, 3], kinds, random_state=0)
    assert sorted(drawn) == [2, 3]
    assert (stacked.best["n_components"], stacked.best["covariance_type"]) == (3, "EEE")
    screened.clear()
    select_model(X, [2], ["EII", "VVV"], random_state=0, n_init=2)
    assert len(screened) == 4  # restarts start elsewhere: nothing shared


@pytest.mark.parametrize("block", [2**22, 1])  # components together, or one at a time
def test_a_component_on_too_few_points_is_not_spread_out_whatever_its_model(block,
                                                                          monkeypatch):
    """A component on two distinct points (in 2-D) has a singular scatter. Under EVI its
    covariance stays away from reg_covar (the volume is shared), so the covariance test does
    not see it; the scatter test does, and such a fit is not chosen."""
    from emkit.estimators import selection
    from emkit.estimators.selection import collapsed, spread_out

    monkeypatch.setattr(selection, "_SPREAD_BLOCK", block)

    rng = np.random.default_rng(0)
    spread = rng.normal(size=(60, 2)) * [1.0, 3.0]
    two_points = np.repeat([[8.0, 8.0], [9.0, 11.0]], 10, axis=0)
    X = np.vstack([spread, two_points])
    fit = GaussianMixture(2, covariance_type="EVI", random_state=0).fit(X)
    assert not collapsed(fit)
    assert spread_out(fit, X, fit.predict_proba(X)) is False
    fine = GaussianMixture(2, covariance_type="EVI", random_state=0).fit(spread)
    assert spread_out(fine, spread, fine.predict_proba(spread)) is True
    result = select_model(X, [2], ["EVI"], random_state=0)
    assert result.table[0]["collapsed"]  # not eligible
