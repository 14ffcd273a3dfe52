"""mclust's grid fitted as one stack (emkit.estimators.grid, select_model's default path).

- Under plain EM, each (model, K) group of a stack — every one of the 14 covariance models,
  groups of fewer components padded — follows GaussianMixture(accelerate=None) from the same
  start step for step: the same number of iterations, log-likelihood and parameters.
- Under SQUAREM, each group reaches plain EM's maximum (within the convergence tolerance) and
  keeps its model's constraints (equal volumes, shapes, orientations; diagonal, spherical).
- select_model's stacked grid against the same grid fitted one model at a time: no cell worse,
  the same best model, and fitted estimators that work as the single fits' do.
- Integer row weights count as repeated rows.
- The grid is fitted one model at a time where it must be (dtype=float32, NaN, other starts,
  restarts, too many rows), and a cell the stack hands back (None) is fitted on its own.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from emkit import datasets, select_model
from emkit.estimators import grid, selection
from emkit.estimators.batched import fit_stack, stack_params
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.families import parsimonious
from emkit.families.gaussian import covariances_from_precisions
from emkit.families.parsimonious import MODELS, layout
from emkit.models.batched_gaussian import GroupedRows, precision_cholesky

FAITHFUL = datasets.load("faithful").data
IRIS = load_iris().data
# The groups of a stack, out of order: the padded groups are first and last.
GROUP_KS = (2, 3, 1)
K_MAX = max(GROUP_KS)
TOL = 1e-6


@pytest.fixture(params=["faithful", "iris"])
def X(request):
    return {"faithful": FAITHFUL, "iris": IRIS}[request.param]


def _start(X, model: str, K: int) -> dict:
    """A rough start in the model's constraints (one EM step from k-means++ seeds), as
    GaussianMixture's weights/means/precisions_init."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one step does not converge
        fit = GaussianMixture(K, covariance_type=model, max_iter=1, init_params="k-means++",
                              random_state=0).fit(X)
    return dict(weights_init=fit.weights_, means_init=fit.means_,
                precisions_init=fit.precisions_)


def _fit_stack(X, model: str, starts: list[dict], accelerate):
    """The groups of GROUP_KS from ``starts``, one stack of full matrices padded to K_MAX
    components (weight 0, mean 0, identity covariance)."""
    G, D = len(GROUP_KS), X.shape[1]
    weights = np.zeros((G, K_MAX))
    means = np.zeros((G, K_MAX, D))
    covariances = np.broadcast_to(np.eye(D), (G, K_MAX, D, D)).copy()
    for g, (K, start) in enumerate(zip(GROUP_KS, starts, strict=True)):
        weights[g, :K] = start["weights_init"]
        means[g, :K] = start["means_init"]
        kind = layout(model)
        covariances[g, :K] = parsimonious.as_matrices(
            covariances_from_precisions(start["precisions_init"], kind), kind, K, D)
    P, bad = precision_cholesky(covariances, "full")
    assert not bad.any()
    present = np.arange(K_MAX) < np.array(GROUP_KS)[:, None]
    rows = GroupedRows(np.ascontiguousarray(np.broadcast_to(X, (G,) + X.shape)),
                       np.ones((G, len(X))))
    return fit_stack(rows, stack_params(weights, means, covariances, P),
                     np.full(G, float(len(X))), K_MAX, "full", 1e-6, TOL, 1000, accelerate,
                     np.array([model] * G), present)


def _violations(model: str, S: np.ndarray) -> dict[str, float]:
    """How far the covariances S (K, D, D) are from the constraints of ``model`` (0 when
    kept exactly): with Σ_k = λ_k C_k, det C_k = 1 — equal volumes λ_k (E..), equal shapes
    (sorted eigenvalues of C_k, .E.), the identity shape (.I.), diagonal matrices (..I), a
    common orientation (..E: the Σ_k commute) and, for EEE and VEE, equal C_k."""
    D = S.shape[-1]
    volumes = np.linalg.det(S) ** (1.0 / D)
    C = S / volumes[:, None, None]
    scale = np.abs(S).max()
    found = {}
    if model[0] == "E":
        found["equal volumes"] = np.ptp(volumes) / volumes.mean()
    if model[1] == "I":
        found["spherical"] = np.abs(C - np.eye(D)).max()
    if model[1] == "E":
        found["equal shapes"] = np.ptp(np.linalg.eigvalsh(C), axis=0).max()
    if model[2] == "I":
        found["diagonal"] = np.abs(S - S * np.eye(D)).max() / scale
    if model[2] == "E":
        found["common orientation"] = max(np.abs(a @ b - b @ a).max() for a in S
                                          for b in S) / scale**2
        if model[1] == "E":
            found["equal C_k"] = np.ptp(C, axis=0).max()
    return found


def _assert_constraints(model: str, S: np.ndarray, what: str):
    violations = {name: value for name, value in _violations(model, S).items()
                  if not value < 1e-9}
    assert not violations, f"{what}: {model}'s constraints broken: {violations}"


# ---------------------------------------------------------------------- one stack, 14 models
@pytest.mark.parametrize("model", MODELS)
def test_plain_em_each_group_equals_gaussian_mixture_from_the_same_start(model, X):
    n = len(X)
    starts = [_start(X, model, K) for K in GROUP_KS]
    stack = _fit_stack(X, model, starts, accelerate=None)
    assert stack.converged.all() and not stack.degenerate.any()
    # the start is rough: the K=3 fit iterates (iterative M-steps run many times)
    assert stack.n_iter[GROUP_KS.index(3)] > 5
    for g, (K, start) in enumerate(zip(GROUP_KS, starts, strict=True)):
        single = GaussianMixture(K, covariance_type=model, accelerate=None, **start).fit(X)
        what = f"{model}, K={K}"
        assert stack.n_iter[g] == single.n_iter_, what
        assert stack.log_likelihood[g] == pytest.approx(single.lower_bound_ * n, rel=1e-9), what
        np.testing.assert_allclose(stack.weights[g, :K], single.weights_, rtol=1e-7, atol=1e-9,
                                   err_msg=what)
        np.testing.assert_allclose(stack.means[g, :K], single.means_, rtol=1e-7, atol=1e-9,
                                   err_msg=what)
        np.testing.assert_allclose(
            stack.covariances[g, :K],
            parsimonious.as_matrices(single.covariances_, layout(model), K, X.shape[1]),
            rtol=1e-7, atol=1e-9, err_msg=what)
        # the padding takes no part: no weight, and the group's own weights sum to 1
        np.testing.assert_array_equal(stack.weights[g, K:], 0.0)
        assert stack.weights[g].sum() == pytest.approx(1.0, abs=1e-12)
        _assert_constraints(model, stack.covariances[g, :K], what)


@pytest.mark.parametrize("model", MODELS)
def test_squarem_reaches_plain_em_maximum_within_the_constraints(model, X):
    n = len(X)
    starts = [_start(X, model, K) for K in GROUP_KS]
    plain = _fit_stack(X, model, starts, accelerate=None)
    fast = _fit_stack(X, model, starts, accelerate="squarem")
    assert fast.converged.all() and not fast.degenerate.any()
    for g, K in enumerate(GROUP_KS):
        what = f"{model}, K={K}"
        assert fast.log_likelihood[g] >= plain.log_likelihood[g] - TOL * n, (
            what, fast.log_likelihood[g], plain.log_likelihood[g])
        np.testing.assert_array_equal(fast.weights[g, K:], 0.0)
        assert fast.weights[g].sum() == pytest.approx(1.0, abs=1e-12)
        _assert_constraints(model, fast.covariances[g, :K], what)


def test_the_constraint_check_sees_an_unconstrained_fit():
    # VVV's three covariances on faithful keep none of the other models' constraints, so
    # the checks above can fail.
    starts = [_start(FAITHFUL, "VVV", K) for K in GROUP_KS]
    stack = _fit_stack(FAITHFUL, "VVV", starts, accelerate=None)
    S = stack.covariances[GROUP_KS.index(3)]
    for model in MODELS[:-1]:
        assert max(_violations(model, S).values()) > 1e-3, model


# ---------------------------------------------------------------------- select_model's grid
def _spy_fit_grid(monkeypatch, calls: list, set_aside=()):
    """Record the cells of every fit_grid call; the cells ``set_aside`` come back None."""
    real = grid.fit_grid

    def spy(X, sample_weight, cells, **settings):
        calls.append(list(cells))
        fits = real(X, sample_weight, cells, **settings)
        return [None if cell in set_aside else fit for cell, fit in zip(cells, fits,
                                                                         strict=True)]

    monkeypatch.setattr(grid, "fit_grid", spy)


def _spy_single_fits(monkeypatch, fitted: list):
    """Record (covariance_type, n_components) of every GaussianMixture.fit."""
    real = GaussianMixture.fit

    def fit(self, *args, **kwargs):
        fitted.append((self.covariance_type, self.n_components))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "fit", fit)


@pytest.fixture(scope="module")
def grids():
    """faithful, K 1..3, all models: the stacked grid, and the grid one fit at a time."""
    with pytest.MonkeyPatch.context() as patch:
        calls, fitted = [], []
        _spy_fit_grid(patch, calls)
        _spy_single_fits(patch, fitted)
        stacked = select_model(FAITHFUL, range(1, 4), "all", random_state=0)
        assert len(calls) == 1 and fitted == []  # every cell came from the stack
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "_fit_as_grid",
                      lambda X, w, cells, params, announce: ([None] * len(cells), None))
        alone = select_model(FAITHFUL, range(1, 4), "all", random_state=0)
    return stacked, alone


def _cells(result):
    return [(row["covariance_type"], row["n_components"]) for row in result.table]


def test_stacked_grid_is_no_worse_than_one_fit_at_a_time(grids):
    stacked, alone = grids
    n = len(FAITHFUL)
    assert _cells(stacked) == _cells(alone) == [(m, K) for m in MODELS for K in (1, 2, 3)]
    worse = [(cell, a["log_likelihood"], b["log_likelihood"])
             for cell, a, b in zip(_cells(stacked), stacked.table, alone.table, strict=True)
             if a["log_likelihood"] < b["log_likelihood"] - TOL * n]
    assert not worse, f"cells below the one-at-a-time fit (stacked, alone): {worse}"
    assert all(row["converged"] and not row["collapsed"] for row in stacked.table)
    best = (stacked.best["covariance_type"], stacked.best["n_components"])
    assert best == (alone.best["covariance_type"], alone.best["n_components"])
    # the same partition, its components perhaps in another order (from another start)
    assert grid._same_partition(stacked.classification, alone.classification)


def test_stacked_grid_estimators_work_as_single_fits(grids):
    stacked, alone = grids
    n, D = FAITHFUL.shape
    for (model, K), row, fit, single in zip(_cells(stacked), stacked.table, stacked.estimators,
                                            alone.estimators, strict=True):
        what = f"{model}, K={K}"
        assert isinstance(fit, GaussianMixture), what
        assert (fit.covariance_type, fit.n_components) == (model, K), what
        assert fit.converged_, what
        kind = layout(model)
        shape = {"spherical": (K,), "diag": (K, D), "tied": (D, D), "full": (K, D, D)}[kind]
        assert np.shape(fit.covariances_) == np.shape(single.covariances_) == shape, what
        assert np.shape(fit.precisions_cholesky_) == shape, what
        assert fit.n_parameters() == single.n_parameters() == parsimonious.n_parameters(
            model, K, D), what
        proba = fit.predict_proba(FAITHFUL)
        assert proba.shape == (n, K), what
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12, err_msg=what)
        assert fit.score(FAITHFUL) * n == pytest.approx(row["log_likelihood"], rel=1e-12), what
        # precisions_ and covariances_ describe the same matrices, within the model
        S = parsimonious.as_matrices(fit.covariances_, kind, K, D)
        np.testing.assert_allclose(
            parsimonious.as_matrices(fit.precisions_, kind, K, D) @ S,
            np.broadcast_to(np.eye(D), (K, D, D)), atol=1e-9, err_msg=what)
        _assert_constraints(model, S, what)


def test_integer_row_weights_count_as_repeated_rows(monkeypatch):
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, len(FAITHFUL))  # some rows left out (weight 0)
    calls = []
    _spy_fit_grid(monkeypatch, calls)
    weighted = select_model(FAITHFUL, range(1, 3), "all", sample_weight=weights,
                            random_state=0)
    repeated = select_model(np.repeat(FAITHFUL, weights, axis=0), range(1, 3), "all",
                            random_state=0)
    assert len(calls) == 2  # both fitted as a stack
    assert _cells(weighted) == _cells(repeated)
    for cell, a, b in zip(_cells(weighted), weighted.table, repeated.table, strict=True):
        assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], rel=1e-6), cell
        assert a["n_parameters"] == b["n_parameters"], cell
        assert a["converged"] and b["converged"], cell
    assert weighted.best_index == repeated.best_index


# ---------------------------------------------------------------------- falling back
def _no_grid(*args, **kwargs):
    raise AssertionError("fit_grid must not run here")


def _with_nan():
    X = FAITHFUL.copy()
    X[5, 1] = np.nan
    return X


@pytest.mark.parametrize("case", ["float32", "nan", "kmeans", "n_init"])
def test_grid_is_fitted_one_model_at_a_time_where_it_must(case, monkeypatch):
    # (float32 rows with the default dtype are fitted in float64, as one fit does: stacked)
    X, params = {"float32": (FAITHFUL, {"dtype": np.float32}),
                 "nan": (_with_nan(), {}),
                 "kmeans": (FAITHFUL, {"init_params": "kmeans"}),
                 "n_init": (FAITHFUL, {"n_init": 2})}[case]
    monkeypatch.setattr(grid, "fit_grid", _no_grid)
    fitted = []
    _spy_single_fits(monkeypatch, fitted)
    result = select_model(X, range(1, 3), "all", random_state=0, **params)
    cells = [(m, K) for m in MODELS for K in (1, 2)]
    assert _cells(result) == cells
    assert fitted == cells
    assert all(np.isfinite(row["log_likelihood"]) and row["converged"] for row in result.table)


def test_a_cell_the_stack_hands_back_is_fitted_on_its_own(grids, monkeypatch):
    stacked, alone = grids
    set_aside = [("EII", 2), ("VEV", 3)]
    calls, fitted = [], []
    _spy_fit_grid(monkeypatch, calls, set_aside)
    _spy_single_fits(monkeypatch, fitted)
    result = select_model(FAITHFUL, range(1, 4), "all", random_state=0)
    assert len(calls) == 1
    assert fitted == set_aside
    for i, cell in enumerate(_cells(result)):
        # the cells set aside are the one-at-a-time fits, the others the stack's
        reference = (alone if cell in set_aside else stacked).table[i]["log_likelihood"]
        assert result.table[i]["log_likelihood"] == pytest.approx(reference, rel=1e-12), cell
    assert result.best_index == stacked.best_index


def test_scikit_learn_names_are_their_models_in_the_stack(monkeypatch):
    """"full", "spherical", "diag" and "tied" next to VVV, VII, VVI and EEE in one grid: each
    alias is fitted under its model's constraints, to the same maximum."""
    calls = []
    _spy_fit_grid(monkeypatch, calls)
    X = datasets.load("faithful").data
    kinds = ("full", "VVV", "spherical", "VII", "diag", "VVI", "tied", "EEE")
    result = select_model(X, range(1, 4), kinds, random_state=0)
    assert [len(cells) for cells in calls] == [len(kinds) * 3]
    rows = {(row["covariance_type"], row["n_components"]): row for row in result.table}
    for alias, model in parsimonious.ALIASES.items():
        for K in range(1, 4):
            assert rows[alias, K]["log_likelihood"] == pytest.approx(
                rows[model, K]["log_likelihood"], rel=1e-10)
    spherical = result.estimators[kinds.index("spherical") * 3 + 2]
    assert spherical.covariances_.shape == (3,)


def test_the_command_line_grid_is_stacked(monkeypatch, capsys):
    """``emkit select gmm --models all`` passes every GaussianMixture parameter, at its
    default: the grid is still fitted as one stack."""
    from emkit.cli import main

    calls = []
    _spy_fit_grid(monkeypatch, calls)
    status = main(["select", "gmm", str(datasets.path("faithful")), "--models", "all", "-k",
                   "1-2"])
    assert status == 0
    assert [len(cells) for cells in calls] == [28]
    assert "best" in capsys.readouterr().out


def test_the_hierarchical_start_alone_is_stacked_and_no_worse(monkeypatch):
    """``init_params="hierarchical"`` (mclust's start alone) is fitted as one stack too, each
    fit from its K's agglomeration, and no cell ends below the same start fitted alone."""
    calls = []
    with monkeypatch.context() as patch:
        _spy_fit_grid(patch, calls)
        stacked = select_model(IRIS, range(1, 4), "all", random_state=0,
                               init_params="hierarchical")
    assert [len(cells) for cells in calls] == [len(MODELS) * 3]
    monkeypatch.setattr(selection, "_fit_as_grid",
                        lambda X, w, cells, params, announce: ([None] * len(cells), None))
    alone = select_model(IRIS, range(1, 4), "all", random_state=0, init_params="hierarchical")
    n = len(IRIS)
    worse = [(cell, a["log_likelihood"], b["log_likelihood"])
             for cell, a, b in zip(_cells(stacked), stacked.table, alone.table, strict=True)
             if a["log_likelihood"] < b["log_likelihood"] - TOL * n]
    assert not worse, f"cells below the one-at-a-time fit (stacked, alone): {worse}"


def test_the_stack_validates_the_rows_as_every_fit_does():
    """A constant column is refused with the error a fit gives (the stack skipped the check
    once), and a table's column names reach the stacked fits as fitted ones get them."""
    import pandas as pd

    from emkit.errors import DataError

    with_constant = np.column_stack([FAITHFUL, np.full(len(FAITHFUL), 5.0)])
    with pytest.raises(DataError, match="constant"):
        select_model(with_constant, range(1, 3), "all", random_state=0)
    table = pd.DataFrame(FAITHFUL, columns=["eruptions", "waiting"])
    result = select_model(table, range(1, 3), ["VVV", "EII"], random_state=0)
    for fit in result.estimators:
        assert list(fit.feature_names_in_) == ["eruptions", "waiting"]
    np.testing.assert_allclose(result.best_estimator.predict_proba(table).sum(axis=1), 1.0)


def test_a_large_data_sets_fits_share_one_agglomeration_of_one_subsample(monkeypatch):
    # Above the agglomeration's row limit each fit agglomerates a subsample; a grid's fits of
    # every K draw the same one (the anchor draws first), so one hierarchy serves them all,
    # as mclust's hc() does.
    from emkit.models import clustering
    from emkit.models.mixture import _agglomeration_limit

    monkeypatch.setattr(clustering, "_HIERARCHIES", {})
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(3 * c, 1.0, (300, 12)) for c in range(2)])
    assert len(X) > _agglomeration_limit(X.shape[1])
    select_model(X, range(1, 4), ("VVV", "EEE"), random_state=0)
    assert len(clustering._HIERARCHIES) == 1


def test_a_shrinking_stack_goes_on_from_where_it_stopped(monkeypatch):
    """The stack shrinks at the cycle's end where half its fits have converged, and goes on
    from there. A fit stopped early returns its best point instead, which on geyser at
    mclust's looser tolerance was an earlier one at one of its shrinks (an iterative M-step,
    stopped by its own tolerance, had lowered the stack's log-likelihood by a hair since): the
    stack then repeated the same 30 passes until its 1,000 were spent, and 27 fits ended
    unconverged. Now every fit converges, bit for bit as in the stack that never shrinks."""
    import emkit.estimators.batched as batched

    X = datasets.load("geyser").data
    fits = {}
    for shrink in (True, False):
        monkeypatch.setattr(batched, "_SHRINK_MIN_GROUPS", 8 if shrink else 10**9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[shrink] = select_model(X, range(1, 10), "all", random_state=0, tol=4.6e-5,
                                        init_params="hierarchical").estimators
    for shrunk, whole in zip(fits[True], fits[False], strict=True):
        assert shrunk.converged_
        assert shrunk.n_iter_ == whole.n_iter_
        np.testing.assert_array_equal(shrunk.means_, whole.means_)


@pytest.mark.parametrize("weighted", [False, True])
def test_a_grid_of_more_rows_chooses_on_a_subsample_and_converges_on_all_rows(weighted,
                                                                              monkeypatch):
    """Above GRID_MAX_ROWS rows every stage runs on a subsample of that many rows, and only
    each fit's best maximum there goes on to all rows, in one more stack. Each fit then ends
    at a maximum of all the rows: EM from it, to the same tolerance, gains nothing more."""
    monkeypatch.setattr(grid, "GRID_MAX_ROWS", 150)
    stacks = []  # the rows of every stack run
    run = grid._Grid.run
    monkeypatch.setattr(grid._Grid, "run",
                        lambda self, *args: stacks.append(len(self.X)) or run(self, *args))
    fitted = []
    _spy_single_fits(monkeypatch, fitted)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(FAITHFUL)) if weighted else None
    result = select_model(FAITHFUL, range(1, 4), ["VII", "EEE", "VVV", "EVE"], random_state=0,
                          sample_weight=w)
    assert fitted == []  # every cell from the stacks
    assert stacks[-1] == len(FAITHFUL) and set(stacks[:-1]) == {150}
    n = len(FAITHFUL) if w is None else w.sum()
    for mixture, row in zip(result.estimators, result.table, strict=True):
        assert row["converged"]
        again = mixture.set_params(warm_start=True).fit(FAITHFUL, sample_weight=w)
        gained = again.score(FAITHFUL, sample_weight=w) * n - row["log_likelihood"]
        assert gained < 10 * TOL * n


def test_the_grids_posteriors_are_each_mixtures_in_chunks_of_any_size(monkeypatch):
    """_Grid.posteriors, computed a few mixtures at a time, is each padded mixture's own
    posterior (scipy's densities), whatever the chunk."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 2))
    G, K = 5, 3
    present = np.arange(K) < np.array([1, 2, 3, 2, 3])[:, None]
    weights = np.where(present, rng.uniform(0.2, 1.0, (G, K)), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    means = rng.normal(size=(G, K, 2))
    root = rng.normal(size=(G, K, 2, 2))
    covariances = root @ np.swapaxes(root, -1, -2) + 0.3 * np.eye(2)
    P, _ = precision_cholesky(covariances, "full")
    params = stack_params(weights, means, covariances, P)
    stack = grid._Grid(X, None, K, 1e-6)
    expected = np.zeros((G, len(X), K))
    for g in range(G):
        for k in np.flatnonzero(present[g]):
            expected[g, :, k] = weights[g, k] * multivariate_normal(
                means[g, k], covariances[g, k]).pdf(X)
    expected /= expected.sum(axis=2, keepdims=True)
    for chunk in (1, 2 * K * len(X) * 2, 2**21):
        monkeypatch.setattr(grid, "_POSTERIOR_CHUNK", chunk)
        np.testing.assert_allclose(stack.posteriors(params, present), expected, rtol=1e-10,
                                   atol=1e-14)


def test_merged_posteriors_join_the_two_components_that_share_the_most_rows():
    rng = np.random.default_rng(3)
    resp = rng.dirichlet(np.ones(4), 50)
    resp[:, 3] = resp[:, 1]  # components 1 and 3 share every row's weight alike
    resp /= resp.sum(axis=1, keepdims=True)
    merged = grid.merged_posteriors(resp)
    np.testing.assert_allclose(merged, np.column_stack([resp[:, 0], resp[:, 1] + resp[:, 3],
                                                        resp[:, 2]]))
    # components that never share a row are merged last
    hard = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    hard[:2] = [[0.6, 0.4, 0.0]] * 2  # rows of component 0 partly in 1
    np.testing.assert_allclose(grid.merged_posteriors(hard)[:, 0], [1, 1, 1, 1, 0, 0])


def test_split_posteriors_cut_the_most_spread_component_across_its_main_axis():
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(size=(40, 2)) * [0.3, 0.3],  # a tight cluster
                   rng.normal(size=(60, 2)) * [4.0, 0.5] + [10.0, 0.0]])  # a long one
    resp = np.repeat(np.eye(2), [40, 60], axis=0)
    split = grid.split_posteriors(X, resp)
    assert split.shape == (100, 3)
    np.testing.assert_array_equal(split[:40], np.eye(3)[[0] * 40])  # the tight one stays
    # the long one, cut at its mean across its long (x) axis: one side stays, one is new
    beyond = X[40:, 0] > X[40:, 0].mean()
    halves = {tuple(split[40:, 1] > 0), tuple(split[40:, 2] > 0)}
    assert halves == {tuple(beyond), tuple(~beyond)}
    np.testing.assert_allclose(split.sum(axis=1), 1.0)


def test_same_partition_is_equal_co_membership_of_every_pair_of_rows():
    # the definition, brute force: two labellings are one partition when every pair of rows
    # is together in both or apart in both (label names and unused labels do not matter)
    rng = np.random.default_rng(5)
    for _ in range(500):
        n, K = int(rng.integers(1, 15)), int(rng.integers(1, 5))
        a = rng.integers(0, K, n)
        if rng.random() < 0.5:
            b = rng.permutation(K + 2)[a]  # renamed labels, some unused
            if rng.random() < 0.5:
                b[rng.integers(n)] = rng.integers(0, K + 2)  # perhaps one row moved
        else:
            b = rng.integers(0, K + 1, n)
        together = (a[:, None] == a[None, :]) == (b[:, None] == b[None, :])
        assert grid._same_partition(a, b) == bool(together.all()), (a, b)


def test_every_fit_also_starts_from_its_neighbours_in_k_merged_and_split(monkeypatch):
    """A fit of K components also starts from the best fit of K + 1 (by BIC after the race)
    with its two most overlapping components merged, and from the best fit of K − 1 with its
    most spread component split, where those partition the rows otherwise."""
    merged, split = [], []
    merge, cut = grid.merged_posteriors, grid.split_posteriors
    monkeypatch.setattr(grid, "merged_posteriors",
                        lambda resp: merged.append(resp.shape[1]) or merge(resp))
    monkeypatch.setattr(grid, "split_posteriors",
                        lambda X, resp: split.append(resp.shape[1]) or cut(X, resp))
    select_model(FAITHFUL, range(1, 5), ["VII", "VVV", "EVE"], random_state=0)
    assert sorted(merged) == [2, 3, 4]  # from K + 1 = 2, 3, 4 for K = 1, 2, 3
    assert sorted(split) == [1, 2, 3]  # from K − 1 = 1, 2, 3 for K = 2, 3, 4
