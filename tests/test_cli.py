"""The ``emkit`` command line and its table reading (emkit.data.io); `emkit demo`: test_report.py.

References are independent of the code under test: the data are read with numpy's own CSV
reader, predictions are compared with the loaded estimator's methods, and the Old Faithful
maximum likelihood with the published value.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from emkit import datasets
from emkit.cli import main, parse_k_range
from emkit.data.io import read_table, write_csv
from emkit.errors import DataError
from emkit.estimators.imputer import EMImputer
from emkit.estimators.persist import load

FAITHFUL = datasets.path("faithful")
PENGUINS = datasets.path("penguins")
MEASUREMENTS = "bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g"


def faithful_array():
    """Old Faithful read by numpy, not by emkit."""
    return np.genfromtxt(FAITHFUL, delimiter=",", skip_header=1)


def load_model(path):
    """The model in ``path``, to call with plain arrays.

    Model files written by the command line remember the names of their columns (that is how
    ``predict`` finds them in another file); scikit-learn would warn that an array has none."""
    model = load(path)
    del model.feature_names_in_
    return model


def run(capsys, *argv):
    """Run ``emkit argv`` in this process; return (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_json(capsys, *argv):
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def faithful_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "faithful.emkit"
    assert main(["fit", "gmm", str(FAITHFUL), "-k", "2", "--tol", "1e-9", "--max-iter", "1000",
                 "-o", str(path)]) == 0
    return path


# ------------------------------------------------------------------------------ fit
def test_fit_reaches_the_published_old_faithful_maximum(tmp_path, capsys):
    # mclust (Scrucca et al. 2016) reports log-likelihood -1130.264 and BIC 2322.192 (with the
    # opposite sign) for 2 full-covariance components on faithful.
    summary = run_json(capsys, "fit", "gmm", FAITHFUL, "-k", 2, "--tol", "1e-9",
                       "--max-iter", 1000, "--n-init", 3, "-o", tmp_path / "m.emkit")
    assert summary["log_likelihood"] == pytest.approx(-1130.264, abs=1e-3)
    assert summary["bic"] == pytest.approx(2322.192, abs=1e-2)
    assert summary["n_samples"] == 272 and summary["columns"] == ["eruptions", "waiting"]
    assert summary["converged"] is True
    assert summary["n_parameters"] == 11
    assert sum(summary["weights"]) == pytest.approx(1.0)
    model = load_model(tmp_path / "m.emkit")
    X = faithful_array()
    np.testing.assert_allclose(model.means_, summary["means"])
    assert model.score(X) * len(X) == pytest.approx(summary["log_likelihood"], rel=1e-12)


def test_fit_prints_a_readable_summary(tmp_path, capsys):
    status, out, err = run(capsys, "fit", "gmm", FAITHFUL, "-k", 2, "--covariance", "diag",
                           "--accelerate", "squarem", "--float32", "-o", tmp_path / "m.emkit")
    assert status == 0, err
    assert "K=2, covariance diag" in out and "272 rows x 2 columns" in out
    assert "converged" in out and f"model written to {tmp_path / 'm.emkit'}" in out
    model = load_model(tmp_path / "m.emkit")
    assert model.covariance_type == "diag" and model.accelerate == "squarem"
    assert np.dtype(model.dtype) == np.float32


def test_same_seed_same_model_and_columns_select_by_name(tmp_path, capsys):
    first = run_json(capsys, "fit", "gmm", FAITHFUL, "-k", 3, "--seed", 7)
    again = run_json(capsys, "fit", "gmm", FAITHFUL, "-k", 3, "--seed", 7)
    assert first == again
    # The columns in the other order: the same fit with the mean coordinates swapped. Round-off
    # differs with the column order and can stop SQUAREM at another point within tol, so both
    # fits run to a tight tol here.
    first = run_json(capsys, "fit", "gmm", FAITHFUL, "-k", 3, "--seed", 7, "--tol", "1e-13")
    swapped = run_json(capsys, "fit", "gmm", FAITHFUL, "-k", 3, "--seed", 7, "--tol", "1e-13",
                       "--columns", "waiting,eruptions")
    assert swapped["columns"] == ["waiting", "eruptions"]
    assert swapped["log_likelihood"] == pytest.approx(first["log_likelihood"], rel=1e-9)
    np.testing.assert_allclose(np.sort(np.array(swapped["means"])[:, ::-1], axis=0),
                               np.sort(np.array(first["means"]), axis=0), rtol=1e-6)


# ------------------------------------------------------------------------------ predict, score
def test_predict_equals_the_loaded_model(faithful_model, tmp_path, capsys):
    X = faithful_array()
    model = load_model(faithful_model)
    status, out, err = run(capsys, "predict", faithful_model, FAITHFUL)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "component"
    np.testing.assert_array_equal(np.array(lines[1:], dtype=int), model.predict(X))

    status, _, err = run(capsys, "predict", faithful_model, FAITHFUL, "--proba",
                         "-o", tmp_path / "proba.csv")
    assert status == 0, err
    proba = np.genfromtxt(tmp_path / "proba.csv", delimiter=",", names=True)
    assert proba.dtype.names == ("proba_0", "proba_1")
    proba = np.column_stack([proba[name] for name in proba.dtype.names])
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-15)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    components = run_json(capsys, "predict", faithful_model, FAITHFUL)["components"]
    np.testing.assert_array_equal(components, model.predict(X))


def test_score_matches_the_loaded_model(faithful_model, capsys):
    X = faithful_array()
    model = load_model(faithful_model)
    score = run_json(capsys, "score", faithful_model, FAITHFUL)
    assert score["n_samples"] == 272
    assert score["mean_log_likelihood"] == pytest.approx(model.score(X), rel=1e-12)
    assert score["log_likelihood"] == pytest.approx(model.score(X) * 272, rel=1e-12)
    assert score["bic"] == pytest.approx(model.bic(X), rel=1e-12)
    assert score["aic"] == pytest.approx(model.aic(X), rel=1e-12)
    status, out, _ = run(capsys, "score", faithful_model, FAITHFUL)
    assert status == 0 and "BIC" in out and f"{score['bic']:.6g}" in out


def test_predict_reads_the_fitted_columns_by_name(faithful_model, tmp_path, capsys):
    # Another file with an extra column in front and the used columns swapped: the model file
    # remembers the names, so the same rows get the same components.
    X = faithful_array()
    shuffled = tmp_path / "shuffled.csv"
    write_csv(shuffled, ["id", "waiting", "eruptions"],
              [[i, w, e] for i, (e, w) in enumerate(X)])
    expected = load_model(faithful_model).predict(X)
    components = run_json(capsys, "predict", faithful_model, shuffled)["components"]
    np.testing.assert_array_equal(components, expected)
    # Naming other columns of the right number is allowed; the wrong number is an error.
    status, _, err = run(capsys, "score", faithful_model, shuffled, "--columns", "waiting")
    assert status == 2 and "fitted on 2 columns" in err


def test_predict_uses_the_observed_values_of_rows_with_empty_cells(faithful_model, tmp_path,
                                                                     capsys):
    X = faithful_array()
    holes = tmp_path / "holes.csv"
    rows = [[e, w] for e, w in X[:6]]
    rows[2][1] = ""
    write_csv(holes, ["eruptions", "waiting"], rows)
    probabilities = np.array(run_json(capsys, "predict", faithful_model, holes,
                                      "--proba")["probabilities"])
    model = load_model(faithful_model)
    np.testing.assert_allclose(probabilities[[0, 1, 3, 4, 5]],
                               model.predict_proba(X[[0, 1, 3, 4, 5]]), rtol=1e-12)
    # Row 2 has only its eruption time: its posterior comes from the marginal densities of
    # eruptions alone (computed here with scipy).
    marginal = model.weights_ * stats.norm.pdf(X[2, 0], model.means_[:, 0],
                                               np.sqrt(model.covariances_[:, 0, 0]))
    np.testing.assert_allclose(probabilities[2], marginal / marginal.sum(), rtol=1e-10)
    # --drop-missing still leaves such rows out, in place (an empty cell in the output).
    status, out, err = run(capsys, "predict", faithful_model, holes, "--drop-missing")
    assert status == 0 and "left out 1 of 6 rows" in err
    cells = [row[0] for row in csv.reader(out.splitlines()[1:])]
    expected = model.predict(X[:6])
    assert cells[2] == ""
    assert [int(cells[i]) for i in (0, 1, 3, 4, 5)] == list(expected[[0, 1, 3, 4, 5]])


def test_fit_and_score_take_csv_files_with_empty_cells(tmp_path, capsys):
    # One full-covariance component: the reported log-likelihood is the sum over rows of the
    # marginal normal density of each row's observed measurements (scipy); the two penguins with
    # no measurement at all contribute nothing.
    summary = run_json(capsys, "fit", "gmm", PENGUINS, "-k", 1, "--columns", MEASUREMENTS,
                       "-o", tmp_path / "p.emkit")
    assert summary["n_samples"] == 344
    model = load_model(tmp_path / "p.emkit")
    X = read_numeric(PENGUINS, MEASUREMENTS.split(","))
    assert np.isnan(X).all(axis=1).sum() == 2
    mean, cov = model.means_[0], model.covariances_[0]
    expected = sum(stats.multivariate_normal(mean[seen], cov[np.ix_(seen, seen)]).logpdf(row[seen])
                   for row in X if (seen := ~np.isnan(row)).any())
    assert summary["log_likelihood"] == pytest.approx(expected, rel=1e-10)
    score = run_json(capsys, "score", tmp_path / "p.emkit", PENGUINS)
    assert score["log_likelihood"] == pytest.approx(expected, rel=1e-10)


def read_numeric(path, names):
    """Named columns of a CSV as floats (NaN for empty cells), read with the csv module."""
    with open(path, newline="") as file:
        records = list(csv.DictReader(file))
    return np.array([[float(r[name]) if r[name] else np.nan for name in names] for r in records])


# ------------------------------------------------------------------------------ impute
def read_cells(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_impute_fills_only_empty_cells_and_copies_text_columns(tmp_path, capsys):
    output = tmp_path / "filled.csv"
    status, out, err = run(capsys, "impute", PENGUINS, "-k", 3, "--columns", MEASUREMENTS,
                           "-o", output)
    assert status == 0, err
    assert "imputed 8 of 1376 cells in 2 of 344 rows" in out
    original, filled = read_cells(PENGUINS), read_cells(output)
    assert filled[0] == original[0] and len(filled) == len(original)
    imputed_columns = [original[0].index(name) for name in MEASUREMENTS.split(",")]
    for before, after in zip(original[1:], filled[1:], strict=True):
        for j, (cell, new) in enumerate(zip(before, after, strict=True)):
            if cell == "" and j in imputed_columns:
                assert np.isfinite(float(new))
            else:
                assert new == cell  # observed numbers as written, text (species, sex) as is
    X = read_numeric(PENGUINS, MEASUREMENTS.split(","))
    expected = EMImputer(3, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(read_numeric(output, MEASUREMENTS.split(",")), expected)


def test_impute_default_columns_stdout_and_draws(tmp_path, capsys):
    airquality = datasets.path("airquality")
    names = read_cells(airquality)[0]
    X = read_numeric(airquality, names)
    status, out, err = run(capsys, "impute", airquality, "--seed", 3)
    assert status == 0 and "imputed 44 of 918 cells" in err
    filled = np.array([[float(cell) for cell in row] for row in csv.reader(out.splitlines()[1:])])
    np.testing.assert_array_equal(filled, EMImputer(random_state=3).fit_transform(X))

    status, out, err = run(capsys, "impute", airquality, "--draws", 3, "-o",
                           tmp_path / "aq.csv")
    assert status == 0, err
    draws = [read_numeric(tmp_path / f"aq_{i}.csv", names) for i in (1, 2, 3)]
    expected = EMImputer(random_state=0).fit(X).multiple_imputations(X, 3)
    missing = np.isnan(X)
    for draw, reference in zip(draws, expected, strict=True):
        np.testing.assert_array_equal(draw, reference)
        np.testing.assert_array_equal(draw[~missing], X[~missing])
    assert not np.array_equal(draws[0][missing], draws[1][missing])
    assert not (tmp_path / "aq.csv").exists()


# ------------------------------------------------------------------------------ select, info
def test_select_picks_the_lowest_bic_of_its_own_table(tmp_path, capsys):
    result = run_json(capsys, "select", "gmm", FAITHFUL, "--k", "1-4", "--covariance",
                      "full,diag", "--seed", 1, "-o", tmp_path / "best.emkit")
    table = result["table"]
    assert [(row["covariance_type"], row["n_components"]) for row in table] == [
        (kind, k) for kind in ("full", "diag") for k in range(1, 5)]
    lowest = min(table, key=lambda row: row["bic"])
    assert result["best"] == lowest == table[result["best_index"]]
    best = load_model(tmp_path / "best.emkit")
    assert (best.n_components, best.covariance_type) == (lowest["n_components"],
                                                         lowest["covariance_type"])
    X = faithful_array()
    assert best.bic(X) == pytest.approx(lowest["bic"], rel=1e-10)

    aic = run_json(capsys, "select", "gmm", FAITHFUL, "--k", "1-4", "--criterion", "aic")
    assert aic["best"] == min(aic["table"], key=lambda row: row["aic"])


def test_select_text_output_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    status, out, err = run(capsys, "select", "gmm", FAITHFUL, "--k", "1-3",
                           "--plot", tmp_path / "bic.png")
    assert status == 0, err
    assert "lowest BIC" in out and "*" in out
    assert (tmp_path / "bic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_writes_each_rows_classification_and_uncertainty(tmp_path, capsys):
    """mclust's classification and uncertainty of the chosen model, per row, in the rows' own
    places; checked against posteriors from scipy's densities with the saved model."""
    X = faithful_array()
    data = tmp_path / "gaps.csv"
    rows = [[f"{a:.17g}", "" if i in (2, 7) else f"{b:.17g}"] for i, (a, b) in enumerate(X)]
    write_csv(data, ["eruptions", "waiting"], rows)
    rows_path, model_path = tmp_path / "rows.csv", tmp_path / "best.emkit"
    result = run_json(capsys, "select", "gmm", data, "-k", "1-3", "--drop-missing",
                      "--classification", rows_path, "-o", model_path)
    model = load_model(model_path)
    assert model.n_components == result["best"]["n_components"] == 2
    joint = np.column_stack([model.weights_[k] * stats.multivariate_normal(
        model.means_[k], model.covariances_[k]).pdf(X) for k in range(2)])
    posteriors = joint / joint.sum(axis=1, keepdims=True)
    lines = rows_path.read_text().splitlines()
    assert lines[0] == "classification,uncertainty" and len(lines) == len(X) + 1
    for i, line in enumerate(lines[1:]):
        if i in (2, 7):  # left out: an empty line of cells keeps the rows aligned
            assert line == ","
            continue
        label, uncertainty = line.split(",")
        assert int(label) == posteriors[i].argmax()
        assert float(uncertainty) == pytest.approx(1 - posteriors[i].max(), abs=1e-10)
    summary = result["classification"]
    used = np.delete(posteriors, [2, 7], axis=0)
    assert summary["rows_per_component"] == np.bincount(used.argmax(axis=1)).tolist()
    assert summary["max_uncertainty"] == pytest.approx(1 - used.max(axis=1).min(), abs=1e-10)
    worst = summary["max_uncertainty_row"]  # a 1-based data row of the file
    assert 1 - posteriors[worst - 1].max() == pytest.approx(summary["max_uncertainty"])
    status, out, err = run(capsys, "select", "gmm", FAITHFUL, "-k", "2", "--classification",
                           tmp_path)
    assert status == 2 and "it is a folder" in err


def test_parse_k_range():
    assert parse_k_range("1-8") == list(range(1, 9))
    assert parse_k_range("3") == [3]
    assert parse_k_range("5-6, 1,2,6") == [1, 2, 5, 6]


def test_info(faithful_model, capsys):
    info = run_json(capsys, "info", faithful_model)
    assert info["estimator"] == "GaussianMixture"
    assert info["params"]["n_components"] == 2
    assert info["attributes"]["n_features_in_"] == 2
    assert info["attributes"]["feature_names_in_"] == ["eruptions", "waiting"]
    status, out, _ = run(capsys, "info", faithful_model)
    assert status == 0
    assert "GaussianMixture" in out and "eruptions, waiting" in out and "full" in out


# ------------------------------------------------------------------------------ bad input
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_INPUT = {
    "missing file": (lambda tmp: ["fit", "gmm", tmp / "nope.csv", "-k", 2],
                     "nope.csv: No such file or directory"),
    "non-numeric column": (lambda tmp: ["fit", "gmm", PENGUINS, "-k", 2],
                           "column 'species'"),
    "unknown column": (lambda tmp: ["fit", "gmm", FAITHFUL, "-k", 2, "--columns",
                                    "eruptions,height"], "no column 'height'"),
    "empty file": (lambda tmp: ["fit", "gmm", _write(tmp / "empty.csv", ""), "-k", 2],
                   "is empty"),
    "header only": (lambda tmp: ["fit", "gmm", _write(tmp / "h.csv", "a,b\n"), "-k", 2],
                    "no data rows"),
    "ragged row": (lambda tmp: ["fit", "gmm", _write(tmp / "r.csv", "a,b\n1,2\n3\n"), "-k", 1],
                   "line 3"),
    "not a model file": (lambda tmp: ["predict", FAITHFUL, FAITHFUL], "not an emkit model"),
    "K > rows": (lambda tmp: ["fit", "gmm", FAITHFUL, "-k", 300], "n_components=300"),
    "impute draws without output": (lambda tmp: ["impute", FAITHFUL, "--draws", 2], "-o"),
    "impute an empty column": (lambda tmp: ["impute", _write(tmp / "e.csv", "a,b\n1,\n2,\n"),
                                            "--columns", "a,b"], "column(s) b of"),
    "impute a text column": (lambda tmp: ["impute", PENGUINS, "--columns", "species"],
                             "column 'species'"),
    "impute infinity": (lambda tmp: ["impute", _write(tmp / "i.csv", "a,b\n1,2\n2,inf\n3,1\n")],
                        "Infinity is not a missing value"),
    "constant column": (lambda tmp: ["fit", "gmm", _write(tmp / "c.csv", "a,b\n1,5\n2,5\n3,5\n"),
                                     "-k", 1], "constant"),
    "bad option value": (lambda tmp: ["fit", "gmm", FAITHFUL, "-k", 0], "-k/--n-components"),
    "bad K range": (lambda tmp: ["select", "gmm", FAITHFUL, "--k", "4-2"], "invalid K range"),
    "output folder missing": (lambda tmp: ["fit", "gmm", FAITHFUL, "-k", 1, "-o",
                                           tmp / "no" / "m.emkit"], "does not exist"),
    "plot folder missing": (lambda tmp: ["select", "gmm", FAITHFUL, "--plot",
                                         tmp / "no" / "bic.png"], "does not exist"),
    "output is a folder": (lambda tmp: ["predict", FAITHFUL, FAITHFUL, "-o", tmp],
                           "it is a folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_status_2(case, tmp_path, capsys):
    make_argv, expected = BAD_INPUT[case]
    status, out, err = run(capsys, *make_argv(tmp_path))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("emkit: error: "), err
    assert expected in err
    assert "Traceback" not in err


def test_non_numeric_message_shows_an_example(capsys):
    _, _, err = run(capsys, "fit", "gmm", PENGUINS, "-k", 2)
    assert "'Adelie'" in err and "--columns" in err


def test_drop_missing_drops_and_says_how_many(capsys):
    status, out, err = run(capsys, "fit", "gmm", PENGUINS, "-k", 2, "--columns", MEASUREMENTS,
                           "--drop-missing", "--json")
    assert status == 0
    assert json.loads(out)["n_samples"] == 342
    assert err == "emkit: dropped 2 of 344 rows with missing values\n"


def test_warnings_are_one_line_each(capsys):
    # A k-means++ start (the default one has often converged already after its short runs).
    status, _, err = run(capsys, "fit", "gmm", FAITHFUL, "-k", 3, "--max-iter", 1, "--init",
                         "k-means++")
    assert status == 0
    assert err.startswith("emkit: warning: EM did not converge")
    assert "Warning" not in err  # no file:line prefix or category name


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "predict" in capsys.readouterr().out


# ------------------------------------------------------------------------------ io
def test_read_table_empty_cells_and_quotes(tmp_path):
    # A byte-order mark, quoted names and numbers, a quoted comma and a blank line.
    path = _write(tmp_path / "t.csv", '\ufeff"x","y","name"\n1,"2.5","b, c"\n,3,a\n\n4,,d\n')
    table = read_table(path, ["y", "x"])
    assert table.columns == ("y", "x")
    np.testing.assert_array_equal(table.data, [[2.5, 1.0], [3.0, np.nan], [np.nan, 4.0]])
    np.testing.assert_array_equal(table.missing_rows(), [False, True, True])
    with pytest.raises(DataError, match="column 'name' .*line 2 holds 'b, c'"):
        read_table(path)


def test_write_csv_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    write_csv(target, ["a", "b"], [[1, 0.1], [2, 1e-300]])
    assert target.read_text() == "a,b\n1,0.1\n2,1e-300\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    with pytest.raises(OSError) as error:
        write_csv(tmp_path / "missing" / "out.csv", ["a"], [[1]])
    assert error.value.filename == str(tmp_path / "missing" / "out.csv")
    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("emkit.core.atomic.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):  # the old file stays, the temporary goes
        write_csv(target, ["a"], [[3]])
    assert target.read_text() == "a,b\n1,0.1\n2,1e-300\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_parquet_input_gives_the_same_fit(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X = faithful_array()
    path = tmp_path / "faithful.parquet"
    pq.write_table(pa.table({"eruptions": X[:, 0], "waiting": X[:, 1].astype(np.int64),
                             "label": ["x"] * len(X)}), path)
    from_csv = run_json(capsys, "fit", "gmm", FAITHFUL, "-k", 2)
    from_parquet = run_json(capsys, "fit", "gmm", path, "-k", 2, "--columns",
                            "eruptions,waiting")
    assert from_parquet == from_csv
    status, _, err = run(capsys, "fit", "gmm", path, "-k", 2)
    assert status == 2 and "column 'label'" in err and "'x'" in err


def test_parquet_nulls_are_missing_values(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"a": pa.array([1.0, None, 3.0]), "b": pa.array([1, 2, None])}),
                   path)
    table = read_table(path)
    np.testing.assert_array_equal(table.data, [[1, 1], [np.nan, 2], [3, np.nan]])


# ------------------------------------------------------------------------------ entry point
# (`emkit demo` is tested in tests/test_report.py, which shares one demo run.)
def test_installed_entry_point(tmp_path):
    executable = Path(sys.executable).parent / "emkit"
    if not executable.exists():
        pytest.skip("the emkit script is not installed next to this Python")
    ok = subprocess.run([executable, "fit", "gmm", FAITHFUL, "-k", "2", "--json"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["n_components"] == 2
    bad = subprocess.run([executable, "info", FAITHFUL], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("emkit: error: ") and bad.stderr.count("\n") == 1
