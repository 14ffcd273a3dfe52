"""``emkit fit poisson|bernoulli|categorical|student``: the command line gives the Python fit,
its model files work with ``predict`` and ``score``, and its errors are one line."""

import json

import numpy as np
import pytest

import emkit
from emkit import datasets
from emkit.cli import main
from emkit.data.io import write_csv


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.where(rng.uniform(size=(120, 1)) < 0.4, [1.0, 7.0], [6.0, 2.0]))
    counts = counts.astype(float)
    counts[5, 1] = np.nan
    binary = (rng.uniform(size=(150, 4)) < np.where(rng.uniform(size=(150, 1)) < 0.5,
                                                    [0.9, 0.8, 0.2, 0.1],
                                                    [0.2, 0.1, 0.8, 0.9])).astype(float)
    items = np.column_stack([rng.integers(0, 3, 150), rng.integers(0, 4, 150)]).astype(float)
    paths = {}
    for name, X in (("counts", counts), ("binary", binary), ("items", items),
                    ("rows", datasets.load("faithful").data)):
        paths[name] = tmp_path / f"{name}.csv"
        write_csv(paths[name], [f"c{j}" for j in range(X.shape[1])],
                  [["" if np.isnan(v) else f"{v:.17g}" for v in row] for row in X])
    return paths, {"counts": counts, "binary": binary, "items": items,
                   "rows": datasets.load("faithful").data}


@pytest.mark.parametrize("kind, table, estimator", [
    ("poisson", "counts", emkit.PoissonMixture),
    ("bernoulli", "binary", emkit.BernoulliMixture),
    ("categorical", "items", emkit.CategoricalMixture),
    ("student", "rows", emkit.StudentMixture),
])
def test_fit_equals_the_python_fit_and_the_file_predicts(capsys, tmp_path, tables, kind, table,
                                                         estimator):
    paths, arrays = tables
    model_path = tmp_path / "model.emkit"
    status, out, err = run(capsys, "fit", kind, paths[table], "-k", 2, "--json", "-o",
                           model_path)
    assert status == 0, err
    summary = json.loads(out)
    python = estimator(2, random_state=0).fit(arrays[table])
    assert summary["log_likelihood"] == pytest.approx(python.score_samples(arrays[table]).sum(),
                                                      rel=1e-9)
    np.testing.assert_allclose(summary["weights"], python.weights_, rtol=1e-9)
    loaded = emkit.load(model_path)
    assert type(loaded) is estimator
    status, out, err = run(capsys, "predict", model_path, paths[table])
    assert status == 0, err
    assert [int(line) for line in out.split()[1:]] == python.predict(arrays[table]).tolist()
    status, out, err = run(capsys, "fit", kind, paths[table], "-k", 2)
    assert status == 0 and f"K=2, {len(arrays[table])} rows" in out


def test_family_options_reach_the_estimator(capsys, tables):
    paths, _ = tables
    status, out, _ = run(capsys, "fit", "student", paths["rows"], "-k", 2, "--dof", 4, "--json")
    assert status == 0 and json.loads(out)["dof"] == [4.0, 4.0]
    status, out, _ = run(capsys, "fit", "categorical", paths["items"], "-k", 2, "--n-levels",
                         "3,5", "--json")
    assert status == 0 and np.array(json.loads(out)["probabilities"]).shape == (2, 2, 5)


def test_bad_data_is_one_line(capsys, tables):
    paths, _ = tables
    status, _, err = run(capsys, "fit", "poisson", paths["rows"], "-k", 2)
    assert status == 2 and "non-negative integer counts" in err and len(err.splitlines()) == 1
    status, _, err = run(capsys, "fit", "bernoulli", paths["items"], "-k", 2)
    assert status == 2 and "binary items" in err


# ------------------------------------------------------------------ mixtures of regressions
ETHANOL = datasets.path("ethanol")


def ethanol():
    """mixtools' NOdata read by numpy, not by emkit: (NO, Equivalence)."""
    table = np.genfromtxt(ETHANOL, delimiter=",", names=True)
    return table["NO"][:, None], table["Equivalence"]


def test_fit_regression_reaches_mixtools_maximum_and_the_file_predicts(capsys, tmp_path):
    X, y = ethanol()
    model_path = tmp_path / "reg.emkit"
    status, out, err = run(capsys, "fit", "regression", ETHANOL, "--response", "Equivalence",
                           "--predictors", "NO", "-k", 2, "--json", "-o", model_path)
    assert status == 0, err
    summary = json.loads(out)
    # mixtools' regmixEM on NOdata: the best of many starts has log-likelihood 122.038.
    assert summary["log_likelihood"] == pytest.approx(122.038, abs=1e-3)
    assert (summary["response"], summary["predictors"]) == ("Equivalence", ["NO"])
    python = emkit.RegressionMixture(2, random_state=0).fit(X, y)
    assert summary["log_likelihood"] == pytest.approx(python.score(X, y) * len(y), rel=1e-9)
    np.testing.assert_allclose(summary["coef"], python.coef_, rtol=1e-8)
    loaded = emkit.load(model_path)
    assert type(loaded) is emkit.RegressionMixture
    assert loaded.response_name_.tolist() == ["Equivalence"]

    # predict and score read the predictors and the response the model was fitted on.
    status, out, err = run(capsys, "predict", model_path, ETHANOL)
    assert status == 0, err
    assert [int(line) for line in out.split()[1:]] == python.predict_component(X, y).tolist()
    status, out, err = run(capsys, "predict", model_path, ETHANOL, "--proba", "--json")
    np.testing.assert_allclose(json.loads(out)["probabilities"], python.predict_proba(X, y),
                               atol=1e-10)
    status, out, err = run(capsys, "predict", model_path, ETHANOL, "--mean")
    assert out.split()[0] == "mean"
    np.testing.assert_allclose([float(v) for v in out.split()[1:]], python.predict(X),
                               rtol=1e-10)
    status, out, err = run(capsys, "score", model_path, ETHANOL, "--json")
    assert status == 0, err
    assert json.loads(out)["log_likelihood"] == pytest.approx(summary["log_likelihood"],
                                                              rel=1e-10)
    status, out, err = run(capsys, "fit", "regression", ETHANOL, "--response", "Equivalence",
                           "-k", 2)  # predictors: every other numeric column
    assert status == 0 and "88 rows (Equivalence on NO)" in out


@pytest.fixture
def regression_tables(tmp_path):
    """The ethanol rows with a text column and an empty response cell."""
    X, y = ethanol()
    rows = [[f"{x:.17g}", "" if i == 3 else f"{v:.17g}", "ab"[i % 2]]
            for i, (x, v) in enumerate(zip(X[:, 0], y, strict=True))]
    path = tmp_path / "gaps.csv"
    write_csv(path, ["NO", "Equivalence", "label"], rows)
    return path


@pytest.mark.parametrize("argv, message", [
    (["--response", "Equivalance"], "has no column 'Equivalance'; its columns are NO, "),
    (["--response", "Equivalence", "--predictors", "NO,label"], "'label'"),
    (["--response", "Equivalence", "--predictors", "NO,Equivalence"],
     "the response 'Equivalence' is also among the predictors"),
    (["--response", "Equivalence", "--predictors", "NO"], "add --drop-missing"),
    (["--response", "label"], "'label'"),
])
def test_bad_regression_columns_are_one_line(capsys, regression_tables, argv, message):
    for command in ("fit", "select"):
        status, out, err = run(capsys, command, "regression", regression_tables, "-k", 2, *argv)
        assert status == 2 and out == "" and len(err.splitlines()) == 1
        assert message in err, err


def test_regression_rows_with_gaps_are_left_out_on_request(capsys, tmp_path, regression_tables):
    X, y = ethanol()
    model_path = tmp_path / "reg.emkit"
    status, out, err = run(capsys, "fit", "regression", regression_tables, "--response",
                           "Equivalence", "--predictors", "NO", "-k", 2, "--drop-missing",
                           "--json", "-o", model_path)
    assert status == 0 and "dropped 1 of 88 rows" in err
    assert json.loads(out)["n_samples"] == 87
    # predict keeps the row without a response in its place, empty.
    status, out, err = run(capsys, "predict", model_path, regression_tables, "--drop-missing")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 89 and lines[4] == "\"\""  # csv writes one empty cell as ""


def test_regression_options_are_refused_for_other_models(capsys, tmp_path, tables):
    paths, _ = tables
    model_path = tmp_path / "poisson.emkit"
    assert main(["fit", "poisson", str(paths["counts"]), "-k", "2", "-o", str(model_path)]) == 0
    capsys.readouterr()
    for option in (["--mean"], ["--response", "c0"]):
        status, out, err = run(capsys, "predict", model_path, paths["counts"], *option)
        assert status == 2 and "is for mixtures of regressions" in err
    reg = tmp_path / "reg.emkit"
    assert main(["fit", "regression", str(ETHANOL), "--response", "Equivalence", "-k", "2",
                 "-o", str(reg)]) == 0
    capsys.readouterr()
    status, _, err = run(capsys, "predict", reg, ETHANOL, "--mean", "--proba")
    assert status == 2 and "choose one" in err
    # A file without the response column: the error names it.
    status, _, err = run(capsys, "score", reg, paths["rows"], "--columns", "c0")
    assert status == 2 and "no column 'Equivalence'" in err


# ------------------------------------------------------------------ emkit select KIND
def test_select_poisson_finds_two_components_and_writes_each_rows_uncertainty(capsys, tmp_path):
    from scipy import stats

    rng = np.random.default_rng(3)
    labels = rng.uniform(size=300) >= 0.4
    counts = rng.poisson(np.where(labels, 9.0, 2.0)).astype(float)
    data = tmp_path / "counts.csv"
    write_csv(data, ["n"], [[f"{v:g}"] for v in counts])
    rows, best = tmp_path / "rows.csv", tmp_path / "best.emkit"
    status, out, err = run(capsys, "select", "poisson", data, "-k", "1-4", "--classification",
                           rows, "-o", best, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["best"]["n_components"] == 2
    assert result["best"] == min(result["table"], key=lambda row: row["bic"])
    assert result["classification_file"] == str(rows)
    model = emkit.load(best)
    assert model.n_components == 2
    # The per-row file against posteriors from scipy's Poisson pmf with the saved rates.
    joint = model.weights_ * stats.poisson.pmf(counts[:, None], model.rates_[:, 0])
    posteriors = joint / joint.sum(axis=1, keepdims=True)
    written = np.genfromtxt(rows, delimiter=",", names=True)
    np.testing.assert_array_equal(written["classification"], posteriors.argmax(axis=1))
    np.testing.assert_allclose(written["uncertainty"], 1 - posteriors.max(axis=1), atol=1e-12)
    assert result["classification"]["rows_per_component"] == np.bincount(
        posteriors.argmax(axis=1)).tolist()
    # The text output says the same.
    status, out, err = run(capsys, "select", "poisson", data, "-k", "1-3")
    assert status == 0 and "* lowest BIC: n_components=2" in out
    assert "classification  rows per component" in out and "uncertainty     mean" in out


@pytest.mark.parametrize("kind, table, options", [
    ("bernoulli", "binary", []), ("categorical", "items", ["--n-levels", "3,4"]),
    ("student", "rows", ["--dof", "4"]),
])
def test_select_of_every_family_is_select_model(capsys, tables, kind, table, options):
    from emkit import select_model

    paths, arrays = tables
    status, out, err = run(capsys, "select", kind, paths[table], "-k", "1-3", "--criterion",
                           "icl", *options, "--json")
    assert status == 0, err
    result = json.loads(out)
    keywords = {"bernoulli": {}, "categorical": {"n_levels": [3, 4]},
                "student": {"dof": 4.0}}[kind]
    python = select_model(arrays[table], range(1, 4), criterion="icl",
                          estimator={"bernoulli": emkit.BernoulliMixture,
                           "categorical": emkit.CategoricalMixture,
                           "student": emkit.StudentMixture}[kind],
                          random_state=0, **keywords)
    assert [row["icl"] for row in result["table"]] == pytest.approx(
        [row["icl"] for row in python.table], rel=1e-9)
    assert result["best_index"] == python.best_index
    assert result["classification"]["rows_per_component"] == np.bincount(
        python.classification, minlength=python.best["n_components"]).tolist()


def test_select_of_a_family_refuses_bad_options(capsys, tables):
    paths, _ = tables
    status, _, err = run(capsys, "select", "poisson", paths["counts"], "--criterion", "laplace")
    assert status == 2 and "laplace is for dmm" in err
    status, _, err = run(capsys, "select", "poisson", paths["counts"], "--covariance", "diag")
    assert status == 2 and "unrecognized arguments: --covariance" in err
    status, _, err = run(capsys, "select", "poisson", paths["counts"], "--columns", "c9")
    assert status == 2 and "no column 'c9'" in err and len(err.splitlines()) == 1
