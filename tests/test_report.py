"""``emkit demo``'s report: its numbers (independent references), its figures against its tables
(the component order of every legend, the colours, each criterion's own choice), and
``report.html`` rendered in headless Chromium.

One quick demo, run through the command line, serves every test of the module; the Figure
objects behind its PNG files are kept (``run_demo(figures=...)``) so the tests read legends,
colours and data from them rather than from pixels.
"""

import base64
import contextlib
import functools
import io
import itertools
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

pytest.importorskip("matplotlib")
from matplotlib.colors import LogNorm, to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from emkit import datasets, report  # noqa: E402
from emkit.cli import main  # noqa: E402
from finite_differences import hessian  # noqa: E402

CRITERIA = {"bic": "BIC", "aic": "AIC", "icl": "ICL"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``emkit demo --quick``, once; returns (folder, stdout, summary, markdown, Figures)."""
    folder = tmp_path_factory.mktemp("demo") / "report"
    figures = {}
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        # The command line's own path into the report, with the Figure objects kept.
        patch.setattr(report, "run_demo", functools.partial(report.run_demo, figures=figures))
        status = main(["demo", "--output", str(folder), "--quick"])
    assert status == 0
    summary = json.loads((folder / "summary.json").read_text())
    return folder, out.getvalue(), summary, (folder / "summary.md").read_text(), figures


def figure_names(summary):
    return [name for section in summary.values() if isinstance(section, dict)
            for name in section.get("figures", {}).values()]


# ------------------------------------------------------------------------------ the numbers
def test_demo_writes_a_report(demo):
    folder, out, summary, markdown, figures = demo
    assert out.strip() == f"report written to {folder / 'summary.md'}"
    names = figure_names(summary)
    assert len(names) == 13 and sorted(names) == sorted(figures)
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(names)
    for name in names:
        png = (folder / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert f"]({name})" in markdown
    faithful = summary["faithful"]
    assert faithful["best"] == min(faithful["selection"], key=lambda row: row["bic"])
    em, squarem = faithful["convergence"]["plain EM"], faithful["convergence"]["SQUAREM"]
    assert em["start_log_likelihood"] == squarem["start_log_likelihood"]  # the same start
    assert squarem["log_likelihood"] == pytest.approx(em["log_likelihood"], abs=1e-4)
    penguins = summary["penguins"]
    assert penguins["n_samples"] == 344 and penguins["n_measured"] == 342
    assert sum(map(sum, penguins["clusters_by_species"].values())) == 342
    assert 0.5 < penguins["adjusted_rand_index"] <= 1.0
    air = summary["airquality"]
    assert air["missing"]["Ozone"] == 37 and air["missing"]["Solar.R"] == 7
    observed = [v for v in air["example_observed"] if v is not None]
    assert observed == [v for v, o in zip(air["example_filled"], air["example_observed"],
                                          strict=True) if o is not None]  # observed kept
    assert all(np.isfinite(air["example_filled"]))
    for title in ("## Convergence: plain EM against SQUAREM", "## How to reproduce this"):
        assert title in markdown


def test_demo_em_applications(demo):
    """The report's twins, tones, fixed-mixture and geyser sections (quick settings)."""
    _, _, summary, markdown, _ = demo
    for title in ("## Twins gut microbiome", "## Two close tones", "## Old Faithful again",
                  "## Old Faithful, eruption after eruption"):
        assert title in markdown
    twins = summary["twins"]
    rows = {row["n_components"]: row for row in twins["selection"]}
    assert sorted(rows) == [1, 2] and (twins["n_samples"], twins["n_taxa"]) == (278, 130)
    # Holmes et al.'s published minimum of their objective for one component.
    assert rows[1]["objective"] == pytest.approx(39162.112, abs=1e-3)
    assert twins["best_n_components"] == min(rows, key=lambda k: rows[k]["laplace"])
    for k, row in rows.items():
        assert row["n_parameters"] == k - 1 + k * 130
        assert row["bic"] - row["aic"] == pytest.approx(row["n_parameters"]
                                                        * (np.log(278) - 2), rel=1e-9)
    assert sum(twins["weights"]) == pytest.approx(1.0)
    assert len(twins["weights"]) == twins["best_n_components"]

    tones = summary["tones"]
    assert tones["true"]["frequencies_hz"] == [440.0, 443.0]
    sd = np.asarray(tones["crb_sd"]["frequencies_hz"])
    em_errors = np.abs(tones["frequency_errors_hz"])
    assert np.all(em_errors <= tones["tolerance_crb_sd"] * sd)
    assert np.all(em_errors < 0.05)  # Hz: the clip's tones, to well below its 4 Hz resolution
    assert np.all(np.abs(tones["periodogram_errors_hz"]) > 10 * sd)  # the contrast shown
    for name in ("amplitudes", "phases"):
        error = np.subtract(tones["em"][name], tones["true"][name])
        assert np.all(np.abs(error) <= 4 * np.asarray(tones["crb_sd"][name]))

    fixed = summary["fixed_mixture"]
    assert sum(fixed["weights"]) == pytest.approx(1.0, abs=1e-12)
    assert min(fixed["weights"]) >= 0
    # The best single model is one of the weightings the learned mixture maximises over.
    assert fixed["ensemble_score"] >= max(fixed["member_scores"]) - 1e-6
    assert fixed["best_member"] == int(np.argmax(fixed["member_scores"]))
    # The K=1 member is the Gaussian MLE of the fitting half: scipy scores the other half.
    X = datasets.load("faithful").data
    order = np.random.default_rng(summary["seed"]).permutation(len(X))
    fit_rows, held_out = X[order[:fixed["n_fit"]]], X[order[fixed["n_fit"]:]]
    gaussian = stats.multivariate_normal(fit_rows.mean(axis=0),
                                         np.cov(fit_rows, rowvar=False, bias=True))
    assert fixed["member_scores"][0] == pytest.approx(gaussian.logpdf(held_out).mean(),
                                                      abs=1e-5)

    geyser = summary["geyser"]
    log_likelihood = {(row["model"], row["n_components"]): row["log_likelihood"]
                      for row in geyser["models"]}
    # An HMM whose transition rows equal the mixing weights is the mixture.
    assert log_likelihood["GaussianHMM", 2] > log_likelihood["GaussianMixture", 2]
    for k, chain in geyser["chains"].items():
        assert np.allclose(np.sum(chain["transmat"], axis=1), 1.0)
        assert sum(chain["startprob"]) == pytest.approx(1.0)
        assert sum(chain["frames_per_state"]) == geyser["n_samples"] == 299
        assert np.shape(chain["means"]) == (int(k), 2)
        waiting = [mean[0] for mean in chain["means"]]
        assert waiting == sorted(waiting)  # the states' one order: by mean waiting time


def standard_errors_by_finite_differences(log_likelihood, estimate):
    """Square roots of the diagonal of the inverse observed information, the information
    being minus the Hessian of the log-likelihood by central differences."""
    return np.sqrt(np.diag(np.linalg.inv(-hessian(log_likelihood, np.asarray(estimate)))))


def test_demo_poisson_discoveries(demo):
    """The Poisson mixture of the discoveries: the table against closed forms and a direct
    scipy maximisation, the standard errors against a finite-difference Hessian."""
    _, _, summary, markdown, _ = demo
    section = summary["discoveries"]
    assert "## Great discoveries, 1860–1959: a Poisson mixture of counts" in markdown
    counts = datasets.load("discoveries").column("count")
    assert section["n_samples"] == len(counts) == 100
    rows = {row["n_components"]: row for row in section["selection"]}
    # K = 1: the MLE of one Poisson is the mean count.
    assert rows[1]["log_likelihood"] == pytest.approx(
        stats.poisson.logpmf(counts, counts.mean()).sum(), abs=1e-8)
    assert section["best"] == min(section["selection"], key=lambda row: row["bic"])
    assert section["best"]["n_components"] == 2

    def log_likelihood(params):  # (π_0, λ_0, λ_1)
        weight, *rates = params
        return logsumexp(np.log([weight, 1 - weight])[:, None]
                         + stats.poisson.logpmf(counts, np.array(rates)[:, None]), axis=0).sum()

    # scipy's own maximisation, from a start away from the report's estimate.
    direct = optimize.minimize(
        lambda z: -log_likelihood([1 / (1 + np.exp(-z[0])), *np.exp(z[1:])]),
        [0.0, np.log(2.0), np.log(5.0)], method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 5000})
    weight, *rates = 1 / (1 + np.exp(-direct.x[0])), *np.exp(direct.x[1:])
    assert -direct.fun == pytest.approx(rows[2]["log_likelihood"], abs=1e-7)
    np.testing.assert_allclose(section["rates"], rates, rtol=1e-4)
    np.testing.assert_allclose(section["weights"], [weight, 1 - weight], rtol=1e-4)
    assert section["rates"] == sorted(section["rates"])  # the table's order: by rate

    estimate = [section["weights"][0], *section["rates"]]
    errors = standard_errors_by_finite_differences(log_likelihood, estimate)
    np.testing.assert_allclose(section["weights_se"], [errors[0]] * 2, rtol=0.02)
    np.testing.assert_allclose(section["rates_se"], errors[1:], rtol=0.02)


def test_demo_regression_ethanol(demo):
    """The mixture of regressions: mixtools' maximum, the log-likelihood recomputed from the
    reported lines, and the standard errors against a finite-difference Hessian."""
    _, _, summary, markdown, _ = demo
    section = summary["ethanol"]
    assert "## Ethanol engine runs: a mixture of two regressions" in markdown
    ethanol = datasets.load("ethanol")
    x, y = ethanol.column("NO"), ethanol.column("Equivalence")
    assert section["best"]["n_components"] == 2
    assert section["best"] == min(section["selection"], key=lambda row: row["bic"])
    # mixtools 2.0.0's best regmixEM maximum (tests/test_regression_mixture.py has its source).
    assert section["log_likelihood"] == pytest.approx(122.038355785, abs=1e-6)
    assert section["slopes"] == sorted(section["slopes"], reverse=True)  # rising line first

    def log_likelihood(params):  # (π_0, then intercept, slope, σ² of each line)
        weight, lines = params[0], np.reshape(params[1:], (2, 3))
        means = lines[:, :1] + lines[:, 1:2] * x
        return logsumexp(np.log([weight, 1 - weight])[:, None]
                         + stats.norm.logpdf(y, means, np.sqrt(lines[:, 2:])), axis=0).sum()

    estimate = [section["weights"][0]] + [
        value for k in range(2) for value in (section["intercepts"][k], section["slopes"][k],
                                              section["noise_variances"][k])]
    assert log_likelihood(estimate) == pytest.approx(section["log_likelihood"], abs=1e-8)
    errors = standard_errors_by_finite_differences(log_likelihood, estimate)
    np.testing.assert_allclose(section["weights_se"], [errors[0]] * 2, rtol=0.02)
    for j, name in enumerate(("intercepts_se", "slopes_se", "noise_variances_se")):
        np.testing.assert_allclose(section[name], errors[1 + j::3], rtol=0.02)


def test_demo_student_eustock(demo):
    """Student-t against Gaussian mixtures of the returns: the one-component fits against
    scipy's densities, ν's and the means' standard errors against a finite-difference Hessian."""
    _, _, summary, markdown, _ = demo
    section = summary["eustock"]
    assert "## European stock returns: heavy tails, a Student-t mixture" in markdown
    stocks = datasets.load("eustock")
    prices = np.column_stack([stocks.column(name) for name in ("DAX", "FTSE")])
    returns = 100 * np.diff(np.log(prices), axis=0)
    n = len(returns)
    models = {(row["model"], row["n_components"]): row for row in section["models"]}
    best = min(section["models"], key=lambda row: row["bic"])
    assert section["best"] == {"model": best["model"], "n_components": best["n_components"]}
    assert section["best"] == {"model": "StudentMixture", "n_components": 1}
    # One Gaussian: the sample mean and (biased) covariance, BIC with 5 parameters.
    gaussian = models["GaussianMixture", 1]
    expected = stats.multivariate_normal(returns.mean(axis=0),
                                         np.cov(returns, rowvar=False, bias=True))
    assert gaussian["log_likelihood"] == pytest.approx(expected.logpdf(returns).sum(), abs=1e-6)
    assert gaussian["bic"] == pytest.approx(-2 * gaussian["log_likelihood"] + 5 * np.log(n))
    # One t: scipy's multivariate t at the reported centre, scale and ν.
    student = section["student"]

    def log_likelihood(params):  # (μ_DAX, μ_FTSE, Σ_11, Σ_12, Σ_22, ν)
        scale = np.array([[params[2], params[3]], [params[3], params[4]]])
        return stats.multivariate_t(params[:2], scale, df=params[5]).logpdf(returns).sum()

    (s11, s12), (_, s22) = student["scale"]
    estimate = [*student["means"], s11, s12, s22, student["dof"]]
    assert log_likelihood(estimate) == pytest.approx(
        models["StudentMixture", 1]["log_likelihood"], abs=1e-6)
    assert models["StudentMixture", 1]["dof"] == [student["dof"]]
    errors = standard_errors_by_finite_differences(log_likelihood, estimate)
    np.testing.assert_allclose(student["means_se"], errors[:2], rtol=0.02)
    assert student["dof_se"] == pytest.approx(errors[5], rel=0.02)


# ------------------------------------------------------------------------------ figures = tables
def legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def legend_colours(ax):
    return [to_rgba(handle.get_color()) for handle in ax.get_legend().legend_handles]


def ellipse_colours(ax, centres):
    """The edge colour of the 1σ ellipse centred at each of ``centres``."""
    ellipses = [patch for patch in ax.patches if isinstance(patch, Ellipse)]
    colours = []
    for centre in centres:
        match = [e for e in ellipses if np.allclose(e.center, centre, rtol=1e-12)]
        assert len(match) == 2  # the 1σ and the 2σ ellipse
        colours.append(to_rgba(match[0].get_edgecolor()))
    return colours


def test_faithful_components_legend_follows_the_table(demo):
    _, _, summary, markdown, figures = demo
    faithful = summary["faithful"]
    ax = figures["faithful_components.png"].axes[0]
    weights, means = faithful["weights"], np.asarray(faithful["means"])
    assert legend_texts(ax) == [f"component {i}: π={w:.2f}" for i, w in enumerate(weights)]
    # The table lists the components by mean eruption time, and so do legend and colours:
    # legend entry i has the colour of the ellipses around the table's mean i.
    assert list(means[:, 0]) == sorted(means[:, 0])
    assert legend_colours(ax) == ellipse_colours(ax, means)
    for i, (w, mean) in enumerate(zip(weights, means, strict=True)):
        assert f"| {i} | {w:.3f} | {mean[0]:.3f} | {mean[1]:.3f} |" in markdown


def test_galaxies_density_legend_follows_the_table(demo):
    _, _, summary, _, figures = demo
    galaxies = summary["galaxies"]
    ax = figures["galaxies_density.png"].axes[0]
    shown = [text for text in legend_texts(ax) if text.startswith("component")]
    assert shown == [f"component {i} (π={w:.2f})" for i, w in enumerate(galaxies["weights"])]
    lines = {line.get_label(): line for line in ax.get_lines()}
    spacing = np.diff(ax.get_lines()[0].get_xdata())[0]
    for i, mean in enumerate(galaxies["means"]):
        line = lines[shown[i]]
        # The curve peaks at the table's mean i (on the plotting grid).
        assert line.get_xdata()[np.argmax(line.get_ydata())] == pytest.approx(mean,
                                                                                abs=spacing)
        assert to_rgba(line.get_color()) == to_rgba(f"C{i}")


def test_discoveries_and_ethanol_legends_follow_their_tables(demo):
    _, _, summary, _, figures = demo
    discoveries, ethanol = summary["discoveries"], summary["ethanol"]
    ax = figures["discoveries_frequencies.png"].axes[0]
    shown = [text for text in legend_texts(ax) if text.startswith("component")]
    assert shown == [f"component {k} (rate {r:.2f})" for k, r in enumerate(discoveries["rates"])]
    lines = {line.get_label(): line for line in ax.get_lines()}
    counts = datasets.load("discoveries").column("count")
    for k, (weight, rate) in enumerate(zip(discoveries["weights"], discoveries["rates"],
                                           strict=True)):
        line = lines[shown[k]]
        # Component k's expected years: n π_k Poisson(x | λ_k), in colour k.
        np.testing.assert_allclose(line.get_ydata(), len(counts) * weight
                                   * stats.poisson.pmf(line.get_xdata(), rate), rtol=1e-12)
        assert to_rgba(line.get_color()) == to_rgba(f"C{k}")
    ax = figures["ethanol_lines.png"].axes[0]
    assert legend_texts(ax) == [f"line {k} (weight {w:.2f})"
                                for k, w in enumerate(ethanol["weights"])]
    for k, line in enumerate(ax.get_lines()):
        # Line k is the table's intercept and slope k, drawn in colour k.
        np.testing.assert_allclose(line.get_ydata(), ethanol["intercepts"][k]
                                   + ethanol["slopes"][k] * line.get_xdata(), rtol=1e-12)
        assert to_rgba(line.get_color()) == to_rgba(f"C{k}")
    ax = figures["eustock_tails.png"].axes[0]
    assert f"Student t (ν = {summary['eustock']['student']['dof']:.1f})" in legend_texts(ax)


def test_penguin_clusters_are_coloured_as_the_crosstab(demo):
    _, _, summary, _, figures = demo
    crosstab = summary["penguins"]["clusters_by_species"]
    ax = figures["penguins_clusters.png"].axes[0]
    assert [text.split(":")[0] for text in legend_texts(ax)] == ["cluster 0", "cluster 1",
                                                                 "cluster 2"]
    colours = legend_colours(ax)
    # Each point has its cluster's colour: the points of colour i are the crosstab's column i.
    points = ax.collections[0].get_facecolors()[:, :3]
    counts = [int(np.sum(np.all(np.isclose(points, colour[:3]), axis=1))) for colour in colours]
    assert counts == [sum(column) for column in zip(*crosstab.values(), strict=True)]
    # Clusters are numbered by mean flipper length, the plot's vertical axis.
    centres = [e.center for e in ax.patches if isinstance(e, Ellipse)][::2]
    by_colour = {to_rgba(e.get_edgecolor()): e.center[1] for e in ax.patches
                 if isinstance(e, Ellipse)}
    assert len(centres) == 3
    flipper = [by_colour[colour] for colour in colours]
    assert flipper == sorted(flipper)


def test_twins_heatmap_columns_follow_the_table(demo):
    _, _, summary, _, figures = demo
    twins = summary["twins"]
    ax = figures["twins_heatmap.png"].axes[0]
    image = ax.images[0]
    assert isinstance(image.norm, LogNorm)  # proportions span decades
    values = np.asarray(image.get_array())
    rows = [label.get_text() for label in ax.get_yticklabels()]
    assert values.shape == (20, twins["best_n_components"])
    for i, top in enumerate(twins["top_taxa"]):
        matched = [(name, p) for name, p in top if name in rows]
        assert matched  # the most abundant taxa of a type are among the most variable
        for name, p in matched:
            assert values[rows.index(name), i] == pytest.approx(p, rel=1e-12)


def test_geyser_has_one_legend_in_the_tables_order(demo):
    _, _, summary, _, figures = demo
    figure = figures["geyser_states.png"]
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    assert len(legends) == 1 and not figure.legends
    top = figure.axes[0]
    assert legend_texts(top) == ["state 0", "state 1"]
    frames = [len(collection.get_offsets()) for collection in top.collections]
    assert frames == summary["geyser"]["chains"]["2"]["frames_per_state"]


@pytest.mark.parametrize("name, section, criteria",
                         [("faithful_criteria.png", "faithful", ("bic", "aic", "icl")),
                          ("galaxies_bic.png", "galaxies", ("bic",))])
def test_each_criterion_panel_marks_its_own_choice(demo, name, section, criteria):
    _, _, summary, markdown, figures = demo
    table = summary[section]["selection"]
    eligible = [row for row in table if row["converged"]] or table
    axes = figures[name].axes
    assert len(axes) == len(criteria)
    for ax, criterion in zip(axes, criteria, strict=True):
        chosen = min(eligible, key=lambda row: row[criterion])  # min keeps the first of equals
        circle = next(line for line in ax.get_lines() if "'s choice" in line.get_label())
        assert (circle.get_xdata()[0], circle.get_ydata()[0]) == (chosen["n_components"],
                                                                  chosen[criterion])
        assert ax.get_title().startswith(f"{CRITERIA[criterion]}: chooses "
                                         f"K={chosen['n_components']}, "
                                         f"{chosen['covariance_type']}")
        low, high = ax.get_ylim()
        assert low < chosen[criterion] < high
        # The table bolds the same value.
        assert f"**{chosen[criterion]:.2f}**" in markdown


# ------------------------------------------------------------------------------ report.html
def embedded_images(page):
    return re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_html_report_is_self_contained(demo):
    folder, _, summary, markdown, _ = demo
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no script, no stylesheet link, no external address, no url().
    for needle in ("<script", "<link", "@import", "url(", 'src="http', 'href="http'):
        assert needle not in page
    assert len(re.findall(r"<img ", page)) == 13
    # Every figure is the PNG file beside it, embedded.
    embedded = {base64.b64decode(data) for data in embedded_images(page)}
    assert embedded == {(folder / name).read_bytes() for name in figure_names(summary)}
    # The page has the report's sections and tables, and each figure beside its table.
    for heading in re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE):
        assert f">{heading.replace('&', '&amp;')}</h2>" in page
    assert page.count("<table>") == sum(1 for line in markdown.splitlines()
                                        if re.fullmatch(r"\|[-:|]+", line))
    # Every figure right after its table: beside it, or below it at full width when wide.
    assert page.count('<div class="pair">') + page.count('<figure class="wide">') == 13
    assert re.search(r'</table>\n<figure class="wide">', page)
    assert "emkit demo --output emkit-report --quick" in page
    for heading in ("Great discoveries", "Ethanol engine runs", "European stock returns"):
        assert re.search(f'<h2 id="[a-z0-9-]+">{heading}', page)
    assert f"<strong>{summary['ethanol']['log_likelihood']:.3f}</strong>" in page


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; "
                ".ci/run installs it)")


#: Injected into a copy of the page: records load errors and, once loaded, what the browser
#: made of every image, as JSON in a <pre> that --dump-dom prints.
CHECK = """<script>
window.emkitErrors = [];
for (const kind of ["error", "securitypolicyviolation"]) {
  window.addEventListener(kind, e => window.emkitErrors.push(
    kind + ": " + (e.message || e.blockedURI || (e.target && (e.target.src || e.target.href)))),
    true);
}
window.addEventListener("load", () => {
  const images = [...document.images].map(img => ({
    complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
    shown: img.getBoundingClientRect().width, inline: img.src.startsWith("data:image/png")}));
  const check = document.createElement("pre");
  check.id = "emkit-check";
  check.textContent = JSON.stringify({images, errors: window.emkitErrors,
    resources: performance.getEntriesByType("resource").map(r => r.name)});
  document.body.appendChild(check);
});
</script>"""


def render(path, tmp_path):
    """Load ``path`` in headless Chromium with CHECK injected; return (report, console)."""
    page = path.read_text(encoding="utf-8")
    # The check is the only script, allowed by adding to the page's own policy.
    page = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    page = page.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + CHECK, 1)
    checked = tmp_path / "checked.html"
    checked.write_text(page, encoding="utf-8")
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom",
         checked.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="emkit-check">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert found, "the page did not finish loading: " + done.stderr[-2000:]
    result = json.loads(found[1].replace("&lt;", "<").replace("&gt;", ">")
                        .replace("&quot;", '"').replace("&amp;", "&"))
    # Chromium logs every console message of the page to stderr as "CONSOLE(line)".
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return result, console


def test_html_report_renders_in_chromium(demo, tmp_path):
    folder, _, summary, _, _ = demo
    result, console = render(folder / "report.html", tmp_path)
    assert console == [] and result["errors"] == [] and result["resources"] == []
    images = result["images"]
    assert len(images) == len(figure_names(summary)) == 13
    for image in images:
        # Decoded (a broken image has naturalWidth 0) and laid out with a visible width.
        assert image["complete"] and image["inline"]
        assert image["width"] > 300 and image["height"] > 200 and image["shown"] > 200


def test_chromium_check_sees_a_broken_page(tmp_path):
    """The render check itself: a missing image, an outside address and a console error are
    all reported (so the test above passing means something)."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv='
        '"Content-Security-Policy" content="default-src \'none\'; img-src data:; style-src '
        '\'unsafe-inline\'"></head><body><img src="missing.png"><img src="data:image/png;'
        'base64,AAAA"><img src="https://example.org/x.png"></body></html>', encoding="utf-8")
    result, console = render(page, tmp_path)
    assert [image["width"] for image in result["images"]] == [0, 0, 0]
    assert len(result["errors"]) >= 3 and console  # CSP refusals are console errors


def drawn_texts(figure):
    """The non-empty texts a figure draws (tick labels only where their tick is in view)."""
    from matplotlib.text import Text

    hidden = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            span = high - low
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 * span <= tick.get_loc() <= high + 1e-9 * span:
                    hidden.update((tick.label1, tick.label2))
    return [text for text in figure.findobj(Text) if text.get_visible()
            and text.get_text().strip() and text not in hidden]


def clashes(figure):
    """Pairs of drawn texts whose boxes overlap (by more than 1 % of their size)."""
    figure.draw_without_rendering()  # lays out (constrained layout) as saving does
    renderer = figure._get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer).expanded(0.98, 0.98))
             for text in drawn_texts(figure)]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if box_a.overlaps(box_b)]


def test_no_text_overlaps_another_in_any_figure(demo):
    *_, figures = demo
    for name, figure in figures.items():
        assert clashes(figure) == [], name
    # The check sees a clash.
    figure = Figure(layout="constrained")
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, "component 0")
    ax.text(0.52, 0.5, "component 1")
    assert clashes(figure) == [("component 0", "component 1")]
