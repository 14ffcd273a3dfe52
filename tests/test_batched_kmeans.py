"""The k-means start of many small mixtures (emkit.kernels.batched_kmeans): both forms of the
kernel against each other and, group by group, against emkit's one-problem k-means
(models/clustering.py, written independently: distances by matrix products, one run at a
time), scikit-learn's KMeans from the same seeds, and brute force."""

import numpy as np
import pytest

from emkit.estimators.batched import batched_kmeans
from emkit.kernels import batched_kmeans as kernels
from emkit.kernels import tiers
from emkit.models import clustering


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def form(request, monkeypatch):
    monkeypatch.setattr(tiers, "MODE", request.param)
    return request.param


def _padded(arrays, weights=None):
    """Groups padded to one length with rows of weight 0 (as fit_gaussian_mixtures does)."""
    N = max(len(a) for a in arrays)
    X = np.zeros((len(arrays), N, arrays[0].shape[1]))
    w = np.zeros((len(arrays), N))
    for g, a in enumerate(arrays):
        X[g, :len(a)] = a
        w[g, :len(a)] = 1.0 if weights is None else weights[g]
    return X, w


def _blobs(n_groups, n_features, n_clusters, seed, n_rows=(20, 80)):
    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(n_groups):
        n = int(rng.integers(*n_rows))
        centres = rng.normal(scale=3.0, size=(n_clusters, n_features))
        arrays.append(centres[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, n_features)))
    return arrays


def _uniforms(n_groups, K, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n_groups, clustering.seeding_draws(K)))


def _brute_force_statistics(X, w, labels, centers, K):
    """Weight, first and second moments of each cluster about its centre, row by row."""
    weight, first = np.zeros(K), np.zeros((K, X.shape[1]))
    second = np.zeros((K, X.shape[1], X.shape[1]))
    for x, wn, k in zip(X, w, labels, strict=True):
        diff = x - centers[k]
        weight[k] += wn
        first[k] += wn * diff
        second[k] += wn * np.outer(diff, diff)
    return weight, first, second


@pytest.mark.parametrize("K, D", [(1, 2), (2, 1), (3, 3), (5, 2)])
def test_each_group_is_the_one_problem_kmeans_from_the_same_draws(K, D):
    arrays = _blobs(9, D, K, seed=K * 10 + D)
    X, w = _padded(arrays)
    uniforms = _uniforms(len(arrays), K, seed=1)
    labels, centers, (weight, first, second) = kernels.kmeans_groups(X, w, K, uniforms, 1e-4,
                                                                     300, True)
    for g, x in enumerate(arrays):
        n = len(x)
        seeds = clustering.kmeans_plusplus_runs(x, K, uniforms[g:g + 1])
        expected_labels, expected_centers = clustering.lloyd(x, seeds, tol=1e-4)
        np.testing.assert_array_equal(labels[g, :n], expected_labels[0])
        np.testing.assert_allclose(centers[g], expected_centers[0], rtol=1e-12, atol=1e-12)
        # brute force: every row at its nearest centre, the statistics of that partition
        distances = ((x[:, None, :] - centers[g][None]) ** 2).sum(axis=2)
        np.testing.assert_array_equal(labels[g, :n], distances.argmin(axis=1))
        expected = _brute_force_statistics(x, np.ones(n), labels[g, :n], centers[g], K)
        for got, want in zip((weight[g], first[g], second[g]), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_weighted_groups_with_empty_clusters_and_zero_weight_rows():
    """Groups with fewer distinct rows than clusters (seeds repeat, an empty cluster moves to
    the row worst served), weights, and rows of weight 0 inside a group: the one-problem
    k-means on the same draws (tol=0: its threshold ignores weights), and rows of weight 0
    change nothing but get a label."""
    rng = np.random.default_rng(7)
    arrays = _blobs(6, 2, 3, seed=3)
    weights = [rng.uniform(0.2, 3.0, len(a)) for a in arrays]
    for w in weights[:4]:
        w[::5] = 0.0
    # Repeated rows: small integers and integer weights, so that the means of identical rows
    # are those rows exactly and the ties between equal centres the same in every method.
    points = np.array([[1.0, 2.0], [5.0, 2.0], [1.0, 7.0], [-3.0, -1.0]])
    for counts in ([5, 4, 6, 0], [1, 1, 9, 9]):
        arrays.append(np.repeat(points, counts, axis=0))
        weights.append(rng.integers(1, 4, sum(counts)).astype(float))
    K = 4
    X, w = _padded(arrays, weights)
    uniforms = _uniforms(len(arrays), K, seed=2)
    labels, centers, (weight, first, second) = kernels.kmeans_groups(X, w, K, uniforms, 0.0,
                                                                     300, False)
    for g, x in enumerate(arrays):
        n = len(x)
        seeds = clustering.kmeans_plusplus_runs(x, K, uniforms[g:g + 1], weights[g])
        expected_labels, expected_centers = clustering.lloyd(x, seeds, weights[g], tol=0.0)
        np.testing.assert_array_equal(labels[g, :n], expected_labels[0])
        np.testing.assert_allclose(centers[g], expected_centers[0], rtol=1e-12, atol=1e-12)
        expected = _brute_force_statistics(x, weights[g], labels[g, :n], centers[g], K)
        np.testing.assert_allclose(weight[g], expected[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(first[g], expected[1], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(second[g], np.diagonal(expected[2], axis1=1, axis2=2),
                                   rtol=1e-10, atol=1e-10)
    # rows of weight 0 are as if dropped (never a seed, in no sum), whatever their values
    used = [wg > 0 for wg in weights[:4]]
    far = [np.where(u[:, None], x, 1e6) for u, x in zip(used, arrays[:4], strict=True)]
    X_far, w_far = _padded(far, weights[:4])
    dropped_X, dropped_w = _padded([x[u] for u, x in zip(used, arrays[:4], strict=True)],
                                   [wg[u] for u, wg in zip(used, weights[:4], strict=True)])
    with_far = kernels.kmeans_groups(X_far, w_far, K, uniforms[:4], 1e-4, 300, True)
    without = kernels.kmeans_groups(dropped_X, dropped_w, K, uniforms[:4], 1e-4, 300, True)
    np.testing.assert_allclose(with_far[1], without[1], rtol=1e-12, atol=1e-12)
    for g, u in enumerate(used):
        np.testing.assert_array_equal(with_far[0][g, :len(u)][u], without[0][g, :u.sum()])


def test_lloyd_equals_scikit_learn_kmeans_from_the_same_seeds():
    from sklearn.cluster import KMeans

    K = 3
    arrays = _blobs(6, 2, K, seed=11, n_rows=(40, 90))
    X, w = _padded(arrays)
    uniforms = _uniforms(len(arrays), K, seed=4)
    seeds = kernels.kmeans_groups(X, w, K, uniforms, 0.0, 0, True)[1]  # no Lloyd step
    labels, centers, _ = kernels.kmeans_groups(X, w, K, uniforms, 0.0, 300, True)
    for g, x in enumerate(arrays):
        peer = KMeans(K, init=seeds[g], n_init=1, tol=0.0, algorithm="lloyd").fit(x)
        np.testing.assert_array_equal(labels[g, :len(x)], peer.labels_)
        np.testing.assert_allclose(centers[g], peer.cluster_centers_, rtol=1e-10, atol=1e-10)


def test_both_forms_agree_on_many_groups(form, monkeypatch):
    """Enough rows for the compiled form's threads; the numpy form's result is the
    reference, to the bit (the same operations in the same order)."""
    if form == "numpy":
        pytest.skip("compares the compiled form with the numpy one")
    arrays = _blobs(800, 3, 3, seed=5, n_rows=(60, 100))
    weights = [np.random.default_rng(g).uniform(0.5, 2.0, len(a)) for g, a in enumerate(arrays)]
    X, w = _padded(arrays, weights)
    assert X.shape[0] * X.shape[1] >= kernels._PARALLEL_MIN_ROWS
    results = {}
    for mode in ("numpy", "compiled"):
        monkeypatch.setattr(tiers, "MODE", mode)
        results[mode] = [batched_kmeans(X, w, 3, np.random.default_rng(9), full=full)
                         for full in (True, False)]
    for ours, reference in zip(results["compiled"], results["numpy"], strict=True):
        np.testing.assert_array_equal(ours[0], reference[0])
        np.testing.assert_allclose(ours[1], reference[1], rtol=1e-13, atol=1e-13)
        for got, want in zip(ours[2], reference[2], strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_seeds_take_the_same_numbers_from_the_generator():
    """batched_kmeans draws (G, 1) then (G, trials) per next seed: the numbers the one-problem
    seeding takes for each group, in the order the draws were made before the kernel."""
    K, G = 3, 5
    arrays = _blobs(G, 2, K, seed=6)
    X, w = _padded(arrays)
    rng = np.random.default_rng(3)
    batched_kmeans(X, w, K, rng, max_iter=0)
    after = rng.random()
    rng = np.random.default_rng(3)
    trials = kernels.seeding_trials(K)
    uniforms = np.concatenate([rng.uniform(size=(G, 1))]
                              + [rng.uniform(size=(G, trials)) for _ in range(K - 1)], axis=1)
    assert rng.random() == after
    labels, seeds, _ = batched_kmeans(X, w, K, np.random.default_rng(3), max_iter=0)
    for g, x in enumerate(arrays):
        np.testing.assert_array_equal(seeds[g],
                                      clustering.kmeans_plusplus_runs(x, K, uniforms[g:g + 1])[0])


def _uniforms_drawing(x, rows):
    """Uniform numbers that make the seeding of unit-weight rows ``x`` draw ``rows`` in turn
    (each number in the middle of its row's share of the mass; every candidate the same)."""
    K = len(rows)
    trials = kernels.seeding_trials(K)
    closest = np.full(len(x), np.inf)
    uniforms = []
    for k, row in enumerate(rows):
        mass = np.ones(len(x)) if k == 0 else closest
        cumulative = np.cumsum(mass)
        u = (cumulative[row] - mass[row] / 2) / cumulative[-1]
        uniforms += [u] * (1 if k == 0 else trials)
        closest = np.minimum(closest, ((x - x[row]) ** 2).sum(axis=1))
    return np.array(uniforms)


def test_an_empty_cluster_moves_to_the_row_worst_served():
    # Seeds 7, 6, 0; after one step the centres are 7, 5, 1.25 and the rows of 5 go to 7
    # (6: a tie, the first centre wins) and to 1.25 (3): the emptied cluster moves to 3, the
    # row worst served.
    x = np.array([3.0, 2.0, 7.0, 6.0, 1.0, 0.0, 6.0, 2.0])[:, None]
    others = _blobs(3, 1, 3, seed=8)
    X, w = _padded([x] + others)
    uniforms = np.vstack([_uniforms_drawing(x, [2, 3, 5])] + [_uniforms(3, 3, seed=5)])
    seeds = kernels.kmeans_groups(X, w, 3, uniforms, 0.0, 0, True)[1]
    np.testing.assert_array_equal(seeds[0, :, 0], [7.0, 6.0, 0.0])
    labels, centers, _ = kernels.kmeans_groups(X, w, 3, uniforms, 0.0, 300, True)
    np.testing.assert_allclose(centers[0, :, 0], [19 / 3, 3.0, 1.25], rtol=1e-15)
    np.testing.assert_array_equal(labels[0, :len(x)], [1, 2, 0, 0, 2, 2, 0, 2])
    expected_labels, expected_centers = clustering.lloyd(x, seeds[:1], tol=0.0)
    np.testing.assert_array_equal(labels[0, :len(x)], expected_labels[0])
    np.testing.assert_allclose(centers[0], expected_centers[0], rtol=1e-15)
