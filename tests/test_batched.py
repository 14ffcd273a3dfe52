"""Many small Gaussian mixtures in one call (emkit.fit_gaussian_mixtures): under plain EM each
group's fit is the one emkit.GaussianMixture gives from the same start; under SQUAREM (the
default) each group is accelerated and judged on its own, as a fit of that group alone."""

import warnings

import numpy as np
import pytest

import emkit
from emkit.core.monitor import (
    WINDOW,
    em_step_remaining_gain,
    em_step_remaining_gain_rows,
    remaining_gain,
    remaining_gain_rows,
)
from emkit.core.results import EMStep
from emkit.errors import DataError, ParameterError
from emkit.models.batched_gaussian import GroupedRows


def _groups(n_groups=12, seed=0, ragged=True, n_features=2):
    """Two overlapping blobs per group, with group sizes 30..90 when ragged."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _g in range(n_groups):
        n = int(rng.integers(30, 90)) if ragged else 60
        a = rng.normal(size=(n // 2, n_features)) + rng.normal(scale=3, size=n_features)
        b = rng.normal(size=(n - n // 2, n_features)) * rng.uniform(0.5, 2.0)
        arrays.append(np.concatenate([a, b]))
    return arrays


def _start(fit):
    """The start of a fit as GaussianMixture's weights/means/precisions_init."""
    P = fit.precisions_cholesky_
    precisions = P @ np.swapaxes(P, -1, -2) if P.ndim == 4 else P**2
    return dict(weights_init=fit.weights_, means_init=fit.means_, precisions_init=precisions)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_each_group_equals_gaussian_mixture_from_the_same_start(covariance_type):
    arrays = _groups(n_features=3)
    start = _start(emkit.fit_gaussian_mixtures(arrays, n_components=2, max_iter=0,
                                               covariance_type=covariance_type,
                                               random_state=1))
    fit = emkit.fit_gaussian_mixtures(arrays, n_components=2, covariance_type=covariance_type,
                                      accelerate=None, **start)
    assert fit.converged_.all()
    for g, X in enumerate(arrays):
        # Plain EM both (GaussianMixture's SQUAREM is one rule over all its parameters).
        single = emkit.GaussianMixture(
            2, covariance_type=covariance_type, accelerate=None,
            **{name: value[g] for name, value in start.items()}).fit(X)
        assert fit.n_iter_[g] == single.n_iter_
        assert fit.lower_bound_[g] == pytest.approx(single.lower_bound_, rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(fit.means_[g], single.means_, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fit.covariances_[g], single.covariances_, rtol=1e-6,
                                   atol=1e-6)
        np.testing.assert_allclose(fit.weights_[g], single.weights_, rtol=1e-6, atol=1e-6)
        # the estimator handed back predicts and scores as the single fit does
        estimator = fit.estimator(g)
        assert estimator.score(X) == pytest.approx(single.score(X), rel=1e-9)
        np.testing.assert_array_equal(estimator.predict(X), single.predict(X))


@pytest.mark.parametrize("form", ["numpy", "compiled"])
@pytest.mark.parametrize("full", [True, False])
def test_group_e_step_equals_scipy_group_by_group(full, form, monkeypatch):
    # Both forms of the kernel (emkit.kernels.tiers) against scipy's densities, on padded
    # groups (rows of weight 0 at the end) and a subset of the groups.
    from scipy.stats import multivariate_normal

    from emkit.kernels import batched_gaussian, tiers

    monkeypatch.setattr(tiers, "MODE", form)
    rng = np.random.default_rng(2)
    G, N, K, D = 5, 40, 3, 3
    X = rng.normal(size=(G, N, D))
    w = rng.uniform(0.5, 2.0, (G, N))
    w[:, 30:] = 0.0
    X[:, 30:] = 0.0
    log_weights = np.log(rng.dirichlet(np.ones(K), G))
    means = rng.normal(size=(G, K, D))
    if full:
        L = np.tril(rng.normal(scale=0.3, size=(G, K, D, D)), -1) + np.eye(D) * rng.uniform(
            0.5, 2.0, (G, K, 1, D))
        P = np.swapaxes(L, -1, -2)  # upper triangular: precision = P Pᵀ
        covariances = np.linalg.inv(P @ L)
    else:
        P = rng.uniform(0.5, 2.0, (G, K, 1, D))
        covariances = np.eye(D) / P**2
    rows = np.array([0, 2, 3])
    weight, first, second, log_likelihood = batched_gaussian.e_step_groups(
        X, w, rows, log_weights, means, P, full)
    for a, g in enumerate(rows):
        used = w[g] > 0
        joint = np.column_stack([
            log_weights[g, k] + multivariate_normal(means[g, k], covariances[g, k]).logpdf(
                X[g, used]) for k in range(K)])
        row_ll = np.logaddexp.reduce(joint, axis=1)
        r = w[g, used, None] * np.exp(joint - row_ll[:, None])
        assert log_likelihood[a] == pytest.approx(w[g, used] @ row_ll, rel=1e-10)
        np.testing.assert_allclose(weight[a], r.sum(axis=0), rtol=1e-10)
        for k in range(K):
            diff = X[g, used] - means[g, k]
            np.testing.assert_allclose(first[a, k], r[:, k] @ diff, rtol=1e-9, atol=1e-12)
            expected = (r[:, k, None] * diff).T @ diff
            got = second[a, k] if full else second[a, k, 0]
            np.testing.assert_allclose(got, expected if full else np.diag(expected),
                                       rtol=1e-9, atol=1e-12)



@pytest.mark.parametrize("form", ["numpy", "compiled"])
def test_groups_of_the_same_rows_held_once_equal_their_copies(form, monkeypatch):
    # A grid's fits share their rows: X (1, N, D) serves every group, as G copies would.
    from emkit.kernels import batched_gaussian, tiers

    monkeypatch.setattr(tiers, "MODE", form)
    rng = np.random.default_rng(4)
    G, N, K, D = 6, 50, 3, 2
    X = rng.normal(size=(N, D))
    w = rng.uniform(0.5, 2.0, N)
    log_weights = np.log(rng.dirichlet(np.ones(K), G))
    means = rng.normal(size=(G, K, D))
    P = np.broadcast_to(np.eye(D) * rng.uniform(0.5, 2.0, (G, K, 1, 1)), (G, K, D, D)).copy()
    rows = np.array([1, 4, 5])
    shared = batched_gaussian.e_step_groups(X[None], w[None], rows, log_weights, means, P, True)
    copies = batched_gaussian.e_step_groups(np.repeat(X[None], G, axis=0),
                                            np.repeat(w[None], G, axis=0), rows, log_weights,
                                            means, P, True)
    for a, b in zip(shared, copies, strict=True):
        np.testing.assert_array_equal(a, b)
    # and a stack of shared rows takes its groups without copying them
    data = GroupedRows.shared(X, w, G)
    assert data.shape == (G, N, D)
    part = data.take(rows)
    assert part.shape == (3, N, D) and part.X is data.X

def test_grouped_table_equals_list_and_order_of_groups_does_not_matter():
    arrays = _groups(8, seed=3)
    ids = np.array([f"g{g:02d}" for g in range(len(arrays))])
    X = np.concatenate(arrays)
    groups = np.repeat(ids, [len(a) for a in arrays])
    as_list = emkit.fit_gaussian_mixtures(arrays, n_components=2, random_state=5)
    table = emkit.fit_gaussian_mixtures(X, groups, 2, random_state=5)
    np.testing.assert_array_equal(table.groups_, ids)
    np.testing.assert_array_equal(table.means_, as_list.means_)
    # the same table with its groups' blocks in reverse order (rows within a group kept)
    blocks = [np.flatnonzero(groups == i) for i in ids[::-1]]
    order = np.concatenate(blocks)
    shuffled = emkit.fit_gaussian_mixtures(X[order], groups[order], 2, random_state=5)
    np.testing.assert_array_equal(shuffled.groups_, ids)
    np.testing.assert_allclose(shuffled.means_, table.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(shuffled.n_iter_, table.n_iter_)


@pytest.mark.parametrize("allowed, compiled, threaded", [(True, False, True),
                                                         (False, True, True),
                                                         (False, False, False)])
def test_a_large_stack_runs_threaded_where_allowed_or_already_compiled(
        allowed, compiled, threaded, monkeypatch):
    # threads=False (a grid of a few hundred rows) must not cost compiling the threaded loop,
    # but takes it where it is ready; each group's statistics are the same either way.
    from emkit.kernels import batched_gaussian, tiers

    monkeypatch.setattr(tiers, "MODE", "compiled")
    monkeypatch.setattr(batched_gaussian, "_PARALLEL_MIN_WORK", 100)
    monkeypatch.setattr(batched_gaussian, "_parallel_looked_up", {})
    monkeypatch.setattr(tiers, "is_compiled", lambda dispatcher, args: compiled)
    ran = []
    for name in ("_groups_serial", "_groups_parallel"):
        loop = getattr(batched_gaussian, name)
        monkeypatch.setattr(batched_gaussian, name,
                            lambda *args, loop=loop, name=name: ran.append(name) or loop(*args))
    rng = np.random.default_rng(5)
    G, N, K, D = 4, 60, 2, 2
    X, w = rng.normal(size=(1, N, D)), np.ones((1, N))
    log_weights = np.log(np.full((G, K), 0.5))
    means = rng.normal(size=(G, K, D))
    P = np.broadcast_to(np.eye(D), (G, K, D, D)).copy()
    rows = np.arange(G)
    got = batched_gaussian.e_step_groups(X, w, rows, log_weights, means, P, True, allowed)
    assert ran == ["_groups_parallel" if threaded else "_groups_serial"]
    monkeypatch.setattr(batched_gaussian, "_PARALLEL_MIN_WORK", 10**12)  # the serial loop
    for a, b in zip(got, batched_gaussian.e_step_groups(X, w, rows, log_weights, means, P,
                                                        True), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sample_weights_are_repetitions():
    arrays = _groups(6, seed=4)
    rng = np.random.default_rng(0)
    counts = [rng.integers(0, 3, size=len(a)) for a in arrays]
    counts = [np.where(np.arange(len(c)) < 4, 1, c) for c in counts]  # keep every group fit-able
    repeated = [np.repeat(a, c, axis=0) for a, c in zip(arrays, counts, strict=True)]
    start = _start(emkit.fit_gaussian_mixtures(repeated, n_components=2, max_iter=0,
                                               random_state=2))
    weighted = emkit.fit_gaussian_mixtures(arrays, n_components=2, sample_weight=counts,
                                           **start)
    plain = emkit.fit_gaussian_mixtures(repeated, n_components=2, **start)
    np.testing.assert_allclose(weighted.means_, plain.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(weighted.lower_bound_, plain.lower_bound_, rtol=1e-10)
    np.testing.assert_array_equal(weighted.n_iter_, plain.n_iter_)


def test_kmeans_start_reaches_scikit_learn_on_separated_groups():
    from sklearn.mixture import GaussianMixture as SklearnMixture

    # well-separated blobs: one sensible maximum, which both starts must find
    arrays = [X + np.where(np.arange(len(X)) < len(X) // 2, 8.0, 0.0)[:, None]
              for X in _groups(10, seed=6)]
    fit = emkit.fit_gaussian_mixtures(arrays, n_components=2, random_state=0)
    for g, X in enumerate(arrays):
        peer = SklearnMixture(2, tol=1e-8, max_iter=1000, random_state=0).fit(X)
        assert fit.lower_bound_[g] >= peer.score(X) - 1e-4


def test_a_group_too_small_is_named():
    arrays = _groups(4, seed=1)
    X = np.concatenate(arrays + [np.zeros((2, 2))])
    groups = np.repeat(["a", "b", "c", "d", "tiny"], [len(a) for a in arrays] + [2])
    with pytest.raises(DataError, match="group 'tiny' has 2 row"):
        emkit.fit_gaussian_mixtures(X, groups, 3)


def test_bad_arguments():
    arrays = _groups(2)
    with pytest.raises(ParameterError, match="covariance_type"):
        emkit.fit_gaussian_mixtures(arrays, n_components=2, covariance_type="tied")
    with pytest.raises(ParameterError, match="together"):
        emkit.fit_gaussian_mixtures(arrays, n_components=2, means_init=np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match="one id per row"):
        emkit.fit_gaussian_mixtures(arrays[0], np.zeros(3), 2)
    with pytest.raises(ParameterError, match="no group"):
        emkit.fit_gaussian_mixtures(arrays, n_components=1).estimator(7)


def test_unconverged_groups_warn_and_say_so():
    arrays = _groups(3, seed=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = emkit.fit_gaussian_mixtures(arrays, n_components=3, max_iter=2, random_state=0)
    assert not fit.converged_.any() and (fit.n_iter_ == 2).all()
    assert any("did not converge" in str(w.message) for w in caught)


def test_remaining_gain_rows_is_remaining_gain_row_by_row():
    rng = np.random.default_rng(0)
    rows = [np.cumsum(rng.exponential(size=WINDOW) * 0.5 ** np.arange(WINDOW)) for _ in range(50)]
    rows += [np.full(WINDOW, -3.0), np.array([1.0, 2, 3, 3, 3, 3]),
             np.array([1.0, 2, 3, 4, 5, 6]), np.array([1.0, 2, 2.5, 2.5 - 1e-12, 2.5, 2.5]),
             np.array([1.0, 2, 3, 2, 3, 4]), np.array([0, 0, 0, 0, 1e-3, 2e-3]),
             np.array([np.nan, 1, 2, 3, 4, 5])]
    expected = [remaining_gain(list(r)) if np.all(np.isfinite(r)) else np.inf for r in rows]
    np.testing.assert_allclose(remaining_gain_rows(np.array(rows)), expected, rtol=1e-12)


def test_a_group_estimator_saves_and_loads(tmp_path):
    arrays = _groups(3, seed=8)
    fit = emkit.fit_gaussian_mixtures(arrays, n_components=2, random_state=0)
    estimator = fit.estimator(1)
    estimator.save(tmp_path / "group1.emkit")
    loaded = emkit.load(tmp_path / "group1.emkit")
    np.testing.assert_array_equal(loaded.predict(arrays[1]), estimator.predict(arrays[1]))
    assert loaded.score(arrays[1]) == pytest.approx(fit.lower_bound_[1], rel=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_squarem_groups_are_independent_fits(covariance_type):
    """Per-group SQUAREM: a group's step lengths, acceptances and convergence depend on that
    group alone, so fitting the groups together gives each group's fit alone."""
    arrays = _groups(10, seed=9, n_features=2)
    together = emkit.fit_gaussian_mixtures(arrays, n_components=2, random_state=3,
                                           covariance_type=covariance_type)
    assert together.converged_.all()
    start = _start(emkit.fit_gaussian_mixtures(arrays, n_components=2, max_iter=0,
                                               random_state=3, covariance_type=covariance_type))
    for g, X in enumerate(arrays):
        alone = emkit.fit_gaussian_mixtures(
            [X], n_components=2, covariance_type=covariance_type,
            **{name: value[g:g + 1] for name, value in start.items()})
        assert together.n_iter_[g] == alone.n_iter_[0]
        assert together.lower_bound_[g] == pytest.approx(alone.lower_bound_[0], rel=1e-12)
        np.testing.assert_allclose(together.means_[g], alone.means_[0], rtol=1e-10, atol=1e-12)


def test_squarem_groups_reach_the_maximum_of_long_plain_em():
    """Each group's SQUAREM fit ends where plain EM run far beyond the default tolerance ends
    (same start), no lower than tol per sample, with fewer M-steps in all."""
    arrays = _groups(16, seed=11, n_features=2)
    start = _start(emkit.fit_gaussian_mixtures(arrays, n_components=3, max_iter=0,
                                               random_state=0))
    fast = emkit.fit_gaussian_mixtures(arrays, n_components=3, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = emkit.fit_gaussian_mixtures(arrays, n_components=3, accelerate=None, **start)
        long = emkit.fit_gaussian_mixtures(arrays, n_components=3, accelerate=None, tol=1e-12,
                                           max_iter=20_000, **start)
    assert fast.converged_.all()
    shortfall = (long.lower_bound_ - fast.lower_bound_) * fast.n_samples_
    assert np.all(shortfall < 1e-6 * fast.n_samples_)
    assert fast.n_iter_.sum() < plain.n_iter_.sum()
    # a group's objective never fell: its last objectives (the window) rise
    recent = fast.estimator(0).history_
    assert np.all(np.diff(recent) >= -1e-10 * np.abs(recent[1:]))


def test_em_step_remaining_gain_rows_is_em_step_remaining_gain_row_by_row():
    rng = np.random.default_rng(1)
    gains = np.concatenate([rng.exponential(size=20), [0.0, 1e-17, -1e-12, -1.0, 2.0, 3.0]])
    rates = np.concatenate([rng.uniform(size=20), [0.5, 0.5, 0.5, 0.5, 1.0, 0.99]])
    shortfalls = np.concatenate([rng.exponential(size=20) * (rng.uniform(size=20) < 0.3),
                                 [0.0, 0.1, 0.0, 0.0, 0.0, 0.5]])
    objectives = rng.normal(scale=100, size=len(gains))
    expected = [em_step_remaining_gain(EMStep(g, r, s), o)
                for g, r, s, o in zip(gains, rates, shortfalls, objectives, strict=True)]
    np.testing.assert_allclose(
        em_step_remaining_gain_rows(EMStep(gains, rates, shortfalls), objectives), expected,
        rtol=1e-12)


def test_shrinking_the_stack_leaves_every_fit_unchanged(monkeypatch):
    """The stack shrinks to its running groups once half have converged, at the end of a
    SQUAREM cycle; each group carries its own convergence state and step bound, so under plain
    EM and under SQUAREM every group's fit is bit for bit the fit of the whole stack. (Before
    the step bounds travelled with the groups, one group of these 96 ended at another
    maximum.)"""
    import emkit.estimators.batched as batched

    arrays = _groups(96, seed=12)
    fits = {}
    for shrink in (False, True):
        monkeypatch.setattr(batched, "_SHRINK_MIN_GROUPS", 8 if shrink else 10**9)
        fits[shrink] = {accelerate: emkit.fit_gaussian_mixtures(
            arrays, n_components=2, random_state=4, accelerate=accelerate)
            for accelerate in (None, "squarem")}
    for accelerate in (None, "squarem"):
        shrunk, whole = fits[True][accelerate], fits[False][accelerate]
        assert shrunk.converged_.all()
        np.testing.assert_array_equal(shrunk.n_iter_, whole.n_iter_)
        np.testing.assert_array_equal(shrunk.means_, whole.means_)
        np.testing.assert_array_equal(shrunk.lower_bound_, whole.lower_bound_)


def test_a_cycle_end_of_mixed_blocks_evaluates_only_the_rejected_ones(monkeypatch):
    """Where some groups accept their extrapolation and others fall back to the EM point,
    the cycle's end point reuses the accepted groups' statistics and runs the E-step of the
    others alone: every group's fit is bit for bit the one a full E-step gives."""
    from emkit.models.batched_gaussian import BatchedGaussianMixtureModel

    arrays = _groups(48, seed=3)
    merged = BatchedGaussianMixtureModel.merge_evaluated
    skipped = []

    def spy(self, mask, point, params, evaluate):
        skipped.append(int(np.count_nonzero(mask & params.active)))
        return merged(self, mask, point, params, evaluate)

    monkeypatch.setattr(BatchedGaussianMixtureModel, "merge_evaluated", spy)
    partial = emkit.fit_gaussian_mixtures(arrays, n_components=3, random_state=2)
    assert skipped and max(skipped) > 0  # (the partial E-step did run, and skipped groups)
    monkeypatch.setattr(BatchedGaussianMixtureModel, "merge_evaluated", None)
    full = emkit.fit_gaussian_mixtures(arrays, n_components=3, random_state=2)
    np.testing.assert_array_equal(partial.n_iter_, full.n_iter_)
    np.testing.assert_array_equal(partial.means_, full.means_)
    np.testing.assert_array_equal(partial.covariances_, full.covariances_)
    np.testing.assert_array_equal(partial.lower_bound_, full.lower_bound_)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_squarem_never_lowers_a_group_with_a_collapsing_component(covariance_type):
    """Groups where a component collapses onto two rows (its variance heads for reg_covar):
    an extrapolation below reg_covar·I is refused (no EM step could follow it), so SQUAREM
    never lowers any group's log-likelihood (the engine warns on a decrease)."""
    arrays = [np.random.default_rng(g).normal(size=(50, 2)) + (g % 3) for g in range(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", emkit.errors.LikelihoodDecreaseWarning)
        fit = emkit.fit_gaussian_mixtures(arrays, n_components=2, random_state=0,
                                          covariance_type=covariance_type)
    assert fit.converged_.all()


@pytest.mark.parametrize("form", ["numpy", "compiled"])
def test_precision_factors_invert_the_covariances_and_flag_the_singular(form, monkeypatch):
    # Both forms (emkit.kernels.tiers) against numpy's inverse; a matrix with NaN, one that is
    # singular, one with a negative variance and one not positive definite get the identity.
    from emkit.kernels import tiers
    from emkit.models.batched_gaussian import precision_cholesky

    monkeypatch.setattr(tiers, "MODE", form)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 5, 3, 6))
    covariances = A @ np.swapaxes(A, -1, -2)
    covariances[0, 0, 1, 1] = np.nan
    covariances[0, 1] = [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]]
    covariances[0, 2, 0, 0] = -1.0
    covariances[0, 3] = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    P, bad = precision_cholesky(covariances, "full")
    expected_bad = np.zeros((4, 5), dtype=bool)
    expected_bad[0, :4] = True
    np.testing.assert_array_equal(bad, expected_bad)
    np.testing.assert_array_equal(P[bad], np.broadcast_to(np.eye(3), (4, 3, 3)))
    np.testing.assert_array_equal(np.tril(P, -1), 0.0)
    np.testing.assert_allclose(P[~bad] @ np.swapaxes(P[~bad], -1, -2),
                               np.linalg.inv(covariances[~bad]), rtol=1e-10, atol=1e-12)
