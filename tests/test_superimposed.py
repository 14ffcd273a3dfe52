"""SuperimposedSignals, its EM model and the signal shapes: independent references (brute force,
scipy, closed forms), EM invariants, bad input and model files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

import emkit
from emkit import fit_em
from emkit.data.chunks import Batch
from emkit.errors import DataError, NotFittedError, ParameterError
from emkit.models.signals import (
    DelayedWaveform,
    Sinusoids,
    Transmitters,
    crb_sinusoids,
    tone_derivatives,
    weighted_cost,
)
from emkit.models.superimposed import SuperimposedModel, sample_rows
from property_budget import examples

N = 64
TIMES = np.arange(N)


def complex_tones(rng, frequencies=(0.2, 0.23), amplitudes=(1.0, 1.0), phases=(0.0, 0.8),
                  noise_variance=0.05, n=N):
    t = np.arange(n)
    clean = sum(a * np.exp(1j * (2 * np.pi * f * t + p))
                for f, a, p in zip(frequencies, amplitudes, phases, strict=True))
    noise = np.sqrt(noise_variance / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    return clean + noise


def real_tones(rng, n=N):
    t = np.arange(n)
    return (np.cos(2 * np.pi * 0.1 * t + 0.3) + 0.5 * np.cos(2 * np.pi * 0.31 * t - 1.0)
            + 0.1 * rng.standard_normal(n))


def chirp(length=40):
    t = np.arange(length)
    return np.sin(2 * np.pi * (0.05 * t + 0.004 * t**2)) * np.hanning(length)


def transmitter_data(rng, noise_sd=0.05, n_receivers=40):
    receivers = rng.uniform(size=(n_receivers, 2))
    signal = Transmitters(receivers)
    truth = np.array([[0.3, 0.6, 1.0], [0.7, 0.3, np.sqrt(1.5)]])
    y = signal.evaluate(truth, np.arange(n_receivers)).sum(0)
    return signal, truth, y + noise_sd * rng.standard_normal(n_receivers)


# ----------------------------------------------------------------------------- Cramér–Rao bound
@pytest.mark.parametrize("complex_", [True, False])
def test_crb_equals_inverse_of_numerical_fisher_information(complex_):
    """The Fisher information is minus the expected Hessian of the log-likelihood: here computed
    by finite differences of E[log p(y; θ')] = const − ‖s(θ) − s(θ')‖²/σ² (complex) or /(2σ²)
    (real), which holds for any θ' because the noise is Gaussian."""
    frequencies, amplitudes, phases = np.array([0.2, 0.23]), np.array([1.0, 0.7]),\
        np.array([0.3, -1.1])
    noise_variance, n = 0.1, 32
    scale = 1.0 if complex_ else 2.0

    def signal(theta):
        f, a, p = theta.reshape(-1, 3).T
        angle = 2 * np.pi * f[:, None] * np.arange(n) + p[:, None]
        return (a[:, None] * (np.exp(1j * angle) if complex_ else np.cos(angle))).sum(0)

    theta0 = np.column_stack([frequencies, amplitudes, phases]).ravel()

    def expected_log_likelihood(theta):
        return -np.sum(np.abs(signal(theta0) - signal(theta)) ** 2) / (scale * noise_variance)

    steps = np.tile([1e-6, 1e-4, 1e-4], 2)  # frequencies act on a scale of 1/(2πn)
    numerical = np.empty((6, 6))
    for i in range(6):
        for j in range(6):
            ei, ej = np.eye(6)[i] * steps[i], np.eye(6)[j] * steps[j]
            numerical[i, j] = -(expected_log_likelihood(theta0 + ei + ej)
                                - expected_log_likelihood(theta0 + ei - ej)
                                - expected_log_likelihood(theta0 - ei + ej)
                                + expected_log_likelihood(theta0 - ei - ej)) / (
                                    4 * steps[i] * steps[j])
    bound = crb_sinusoids(frequencies, amplitudes, noise_variance, n, phases=phases,
                          complex=complex_)
    np.testing.assert_allclose(bound.fisher, numerical, rtol=1e-5, atol=1e-6 * np.abs(
        numerical).max())
    np.testing.assert_allclose(bound.covariance @ numerical, np.eye(6), atol=1e-4)


def test_crb_single_complex_tone_closed_form():
    # Rife & Boorstyn (1974): var f ≥ 6 σ² / ((2π)² a² N (N² − 1)).
    n, a, s2 = 100, 2.0, 0.3
    bound = crb_sinusoids([0.1], [a], s2, n)
    expected = 6 * s2 / ((2 * np.pi) ** 2 * a**2 * n * (n**2 - 1))
    np.testing.assert_allclose(bound.frequency_variance, [expected], rtol=1e-9)


def test_tone_derivatives_match_finite_differences():
    f, a, p = np.array([0.17]), np.array([1.3]), np.array([0.4])
    D = tone_derivatives(f, a, p, TIMES, True)
    h = 1e-7
    numeric_f = (a * np.exp(1j * (2 * np.pi * (f + h) * TIMES + p))
                 - a * np.exp(1j * (2 * np.pi * (f - h) * TIMES + p))) / (2 * h)
    np.testing.assert_allclose(D[:, 0], numeric_f, rtol=1e-6, atol=1e-6)


def test_crb_bad_input():
    with pytest.raises(ParameterError, match="amplitudes"):
        crb_sinusoids([0.1], [0.0], 1.0, 10)
    with pytest.raises(DataError, match="singular"):
        crb_sinusoids([0.1, 0.1], [1.0, 1.0], 1.0, 10)


# ----------------------------------------------------------------------------- single-signal fits
@pytest.mark.parametrize("complex_", [True, False])
def test_single_tone_fit_is_the_least_squares_optimum(complex_):
    """fit_one against a brute-force search: a dense frequency grid (amplitudes by least squares)
    refined by scipy's Nelder–Mead on all three parameters."""
    rng = np.random.default_rng(3)
    signal = Sinusoids(complex=complex_)
    y = complex_tones(rng, (0.137,), (1.0,), (0.5,), 0.5) if complex_ else (
        np.cos(2 * np.pi * 0.137 * TIMES + 0.5) + 0.7 * rng.standard_normal(N))
    weights = np.ones(N)
    fitted = signal.fit_one(y, weights, np.array([0.3, 1.0, 0.0]))

    def cost(theta):
        return float(np.sum(np.abs(y - signal.evaluate(theta, TIMES)[0]) ** 2))

    grid = np.linspace(0.0, 0.5, 2001)
    brute = min((signal._linear_fit(y, weights, f) for f in grid), key=cost)
    best = optimize.minimize(cost, brute, method="Nelder-Mead",
                             options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 4000}).x
    assert cost(fitted) <= cost(best) + 1e-9
    np.testing.assert_allclose(fitted[0], best[0], atol=1e-7)


def test_transmitter_fit_matches_scipy_least_squares():
    rng = np.random.default_rng(4)
    signal, truth, _ = transmitter_data(rng)
    y = signal.evaluate(truth[:1], np.arange(40))[0] + 0.05 * rng.standard_normal(40)
    fitted = signal.fit_one(y, np.ones(40), np.array([0.35, 0.55, 0.8]))
    reference = optimize.least_squares(
        lambda theta: y - signal.evaluate(theta, np.arange(40))[0], [0.35, 0.55, 0.8],
        xtol=1e-14, ftol=1e-14, gtol=1e-14).x
    np.testing.assert_allclose(fitted[:2], reference[:2], atol=1e-7)
    np.testing.assert_allclose(fitted[2] ** 2, reference[2] ** 2, rtol=1e-8)  # measured 9e-11


def test_weighted_cost_is_least_squares_up_to_a_constant():
    rng = np.random.default_rng(5)
    signal = Sinusoids(complex=True)
    x = complex_tones(rng, n=16)
    w = rng.uniform(0, 2, 16)
    thetas = rng.normal(size=(4, 3))
    direct = np.array([np.sum(w * np.abs(x - signal.evaluate(t, np.arange(16))[0]) ** 2)
                       for t in thetas])
    via_sums = weighted_cost(signal, thetas, w * x, w) + np.sum(w * np.abs(x) ** 2)
    np.testing.assert_allclose(via_sums, direct, rtol=1e-12)


def test_real_tone_search_cost_is_the_least_squares_residual():
    # The search's closed form −rᵀG⁻¹r against numpy's least squares of (cos, sin) at each
    # frequency; at 0 and ½, where sin vanishes, against the model's own cut-off solve.
    rng = np.random.default_rng(6)
    n = 200
    w = rng.uniform(0.5, 2.0, n)
    x = rng.normal(size=n)
    signal, points = Sinusoids(), np.arange(n)
    omega = 2 * np.pi * points
    for f in (0.013, 0.2, 0.37, 0.49):
        basis = np.column_stack([np.cos(f * omega), np.sin(f * omega)])
        root_w = np.sqrt(w)
        coefficients = np.linalg.lstsq(basis * root_w[:, None], x * root_w, rcond=None)[0]
        residual = np.sum(w * (x - basis @ coefficients) ** 2)
        cost = signal._profile_cost(w * x, w, f)
        np.testing.assert_allclose(cost + np.sum(w * x**2), residual, rtol=1e-10)
    for f in (0.0, 0.5):
        theta = signal._linear_fit(w * x, w, f)
        np.testing.assert_allclose(signal._profile_cost(w * x, w, f),
                                   weighted_cost(signal, theta, w * x, w)[0], rtol=1e-12)


# ----------------------------------------------------------------------------- EM
def test_e_step_separates_the_residual_and_log_likelihood_is_gaussian():
    rng = np.random.default_rng(6)
    y = real_tones(rng)
    model = SuperimposedModel(Sinusoids(), 2, N, noise_split=[0.3, 0.7])
    params = model.init_params(sample_rows(y), rng)
    parts = model.separate(params, TIMES, y)
    np.testing.assert_allclose(parts.sum(axis=0), y, atol=1e-12)  # Σ_k x̂_k = y
    components = model.components(params, TIMES)
    np.testing.assert_allclose(parts - components,
                               np.outer([0.3, 0.7], y - components.sum(0)), atol=1e-12)
    _, log_likelihood = model.e_step(params, sample_rows(y))
    reference = stats.norm.logpdf(y, components.sum(0), np.sqrt(params.noise_variance)).sum()
    np.testing.assert_allclose(log_likelihood, reference, rtol=1e-12)


def test_complex_log_likelihood_is_circular_gaussian():
    rng = np.random.default_rng(7)
    y = complex_tones(rng)
    model = SuperimposedModel(Sinusoids(complex=True), 2, N)
    params = model.init_params(sample_rows(y), rng)
    residual = y - model.components(params, TIMES).sum(0)
    s2 = params.noise_variance
    # Real and imaginary parts independent N(0, σ²/2).
    reference = (stats.norm.logpdf(residual.real, 0, np.sqrt(s2 / 2)).sum()
                 + stats.norm.logpdf(residual.imag, 0, np.sqrt(s2 / 2)).sum())
    np.testing.assert_allclose(model.e_step(params, sample_rows(y))[1], reference, rtol=1e-12)


def make_case(name, rng):
    if name == "complex-tones":
        return Sinusoids(complex=True), complex_tones(rng)
    if name == "real-tones":
        return Sinusoids(), real_tones(rng)
    if name == "echoes":
        signal = DelayedWaveform(chirp())
        y = signal.evaluate(np.array([[50.3, 1.0], [62.7, -0.7]]), np.arange(160)).sum(0)
        return signal, y + 0.05 * rng.standard_normal(160)
    signal, _, y = transmitter_data(rng)
    return signal, y


@pytest.mark.parametrize("sage", [False, True])
@pytest.mark.parametrize("name", ["complex-tones", "real-tones", "echoes", "transmitters"])
def test_likelihood_never_decreases(name, sage):
    rng = np.random.default_rng(8)
    signal, y = make_case(name, rng)
    model = SuperimposedModel(signal, 2, len(y), sage=sage)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emkit.errors.LikelihoodDecreaseWarning)
        result = fit_em(model, sample_rows(y), n_init=2, random_state=1, tol=0.0, max_iter=25,
                        warn_not_converged=False)
    history = result.history
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    assert history[-1] > history[0]
    assert result.decreases == ()


def test_noise_variance_is_the_mean_squared_residual_at_convergence():
    rng = np.random.default_rng(9)
    y = complex_tones(rng)
    fitted = emkit.SuperimposedSignals(Sinusoids(complex=True), 2, n_init=2,
                                       random_state=0).fit(y)
    residual = y - fitted.predict(y).sum(axis=1)
    np.testing.assert_allclose(fitted.noise_variance_, np.mean(np.abs(residual) ** 2),
                               rtol=1e-6)


def test_em_and_sage_reach_the_same_optimum_sage_in_fewer_iterations():
    rng = np.random.default_rng(10)
    y = complex_tones(rng)
    em = emkit.SuperimposedSignals("complex_tones", 2, n_init=1, random_state=2, tol=1e-12,
                                   sage=False, accelerate=None)
    sage = emkit.SuperimposedSignals("complex_tones", 2, n_init=1, random_state=2, tol=1e-12,
                                     sage=True, accelerate=None)
    em.fit(y), sage.fit(y)
    np.testing.assert_allclose(sage.frequencies_, em.frequencies_, atol=1e-7)
    np.testing.assert_allclose(sage.score(y), em.score(y), rtol=1e-10)
    assert sage.n_iter_ < em.n_iter_


def test_optimum_is_a_stationary_point_of_the_likelihood():
    """At the fit, the likelihood's gradient in (f, a, φ) vanishes (checked by scipy's
    minimiser, which cannot improve it)."""
    rng = np.random.default_rng(11)
    y = complex_tones(rng)
    fitted = emkit.SuperimposedSignals("complex_tones", 2, n_init=3, random_state=0,
                                       tol=1e-12).fit(y)
    signal = Sinusoids(complex=True)

    def rss(vector):
        return float(np.sum(np.abs(y - signal.evaluate(vector.reshape(2, 3), TIMES).sum(0))
                            ** 2))

    start = fitted.theta_.ravel()
    polished = optimize.minimize(rss, start, method="BFGS", options={"gtol": 1e-10}).x
    assert rss(polished) >= rss(start) - 1e-9 * rss(start)
    np.testing.assert_allclose(np.sort(polished.reshape(2, 3)[:, 0]), fitted.frequencies_,
                               atol=1e-7)


def test_chunked_fit_and_gaps_equal_the_fit_on_the_kept_samples_sage():
    rng = np.random.default_rng(12)
    y = complex_tones(rng)
    rows = sample_rows(y)
    weights = np.where(rng.uniform(size=N) < 0.2, 0.0, 1.0)

    def run(data):
        model = SuperimposedModel(Sinusoids(complex=True), 2, N, sage=True)
        return fit_em(model, data, random_state=4, tol=1e-13, max_iter=200)

    kept = run(rows[weights > 0])
    gaps = run(Batch(rows, weights))
    chunks = run([rows[weights > 0][:20], rows[weights > 0][20:]])
    for other in (gaps, chunks):
        np.testing.assert_allclose(other.params.theta, kept.params.theta, atol=1e-8)
        np.testing.assert_allclose(other.objective, kept.objective, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::emkit.errors.ConvergenceWarning")
def test_same_seed_same_bits_and_seeds_spread_the_starts():
    rng = np.random.default_rng(13)
    signal, y = make_case("transmitters", rng)
    fits = [emkit.SuperimposedSignals(signal, 2, n_init=2, random_state=5, sage=True,
                                      max_iter=20).fit(y) for _ in range(2)]
    assert np.array_equal(fits[0].theta_, fits[1].theta_)
    assert np.array_equal(fits[0].history_, fits[1].history_)
    model = SuperimposedModel(signal, 2)
    starts = [model.init_params(sample_rows(y), np.random.default_rng(s)).theta
              for s in range(3)]
    assert not np.array_equal(starts[0], starts[1])


# ----------------------------------------------------------------------------- the estimator
def test_estimator_recovers_real_tones_and_its_outputs():
    rng = np.random.default_rng(14)
    y = real_tones(rng)
    fitted = emkit.SuperimposedSignals("tones", 2, random_state=0).fit(y)
    np.testing.assert_allclose(fitted.frequencies_, [0.1, 0.31], atol=2e-3)
    np.testing.assert_allclose(fitted.amplitudes_, [1.0, 0.5], atol=0.05)
    np.testing.assert_allclose(fitted.phases_, [0.3, -1.0], atol=0.1)
    assert fitted.converged_ and fitted.n_iter_ == len(fitted.history_) - 1
    separated = fitted.transform(y)
    assert separated.shape == (N, 2)
    np.testing.assert_allclose(separated.sum(axis=1), y, atol=1e-12)
    clean = fitted.predict(y)
    np.testing.assert_allclose(clean[:, 0], fitted.amplitudes_[0] * np.cos(
        2 * np.pi * fitted.frequencies_[0] * TIMES + fitted.phases_[0]), atol=1e-12)
    reference = stats.norm.logpdf(y, clean.sum(1), np.sqrt(fitted.noise_variance_)).mean()
    np.testing.assert_allclose(fitted.score(y), reference, rtol=1e-12)
    np.testing.assert_allclose(fitted.lower_bound_, reference, rtol=1e-9)
    assert fitted.n_parameters() == 7


def test_save_and_load_tones(tmp_path):
    rng = np.random.default_rng(15)
    y = complex_tones(rng)
    fitted = emkit.SuperimposedSignals(Sinusoids(complex=True), 2, n_init=2,
                                       random_state=0).fit(y)
    fitted.save(tmp_path / "tones.emkit")
    loaded = emkit.load(tmp_path / "tones.emkit")
    assert loaded.signal == "complex_tones"
    np.testing.assert_array_equal(loaded.frequencies_, fitted.frequencies_)
    np.testing.assert_array_equal(loaded.transform(y), fitted.transform(y))
    assert loaded.score(y) == fitted.score(y)


def test_save_refuses_signals_that_cannot_be_stored(tmp_path):
    rng = np.random.default_rng(16)
    signal, y = make_case("transmitters", rng)
    fitted = emkit.SuperimposedSignals(signal, 2, n_init=1, random_state=0, sage=True).fit(y)
    with pytest.raises(ParameterError, match="plain arrays and never code"):
        fitted.save(tmp_path / "t.emkit")
    assert not (tmp_path / "t.emkit").exists()


# ----------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors():
    rng = np.random.default_rng(17)
    y = complex_tones(rng)
    with pytest.raises(DataError, match="cannot determine"):
        emkit.SuperimposedSignals("complex_tones", 3).fit(y[:9])  # 9 samples, 10 parameters
    with pytest.raises(ParameterError, match="n_components must be an integer >= 1"):
        emkit.SuperimposedSignals("complex_tones", 0).fit(y)
    with pytest.raises(DataError, match="y is complex but"):
        emkit.SuperimposedSignals("tones", 2).fit(y)
    bad = y.copy()
    bad[5] = np.nan
    with pytest.raises(DataError, match="NaN or infinite sample.*index 5"):
        emkit.SuperimposedSignals("complex_tones", 2).fit(bad)
    with pytest.raises(ParameterError, match="needs receiver_positions"):
        Transmitters(None)
    with pytest.raises(ParameterError, match=r"shape \(n_receivers, 2\)"):
        Transmitters(np.zeros(5))
    signal, _, _ = transmitter_data(rng)
    with pytest.raises(DataError, match="39 measurements were given for 40 receivers"):
        emkit.SuperimposedSignals(signal, 2).fit(np.ones(39))
    with pytest.raises(ParameterError, match="signal must be"):
        emkit.SuperimposedSignals("chirps", 2).fit(y.real)
    with pytest.raises(ParameterError, match="is not a signal"):
        emkit.SuperimposedSignals(object(), 2).fit(y.real)
    with pytest.raises(DataError, match="1-D"):
        emkit.SuperimposedSignals("tones", 1).fit(np.ones((4, 3)))
    with pytest.raises(NotFittedError):
        emkit.SuperimposedSignals("tones", 1).predict(y.real)
    with pytest.raises(ParameterError, match="real waveform"):
        DelayedWaveform(np.ones(4) * 1j)
    with pytest.raises(ParameterError, match="noise_split"):
        SuperimposedModel(Sinusoids(), 2, 10, noise_split=[0.5, 0.6])
    with pytest.raises(DataError, match="sample points"):
        SuperimposedModel(Sinusoids(), 1, 4).e_step(
            SuperimposedModel(Sinusoids(), 1, 4).init_params(
                sample_rows(np.ones(4)), rng), np.array([[7.0, 1.0]]))


# ----------------------------------------------------------------------------- command line, clip
def test_cli_fits_the_bundled_clip_and_saves_the_model(tmp_path, capsys):
    import json

    from scipy.io import wavfile

    from emkit import datasets
    from emkit.cli import main

    clip = datasets.recording_path("two_tones")
    rate, samples = wavfile.read(clip)
    assert rate == 8000 and samples.dtype == np.int16 and len(samples) == 2000
    output = tmp_path / "tones.emkit"
    status = main(["fit", "tones", str(clip), "-k", "2", "--json", "-o", str(output)])
    summary = json.loads(capsys.readouterr().out)
    assert status == 0 and summary["converged"]
    # The clip's tones (docs/examples/make_two_tones_wav.py): 440 Hz / 0.5 and 443 Hz / 0.3,
    # 3 Hz apart while the periodogram resolves 4 Hz.
    np.testing.assert_allclose(summary["frequencies_hz"], [440.0, 443.0], atol=0.05)
    np.testing.assert_allclose(summary["amplitudes"], [0.5, 0.3], atol=0.01)
    np.testing.assert_allclose(summary["noise_variance"], 0.05**2, rtol=0.1)
    loaded = emkit.load(output)
    np.testing.assert_allclose(loaded.frequencies_ * rate, summary["frequencies_hz"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    from scipy.io import wavfile

    from emkit.cli import main

    stereo = tmp_path / "stereo.wav"
    wavfile.write(stereo, 8000, np.zeros((100, 2), dtype=np.int16))
    not_wav = tmp_path / "notes.wav"
    not_wav.write_text("not audio")
    for path, expected in ((stereo, "2 channels"), (not_wav, "not a readable WAV"),
                           (tmp_path / "missing.wav", "does not exist")):
        assert main(["fit", "tones", str(path), "-k", "2"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("emkit: error:") and expected in error
        assert error.count("\n") == 1


def test_plots_show_the_fitted_tones_and_the_separated_signals(tmp_path):
    pytest.importorskip("matplotlib")
    from emkit.plot import plot_separated, plot_tone_spectrum, save_figure

    rng = np.random.default_rng(18)
    y = real_tones(rng)
    fitted = emkit.SuperimposedSignals("tones", 2, random_state=0).fit(y)
    figure = plot_tone_spectrum(fitted, y, sample_rate=8000.0)
    markers = figure.axes[0].collections[-1].get_offsets()
    np.testing.assert_allclose(markers[:, 0], fitted.frequencies_ * 8000.0)
    np.testing.assert_allclose(markers[:, 1], fitted.amplitudes_**2 * N / 4)
    figure = plot_separated(fitted, y)
    lines = figure.axes[0].get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[0].get_ydata(), y)
    separated = fitted.transform(y)
    offset = lines[1].get_ydata() - separated[:, 0]
    np.testing.assert_allclose(offset, offset[0])
    assert save_figure(figure, tmp_path / "separated.png").stat().st_size > 0
    with pytest.raises(DataError, match="fitted with tones"):
        plot_tone_spectrum(object(), y)


def test_transmitters_with_a_user_path_loss():
    rng = np.random.default_rng(19)
    receivers = rng.uniform(size=(30, 2))

    def path_loss(distance):
        return np.exp(-(distance**2) / 0.08)

    signal = Transmitters(receivers, path_loss=path_loss)
    truth = np.array([[0.3, 0.3, 1.0], [0.7, 0.6, 1.2]])
    np.testing.assert_allclose(
        signal.evaluate(truth, np.arange(30)),
        truth[:, 2, None] ** 2 * path_loss(np.linalg.norm(receivers[None] - truth[:, None, :2],
                                                          axis=2)))
    y = signal.evaluate(truth, np.arange(30)).sum(0) + 0.01 * rng.standard_normal(30)
    fitted = emkit.SuperimposedSignals(signal, 2, n_init=5, random_state=0, sage=True).fit(y)
    np.testing.assert_allclose(fitted.positions_, truth[:, :2], atol=0.01)
    np.testing.assert_allclose(fitted.powers_, truth[:, 2] ** 2, rtol=0.05)


@settings(max_examples=examples(25))
@given(n_samples=st.integers(1, 40), n_components=st.integers(1, 6),
       bad_index=st.integers(0, 39), bad_value=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_bad_samples_and_too_few_samples_never_reach_the_fit(n_samples, n_components, bad_index,
                                                            bad_value):
    y = np.cos(0.3 * np.arange(n_samples))
    estimator = emkit.SuperimposedSignals("tones", n_components, n_init=1, max_iter=5)
    if n_samples <= 3 * n_components + 1:
        with pytest.raises(DataError, match="cannot determine"):
            estimator.fit(y)
    y[bad_index % n_samples] = bad_value
    with pytest.raises(DataError, match="NaN or infinite"):
        estimator.fit(y)
