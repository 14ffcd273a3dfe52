"""FixedMixture: input forms (dense, log, sparse, model lists), the sparse kernel, the engine's
``params_converged`` hook, bad input, persistence, the command line and the docs example.

The optimum itself is checked against an independent solver in
tests/reference/test_fixed_mixture_optimum.py; the EM invariants in tests/contracts.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
from sklearn.utils.estimator_checks import parametrize_with_checks

import emkit
from emkit import FixedMixture, fit_em
from emkit.cli import main
from emkit.data.chunks import Batch
from emkit.errors import ConvergenceWarning, DataError, NotFittedError, ParameterError
from emkit.models import fixed_mixture as fm
from emkit.models.fixed_mixture import FixedMixtureModel, FixedMixtureParams, likelihood_matrix


def sparse_likelihoods(seed=0, n=3000, M=40, per_row=4) -> sp.csr_matrix:
    """Reads × transcripts: every row compatible with a few random columns."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, M, n * per_row)
    return sp.csr_matrix((rng.uniform(0.1, 1.0, n * per_row), (rows, cols)), shape=(n, M))


def direct_objective(L, lam, w=None):
    w = np.ones(L.shape[0]) if w is None else w
    return float(w @ np.log(np.asarray(L @ lam).ravel()))


# ---------------------------------------------------------------------------- E-step
@pytest.mark.parametrize("parallel", [False, True])
def test_sparse_kernel_equals_dense_e_step(parallel, monkeypatch):
    if parallel:  # force the threaded path (several parts) on a small matrix
        monkeypatch.setattr(fm, "_PARALLEL_MIN_NNZ", 0)
    L = sparse_likelihoods()
    w = np.random.default_rng(1).uniform(0, 2, L.shape[0])
    w[::7] = 0.0
    params = FixedMixtureParams(np.random.default_rng(2).dirichlet(np.ones(L.shape[1])))
    model = FixedMixtureModel()
    sparse_stats, sparse_ll = model.e_step(params, Batch(L, w))
    dense_stats, dense_ll = model.e_step(params, Batch(L.toarray(), w))
    np.testing.assert_allclose(sparse_stats.responsibility, dense_stats.responsibility,
                               rtol=1e-12)
    np.testing.assert_allclose(sparse_ll, dense_ll, rtol=1e-13)
    # Independent formulas: r_ij = λ_j L_ij / (Lλ)_i, log-likelihood Σ w log(Lλ).
    dense = L.toarray()
    resp = dense * params.weights / (dense @ params.weights)[:, None]
    np.testing.assert_allclose(sparse_stats.responsibility, w @ resp, rtol=1e-12)
    np.testing.assert_allclose(sparse_ll, direct_objective(dense, params.weights, w),
                               rtol=1e-13)


def test_log_input_is_rescaled_per_row():
    log_L = np.array([[-1000.0, -1001.0], [-np.inf, 3.0], [0.5, 0.5]])
    data = likelihood_matrix(log_L, log=True)
    np.testing.assert_allclose(data.log_scale, [-1000.0, 3.0, 0.5])
    np.testing.assert_allclose(data.matrix, [[1.0, np.exp(-1.0)], [0.0, 1.0], [1.0, 1.0]])
    stats_, ll = FixedMixtureModel().e_step(FixedMixtureParams(np.array([0.5, 0.5])), data)
    expected = np.logaddexp(log_L[:, 0], log_L[:, 1]) + np.log(0.5)
    np.testing.assert_allclose(ll, expected.sum(), rtol=1e-14)


def test_zero_likelihood_under_the_mixture_is_minus_infinity():
    """At weights with zeros (an extrapolated point) a row can get likelihood 0: −inf, which
    SQUAREM rejects, never NaN."""
    L = np.array([[1.0, 0.0], [0.0, 1.0]])
    params = FixedMixtureParams(np.array([1.0, 0.0]))
    for chunk in (L, sp.csr_matrix(L)):
        _, ll = FixedMixtureModel().e_step(params, chunk)
        assert ll == -np.inf


# ---------------------------------------------------------------------------- engine hook
def slow_problem(seed=3):
    """Strongly overlapping models: EM converges slowly, the objective flattens early."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, 2000)
    return stats.norm.pdf(x[:, None], [-0.3, -0.1, 0.1, 0.3], 1.0)


def test_params_converged_hook_makes_the_weights_converge_too():
    L = slow_problem()
    init = FixedMixtureParams(np.full(4, 0.25))
    reference = fit_em(FixedMixtureModel(weights_tol=1e-13), L, init=init, tol=1e-14,
                       max_iter=100_000, accelerate="squarem").params.weights
    # plain EM judged on the objective (and the hook): what the hook adds, nothing else
    loose = dict(init=init, tol=1e-6, max_iter=100_000, accelerate=None, xtol=None)
    objective_only = fit_em(FixedMixtureModel(), L, **loose)
    both = fit_em(FixedMixtureModel(weights_tol=1e-7), L, **loose)
    assert objective_only.converged and both.converged
    assert both.n_iter > objective_only.n_iter
    # The objective alone stops with the weights far off; the weights test holds them to it.
    assert np.max(np.abs(objective_only.params.weights - reference)) > 1e-4
    assert np.max(np.abs(both.params.weights - reference)) < 1e-4
    last_step = np.abs(both.params.weights - fit_em(
        FixedMixtureModel(), L, init=init, tol=0.0, max_iter=both.n_iter - 1, accelerate=None,
        warn_not_converged=False).params.weights)
    assert np.max(last_step) <= 1e-7


def test_params_converged_hook_false_never_converges():
    class Never(FixedMixtureModel):
        def params_converged(self, previous, params):
            return False

    L = slow_problem()
    with pytest.warns(ConvergenceWarning):
        result = fit_em(Never(), L, init=FixedMixtureParams(np.full(4, 0.25)), tol=1.0,
                        max_iter=15, accelerate=None, xtol=None)
    assert not result.converged and result.n_iter == 15
    # Without the hook the same tol stops as soon as the remaining-gain estimate has its six
    # points.
    assert fit_em(FixedMixtureModel(), L, init=FixedMixtureParams(np.full(4, 0.25)), tol=1.0,
                  max_iter=15, accelerate=None, xtol=None).n_iter == 5


def overlapping_isoforms(n_reads=5000, n_genes=10, isoforms=20, seed=1) -> sp.csr_matrix:
    """Reads × transcripts where each read fits about half the isoforms of its gene, and a fifth
    of the transcripts are not expressed: EM converges slowly, some weights go to 0."""
    rng = np.random.default_rng(seed)
    n_models = n_genes * isoforms
    abundance = rng.lognormal(0.0, 1.5, n_models) * (rng.uniform(size=n_models) > 0.2)
    source = rng.choice(n_models, n_reads, p=abundance / abundance.sum())
    compatible = rng.uniform(size=(n_reads, isoforms)) < 0.5
    compatible[np.arange(n_reads), source % isoforms] = True
    rows, offsets = np.nonzero(compatible)
    columns = (source[rows] // isoforms) * isoforms + offsets
    length = rng.uniform(500.0, 3000.0, n_models)
    return sp.csr_matrix((1.0 / length[columns], (rows, columns)), shape=(n_reads, n_models))


def test_squarem_needs_far_fewer_iterations_than_plain_em():
    # E-steps until the objective is within 1e-10 (relative) of the optimum. The model's
    # squarem_slack at work: the strict rule (no dip allowed) needs several times more here.
    # (Plain EM: 1725, SQUAREM: 139, strict SQUAREM: 503 when written.)
    data = likelihood_matrix(overlapping_isoforms(seed=0))
    start = FixedMixtureParams(np.full(data.shape[1], 1.0 / data.shape[1]))
    optimum = fit_em(FixedMixtureModel(), data, init=start, tol=0.0, max_iter=3000,
                     accelerate="squarem").history.max()

    class Strict(FixedMixtureModel):
        squarem_slack = 0.0

    n_iter = {}
    for name, model, rule in [("plain", FixedMixtureModel(), None),
                              ("squarem", FixedMixtureModel(), "squarem"),
                              ("strict", Strict(), "squarem")]:
        fit = fit_em(model, data, init=start, tol=0.0, max_iter=20_000, accelerate=rule,
                     callbacks=[lambda info: optimum - info.objective <= 1e-10 * abs(optimum)])
        assert fit.stopped_by_callback and not fit.decreases
        n_iter[name] = fit.n_iter
    assert 8 * n_iter["squarem"] < n_iter["plain"]
    assert 2 * n_iter["squarem"] < n_iter["strict"]


# ---------------------------------------------------------------------------- estimator
def test_dense_sparse_and_log_input_agree():
    L = sparse_likelihoods(seed=4, n=800, M=12)
    dense = FixedMixture().fit(L.toarray())
    sparse = FixedMixture().fit(L)
    with np.errstate(divide="ignore"):
        logged = FixedMixture(log=True).fit(np.log(L.toarray()))
    for other in (sparse, logged):
        np.testing.assert_allclose(other.weights_, dense.weights_, atol=1e-7)
    assert dense.converged_ and dense.n_components_ == 12 and dense.n_features_in_ == 12
    np.testing.assert_allclose(dense.history_[-1], direct_objective(L, dense.weights_),
                               rtol=1e-12)
    np.testing.assert_allclose(dense.lower_bound_, dense.history_[-1] / L.shape[0])
    assert np.all(np.diff(dense.history_) >= -1e-10 * np.abs(dense.history_[1:]))
    # Posteriors: CSR for sparse input, the same values as dense.
    resp = sparse.predict_proba(L)
    assert sp.issparse(resp)
    np.testing.assert_allclose(resp.toarray(), dense.predict_proba(L.toarray()), atol=1e-7)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)
    np.testing.assert_array_equal(sparse.predict(L), resp.toarray().argmax(axis=1))
    np.testing.assert_allclose(sparse.score_samples(L),
                               np.log(L @ sparse.weights_), rtol=1e-12)
    np.testing.assert_allclose(sparse.score(L), np.mean(np.log(L @ sparse.weights_)))


def test_unsupported_model_gets_weight_zero_and_kkt_holds():
    L = sparse_likelihoods(seed=5, n=2000, M=10).toarray()
    L[:, 3] = 0.0
    L = L[L.sum(axis=1) > 0]
    fitted = FixedMixture().fit(L)
    assert fitted.weights_[3] == 0.0
    ratio = (1.0 / (L @ fitted.weights_)) @ L / len(L)
    positive = fitted.weights_ > 1e-6
    np.testing.assert_allclose(ratio[positive], 1.0, atol=1e-6)
    assert np.all(ratio[~positive] <= 1.0 + 1e-6)


def test_sample_weight_integer_is_repeated_rows_and_zero_is_dropped():
    L = sparse_likelihoods(seed=6, n=500, M=8).toarray()
    counts = np.random.default_rng(7).integers(0, 4, len(L))
    weighted = FixedMixture(tol=1e-14, weights_tol=1e-12).fit(L, sample_weight=counts)
    repeated = FixedMixture(tol=1e-14, weights_tol=1e-12).fit(np.repeat(L, counts, axis=0))
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, atol=1e-10)
    # A row that no model explains is fine with weight 0.
    L0 = np.vstack([L, np.zeros(8)])
    fitted = FixedMixture().fit(L0, sample_weight=np.append(np.ones(len(L)), 0.0))
    np.testing.assert_allclose(fitted.weights_, FixedMixture().fit(L).weights_, atol=1e-12)
    assert fitted.score_samples(L0)[-1] == -np.inf


def test_prior_pulls_towards_uniform():
    L = sparse_likelihoods(seed=8, n=300, M=6).toarray()
    L[:, 5] = 0.0
    L = L[L.sum(axis=1) > 0]
    ml = FixedMixture().fit(L)
    flat = FixedMixture(prior=1.0).fit(L)
    strong = FixedMixture(prior=200.0).fit(L)
    np.testing.assert_allclose(flat.weights_, ml.weights_, atol=1e-10)
    assert ml.weights_[5] == 0.0 and strong.weights_[5] > 0.05
    assert np.ptp(strong.weights_) < np.ptp(ml.weights_)
    # MAP M-step closed form at the fixed point: λ ∝ λ ⊙ Lᵀ(1/Lλ) + α − 1.
    lam = strong.weights_
    update = lam * ((1.0 / (L @ lam)) @ L) + 199.0
    np.testing.assert_allclose(update / update.sum(), lam, atol=1e-8)


def test_warm_start_and_weights_init():
    L = sparse_likelihoods(seed=9, n=600, M=5).toarray()
    cold = FixedMixture().fit(L)
    start = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    from_init = FixedMixture(weights_init=start).fit(L)
    np.testing.assert_allclose(from_init.weights_, cold.weights_, atol=1e-7)
    warm = FixedMixture(warm_start=True).fit(L)
    n_cold = warm.n_iter_
    warm.fit(L)
    assert warm.n_iter_ < n_cold
    np.testing.assert_allclose(warm.weights_, cold.weights_, atol=1e-7)


def test_models_list_and_callables_equal_the_log_likelihood_matrix():
    X = emkit.datasets.load("faithful").data
    fit_rows, weight_rows = X[::2], X[1::2]
    members = [emkit.GaussianMixture(k, random_state=0, n_init=2).fit(fit_rows)
               for k in (1, 2, 3)]
    from_models = FixedMixture(models=members).fit(weight_rows)
    matrix = np.column_stack([m.score_samples(weight_rows) for m in members])
    from_matrix = FixedMixture(log=True).fit(matrix)
    np.testing.assert_allclose(from_models.weights_, from_matrix.weights_, atol=1e-12)
    callables = FixedMixture(models=[m.score_samples for m in members]).fit(weight_rows)
    np.testing.assert_allclose(callables.weights_, from_models.weights_, atol=1e-12)
    # The mixture is at least as good as its best member on the rows it was fitted to.
    assert from_models.score(weight_rows) >= max(m.score(weight_rows) for m in members) - 1e-12
    np.testing.assert_allclose(from_models.predict_proba(weight_rows),
                               from_matrix.predict_proba(matrix), atol=1e-10)


def _known_check_failures(estimator) -> dict[str, str]:
    return {
        "check_sample_weight_equivalence_on_sparse_data":
            "sparse matrices hold likelihoods; this instance takes log-likelihoods (log=True)",
        "check_estimator_sparse_tag": "as above: sparse log-likelihoods are refused on purpose",
        "check_dtype_object": "non-numeric input is an emkit DataError (a ValueError), not a "
                              "TypeError",
    }


# scikit-learn's random test data are negative: log-likelihoods are the input that fits them.
@parametrize_with_checks([FixedMixture(log=True)], expected_failed_checks=_known_check_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("X, log, message", [
    (np.array([[0.5, -0.1], [0.2, 0.3]]), False, "negative likelihoods in 1 entries"),
    (np.array([[0.5, np.nan], [0.2, 0.3]]), False, "NaN"),
    (np.array([[0.5, np.inf], [0.2, 0.3]]), False, "infinite"),
    (np.array([[0.5, np.nan], [0.2, 0.3]]), True, "NaN"),
    (np.array([[0.5, np.inf], [0.2, 0.3]]), True, "+inf"),
    (sp.csr_matrix(np.array([[0.5, -1.0], [0.2, 0.3]])), False, "negative likelihoods"),
    (sp.csr_matrix(np.array([[0.5, np.nan], [0.2, 0.3]])), False, "NaN"),
    (sp.csr_matrix(np.array([[0.5, 0.1], [0.2, 0.3]])), True, "sparse input"),
    (np.ones(3), False, "2-D"),
    (np.array([["a", "b"]]), False, "numbers"),
])
def test_bad_matrices_raise_data_errors(X, log, message):
    with pytest.raises(DataError, match=message.replace("+", r"\+")):
        FixedMixture(log=log).fit(X)


@pytest.mark.parametrize("form", ["dense", "sparse", "log"])
def test_rows_no_model_explains_are_counted(form):
    L = np.abs(np.random.default_rng(0).normal(size=(10, 3)))
    L[[2, 5, 7]] = 0.0
    X = {"dense": L, "sparse": sp.csr_matrix(L)}.get(form)
    if X is None:
        with np.errstate(divide="ignore"):
            X = np.log(L)
    with pytest.raises(DataError, match=r"3 of 10 rows have likelihood zero under every "
                                        r"model \(rows 2, 5, 7\): no model explains them"):
        FixedMixture(log=form == "log").fit(X)


def test_models_that_cannot_score_the_data():
    X = emkit.datasets.load("faithful").data
    fitted = emkit.GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(DataError, match=r"model 1 \(GaussianMixture\) cannot score the data"):
        FixedMixture(models=[fitted, emkit.GaussianMixture(2)]).fit(X)  # not fitted
    with pytest.raises(DataError, match="model 0 .* cannot score the data"):
        FixedMixture(models=[fitted]).fit(X[:, :1])  # wrong number of features
    with pytest.raises(DataError, match="shape"):
        FixedMixture(models=[fitted, lambda X: np.zeros((len(X), 2))]).fit(X)
    with pytest.raises(DataError, match="NaN"):
        FixedMixture(models=[fitted, lambda X: np.full(len(X), np.nan)]).fit(X)
    with pytest.raises(ParameterError, match="no score_samples"):
        FixedMixture(models=[fitted, 3.0]).fit(X)
    with pytest.raises(ParameterError, match="non-empty"):
        FixedMixture(models=[]).fit(X)


@pytest.mark.parametrize("options, message", [
    (dict(prior=0.5), ">= 1"),
    (dict(prior=[2.0, 2.0]), "shape"),
    (dict(weights_init=[1.0, 0.0, 0.0]), "positive"),
    (dict(weights_init=[0.5, 0.5]), "shape"),
    (dict(tol=-1.0), "tol"),
    (dict(max_iter=1.5), "max_iter"),
    (dict(accelerate="fast"), "accelerate"),
])
def test_bad_parameters(options, message):
    L = np.random.default_rng(0).uniform(0.1, 1, (20, 3))
    with pytest.raises(ParameterError, match=message):
        FixedMixture(**options).fit(L)


def test_predict_errors():
    L = np.random.default_rng(0).uniform(0.1, 1, (20, 3))
    with pytest.raises(NotFittedError):
        FixedMixture().predict_proba(L)
    fitted = FixedMixture().fit(L)
    with pytest.raises(DataError, match="X has 2 features, but FixedMixture is expecting 3"):
        fitted.predict_proba(L[:, :2])
    with pytest.raises(DataError, match="1 rows .* likelihood zero"):
        fitted.predict_proba(np.vstack([L, np.zeros(3)]))
    with pytest.raises(DataError, match="sample_weight"):
        FixedMixture().fit(L, sample_weight=np.ones(3))


# ---------------------------------------------------------------------------- persistence
def test_save_load_round_trip(tmp_path):
    L = sparse_likelihoods(seed=10, n=400, M=6)
    fitted = FixedMixture(prior=2.0).fit(L)
    fitted.save(tmp_path / "m.emkit")
    loaded = emkit.load(tmp_path / "m.emkit")
    assert type(loaded) is FixedMixture and loaded.prior == 2.0
    np.testing.assert_array_equal(loaded.weights_, fitted.weights_)
    np.testing.assert_array_equal(loaded.score_samples(L), fitted.score_samples(L))
    assert loaded.converged_ == fitted.converged_ and loaded.n_iter_ == fitted.n_iter_


def test_models_are_not_stored(tmp_path):
    X = emkit.datasets.load("faithful").data
    members = [emkit.GaussianMixture(k, random_state=0).fit(X) for k in (1, 2)]
    fitted = FixedMixture(models=members).fit(X)
    fitted.save(tmp_path / "m.emkit")
    loaded = emkit.load(tmp_path / "m.emkit")
    assert loaded.models is None
    notes = emkit.estimators.persist.describe(tmp_path / "m.emkit")["notes"]
    assert any("models" in note for note in notes)
    matrix = np.column_stack([m.score_samples(X) for m in members])
    loaded.set_params(log=True)
    np.testing.assert_allclose(loaded.score_samples(matrix), fitted.score_samples(X),
                               rtol=1e-12)


# ---------------------------------------------------------------------------- command line
def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def files(tmp_path):
    L = sparse_likelihoods(seed=11, n=300, M=4)
    dense = L.toarray()
    csv = tmp_path / "likelihoods.csv"
    np.savetxt(csv, dense, delimiter=",", header="a,b,c,d", comments="")
    log_csv = tmp_path / "log.csv"
    with np.errstate(divide="ignore"):
        log_text = np.where(dense > 0, np.log(np.where(dense > 0, dense, 1.0)), -np.inf)
    np.savetxt(log_csv, log_text, delimiter=",", header="a,b,c,d", comments="")
    npz = tmp_path / "likelihoods.npz"
    sp.save_npz(npz, L)
    return dict(L=L, csv=csv, log_csv=log_csv, npz=npz, tmp=tmp_path)


def test_cli_fit_dense_sparse_log_agree(capsys, files):
    expected = FixedMixture().fit(files["L"]).weights_
    for argv in (["fit", "fixed", files["csv"]], ["fit", "fixed", files["npz"]],
                 ["fit", "fixed", files["log_csv"], "--log"]):
        status, out, err = run(capsys, *argv, "--json")
        assert status == 0, err
        summary = json.loads(out)
        np.testing.assert_allclose(summary["weights"], expected, atol=1e-7)
        assert summary["converged"] and summary["accelerate"] == "squarem"
        assert summary["n_samples"] == 300 and summary["n_models"] == 4
    status, out, _ = run(capsys, "fit", "fixed", files["npz"], "--json", "--accelerate", "none",
                         "--max-iter", "5000")
    assert json.loads(out)["accelerate"] is None


def test_cli_fit_predict_score(capsys, files):
    model = files["tmp"] / "m.emkit"
    status, out, err = run(capsys, "fit", "fixed", files["csv"], "-o", model, "--prior", "2")
    assert status == 0, err
    assert "model written to" in out and "a " in out
    fitted = emkit.load(model)
    status, out, _ = run(capsys, "predict", model, files["npz"])
    assert status == 0
    labels = np.array(out.split()[1:], dtype=int)
    np.testing.assert_array_equal(labels, fitted.predict(files["L"]))
    status, out, _ = run(capsys, "predict", model, files["csv"], "--proba", "--json")
    np.testing.assert_allclose(json.loads(out)["probabilities"],
                               fitted.predict_proba(files["L"].toarray()), rtol=1e-12)
    status, out, _ = run(capsys, "score", model, files["csv"], "--json")
    result = json.loads(out)
    np.testing.assert_allclose(result["log_likelihood"],
                               np.log(files["L"] @ fitted.weights_).sum(), rtol=1e-12)


def test_cli_errors(capsys, files):
    bad = files["tmp"] / "bad.csv"
    bad.write_text("a,b\n0.5,-1\n0.2,0.3\n")
    zero = files["tmp"] / "zero.csv"
    zero.write_text("a,b\n0.5,0.1\n0,0\n")
    not_npz = files["tmp"] / "x.npz"
    np.savez(not_npz, a=np.ones(3))
    for argv, message in ((["fit", "fixed", bad], "negative likelihoods"),
                          (["fit", "fixed", zero], "no model explains"),
                          (["fit", "fixed", not_npz], "save_npz"),
                          (["fit", "fixed", files["npz"], "--log"], "sparse input"),
                          (["fit", "fixed", files["csv"], "--prior", "0.5"], ">= 1"),
                          (["fit", "gmm", files["csv"]], "-k/--n-components")):
        status, out, err = run(capsys, *argv)
        assert status == 2, (argv, out)
        assert err.startswith("emkit: error:") and message in err, err
        assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- docs example
def test_docs_example():
    from fixed_mixture import faithful_ensemble, transcript_abundances

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ensemble = faithful_ensemble()
        reads = transcript_abundances()
    np.testing.assert_allclose(ensemble["weights"].sum(), 1.0)
    assert ensemble["ensemble_score"] >= ensemble["member_scores"].max()
    np.testing.assert_allclose(reads["abundances"], reads["true_abundances"], atol=0.02)
    assert reads["n_iter"] < reads["plain_em_iter"]
