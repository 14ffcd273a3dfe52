"""The EM engine (`emkit.fit_em`): monitor, stopping rules, restarts, callbacks, data sources,
annealing, SQUAREM and argument checking, driven by toy models written here.

``ScriptedModel`` plays back a list of objectives, so the monitor's rules can be checked at exact
numbers; ``TwoMeans`` is a real (tiny) EM model: two unit-variance normals with equal weights.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from typing import NamedTuple

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from emkit import IterationInfo, annealing_schedule, fit_em
from emkit.core.engine import ConvergenceMonitor
from emkit.errors import (
    ConvergenceWarning,
    DataError,
    LikelihoodDecreaseWarning,
    NumericalError,
    ParameterError,
)
from emkit.models.mixture import GaussianMixtureModel

DATA = np.random.default_rng(0).normal(size=(10, 1))


class ScriptedModel:
    """Parameters are the iteration number t; the objective at t is ``objectives[t]`` (the last
    one repeats). ``n_samples`` is the row count when given, else the engine's default of 1."""

    def __init__(self, objectives, n_samples=None):
        self.objectives = list(objectives)
        if n_samples is not None:
            self.n_samples = lambda stats: n_samples

    def init_params(self, data, rng):
        return 0

    def e_step(self, params, chunk):
        return np.zeros(1), self.objectives[min(params, len(self.objectives) - 1)]

    def m_step(self, stats, params):
        return params + 1


class RandomLevelModel:
    """Each start lands on its own, random, constant objective: restarts must keep the best."""

    def init_params(self, data, rng):
        return float(rng.uniform(-100.0, 0.0))

    def e_step(self, params, chunk):
        return np.zeros(1), params

    def m_step(self, stats, params):
        return params


class TwoMeansStats(NamedTuple):
    weight: np.ndarray  # (2,) Σ r_ik
    total: np.ndarray  # (2,) Σ r_ik x_i


class TwoMeans:
    """½ N(μ_1, 1) + ½ N(μ_2, 1); parameters are the means (already unconstrained)."""

    def __init__(self):
        self.inverse_temperatures: list[float] = []
        self.e_steps = 0

    def init_params(self, data, rng):
        return np.sort(rng.choice(np.asarray(data).ravel(), 2, replace=False))

    def e_step(self, params, chunk, inverse_temperature=1.0):
        self.e_steps += 1
        self.inverse_temperatures.append(inverse_temperature)
        x = np.asarray(chunk).ravel()
        log_joint = np.log(0.5) - 0.5 * np.log(2 * np.pi) - 0.5 * (x[:, None] - params) ** 2
        resp = softmax(inverse_temperature * log_joint, axis=1)
        return TwoMeansStats(resp.sum(axis=0), resp.T @ x), float(logsumexp(log_joint, 1).sum())

    def m_step(self, stats, params):
        return stats.total / stats.weight

    def n_samples(self, stats):
        return float(stats.weight.sum())

    def flatten(self, params):
        return np.asarray(params, dtype=float)

    def unflatten(self, vector, template):
        return np.asarray(vector, dtype=float)


class OverRelaxedTwoMeans(TwoMeans):
    """A deliberate bug: the M-step overshoots M(θ) by a factor 2.2, which can lower the
    objective."""

    def m_step(self, stats, params):
        return params + 2.2 * (super().m_step(stats, params) - params)


class TwoMeansWithoutAnnealing(TwoMeans):
    def e_step(self, params, chunk):
        return super().e_step(params, chunk)


class TwoMeansWithoutFlatten:
    def __init__(self):
        self.model = TwoMeans()
        self.init_params, self.e_step, self.m_step = (self.model.init_params,
                                                      self.model.e_step, self.model.m_step)


def two_clusters(n_rows=200, separation=1.0, seed=0):
    rng = np.random.default_rng(seed)
    half = n_rows // 2
    return np.concatenate([rng.normal(-separation, 1, half), rng.normal(separation, 1, half)])


def categories(caught) -> list[type]:
    return [w.category for w in caught]


# ------------------------------------------------------------------------------- the monitor
def test_decrease_at_the_first_iteration_is_caught():
    with pytest.warns(LikelihoodDecreaseWarning, match="iteration 1"):
        result = fit_em(ScriptedModel([-10.0, -20.0, -20.0]), DATA, tol=1.0)
    assert result.decreases == ((1, 10.0),)
    # Convergence is judged on six points after the decrease (the remaining-gain estimate needs
    # two pairs of steps in two phases): points 1 to 6.
    assert result.converged and result.n_iter == 6


def test_decrease_is_warned_recorded_and_not_convergence():
    # Iteration 2 drops by 0.5: less than tol, but a drop is a defect, never convergence.
    model = ScriptedModel([-10.0, -5.0, -5.5, -5.4, -5.4])
    with pytest.warns(LikelihoodDecreaseWarning, match="iteration 2"):
        result = fit_em(model, DATA, tol=1.0, max_iter=10)
    assert result.decreases == ((2, pytest.approx(0.5)),)
    # Not at the first small change: only once six points without a drop (2 to 7) show that
    # nothing is left to gain.
    assert result.converged and result.n_iter == 7


def test_buggy_model_that_lowers_the_objective_is_flagged():
    x = two_clusters()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_em(OverRelaxedTwoMeans(), x, init=np.array([-3.0, -2.9]), max_iter=20)
    assert LikelihoodDecreaseWarning in categories(caught)
    assert result.decreases
    for iteration, amount in result.decreases:
        assert amount == pytest.approx(result.history[iteration - 1] - result.history[iteration])


def test_round_off_sized_decrease_is_not_a_defect():
    monitor = ConvergenceMonitor(tol=1e-3, decrease_rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 1e-12 relative drops: round-off, not defects; a window of them has converged
        converged = [monitor.record(-1000.0 - 1e-9 * (i % 2)) for i in range(6)]
    assert converged == [False] * 5 + [True]
    assert monitor.decreases == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_objective_names_the_iteration(bad):
    with pytest.raises(NumericalError, match="iteration 3"):
        fit_em(ScriptedModel([-10.0, -9.0, -8.0, bad]), DATA, max_iter=10)
    with pytest.raises(NumericalError, match="iteration 0"):
        fit_em(ScriptedModel([bad]), DATA)


def test_tol_is_a_change_per_sample():
    # Gains 100, 10, 1, ...: the remaining gain after a step of g is g / 9.
    objectives = list(-1000.0 + np.cumsum([0.0] + [10.0 ** (2 - k) for k in range(12)]))
    per_sample = fit_em(ScriptedModel(objectives, n_samples=100), DATA, tol=5e-4)
    assert per_sample.converged and per_sample.n_iter == 5  # 0.01 / 100 < 5e-4 at point 5
    total = fit_em(ScriptedModel(objectives), DATA, tol=5e-4)
    assert total.converged and total.n_iter == 7  # 1e-3 / 1 is not below 5e-4, 1e-4 is


def test_max_iter_stops_unconverged_with_a_warning():
    model = ScriptedModel(-1000.0 + np.arange(100.0))
    with pytest.warns(ConvergenceWarning, match="did not converge in 7 iterations"):
        result = fit_em(model, DATA, tol=1e-3, max_iter=7)
    assert not result.converged
    assert result.n_iter == 7 and result.params == 7
    np.testing.assert_array_equal(result.history, -1000.0 + np.arange(8.0))


def test_unconverged_fit_returns_its_best_point():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_em(ScriptedModel([-10.0, -5.0, -7.0, -8.0]), DATA, max_iter=3)
    assert set(categories(caught)) == {LikelihoodDecreaseWarning, ConvergenceWarning}
    assert (result.params, result.objective) == (1, -5.0)
    np.testing.assert_array_equal(result.history, [-10.0, -5.0, -7.0, -8.0])


def test_max_iter_zero_returns_the_start():
    start = np.array([-0.5, 0.5])
    model = TwoMeans()
    with pytest.warns(ConvergenceWarning):
        result = fit_em(model, two_clusters(), init=start, max_iter=0)
    np.testing.assert_array_equal(result.params, start)
    assert result.n_iter == 0 and not result.converged and model.e_steps == 1
    assert result.history.tolist() == [model.e_step(start, two_clusters())[1]]


# ------------------------------------------------------------------------------- restarts
def test_n_init_keeps_the_highest_objective():
    result = fit_em(RandomLevelModel(), DATA, n_init=6, random_state=4)
    objectives = np.array(result.restart_objectives)
    assert len(objectives) == 6 and len(set(objectives)) == 6
    assert result.best_restart == int(np.argmax(objectives))
    assert result.objective == result.params == objectives.max()


@pytest.mark.parametrize("make_state", [
    lambda: 3,
    lambda: np.int64(3),
    lambda: np.random.default_rng(3),
    lambda: np.random.RandomState(3),
    lambda: np.random.SeedSequence(3),
], ids=["int", "numpy-int", "Generator", "RandomState", "SeedSequence"])
def test_random_state_forms_reproduce(make_state):
    x = two_clusters()
    first = fit_em(TwoMeans(), x, n_init=3, random_state=make_state(), max_iter=5,
                   warn_not_converged=False)
    second = fit_em(TwoMeans(), x, n_init=3, random_state=make_state(), max_iter=5,
                    warn_not_converged=False)
    np.testing.assert_array_equal(first.params, second.params)
    assert first.restart_objectives == second.restart_objectives


def test_random_state_none_gives_fresh_starts():
    starts = {fit_em(RandomLevelModel(), DATA, random_state=None).objective for _ in range(4)}
    assert len(starts) == 4


@pytest.mark.parametrize("bad", ["3", 1.5, [3], object()])
def test_random_state_of_a_wrong_type_is_rejected(bad):
    with pytest.raises(ParameterError, match="random_state"):
        fit_em(TwoMeans(), two_clusters(), random_state=bad)


# ------------------------------------------------------------------------------- callbacks
def test_callbacks_see_every_iteration_and_can_stop_a_start():
    seen: list[IterationInfo] = []

    def stop_at_third(info: IterationInfo) -> bool:
        seen.append(info)
        return info.iteration == 3

    result = fit_em(TwoMeans(), two_clusters(), n_init=2, random_state=0, tol=1e-12,
                    callbacks=[stop_at_third], warn_not_converged=False)
    assert [(info.restart, info.iteration) for info in seen] == [
        (restart, iteration) for restart in (0, 1) for iteration in (1, 2, 3)]
    assert result.n_iter == 3 and not result.converged
    best = [info for info in seen if info.restart == result.best_restart]
    assert [info.objective for info in best] == result.history[1:].tolist()
    np.testing.assert_allclose([info.change for info in best], np.diff(result.history))
    np.testing.assert_array_equal(best[-1].params, result.params)
    assert not any(info.annealing for info in seen)



def test_callbacks_are_told_when_each_start_begins_and_ends():
    class Recorder:
        def __init__(self):
            self.calls = []

        def start_began(self, restart):
            self.calls.append(("began", restart))

        def __call__(self, info):
            self.calls.append(("iteration", info.restart, info.n_samples))

        def start_ended(self, restart, result):
            self.calls.append(("ended", restart, result.objective, result.n_iter))

    recorder = Recorder()
    X = two_clusters()
    result = fit_em(TwoMeans(), X, n_init=2, max_iter=2, tol=1e-12, random_state=0,
                    callbacks=[recorder], warn_not_converged=False)
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["began", "iteration", "iteration", "ended"] * 2
    ended = [call for call in recorder.calls if call[0] == "ended"]
    assert [call[1] for call in ended] == [0, 1] and all(call[3] == 2 for call in ended)
    assert ended[result.best_restart][2] == result.objective
    assert result.restart_objectives == tuple(call[2] for call in ended)
    n_samples = [call[2] for call in recorder.calls if call[0] == "iteration"]
    np.testing.assert_allclose(n_samples, len(X), rtol=1e-12)  # Σ responsibilities


def test_verbose_prints_through_the_engine_for_any_model(capsys):
    fit_em(TwoMeans(), two_clusters(), max_iter=3, tol=1e-12, random_state=0, verbose=1,
           verbose_interval=3, warn_not_converged=False)
    assert capsys.readouterr().out.splitlines() == [
        "Initialization 0", "  Iteration 3", "Initialization did not converge."]

# ------------------------------------------------------------------------------- data sources
def test_one_shot_generator_is_rejected():
    x = two_clusters()
    for one_shot in ((chunk for chunk in np.array_split(x, 3)), iter(np.array_split(x, 3))):
        with pytest.raises(DataError, match="one-shot"):
            fit_em(ScriptedModel([-1.0]), one_shot)


def test_empty_chunk_list_is_rejected():
    with pytest.raises(DataError, match="no chunk"):
        fit_em(ScriptedModel([-1.0]), [])


def test_chunks_give_the_fit_of_the_whole():
    x = two_clusters()
    start = np.array([-0.3, 0.2])
    whole = fit_em(TwoMeans(), x, init=start, tol=1e-10, accelerate=None)
    chunked = fit_em(TwoMeans(), np.array_split(x, 4), init=start, tol=1e-10, accelerate=None)
    np.testing.assert_allclose(chunked.params, whole.params, rtol=1e-12)
    np.testing.assert_allclose(chunked.history, whole.history, rtol=1e-12)


# ------------------------------------------------------------------------------- annealing
class PreparingTwoMeans(TwoMeans):
    """Marks prepared chunks, and checks that E-steps see only them and init_params the data."""

    def __init__(self):
        super().__init__()
        self.prepared = 0

    def prepare(self, chunk):
        self.prepared += 1
        x = np.asarray(chunk).ravel()
        return [("prepared", x[: len(x) // 2]), ("prepared", x[len(x) // 2:])]

    def init_params(self, data, rng):
        assert not isinstance(data, list) or not isinstance(data[0], tuple)
        return super().init_params(np.concatenate(data) if isinstance(data, list) else data, rng)

    def e_step(self, params, chunk, inverse_temperature=1.0):
        label, x = chunk
        assert label == "prepared"
        return super().e_step(params, x, inverse_temperature)


def test_prepare_runs_once_per_fit_on_data_in_memory():
    x = two_clusters()
    model = PreparingTwoMeans()
    result = fit_em(model, [x[:50], x[50:]], n_init=3, tol=0.0, max_iter=5, random_state=0,
                    warn_not_converged=False)
    assert model.prepared == 2  # once per chunk, not per start or iteration
    plain = fit_em(TwoMeans(), x, n_init=3, tol=0.0, max_iter=5, random_state=0,
                   warn_not_converged=False)
    np.testing.assert_allclose(result.history, plain.history, rtol=1e-12)


def test_streamed_data_is_not_prepared():
    class Stream:  # a re-iterable source, e.g. chunks read from disk
        def __iter__(self):
            return iter([two_clusters()])

    class Refusing(TwoMeans):
        def prepare(self, chunk):
            raise AssertionError("a streamed source must not be prepared")

        def init_params(self, data, rng):
            return super().init_params(np.concatenate(list(data)), rng)

    result = fit_em(Refusing(), Stream(), tol=0.0, max_iter=3, random_state=0,
                    warn_not_converged=False)
    assert len(result.history) == 4


def test_annealing_follows_the_schedule_then_plain_em():
    x = two_clusters(separation=2.0)
    model = TwoMeans()
    flags = []
    # random_state fixes the jitter the engine adds at each new temperature.
    result = fit_em(model, x, init=np.array([-0.1, 0.1]), annealing=[0.25, 0.5],
                    iter_per_temperature=3, tol=1e-10, random_state=0,
                    callbacks=[lambda info: flags.append(info.annealing)])
    assert model.inverse_temperatures[:7] == [0.25] * 3 + [0.5] * 3 + [1.0]
    assert set(model.inverse_temperatures[6:]) == {1.0}
    assert flags[:6] == [True] * 6 and not any(flags[6:])
    plain = fit_em(TwoMeans(), x, init=np.array([-0.1, 0.1]), tol=1e-10)
    assert result.converged
    # The same optimum, up to the stopping rule (tol per sample on the objective).
    np.testing.assert_allclose(result.params, plain.params, rtol=1e-5)
    assert result.objective == pytest.approx(plain.objective, rel=1e-10)


def test_annealing_from_a_start_temperature():
    model = TwoMeans()
    fit_em(model, two_clusters(separation=2.0), random_state=0, annealing=2.0, tol=1e-10)
    np.testing.assert_array_equal(model.inverse_temperatures[:50],
                                  np.repeat(annealing_schedule(2.0), 5))


# From a high start temperature all components merge into identical copies; the engine jitters
# the parameters at each new temperature so that they can split again as the temperature falls.
def test_annealing_from_a_high_temperature_does_not_end_merged():
    faithful = np.loadtxt(files("emkit") / "datasets" / "faithful.csv", delimiter=",",
                          skiprows=1)
    options = dict(random_state=0, tol=1e-10, max_iter=500)
    annealed = fit_em(GaussianMixtureModel(2), faithful, annealing=5.0, **options)
    plain = fit_em(GaussianMixtureModel(2), faithful, **options)
    assert annealed.objective == pytest.approx(plain.objective, rel=1e-9)


@pytest.mark.parametrize("annealing", [1.0, 0.5, [], [0.0, 0.5], [0.5, 1.5], [np.nan]])
def test_bad_annealing_is_rejected(annealing):
    with pytest.raises(ParameterError, match="annealing"):
        fit_em(TwoMeans(), two_clusters(), annealing=annealing)


def test_annealing_needs_an_e_step_with_inverse_temperature():
    with pytest.raises(ParameterError, match="inverse_temperature"):
        fit_em(TwoMeansWithoutAnnealing(), two_clusters(), annealing=2.0)


# ------------------------------------------------------------------------------- SQUAREM
def test_squarem_needs_flatten_and_unflatten():
    with pytest.raises(ParameterError, match="flatten"):
        fit_em(TwoMeansWithoutFlatten(), two_clusters(), accelerate="squarem")


def test_squarem_objectives_never_decrease_when_extrapolation_is_rejected():
    # Heavily overlapping clusters and a start on one side: an extrapolated point lands below
    # the EM point it must beat at least once.
    x = two_clusters(separation=0.5)
    model = TwoMeans()
    result = fit_em(model, x, init=np.array([-3.0, -2.9]), accelerate="squarem", tol=1e-12,
                    max_iter=500)
    rejected = model.e_steps - len(result.history)  # evaluated but never yielded
    assert rejected >= 1
    assert np.all(np.diff(result.history) >= -1e-10 * np.abs(result.history[1:]))
    plain = fit_em(TwoMeans(), x, init=np.array([-3.0, -2.9]), tol=1e-12, max_iter=500)
    assert result.objective == pytest.approx(plain.objective, rel=1e-10)


def test_squarem_slack_lets_dips_through_but_checks_every_em_step():
    class Relaxed(TwoMeans):
        squarem_slack = 1e6  # every valid extrapolation is accepted

    x = two_clusters(separation=0.5)
    start = np.array([-3.0, -2.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        result = fit_em(Relaxed(), x, init=start, accelerate="squarem", tol=1e-12, max_iter=500)
    assert np.any(np.diff(result.history) < -1e-8)  # extrapolations the strict rule rejects
    assert not result.decreases and result.converged
    plain = fit_em(TwoMeans(), x, init=start, tol=1e-12, max_iter=500)
    assert result.objective == pytest.approx(plain.objective, rel=1e-10)


def test_squarem_slack_does_not_hide_an_em_step_that_lowers_the_objective():
    class RelaxedOverRelaxed(OverRelaxedTwoMeans):
        squarem_slack = 1e6

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_em(RelaxedOverRelaxed(), two_clusters(), init=np.array([-3.0, -2.9]),
                        accelerate="squarem", max_iter=20)
    assert LikelihoodDecreaseWarning in categories(caught) and result.decreases


def test_squarem_with_every_extrapolation_invalid_is_plain_em():
    class NoValidExtrapolation(TwoMeans):
        def unflatten(self, vector, template):
            raise FloatingPointError("every extrapolated point is invalid")

    x = two_clusters()
    start = np.array([-3.0, -2.9])
    accelerated = fit_em(NoValidExtrapolation(), x, init=start, accelerate="squarem", tol=1e-9)
    plain = fit_em(TwoMeans(), x, init=start, tol=0.0, max_iter=len(accelerated.history) - 1,
                   accelerate=None)
    # the same points (SQUAREM judges convergence at the end of its cycles only, so it may run
    # one step further than plain EM)
    np.testing.assert_array_equal(accelerated.history, plain.history)
    np.testing.assert_array_equal(accelerated.params, plain.params)


# ------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("options, match", [
    ({"n_init": 0}, "n_init"),
    ({"n_init": 1.5}, "n_init"),
    ({"max_iter": -1}, "max_iter"),
    ({"tol": -1e-3}, "tol"),
    ({"tol": "small"}, "tol"),
    ({"accelerate": "anderson"}, "accelerate"),
])
def test_bad_arguments_are_rejected(options, match):
    with pytest.raises(ParameterError, match=match):
        fit_em(TwoMeans(), two_clusters(), **options)


def test_an_object_without_the_protocol_is_rejected():
    with pytest.raises(ParameterError, match="m_step"):
        fit_em(RandomLevelModel.__new__(type("NoMStep", (), {
            "init_params": lambda self, data, rng: 0,
            "e_step": lambda self, params, chunk: (0.0, 0.0)})), DATA)
