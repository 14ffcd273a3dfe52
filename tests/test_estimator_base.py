"""The estimator base (emkit.estimators.base) and the constraints tables
(emkit.estimators.validation), over every
public estimator: bad parameters are refused by name, sampling is reproducible from any
random_state, save/load goes through the base, and bic/aic follow n_parameters."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import emkit
from emkit.errors import NotFittedError, ParameterError
from emkit.estimators.base import FIT_RECORD, EMEstimator, OnlineEMMixin, SamplingMixin
from emkit.estimators.validation import (
    Constraint,
    Integer,
    Letters,
    OneOf,
    Real,
    check_parameters,
    random_generator,
    seed_sequence,
)


# --------------------------------------------------------------------------- data
def _two_state_frames(seed: int, n_frames: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """A path of a sticky two-state chain and standard normal noise of its frames."""
    rng = np.random.default_rng(seed)
    states = np.zeros(n_frames, dtype=int)
    for t in range(1, n_frames):
        states[t] = states[t - 1] if rng.uniform() < 0.9 else 1 - states[t - 1]
    return states, rng.standard_normal((n_frames, 2))


def gaussian_rows():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(0.0, 1.0, (40, 2)), rng.normal([5.0, 3.0], 0.7, (40, 2))])


def gaussian_frames():
    states, noise = _two_state_frames(1)
    return np.where(states[:, None] == 0, 0.0, [4.0, 2.0]) + noise


def symbol_frames():
    states, noise = _two_state_frames(2)
    cut = np.where(states == 0, -0.5, 0.5)
    return (np.digitize(noise[:, 0] + 2 * cut, [-0.7, 0.7])).astype(float)[:, None]


def count_frames():
    states, _ = _two_state_frames(3)
    rng = np.random.default_rng(3)
    return rng.poisson(np.where(states == 0, 2.0, 9.0))[:, None].astype(float)


def count_rows():
    rng = np.random.default_rng(4)
    p = np.vstack([rng.dirichlet([8.0, 4.0, 2.0], 25), rng.dirichlet([2.0, 4.0, 8.0], 25)])
    return np.vstack([rng.multinomial(30, row) for row in p]).astype(float)


def proportion_rows():
    rng = np.random.default_rng(5)
    return np.vstack([rng.dirichlet([6.0, 3.0, 2.0], 30), rng.dirichlet([2.0, 3.0, 6.0], 30)])


def likelihood_rows():
    rng = np.random.default_rng(6)
    return rng.uniform(0.05, 1.0, (60, 3))


def tone_samples():
    rng = np.random.default_rng(7)
    d = np.arange(96)
    return (np.cos(2 * np.pi * 0.11 * d + 0.3) + 0.6 * np.cos(2 * np.pi * 0.27 * d + 1.0)
            + 0.1 * rng.standard_normal(len(d)))


def poisson_rows():
    rng = np.random.default_rng(8)
    rates = np.where(rng.uniform(size=(60, 1)) < 0.5, [1.0, 6.0], [7.0, 2.0])
    return rng.poisson(rates).astype(float)


def binary_rows():
    rng = np.random.default_rng(9)
    theta = np.where(rng.uniform(size=(80, 1)) < 0.5, [0.9, 0.8, 0.2], [0.1, 0.3, 0.9])
    return (rng.uniform(size=theta.shape) < theta).astype(float)


def item_rows():
    rng = np.random.default_rng(10)
    return np.column_stack([rng.integers(0, 3, 80), rng.integers(0, 2, 80)]).astype(float)


def incomplete_rows():
    X = gaussian_rows().copy()
    X[::7, 1] = np.nan
    return X


# name -> (unfitted estimator, data for fit)
ESTIMATORS = {
    "GaussianMixture": (lambda: emkit.GaussianMixture(2, random_state=0), gaussian_rows),
    "GaussianHMM": (lambda: emkit.GaussianHMM(2, random_state=0), gaussian_frames),
    "GMMHMM": (lambda: emkit.GMMHMM(2, 2, covariance_type="diag", random_state=0,
                                    tol=1e-3), gaussian_frames),
    "CategoricalHMM": (lambda: emkit.CategoricalHMM(2, random_state=0), symbol_frames),
    "PoissonHMM": (lambda: emkit.PoissonHMM(2, random_state=0), count_frames),
    "DirichletMultinomialMixture": (
        lambda: emkit.DirichletMultinomialMixture(2, random_state=0), count_rows),
    "DirichletMultinomial": (lambda: emkit.DirichletMultinomial(random_state=0), count_rows),
    "Dirichlet": (lambda: emkit.Dirichlet(2, random_state=0), proportion_rows),
    "FixedMixture": (lambda: emkit.FixedMixture(), likelihood_rows),
    "SuperimposedSignals": (lambda: emkit.SuperimposedSignals("tones", 2, n_init=2,
                                                              random_state=0), tone_samples),
    "PoissonMixture": (lambda: emkit.PoissonMixture(2, random_state=0), poisson_rows),
    "BernoulliMixture": (lambda: emkit.BernoulliMixture(2, random_state=0), binary_rows),
    "CategoricalMixture": (lambda: emkit.CategoricalMixture(2, random_state=0), item_rows),
    "StudentMixture": (lambda: emkit.StudentMixture(2, random_state=0), gaussian_rows),
}
EM_ESTIMATORS = sorted(ESTIMATORS)
ALL_ESTIMATORS = {**ESTIMATORS, "EMImputer": (lambda: emkit.EMImputer(random_state=0),
                                              incomplete_rows)}
SAMPLING = [name for name in EM_ESTIMATORS
            if isinstance(ESTIMATORS[name][0](), SamplingMixin)]


@pytest.fixture(scope="module")
def fitted():
    """Every EM estimator fitted once on its data (shared by the read-only tests)."""
    return {name: (make().fit(data()), data()) for name, (make, data) in ESTIMATORS.items()}


# --------------------------------------------------------------------------- the tables
# Candidate bad values; each constraint is tested with those it refuses (at least one).
CANDIDATES = ("bogus", -1, -0.5, 0, 2.5, 1.5, None, "xyz", [1.0, -1.0], np.nan)


def refused_values(constraint: Constraint) -> list:
    return [value for value in CANDIDATES if not constraint.accepts(value)]


def table_cases():
    for name, (make, _) in ALL_ESTIMATORS.items():
        for parameter, constraint in make()._parameter_constraints.items():
            yield pytest.param(name, parameter, constraint, id=f"{name}-{parameter}")


@pytest.mark.parametrize(("name", "parameter", "constraint"), list(table_cases()))
def test_every_table_entry_refuses_bad_values_by_name(name, parameter, constraint):
    make, data = ALL_ESTIMATORS[name]
    bad_values = refused_values(constraint)
    assert bad_values, f"no candidate value breaks {parameter}'s constraint {constraint}"
    for value in bad_values:
        estimator = make()
        setattr(estimator, parameter, value)  # set_params would refuse class attributes
        with pytest.raises(ParameterError) as error:
            estimator.fit(data())
        message = str(error.value)
        assert message.startswith(f"{parameter} must be "), message
        assert repr(value) in message, message
        if isinstance(estimator, OnlineEMMixin):  # partial_fit checks the same table
            with pytest.raises(ParameterError, match=f"^{parameter} must be "):
                estimator.partial_fit(data())


@pytest.mark.parametrize("name", sorted(ALL_ESTIMATORS))
def test_tables_name_parameters_and_accept_the_defaults(name):
    estimator = ALL_ESTIMATORS[name][0]()
    table = estimator._parameter_constraints
    parameters = estimator.get_params(deep=False)
    for parameter in table:  # a typo in a table would otherwise check nothing
        assert parameter in parameters or hasattr(type(estimator), parameter), parameter
    check_parameters(type(estimator)(), table)  # the constructor's defaults are valid
    for parameter in ("tol", "max_iter"):
        assert parameter in table


def test_every_public_estimator_derives_from_the_base():
    """... and none defines again what the base provides once."""
    shared = ("_check_fitted", "bic", "aic", "save", "_check_parameters", "__sklearn_tags__",
              "partial_fit")
    for name, (make, _) in ALL_ESTIMATORS.items():
        estimator = make()
        if name != "EMImputer":
            assert isinstance(estimator, EMEstimator), name
        for cls in type(estimator).__mro__:
            if cls.__module__.startswith("emkit.") and cls.__module__ != "emkit.estimators.base":
                own = set(shared).intersection(vars(cls)) - (
                    {"__sklearn_tags__"} if name == "EMImputer" else set())
                assert not own, f"{cls.__name__} defines its own {sorted(own)}"


@pytest.mark.parametrize(("constraint", "value", "message"), [
    (Integer(1), 0, "n must be an integer >= 1, got 0."),
    (Integer(1), True, "n must be an integer >= 1, got True."),
    (Integer(0, optional=True), -1, "n must be None or an integer >= 0, got -1."),
    (Real(0), -1.0, "n must be a number >= 0, got -1.0."),
    (Real(0), float("inf"), "n must be a number >= 0, got inf."),
    (Real(0, low_open=True), 0, "n must be a positive number, got 0."),
    (Real(0.5, 1.0, low_open=True), 0.5, "n must be a number in (0.5, 1], got 0.5."),
    (Real(0, optional=True, hint="units"), "x", "n must be None or a number >= 0 (units), "
                                                "got 'x'."),
    (OneOf(None, "squarem"), "auto", "n must be None or 'squarem', got 'auto'."),
    (OneOf("a", "b", "c"), "d", "n must be one of ('a', 'b', 'c'), got 'd'."),
    (Letters("st"), "sx", "n must be a string of the letters 'st', got 'sx'."),
])
def test_messages_name_the_parameter_the_value_and_what_is_allowed(constraint, value, message):
    class Holder:
        n = value

    with pytest.raises(ParameterError) as error:
        check_parameters(Holder(), {"n": constraint})
    assert str(error.value) == message


def test_one_of_accepts_exactly_its_options():
    accelerate = OneOf(None, "squarem")
    assert accelerate.accepts(None) and accelerate.accepts("squarem")
    assert accelerate.accepts(np.str_("squarem"))
    assert not accelerate.accepts(np.array(["squarem", "x"]))
    assert not accelerate.accepts(0)


# --------------------------------------------------------------------------- random states
def test_random_generator_forms():
    np.testing.assert_array_equal(random_generator(5).random(3),
                                  np.random.default_rng(5).random(3))
    generator = np.random.default_rng(9)
    assert random_generator(generator) is generator
    first = random_generator(np.random.RandomState(3)).random(3)
    np.testing.assert_array_equal(first, random_generator(np.random.RandomState(3)).random(3))
    with pytest.raises(ParameterError, match="random_state must be"):
        random_generator("seed")
    assert seed_sequence(4).entropy == np.random.SeedSequence(4).entropy


@pytest.mark.parametrize("name", SAMPLING)
@pytest.mark.parametrize("form", ["Generator", "RandomState", "int"])
def test_sample_is_reproducible_from_any_random_state(fitted, name, form):
    """The same random_state (a fresh Generator or RandomState in the same state, or the same
    int) gives the same draws. A Generator used to give unseeded, unreproducible samples."""
    estimator = copy.deepcopy(fitted[name][0])

    def make_state():
        return {"Generator": np.random.default_rng(11), "RandomState":
                np.random.RandomState(11), "int": 11}[form]

    estimator.set_params(random_state=make_state())
    first = estimator.sample(25)
    estimator.set_params(random_state=make_state())
    second = estimator.sample(25)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    if form == "Generator":  # the same Generator continues its stream
        third = estimator.sample(25)
        assert not all(np.array_equal(a, b) for a, b in zip(first, third, strict=True))


@pytest.mark.parametrize("name", SAMPLING)
def test_sample_refuses_bad_counts_and_unfitted_estimators(fitted, name):
    with pytest.raises(ParameterError, match="n_samples"):
        fitted[name][0].sample(0)
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        ESTIMATORS[name][0]().sample(3)


# --------------------------------------------------------------------------- save and load
@pytest.mark.parametrize("name", EM_ESTIMATORS)
def test_save_load_through_the_base(fitted, name, tmp_path):
    estimator, data = fitted[name]
    assert type(estimator).save is EMEstimator.save
    path = tmp_path / f"{name}.emkit"
    estimator.save(path)
    loaded = emkit.load(path)
    assert type(loaded) is type(estimator)
    for attribute in FIT_RECORD:
        original, restored = getattr(estimator, attribute), getattr(loaded, attribute)
        if isinstance(original, np.ndarray):
            np.testing.assert_array_equal(restored, original)
        else:
            assert restored == original, attribute
    assert loaded.score(data) == estimator.score(data)
    assert loaded.n_parameters() == estimator.n_parameters()


@pytest.mark.parametrize("name", EM_ESTIMATORS)
def test_unfitted_estimators_refuse_to_save_and_score(name, tmp_path):
    estimator, data = ESTIMATORS[name][0](), ESTIMATORS[name][1]()
    with pytest.raises(NotFittedError, match="not fitted"):
        estimator.save(tmp_path / "model.emkit")
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        estimator.score(data)


# --------------------------------------------------------------------------- bic and aic
# Free parameters counted by hand for the fitted settings above (K components, D features).
# (HMMs are left out: their count drops the start and transition probabilities fitted to exactly
# 0, e.g. the start of a single sequence.)
HAND_COUNTS = {
    "GaussianMixture": 1 + 2 * 2 + 2 * 3,  # K−1 weights, K·D means, K·D(D+1)/2 covariances
    "DirichletMultinomialMixture": 1 + 2 * 3,  # K−1 weights, K·D α
    "DirichletMultinomial": 3,
    "Dirichlet": 1 + 2 * 3,
    "FixedMixture": 2,  # M−1 weights
    "SuperimposedSignals": 2 * 3 + 1,  # (frequency, amplitude, phase) per tone + σ²
    "PoissonMixture": 1 + 2 * 2,  # K−1 weights, K·D rates
    "BernoulliMixture": 1 + 2 * 3,  # K−1 weights, K·D probabilities
    "CategoricalMixture": 1 + 2 * (2 + 1),  # K−1 weights, K·Σ(L_d − 1) (poLCA's npar)
    "StudentMixture": 1 + 2 * (2 + 3 + 1),  # K−1 weights, K·(D means, D(D+1)/2 scales, ν)
}


def total_log_likelihood(estimator, data) -> tuple[float, int]:
    """Σ log p(x) and n, computed without the base's helper."""
    if isinstance(estimator, emkit.SuperimposedSignals):
        return estimator.score(data) * len(data), len(data)
    if hasattr(estimator, "transmat_"):  # HMM: one sequence, n = frames
        return estimator.score(data), len(data)
    return float(np.sum(estimator.score_samples(data))), len(data)


@pytest.mark.parametrize("name", EM_ESTIMATORS)
def test_bic_and_aic_follow_n_parameters(fitted, name):
    estimator, data = fitted[name]
    log_likelihood, n = total_log_likelihood(estimator, data)
    p = estimator.n_parameters()
    if name in HAND_COUNTS:
        assert p == HAND_COUNTS[name]
    assert estimator.bic(data) == pytest.approx(-2 * log_likelihood + p * math.log(n),
                                                rel=1e-12)
    assert estimator.aic(data) == pytest.approx(-2 * log_likelihood + 2 * p, rel=1e-12)


def test_hmm_bic_counts_frames_of_all_sequences(fitted):
    estimator, X = fitted["GaussianHMM"]
    lengths = [100, len(X) - 100]
    p = estimator.n_parameters()
    expected = -2 * estimator.score(X, lengths) + p * math.log(len(X))
    assert estimator.bic(X, lengths) == pytest.approx(expected, rel=1e-12)
    assert estimator.bic(X, lengths=lengths) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- the fit record
@pytest.mark.parametrize("name", EM_ESTIMATORS)
def test_fit_record_is_stored_the_same_way_everywhere(fitted, name):
    estimator, _ = fitted[name]
    assert isinstance(estimator.converged_, bool)
    assert isinstance(estimator.n_iter_, int) and estimator.n_iter_ >= 0
    assert estimator.history_.ndim == 1 and estimator.history_.dtype == np.float64
    assert isinstance(estimator.events_, list)
    assert estimator.restart_objectives_.ndim == 1 and len(estimator.restart_objectives_) >= 1
    # The record belongs to the best start: its last objective is the fitted one.
    assert estimator.history_[-1] == pytest.approx(estimator.restart_objectives_.max(),
                                                   rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", [name for name in EM_ESTIMATORS
                                  if isinstance(ESTIMATORS[name][0](), OnlineEMMixin)])
def test_partial_fit_keeps_the_same_record(name):
    make, data = ESTIMATORS[name]
    estimator = make()
    X = data()
    estimator.partial_fit(X).partial_fit(X)
    assert estimator.n_iter_ == 2 and estimator.converged_ is False
    assert estimator.history_.shape == (2,) and estimator.lower_bound_ == estimator.history_[-1]
    assert estimator.events_ == [] and estimator.restart_objectives_.shape == (0,)
