"""emkit.plot: what is drawn is checked against quantities computed independently of the plot
code (Mahalanobis radii of the ellipses, densities from scipy, the selection table)."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("matplotlib")
from matplotlib.colors import LogNorm, Normalize, to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from emkit import GaussianMixture, datasets  # noqa: E402
from emkit.errors import DataError, ParameterError  # noqa: E402
from emkit.estimators.selection import select_model  # noqa: E402
from emkit.plot import (  # noqa: E402
    criterion_choices,
    plot_alpha_heatmap,
    plot_components_2d,
    plot_convergence,
    plot_criterion,
    plot_density_1d,
    plot_states,
    save_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def faithful():
    return datasets.load("faithful").data


def outline(ellipse):
    """Points on the drawn outline, in data coordinates: the ends of its cubic Bézier segments
    (the other vertices are control points off the curve)."""
    path = ellipse.get_path()
    on_curve = path.vertices[:-1:3]  # MOVETO, then every third CURVE4 vertex; CLOSEPOLY last
    assert path.codes[0] == path.MOVETO and np.all(path.codes[1:-1] == path.CURVE4)
    return ellipse.get_patch_transform().transform(on_curve)


def full_covariance(model, k):
    """Component k's D × D covariance, from the fitted attributes, for any covariance type."""
    covariances = model.covariances_
    n_features = model.means_.shape[1]
    return {"full": lambda: covariances[k], "tied": lambda: covariances,
            "diag": lambda: np.diag(covariances[k]),
            "spherical": lambda: covariances[k] * np.eye(n_features)}[model.covariance_type]()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_ellipses_are_one_and_two_sigma_contours(faithful, covariance_type, tmp_path):
    # SQUAREM: plain EM on the tied model from this start needs over 1000 passes to tol 1e-6
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                            accelerate="squarem").fit(faithful)
    figure = plot_components_2d(model, faithful, feature_names=["eruptions", "waiting"])
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    ellipses = [patch for patch in ax.patches if isinstance(patch, Ellipse)]
    assert len(ellipses) == 2 * model.n_components
    radii = []
    for ellipse in ellipses:
        centre = np.asarray(ellipse.center)
        k = int(np.argmin(np.linalg.norm(model.means_ - centre, axis=1)))
        np.testing.assert_allclose(centre, model.means_[k])
        offset = outline(ellipse) - centre
        squared = np.einsum("ni,ij,nj->n", offset, np.linalg.inv(full_covariance(model, k)),
                            offset)
        np.testing.assert_allclose(squared, squared[0], rtol=1e-8)  # a contour of the density
        radii.append(np.sqrt(squared[0]))
    assert sorted(np.round(radii, 8)) == [1.0] * model.n_components + [2.0] * model.n_components
    # Points are coloured by the predicted component: one colour per component used.
    colours = ax.collections[0].get_facecolors()
    assert len(colours) == len(faithful)
    assert len(np.unique(colours, axis=0)) == len(np.unique(model.predict(faithful)))
    assert ax.get_xlabel() == "eruptions" and ax.get_ylabel() == "waiting"
    path = save_figure(figure, tmp_path / "ellipses.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_components_on_two_of_more_features_use_the_marginal_covariance():
    penguins = datasets.load("penguins")
    X = penguins.data[:, :4]
    X = X[~np.isnan(X).any(axis=1)]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    model = GaussianMixture(2, random_state=0).fit(X)
    labels = np.arange(len(X)) % 3
    figure = plot_components_2d(model, X, labels=labels, dims=(1, 3))
    ax = figure.axes[0]
    ellipse = next(patch for patch in ax.patches if isinstance(patch, Ellipse))
    k = int(np.argmin(np.linalg.norm(model.means_[:, [1, 3]] - ellipse.center, axis=1)))
    marginal = model.covariances_[k][np.ix_([1, 3], [1, 3])]
    offset = outline(ellipse) - ellipse.center
    squared = np.einsum("ni,ij,nj->n", offset, np.linalg.inv(marginal), offset)
    np.testing.assert_allclose(squared, squared[0], rtol=1e-8)
    assert len(np.unique(ax.collections[0].get_facecolors(), axis=0)) == 3  # given labels


def test_convergence_lines_are_the_histories(faithful):
    plain = GaussianMixture(2, random_state=0, tol=1e-8).fit(faithful)
    fast = GaussianMixture(2, random_state=0, tol=1e-8, accelerate="squarem").fit(faithful)
    histories = {"EM": plain.history_, "SQUAREM": fast.history_}
    ax = plot_convergence(histories).axes[0]
    for line, history in zip(ax.get_lines(), histories.values(), strict=True):
        np.testing.assert_array_equal(line.get_ydata(), history)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(len(history)))
    gap = plot_convergence(histories, gap=True).axes[0]
    assert gap.get_yscale() == "log"
    best = max(plain.history_.max(), fast.history_.max())
    for line, history in zip(gap.get_lines(), histories.values(), strict=True):
        expected = best - history
        np.testing.assert_array_equal(line.get_ydata(), expected[expected > 0])
    # A plain array is one line.
    assert len(plot_convergence(plain.history_).axes[0].get_lines()) == 1


def test_criterion_lines_follow_the_selection_table(faithful, tmp_path):
    result = select_model(faithful, range(1, 4), ("full", "diag"), random_state=0)
    figure = plot_criterion(result)
    assert figure.get_suptitle().startswith("Information criteria")
    assert [ax.get_ylabel().split()[0] for ax in figure.axes] == ["BIC", "AIC", "ICL"]
    for ax, criterion in zip(figure.axes, ("bic", "aic", "icl"), strict=True):
        lines = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
        name = criterion.upper()
        assert set(lines) == {"full", "diag", f"{name}'s choice"}  # every fit converged
        full, diag, chosen = lines["full"], lines["diag"], lines[f"{name}'s choice"]
        for line, kind in ((full, "full"), (diag, "diag")):
            rows = [row for row in result.table if row["covariance_type"] == kind]
            np.testing.assert_array_equal(line.get_xdata(), [row["n_components"] for row in rows])
            np.testing.assert_array_equal(line.get_ydata(), [row[criterion] for row in rows])
        # Each panel circles its own criterion's lowest value.
        own = min(result.table, key=lambda row: row[criterion])
        assert (chosen.get_xdata()[0], chosen.get_ydata()[0]) == (own["n_components"],
                                                                  own[criterion])
        assert ax.get_title().startswith(f"{name}: chooses K={own['n_components']}, "
                                         f"{own['covariance_type']}")
    # One legend, beside the last panel.
    assert [ax.get_legend() is not None for ax in figure.axes] == [False, False, True]
    assert len(plot_criterion(result, criteria=("bic",)).axes) == 1
    # A fit that did not converge is crossed out, and not chosen when the selection's choice
    # converged.
    best_aic = min(range(len(result.table)), key=lambda i: result.table[i]["aic"])
    assert best_aic != result.best_index  # so the selection's own choice still converged
    result.table[best_aic] = dict(result.table[best_aic], converged=False)
    ax = plot_criterion(result, criteria=("aic",)).axes[0]
    crossed = next(line for line in ax.get_lines() if line.get_label().startswith("not eligible"))
    assert crossed.get_marker() == "x"
    assert list(crossed.get_ydata()) == [result.table[best_aic]["aic"]]
    eligible = [row for row in result.table if row["converged"]]
    circled = next(line for line in ax.get_lines() if "choice" in line.get_label())
    assert circled.get_ydata()[0] == min(row["aic"] for row in eligible)
    assert save_figure(figure, tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(ParameterError, match="criteria"):
        plot_criterion(result, criteria=("bic", "likelihood"))


def test_criterion_choices_follow_the_selection_rule():
    table = [{"n_components": k, "covariance_type": "full", "bic": b, "aic": a, "icl": c,
              "converged": ok}
             for k, b, a, c, ok in ((1, 10.0, 9.0, 12.0, True), (2, 8.0, 5.0, 12.0, True),
                                    (3, 9.0, 1.0, 11.0, False))]
    # The selection's own criterion keeps its choice (e.g. restricted to converged fits by the
    # caller); the others take their lowest among the converged fits, the first of equals.
    result = SimpleNamespace(table=table, best_index=1, criterion="bic")
    assert criterion_choices(result) == {"bic": 1, "aic": 1, "icl": 0}
    # A selection that chose a fit that did not converge did not filter: nor do the others.
    result = SimpleNamespace(table=table, best_index=2, criterion="icl")
    assert criterion_choices(result, ("icl", "aic")) == {"icl": 2, "aic": 2}


def test_criterion_zoom_shows_the_best_models_band(faithful):
    result = select_model(faithful, range(1, 5), ("full", "spherical"), random_state=0)
    values = np.array([row["bic"] for row in result.table])
    ax = plot_criterion(result, criteria=("bic",)).axes[0]
    low, high = ax.get_ylim()
    assert low < values.min() and high < values.max()  # the spherical K=1 is off the top
    assert high >= np.median(values) and high >= values.min() + 30
    above = int(np.sum(values > high))
    assert f"zoomed: {above} of {len(values)} points above the top" in ax.get_title()
    full_range = plot_criterion(result, criteria=("bic",), zoom=False).axes[0].get_ylim()
    assert full_range[0] < values.min() and full_range[1] > values.max()


def test_density_1d_curves_are_the_fitted_mixture(tmp_path):
    x = datasets.load("galaxies").data / 1000
    model = GaussianMixture(3, random_state=0, n_init=3).fit(x)
    figure = plot_density_1d(model, x, xlabel="velocity")
    lines = figure.axes[0].get_lines()
    assert len(lines) == model.n_components + 1
    grid = lines[-1].get_xdata()
    expected = [w * stats.norm(m, np.sqrt(v)).pdf(grid) for w, m, v in
                zip(model.weights_, model.means_[:, 0], model.covariances_.ravel(), strict=True)]
    for line, density in zip(lines[:-1], expected, strict=True):
        np.testing.assert_allclose(line.get_ydata(), density, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(lines[-1].get_ydata(), np.sum(expected, axis=0), rtol=1e-10)
    # The histogram is a density: its bars integrate to one.
    bars = figure.axes[0].patches
    assert sum(bar.get_width() * bar.get_height() for bar in bars) == pytest.approx(1.0)
    tied = GaussianMixture(2, covariance_type="tied", random_state=0).fit(x)
    assert len(plot_density_1d(tied, x).axes[0].get_lines()) == 3
    assert save_figure(figure, tmp_path / "d.png").read_bytes()[:8] == PNG_MAGIC


def test_order_numbers_and_colours_the_components(faithful):
    model = GaussianMixture(3, random_state=0, accelerate="squarem").fit(faithful)
    order = np.argsort(-model.means_[:, 1])  # e.g. a table sorted by waiting time, longest first
    ax = plot_components_2d(model, faithful, order=order, component_name="cluster").axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        f"cluster {i}: π={model.weights_[k]:.2f}" for i, k in enumerate(order)]
    for i, (k, handle) in enumerate(zip(order, legend.legend_handles, strict=True)):
        ellipses = [e for e in ax.patches
                    if isinstance(e, Ellipse) and np.allclose(e.center, model.means_[k])]
        assert {to_rgba(e.get_edgecolor()) for e in ellipses} == {to_rgba(f"C{i}")}
        assert to_rgba(handle.get_color()) == to_rgba(f"C{i}")
    # Points take their predicted component's colour.
    colours = ax.collections[0].get_facecolors()[:, :3]
    shown = np.argsort(order)[model.predict(faithful)]
    expected = np.array([to_rgba(f"C{i}")[:3] for i in shown])
    np.testing.assert_allclose(colours, expected)
    with pytest.raises(ParameterError, match="order"):
        plot_components_2d(model, faithful, order=[0, 0, 1])
    x = datasets.load("galaxies").data / 1000
    one_d = GaussianMixture(3, random_state=0, n_init=3).fit(x)
    order = np.argsort(one_d.means_[:, 0])[::-1]
    ax = plot_density_1d(one_d, x, order=order).axes[0]
    for i, k in enumerate(order):
        line = ax.get_lines()[i]
        assert line.get_label() == f"component {i} (π={one_d.weights_[k]:.2f})"
        assert line.get_xdata()[np.argmax(line.get_ydata())] == pytest.approx(
            one_d.means_[k, 0], abs=0.1)


def test_alpha_heatmap_columns_follow_the_order_on_a_log_scale():
    alpha = np.array([[1.0, 10.0, 100.0, 0.1], [50.0, 5.0, 0.5, 1.0]])
    model = SimpleNamespace(alpha_=alpha)
    ax = plot_alpha_heatmap(model, n_categories=4, category_names=list("abcd"),
                            order=[1, 0]).axes[0]
    image = ax.images[0]
    assert isinstance(image.norm, LogNorm)
    rows = [label.get_text() for label in ax.get_yticklabels()]
    proportions = alpha / alpha.sum(axis=1, keepdims=True)
    for r, name in enumerate(rows):
        j = "abcd".index(name)
        np.testing.assert_allclose(image.get_array()[r], [proportions[1, j], proportions[0, j]])
    linear = plot_alpha_heatmap(model, log=False).axes[0].images[0].norm
    assert type(linear) is Normalize


def test_states_order_and_shared_legend():
    series = np.array([1.0, 5.0, 1.2, 5.5, 0.9])
    states = np.array([1, 0, 1, 0, 1])
    figure = Figure()
    top, bottom = figure.subplots(2, 1)
    plot_states(series, states, ax=top, order=[1, 0])
    plot_states(series, states, ax=bottom, legend=False)
    assert bottom.get_legend() is None
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["state 0", "state 1"]
    # Shown state 0 is the model's state 1.
    np.testing.assert_array_equal(top.collections[0].get_offsets()[:, 1], [1.0, 1.2, 0.9])


def test_plots_draw_on_a_given_axes():
    x = datasets.load("galaxies").data / 1000
    model = GaussianMixture(2, random_state=0).fit(x)
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plot_density_1d(model, x, ax=right) is figure
    assert plot_convergence(model.history_, ax=left) is figure
    assert left.get_lines() and right.get_lines()


def test_bad_input(faithful):
    model = GaussianMixture(2, random_state=0).fit(faithful)
    with pytest.raises(DataError, match="at least 2 columns"):
        plot_components_2d(model, faithful[:, :1])
    with pytest.raises(ParameterError, match="dims"):
        plot_components_2d(model, faithful, dims=(0, 0))
    with pytest.raises(DataError, match="one feature"):
        plot_density_1d(model, faithful[:, 0])
    with pytest.raises(DataError, match="non-empty"):
        plot_convergence([])


def test_save_figure_is_atomic(tmp_path, faithful):
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")
    figure = plot_convergence(GaussianMixture(2, random_state=0).fit(faithful).history_)
    save_figure(figure, target)
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
    save_figure(figure, tmp_path / "figure.svg")
    assert b"<svg" in (tmp_path / "figure.svg").read_bytes()[:500]


def test_missing_matplotlib_says_what_to_install(monkeypatch, faithful):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(ImportError, match=r"emkit\[plot\]"):
        plot_convergence([1.0, 2.0])


# ------------------------------------------------- mclust's uncertainty and density plots
def scipy_posteriors(model, X):
    joint = np.column_stack([
        w * stats.multivariate_normal(m, full_covariance(model, k)).pdf(X)
        for k, (w, m) in enumerate(zip(model.weights_, model.means_, strict=True))])
    return joint / joint.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_uncertainty_points_are_sized_by_one_minus_the_largest_posterior(faithful,
                                                                           covariance_type):
    from emkit.plot import classification_uncertainty, plot_uncertainty_2d

    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(faithful)
    expected = 1.0 - scipy_posteriors(model, faithful).max(axis=1)
    np.testing.assert_allclose(classification_uncertainty(model, faithful), expected,
                               atol=1e-9)
    points = plot_uncertainty_2d(model, faithful).axes[0].collections[0]
    np.testing.assert_allclose(points.get_offsets(), faithful)
    sizes = points.get_sizes()
    np.testing.assert_allclose(sizes, 2.0 + 80.0 * expected / expected.max(), rtol=1e-6)


def test_density_contours_lie_on_the_marginal_density_levels():
    from emkit.plot import plot_density_contours_2d

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal([0, 0, 0], 1.0, (300, 3)),
                        rng.normal([4, 1, -2], 0.7, (300, 3))])
    model = GaussianMixture(2, random_state=0).fit(X)
    contours = plot_density_contours_2d(model, X, dims=(0, 2), n_levels=5).axes[0].collections
    contour_set = [c for c in contours if hasattr(c, "levels")][0]
    # The marginal of the features (0, 2): each component's mean and covariance restricted.
    marginal = [stats.multivariate_normal(model.means_[k, [0, 2]],
                                          model.covariances_[k][np.ix_([0, 2], [0, 2])])
                for k in range(2)]
    for level, segments in zip(contour_set.levels, contour_set.allsegs, strict=True):
        points = np.concatenate(segments)
        density = sum(w * m.pdf(points) for w, m in zip(model.weights_, marginal, strict=True))
        np.testing.assert_allclose(density, level, rtol=0.02)


def test_two_dimensional_plots_refuse_bad_dims(faithful):
    from emkit.plot import plot_density_contours_2d, plot_uncertainty_2d

    model = GaussianMixture(2, random_state=0).fit(faithful)
    for plot in (plot_uncertainty_2d, plot_density_contours_2d):
        with pytest.raises(ParameterError, match="dims must be two different"):
            plot(model, faithful, dims=(0, 0))
        with pytest.raises(DataError, match="at least 2 columns"):
            plot(model, faithful[:, :1])
