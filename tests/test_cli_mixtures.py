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
