"""Starts of Gaussian mixtures (``init_params``): the default against scikit-learn's and mclust's
results on real data, every method on every kind of input, and the partitions themselves against
brute force."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine

import emkit
from emkit.data.chunks import ArrayChunks, Batch
from emkit.errors import ParameterError
from emkit.models import clustering
from emkit.models.clustering import INIT_METHODS
from emkit.models.mixture import GaussianMixtureModel

pytestmark = pytest.mark.filterwarnings("ignore::emkit.errors.ConvergenceWarning")

# Mclust(X, G=K, modelNames="VVV")$loglik ("V" for the one-dimensional galaxies), mclust 6.0.0
# on R 4.2.2 with default options, from `python benchmarks/init.py --mclust` (2026-12-03).
MCLUST = {("iris", 3): -180.185839, ("wine", 3): -2788.429858, ("galaxies", 4): -765.693991}
# scikit-learn 1.9.1 GaussianMixture(K, random_state=s) (its defaults: k-means start), mean of
# the total log-likelihood over s = 0..9, same data (benchmarks/init.py, 2026-12-03).
SKLEARN_MEAN = {("iris", 3): -180.196292, ("wine", 3): -2913.748565, ("galaxies", 4): -768.639360}


def data(name):
    if name == "iris":
        return load_iris().data
    if name == "wine":
        return load_wine().data
    return emkit.datasets.load(name).data


@pytest.mark.parametrize("name,k", sorted(MCLUST))
def test_default_reaches_mclust_and_sklearn_on_real_data(name, k):
    X = data(name)
    values = np.array([emkit.GaussianMixture(k, random_state=seed).fit(X).score(X) * len(X)
                       for seed in range(10)])
    assert values.mean() >= SKLEARN_MEAN[name, k] - 1e-3
    assert values.mean() >= MCLUST[name, k] - 1e-3


def test_iris_every_seed_reaches_the_mclust_maximum():
    X = load_iris().data
    for seed in range(10):
        model = emkit.GaussianMixture(3, random_state=seed).fit(X)
        assert model.score(X) * len(X) >= MCLUST["iris", 3] - 1e-3


def test_hierarchical_start_is_deterministic():
    X = emkit.datasets.load("faithful").data
    fits = [emkit.GaussianMixture(3, init_params="hierarchical", random_state=seed).fit(X)
            for seed in (0, 1, 2)]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.means_, fits[0].means_)
        np.testing.assert_array_equal(other.covariances_, fits[0].covariances_)


@pytest.mark.parametrize("method", INIT_METHODS)
def test_every_method_on_weights_gaps_chunks_and_labels(method):
    X = emkit.datasets.load("faithful").data
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 2.0, len(X))
    weights[:10] = 0.0
    model = emkit.GaussianMixture(2, init_params=method, random_state=0).fit(
        X, sample_weight=weights)
    assert np.isfinite(model.score(X)) and model.weights_.min() > 0.1

    gaps = X.copy()
    gaps[rng.choice(len(X), 30, replace=False), rng.integers(0, 2, 30)] = np.nan
    model = emkit.GaussianMixture(2, init_params=method, random_state=0).fit(gaps)
    assert np.isfinite(model.score(gaps)) and model.weights_.min() > 0.1

    # A list of chunks in memory gives the start of the concatenated rows; a streamed source
    # (its chunks sampled in a random order for the start) a usable one.
    model = GaussianMixtureModel(2, init_params=method)
    in_chunks = model.init_params([X[:100], X[100:200], X[200:]], np.random.default_rng(3))
    whole = model.init_params(X, np.random.default_rng(3))
    np.testing.assert_allclose(in_chunks.components.means, whole.components.means, rtol=1e-9)
    np.testing.assert_allclose(in_chunks.weights, whole.weights, rtol=1e-9)
    streamed = emkit.GaussianMixture(2, init_params=method, random_state=0).fit(
        ArrayChunks(X, 100))
    assert np.isfinite(streamed.score(X)) and streamed.weights_.min() > 0.1

    labels = np.full(len(X), -1)
    labels[np.argmin(X[:, 0])], labels[np.argmax(X[:, 0])] = 0, 1
    model = emkit.GaussianMixture(2, init_params=method, random_state=0).fit(X, labels=labels)
    assert model.predict(X[[np.argmin(X[:, 0]), np.argmax(X[:, 0])]]).tolist() == [0, 1]


@pytest.mark.parametrize("n_rows,used", [(300, True), (3000, False)])
def test_the_default_races_the_hierarchical_start_only_where_it_sees_enough_rows(
        monkeypatch, n_rows, used):
    # 12 clusters in 12-D: the agglomeration takes at most ~450 rows, fewer than 4 per cluster
    # and dimension (576), so on 3,000 rows its start would come from too thin a subsample.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, 12)) + 4.0 * rng.integers(0, 3, size=(n_rows, 1))
    calls = []
    original = GaussianMixtureModel._hierarchical_assignment

    def record(self, *args):
        calls.append(len(args[0]))
        return original(self, *args)

    monkeypatch.setattr(GaussianMixtureModel, "_hierarchical_assignment", record)
    emkit.GaussianMixture(12, random_state=0, max_iter=2).fit(X)
    assert bool(calls) == used


def test_unknown_method_is_a_parameter_error():
    with pytest.raises(ParameterError, match="init_params must be one of"):
        emkit.GaussianMixture(2, init_params="k-medoids").fit(np.arange(20.0).reshape(10, 2))


def test_a_fully_given_start_computes_no_responsibilities(monkeypatch):
    X = emkit.datasets.load("faithful").data
    model = emkit.GaussianMixture(2, random_state=0).fit(X)

    def refuse(*args, **kwargs):
        raise AssertionError("a start that is given needs no partition")

    monkeypatch.setattr(GaussianMixtureModel, "_initial_responsibilities", refuse)
    again = emkit.GaussianMixture(2, weights_init=model.weights_, means_init=model.means_,
                                  precisions_init=model.precisions_, max_iter=5).fit(X)
    np.testing.assert_allclose(again.means_, model.means_, rtol=1e-3)


def test_a_partial_user_start_still_works_with_the_default():
    X = emkit.datasets.load("faithful").data
    means = np.array([[2.0, 55.0], [4.5, 80.0]])
    model = emkit.GaussianMixture(2, means_init=means, max_iter=0, tol=0.0).fit(X)
    np.testing.assert_array_equal(model.means_, means)


# ------------------------------------------------------------------------- the partitions
def criterion(X, labels, lam, beta):
    """Σ_k n_k log(det(W_k / n_k) + β (tr W_k + λ) / n_k), det taken as 0 for n_k ≤ D:
    mclust's regularised classification criterion (hcVVV's vvvtij), computed directly."""
    total = 0.0
    D = X.shape[1]
    for k in np.unique(labels):
        rows = X[labels == k]
        n = len(rows)
        W = (rows - rows.mean(axis=0)).T @ (rows - rows.mean(axis=0))
        det = np.linalg.det(W / n) if n > D else 0.0
        total += n * np.log(det + beta * (np.trace(W) + lam) / n)
    return total


def brute_force_agglomeration(X, n_clusters, lam, beta):
    """Greedy agglomeration that tries every pair at every stage."""
    labels = np.arange(len(X))
    while len(np.unique(labels)) > n_clusters:
        best = None
        for a, b in itertools.combinations(np.unique(labels), 2):
            merged = np.where(labels == b, a, labels)
            value = criterion(X, merged, lam, beta)
            if best is None or value < best[0] - 1e-12:
                best = (value, merged)
        labels = best[1]
    return labels


@pytest.mark.parametrize("form", ["numpy", "compiled"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agglomeration_merges_the_cheapest_pair_at_every_stage(seed, form, monkeypatch):
    from emkit.kernels import tiers
    from emkit.kernels.agglomeration import agglomerate, cut

    monkeypatch.setattr(tiers, "MODE", form)
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (6, 2)), rng.normal(4, 0.5, (5, 2)) * [1, 3]])
    merges = agglomerate(X, np.ones(len(X)), 0.7, 1.0, 1)
    for n_clusters in (2, 3, 4):
        expected = brute_force_agglomeration(X, n_clusters, 0.7, 1.0)
        got = cut(merges, len(X), n_clusters)
        # stopped there, the loop made the same merges
        np.testing.assert_array_equal(agglomerate(X, np.ones(len(X)), 0.7, 1.0, n_clusters),
                                      merges[: len(X) - n_clusters])
        same = (expected[:, None] == expected[None, :]) == (got[:, None] == got[None, :])
        assert same.all()


@pytest.mark.parametrize("data", ["geyser", "wine"])
def test_agglomeration_forms_agree_merge_for_merge(data, monkeypatch):
    from emkit.kernels import tiers
    from emkit.kernels.agglomeration import agglomerate, cut

    # geyser: 2-D with many tied rows; wine: 13-D, every entry of the Cholesky factor used
    X = emkit.datasets.load("geyser").data if data == "geyser" else load_wine().data
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    for n_clusters in (1, 2, 5, 9, 40):
        labels = {}
        for form in ("numpy", "compiled"):
            monkeypatch.setattr(tiers, "MODE", form)
            labels[form] = cut(agglomerate(X, weights, 0.1, 0.01, n_clusters), len(X),
                               n_clusters)
        np.testing.assert_array_equal(labels["numpy"], labels["compiled"])
        assert labels["numpy"].max() == n_clusters - 1


def test_kmeans_ends_at_a_lloyd_fixed_point():
    X = load_iris().data
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    labels, centers = clustering.kmeans(X, 3, np.random.default_rng(0), w)
    np.testing.assert_array_equal(clustering.nearest(X, centers)[0], labels)
    for k in range(3):
        np.testing.assert_allclose(centers[k], np.average(X[labels == k], axis=0,
                                                          weights=w[labels == k]))



@pytest.mark.parametrize("weighted", [False, True])
def test_lloyd_of_several_runs_ends_where_each_run_ends_alone(weighted):
    X = load_wine().data
    w = np.random.default_rng(1).uniform(0.0, 2.0, len(X)) if weighted else None
    rng = np.random.default_rng(0)
    seeds = np.stack([clustering.kmeans_plusplus(X, 4, rng, w) for _ in range(5)])
    seeds[1, 0] = 1e6  # a centre no row is nearest to: re-seeded at the worst-served row
    labels, centers = clustering.lloyd(X, seeds, w)
    for run in range(len(seeds)):
        alone_labels, alone_centers = clustering.lloyd(X, seeds[run:run + 1], w)
        np.testing.assert_array_equal(labels[run], alone_labels[0])
        np.testing.assert_array_equal(centers[run], alone_centers[0])
    assert np.all(centers[1] < 1e5)
    # kmeans() is one such run from its k-means++ seeds (the same draws).
    first_labels, first_centers = clustering.kmeans(X, 4, np.random.default_rng(0), w)
    np.testing.assert_array_equal(first_labels, labels[0])
    np.testing.assert_array_equal(first_centers, centers[0])



@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_of_several_runs_draws_as_one_run_after_another(weighted):
    X = load_wine().data
    w = np.random.default_rng(3).uniform(0.0, 2.0, len(X)) if weighted else None
    rng = np.random.default_rng(4)
    alone = [clustering.kmeans_plusplus(X, 5, rng, w) for _ in range(4)]
    after_alone = rng.random()
    rng = np.random.default_rng(4)
    uniforms = rng.random((4, clustering.seeding_draws(5)))
    together = clustering.kmeans_plusplus_runs(X, 5, uniforms, w)
    assert rng.random() == after_alone  # the same numbers taken from the generator
    for run in range(4):
        np.testing.assert_array_equal(together[run], alone[run])
    np.testing.assert_array_equal(clustering.nearest_of_runs(X, together)[2],
                                  clustering.nearest(X, alone[2])[0])

def test_starts_take_the_draws_of_one_partition_after_another():
    X = load_iris().data
    model = GaussianMixtureModel(3)
    methods = ("kmeans",) * 3 + ("k-means++",) * 2
    together = model._starts(methods, X, None, None, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    alone = [model._params_from_resp(X, None, None,
                                     model._initial_responsibilities(m, X, None, rng), rng)
             for m in methods]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.components.means, b.components.means)
        np.testing.assert_array_equal(a.components.covariances, b.components.covariances)


def test_grouped_log_likelihood_is_log_sum_exp_and_posteriors_within_each_mixture():
    from emkit.families.base import posteriors_from_log_joint
    from emkit.models.mixture import _grouped_log_likelihood

    log_joint = np.random.default_rng(2).normal(0.0, 30.0, (7, 3, 4))
    log_joint[2, 1] = -np.inf  # a row no component of mixture 1 explains
    log_joint[3, 0, :2] = -np.inf
    row_ll, unnormalised, totals = _grouped_log_likelihood(log_joint)
    expected_ll, expected_resp = posteriors_from_log_joint(log_joint)
    np.testing.assert_allclose(row_ll, expected_ll, rtol=1e-13)
    finite = np.isfinite(expected_ll)
    with np.errstate(invalid="ignore"):  # 0 / 0 in the row no component explains
        resp = unnormalised / totals
    np.testing.assert_allclose(resp[finite], expected_resp[finite], rtol=1e-12, atol=1e-300)
    assert row_ll[2, 1] == -np.inf


def test_short_runs_share_passes_only_where_a_pass_is_small():
    model = GaussianMixtureModel(16)
    rng = np.random.default_rng(0)
    assert model._stackable(Batch(rng.normal(size=(1000, 3))))
    assert not model._stackable(Batch(rng.normal(size=(4000, 3))))

def test_short_runs_pick_the_start_with_the_higher_likelihood():
    X = emkit.datasets.load("faithful").data
    model = GaussianMixtureModel(2)
    rng = np.random.default_rng(0)
    good = model._params_from_resp(X, None, None, np.eye(2)[(X[:, 0] > 3).astype(int)], rng)
    bad = model._params_from_resp(X, None, None, np.full((len(X), 2), 0.5), rng)
    ranked = model._short_runs([bad, good], Batch(X), 4)
    assert ranked[0][1] > ranked[1][1]
    np.testing.assert_allclose(np.sort(ranked[0][0].components.means[:, 0]), [2.04, 4.29],
                               atol=0.01)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
def test_stacked_short_runs_equal_runs_one_start_at_a_time(covariance_type, weighted,
                                                           monkeypatch):
    X = load_iris().data
    w = np.random.default_rng(1).uniform(0.0, 3.0, len(X)) if weighted else None
    if weighted:
        w[::7] = 0.0  # rows that do not count
    model = GaussianMixtureModel(3, covariance_type=covariance_type)
    rng = np.random.default_rng(0)
    starts = [model._params_from_resp(X, w, None,
                                      model._initial_responsibilities("k-means++", X, w, rng),
                                      rng) for _ in range(5)]
    # A component far from every row: empty after the first E-step, so that start is re-seeded
    # (the stacked runs hand such a start to the one-start step).
    far = starts[0].components.means.copy()
    far[0] += 1e3
    components, _ = model.family.with_covariances(far, starts[0].components.covariances)
    starts.append(starts[0]._replace(components=components))
    assert model._stackable(Batch(X, w))
    stacked = model._short_runs(starts, Batch(X, w), 12)
    monkeypatch.setattr(GaussianMixtureModel, "_stackable", lambda self, batch: False)
    single = model._short_runs(starts, Batch(X, w), 12)
    assert len(stacked) == len(single) == len(starts)
    for (params_a, ll_a), (params_b, ll_b) in zip(stacked, single, strict=True):
        assert ll_a == pytest.approx(ll_b, rel=1e-10)
        np.testing.assert_allclose(params_a.weights, params_b.weights, rtol=1e-8)
        np.testing.assert_allclose(params_a.components.means, params_b.components.means,
                                   rtol=1e-8)
        np.testing.assert_allclose(params_a.components.covariances,
                                   params_b.components.covariances, rtol=1e-8)


def test_short_runs_of_coupled_models_or_gappy_data_go_one_start_at_a_time():
    X = load_iris().data
    assert not GaussianMixtureModel(3, covariance_type="tied")._stackable(Batch(X))
    assert not GaussianMixtureModel(3, covariance_type="VEV")._stackable(Batch(X))
    gappy = X.copy()
    gappy[0, 1] = np.nan
    assert not GaussianMixtureModel(3)._stackable(Batch(gappy))
    assert not GaussianMixtureModel(3)._stackable(Batch(X, None, np.zeros(len(X), int)))


def test_agglomeration_of_one_feature_with_equal_rows(monkeypatch):
    # In one dimension two equal rows have a scatter of determinant 0 (log −inf): both forms
    # take it without a warning and agree merge for merge.
    from emkit.kernels import tiers
    from emkit.kernels.agglomeration import agglomerate, cut

    x = np.array([[1.0], [1.0], [2.0], [2.0], [5.0], [5.5], [9.0], [1.0]])
    merges = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for form in ("numpy", "compiled"):
            monkeypatch.setattr(tiers, "MODE", form)
            merges[form] = agglomerate(x, np.ones(len(x)), 0.5, 1.0, 1)
    np.testing.assert_array_equal(merges["numpy"], merges["compiled"])
    # the equal rows merge first (a pair of them costs −2 log 2, a third −3 log 3 + 2 log 2)
    np.testing.assert_array_equal(cut(merges["numpy"], len(x), 5), [0, 0, 1, 1, 2, 3, 4, 0])
