"""StudentMixture: robustness to gross outliers (against a Gaussian mixture), its densities
against scipy's multivariate t, the Gaussian limit, fixed degrees of freedom, model files and
errors."""

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.utils.estimator_checks import parametrize_with_checks

import emkit
from emkit.errors import DataError, ParameterError
from emkit.families.student import DOF_BOUNDS

CENTRES = np.array([[0.0, 0.0], [6.0, 2.0]])


def clusters_with_outliers(seed=0, n=300, n_outliers=24):
    """Two Gaussian clusters of n rows each and 4% gross outliers spread over a large box."""
    rng = np.random.default_rng(seed)
    first = rng.multivariate_normal(CENTRES[0], [[1.0, 0.5], [0.5, 1.0]], n)
    second = rng.multivariate_normal(CENTRES[1], [[1.0, -0.3], [-0.3, 0.6]], n)
    outliers = rng.uniform(-40, 40, (n_outliers, 2))
    return np.vstack([first, second, outliers])


def _distance_to_centres(means):
    """For each true centre, the distance to the nearest fitted mean."""
    return np.linalg.norm(CENTRES[:, None, :] - means[None, :, :], axis=2).min(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_means_stay_at_the_clusters_despite_gross_outliers(seed):
    X = clusters_with_outliers(seed)
    # The outlier-free cluster's ν lies where the likelihood is nearly flat in ν (seed 0: ν ≈ 155,
    # ~1,000 iterations of exact EM for ν, just around the default max_iter): room to converge.
    student = emkit.StudentMixture(2, random_state=seed, max_iter=3000).fit(X)
    assert student.converged_
    assert np.all(_distance_to_centres(student.means_) < 0.15)
    gaussian = emkit.GaussianMixture(2, random_state=seed).fit(X)
    assert np.max(_distance_to_centres(gaussian.means_)) > 1.0
    # the outliers are explained by small scale weights, not by a component of their own
    assert np.all(student.weights_ > 0.4)


def test_objective_history_never_decreases():
    X = clusters_with_outliers()
    for accelerate in (None, "squarem"):
        model = emkit.StudentMixture(2, accelerate=accelerate, max_iter=300, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plain EM may stop at max_iter: not the point here
            model.fit(X)
        history = model.history_
        assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))



def test_a_component_collapsing_onto_two_rows_keeps_ascent():
    """The contract case (hypothesis' data_seed=8388608, fit_seed=33636) where, with
    reg_covar=0, component 1 collapses onto two of 30 rows: its scatter's smallest eigenvalue
    becomes round-off that Cholesky accepted, its log-determinant noise, and the objective
    fell by 0.648 at iteration 9. A numerically singular scale matrix is now refused (the
    component keeps its previous parameters, a recorded event) and EM rises at every step."""
    from contracts.cases_family_mixtures import two_heavy_tailed_clusters
    from emkit.families.student import StudentFamily
    from emkit.models.mixture import MixtureModel

    X = two_heavy_tailed_clusters(np.random.default_rng(8388608), 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emkit.errors.LikelihoodDecreaseWarning)
        result = emkit.fit_em(MixtureModel(StudentFamily(reg_covar=0.0), 2), X,
                              random_state=33636, tol=0.0, max_iter=40, accelerate=None,
                              warn_not_converged=False)
    assert result.decreases == ()
    assert np.all(np.diff(result.history) >= -1e-10 * np.abs(result.history[1:]))
    assert result.events and all("component 1's scale matrix" in message
                                 for _, message in result.events)
    # every accepted scale matrix is well away from singular (relative to its diagonal)
    covariances = result.params.components.covariances
    correlation = covariances / np.sqrt(np.einsum("kii,kjj->kij", covariances, covariances))
    assert np.min(np.linalg.eigvalsh(correlation)) > 1e-10


def test_m_step_refuses_a_scale_matrix_singular_to_round_off():
    """Rows 1e-9 off a line: the scatter is positive definite (Cholesky succeeds) but its
    smallest eigenvalue is at round-off's scale, so the M-step keeps the component's previous
    parameters and says so; rows 1e-3 off the line give a usable scale matrix."""
    from emkit.families.student import StudentFamily, StudentParams

    rng = np.random.default_rng(0)
    t, off = rng.normal(size=(20, 1)), rng.normal(size=(20, 1))
    family = StudentFamily(reg_covar=0.0)
    previous = StudentParams(np.array([[0.0, 1.0], [0.0, 0.0]]),
                             np.array([np.eye(2), np.eye(2)]), np.array([5.0, 5.0]))
    weights = np.column_stack([np.ones(20), np.full(20, 0.5)])
    X = np.hstack([t, 2.0 * t + 1.0 + 1e-9 * off])
    stats = family.statistics(previous, X, weights)
    scatter = stats.moments.second[0] - np.outer(stats.moments.first[0],
                                                 stats.moments.first[0]) / stats.moments.weight[0]
    np.linalg.cholesky(scatter)  # accepted by Cholesky alone
    new, events = family.m_step(stats, previous)
    assert len(events) == 2 and all("not positive definite" in e for e in events)
    np.testing.assert_array_equal(new.covariances, previous.covariances)
    np.testing.assert_array_equal(new.means, previous.means)
    usable = np.hstack([t, 2.0 * t + 1.0 + 1e-3 * off])
    new, events = family.m_step(family.statistics(previous, usable, weights), previous)
    assert events == ()
    assert not np.allclose(new.means, previous.means)

def test_score_samples_is_scipys_multivariate_t_mixture():
    X = clusters_with_outliers()
    model = emkit.StudentMixture(2, random_state=0).fit(X)
    expected = np.log(sum(
        w * stats.multivariate_t(mean, scale, df=dof).pdf(X)
        for w, mean, scale, dof in zip(model.weights_, model.means_, model.covariances_,
                                       model.dof_, strict=True)))
    np.testing.assert_allclose(model.score_samples(X), expected, rtol=1e-10)


def test_large_fixed_dof_is_the_gaussian_maximum_likelihood():
    rng = np.random.default_rng(3)
    X = rng.multivariate_normal([1.0, -2.0, 0.5], [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2],
                                                   [0.1, -0.2, 0.5]], 400)
    model = emkit.StudentMixture(1, dof=1e7, reg_covar=0.0, tol=1e-10).fit(X)
    np.testing.assert_allclose(model.means_[0], X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.covariances_[0], np.cov(X.T, bias=True), rtol=1e-5)
    assert model.dof_[0] == 1e7
    # free parameters: 3 means and 6 scale entries (ν fixed)
    assert model.n_parameters() == 9
    assert emkit.StudentMixture(1).fit(X).n_parameters() == 10


def test_heavy_tails_give_small_dof_and_gaussian_data_large():
    rng = np.random.default_rng(4)
    heavy = stats.multivariate_t([0, 0], np.eye(2), df=3, seed=rng).rvs(3000)
    light = rng.normal(size=(3000, 2))
    assert 2.4 < emkit.StudentMixture(1, random_state=0).fit(heavy).dof_[0] < 3.8
    assert emkit.StudentMixture(1, random_state=0).fit(light).dof_[0] > 30


def test_model_file_round_trip_and_sampling(tmp_path):
    X = clusters_with_outliers()
    model = emkit.StudentMixture(2, random_state=0).fit(X)
    model.save(tmp_path / "t.emkit")
    loaded = emkit.load(tmp_path / "t.emkit")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.dof_, model.dof_)
    drawn, labels = model.sample(4000)
    assert drawn.shape == (4000, 2)
    for k in range(2):
        np.testing.assert_allclose(np.median(drawn[labels == k], axis=0), model.means_[k],
                                   atol=0.15)


def test_errors_say_what_to_do():
    X = clusters_with_outliers()
    X[3, 1] = np.nan
    with pytest.raises(DataError, match="complete rows"):
        emkit.StudentMixture(2).fit(X)
    with pytest.raises(ParameterError, match="dof"):
        emkit.StudentMixture(2, dof=0.0).fit(clusters_with_outliers())


def _heavy_tailed_clusters(seed=0, n=120):
    rng = np.random.default_rng(seed)
    return np.vstack([
        stats.multivariate_t([0, 0], [[1, 0.5], [0.5, 1]], df=3, seed=rng).rvs(n),
        stats.multivariate_t([4, 2], [[1, -0.3], [-0.3, 0.6]], df=6, seed=rng).rvs(n)])


def _finite_difference_errors(model, X, w):
    """Standard errors from a finite-difference Hessian of the observed-data log-likelihood
    (scipy's multivariate t) in the free coordinates π_1 … π_{K−1}, the means, the upper
    triangles of the scale matrices and, when estimated, ν; the delta method for π_K and the
    lower triangles."""
    from finite_differences import hessian

    K, D = model.means_.shape
    rows, columns = np.triu_indices(D)
    n_unique = len(rows)
    estimated = model.dof is None

    def unpack(vector):
        weights = np.append(vector[:K - 1], 1 - vector[:K - 1].sum())
        means = vector[K - 1:K - 1 + K * D].reshape(K, D)
        entries = vector[K - 1 + K * D:K - 1 + K * D + K * n_unique].reshape(K, n_unique)
        scales = np.zeros((K, D, D))
        scales[:, rows, columns] = entries
        scales[:, columns, rows] = entries
        dof = vector[K - 1 + K * (D + n_unique):] if estimated else model.dof_
        return weights, means, scales, dof

    def log_likelihood(vector):
        weights, means, scales, dof = unpack(vector)
        joint = np.column_stack([np.log(weights[k]) + stats.multivariate_t(
            means[k], scales[k], df=dof[k]).logpdf(X) for k in range(K)])
        return float(w @ logsumexp(joint, axis=1))

    start = np.concatenate([model.weights_[:-1], model.means_.ravel(),
                            model.covariances_[:, rows, columns].ravel(),
                            model.dof_ if estimated else []])
    covariance = np.linalg.inv(-hessian(log_likelihood, start))
    # Every reported value is linear in the free coordinates: the Jacobian by differences.
    reported = lambda vector: np.concatenate(  # noqa: E731
        [np.ravel(part) for part in unpack(vector)[:3 + estimated]])
    jacobian = np.column_stack([reported(start + e) - reported(start)
                                for e in np.eye(len(start))])
    return np.sqrt(np.diag(jacobian @ covariance @ jacobian.T))


@pytest.mark.parametrize("dof", [None, 5.0])
def test_standard_errors_agree_with_a_finite_difference_hessian(dof):
    X = _heavy_tailed_clusters()
    w = np.random.default_rng(1).integers(1, 3, len(X)).astype(float)
    model = emkit.StudentMixture(2, dof=dof, reg_covar=0, tol=1e-12, random_state=0).fit(
        X, sample_weight=w)
    errors = model.standard_errors(X, sample_weight=w)
    assert set(errors) == ({"weights", "means", "covariances"} | ({"dof"} if dof is None
                                                                    else set()))
    assert errors["covariances"].shape == model.covariances_.shape
    if dof is None:  # both ν inside their bounds: both estimated
        assert np.all((model.dof_ > 1) & (model.dof_ < 50))
    got = np.concatenate([np.ravel(errors[name]) for name in
                          ("weights", "means", "covariances", "dof") if name in errors])
    np.testing.assert_allclose(got, _finite_difference_errors(model, X, w), rtol=0.02)


def test_standard_errors_of_the_gaussian_limit_are_the_gaussian_closed_forms():
    """ν fixed at 10⁷: one t is the Gaussian MLE, SE(mean_d) = σ_d/√n and
    Var(S_ab) = (σ_aa σ_bb + σ_ab²)/n (to O(1/ν))."""
    rng = np.random.default_rng(3)
    X = rng.multivariate_normal([1.0, -2.0, 0.5], [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2],
                                                   [0.1, -0.2, 0.5]], 400)
    model = emkit.StudentMixture(1, dof=1e7, reg_covar=0.0, tol=1e-10).fit(X)
    errors = model.standard_errors(X)
    sigma = np.cov(X.T, bias=True)
    variances = np.diag(sigma)
    np.testing.assert_allclose(errors["means"][0], np.sqrt(variances / 400), rtol=1e-4)
    np.testing.assert_allclose(errors["covariances"][0],
                               np.sqrt((np.outer(variances, variances) + sigma**2) / 400),
                               rtol=1e-4)


def test_a_dof_on_its_bound_has_no_standard_error():
    """Light-tailed (uniform) data push ν to its upper bound, not an interior maximum: it is
    held fixed (NaN) and the other parameters' errors are those of the fixed-ν model."""
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(300, 2))
    model = emkit.StudentMixture(1, reg_covar=0, random_state=0).fit(X)
    assert np.isclose(model.dof_[0], DOF_BOUNDS[1], rtol=1e-12)
    errors = model.standard_errors(X)
    assert np.isnan(errors["dof"][0])
    fixed = emkit.StudentMixture(1, dof=DOF_BOUNDS[1], reg_covar=0)
    fixed.fit(X)
    for name in ("means", "covariances"):
        np.testing.assert_allclose(errors[name], fixed.standard_errors(X)[name], rtol=1e-6)


@parametrize_with_checks([emkit.StudentMixture(random_state=0)])
def test_scikit_learn_estimator_checks(estimator, check):
    """scikit-learn's own checks (the discrete families refuse its continuous test data, by
    design; their estimator contract is in tests/test_estimator_base.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)
