"""The command line on the files people have (issue 18): every variant of a table gives exactly
the fit of the clean file, and what the reader decided is said on stderr."""

import json

import numpy as np
import pytest

from emkit import datasets
from emkit.cli import main

AIRQUALITY = datasets.load("airquality")  # R's airquality: NA cells in Ozone and Solar.R


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _write_variants(folder, data, names):
    """The same table as R, pandas, Excel and a person without a header would write it."""
    def cells(row, decimal=".", missing="NA"):
        return [missing if np.isnan(v) else repr(float(v)).replace(".", decimal) for v in row]

    def table(delimiter=",", decimal=".", missing="NA", header=True, index=None):
        lines = [delimiter.join(([index] if index is not None else []) + names)] if header else []
        for i, row in enumerate(data):
            prefix = [] if index is None else [str(i) if index == "" else f'"{i + 1}"']
            lines.append(delimiter.join(prefix + cells(row, decimal, missing)))
        return "\n".join(lines) + "\n"

    variants = {
        "clean.csv": table(missing=""),
        "r_na.csv": table(),
        "r_write_csv.csv": table(index='""'),
        "pandas_index.csv": table(index="", missing=""),
        "tabs.tsv": table("\t"),
        "excel_de.csv": table(";", ","),
        "excel_na.csv": table(missing="#N/A"),
    }
    paths = {}
    for name, text in variants.items():
        paths[name] = folder / name
        paths[name].write_text(text)
    paths["bom_crlf.csv"] = folder / "bom_crlf.csv"
    paths["bom_crlf.csv"].write_bytes(b"\xef\xbb\xbf" + variants["r_na.csv"].replace(
        "\n", "\r\n").encode())
    paths["latin1.csv"] = folder / "latin1.csv"
    paths["latin1.csv"].write_bytes(variants["r_na.csv"].encode("latin-1"))
    return paths


def test_every_variant_gives_the_clean_fit(capsys, tmp_path):
    names = list(AIRQUALITY.columns[:4])
    paths = _write_variants(tmp_path, AIRQUALITY.data[:, :4], names)
    fits = {}
    for name, path in paths.items():
        status, out, err = run(capsys, "fit", "gmm", path, "-k", 2, "--json")
        assert status == 0, (name, err)
        fits[name] = json.loads(out)
        if "index" in name or "write_csv" in name:
            assert "row index" in err, name
        if name in ("tabs.tsv", "excel_de.csv"):
            assert "separated" in err, name
    clean = fits.pop("clean.csv")
    assert clean["columns"] == names if "columns" in clean else True
    for name, fit in fits.items():
        assert fit == clean, name


def test_no_header_file_gives_the_clean_fit_with_positional_names(capsys, tmp_path):
    X = datasets.load("faithful").data
    with_header = tmp_path / "with.csv"
    with_header.write_text("a,b\n" + "".join(f"{float(x)!r},{float(y)!r}\n" for x, y in X))
    without = tmp_path / "without.csv"
    without.write_text("".join(f"{float(x)!r},{float(y)!r}\n" for x, y in X))
    status, out_with, err = run(capsys, "fit", "gmm", with_header, "-k", 2, "--json")
    assert status == 0, err
    status, out_without, err = run(capsys, "fit", "gmm", without, "-k", 2, "--json")
    assert status == 0, err
    a, b = json.loads(out_with), json.loads(out_without)
    a.pop("columns", None), b.pop("columns", None)
    assert a == b
    status, _, err = run(capsys, "fit", "gmm", without, "-k", 2, "--header")
    assert status == 0  # one row fewer: the first row taken as names "x,y" of numbers
    status, _, err = run(capsys, "fit", "gmm", without, "-k", 2, "--header", "--no-header")
    assert status == 2 and "not allowed with" in err


def test_impute_fills_na_cells_and_writes_the_file_layout_back(capsys, tmp_path):
    names = list(AIRQUALITY.columns[:4])
    data = AIRQUALITY.data[:, :4]
    n_missing = int(np.isnan(data).sum())
    assert n_missing > 0
    paths = _write_variants(tmp_path, data, names)
    outputs = {}
    for name in ("clean.csv", "r_na.csv", "pandas_index.csv", "excel_de.csv"):
        out = tmp_path / f"filled_{name}"
        status, stdout, err = run(capsys, "impute", paths[name], "-o", out)
        assert status == 0, err
        assert f"imputed {n_missing} of {data.size} cells" in stdout, (name, stdout)
        outputs[name] = out.read_text()
    lines = {name: text.splitlines() for name, text in outputs.items()}
    assert lines["pandas_index.csv"][0] == "," + ",".join(names)  # the index column is kept
    assert lines["pandas_index.csv"][1].startswith("0,")
    assert ";" in lines["excel_de.csv"][1] and "." not in lines["excel_de.csv"][1]
    filled = {name: np.array([[float(c.replace(",", ".")) for c in line.split(
        ";" if name == "excel_de.csv" else ",")[1 if name == "pandas_index.csv" else 0:]]
        for line in text[1:]]) for name, text in lines.items()}
    for name, values in filled.items():
        assert not np.isnan(values).any(), name
        np.testing.assert_array_equal(values, filled["clean.csv"], err_msg=name)


def test_interleaved_sequence_ids_are_an_error_naming_the_row(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "series.csv"
    ids = ["a"] * 30 + ["b"] * 30 + ["a"] * 30
    path.write_text("id,x\n" + "".join(f"{i},{float(v)!r}\n" for i, v in zip(ids, rng.normal(
        size=90), strict=True)))
    status, _, err = run(capsys, "fit", "hmm", path, "-k", 2, "--lengths-column", "id")
    assert status == 2
    assert "'a'" in err and "row 61" in err and len(err.strip().splitlines()) == 1


def test_dmm_counts_from_a_tab_separated_file_with_bom(capsys, tmp_path):
    twins = datasets.path("twins")
    text = twins.read_text()
    assert "\t" not in text
    tsv = tmp_path / "twins.tsv"
    tsv.write_bytes(b"\xef\xbb\xbf" + text.replace(",", "\t").encode())
    args = ["fit", "dmm", "-k", 1, "--samples-in-columns", "--json"]
    status, clean, err = run(capsys, *args[:2], twins, *args[2:])
    assert status == 0, err
    status, variant, err = run(capsys, *args[:2], tsv, *args[2:])
    assert status == 0, err
    assert json.loads(variant) == json.loads(clean)


def test_dmm_missing_counts_are_refused(capsys, tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("a,b,c\n1,2,3\n4,NA,6\n")
    status, _, err = run(capsys, "fit", "dmm", path, "-k", 1)
    assert status == 2 and "column 'b'" in err and "cannot be missing" in err


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"a,b\n1,\xe9\n"])
def test_dmm_odd_bytes_are_one_line(capsys, tmp_path, content):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    status, _, err = run(capsys, "fit", "dmm", path, "-k", 1)
    assert status == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == err.splitlines()[-1:]


def test_info_prints_the_fitted_parameters(capsys, tmp_path):
    from emkit.estimators.persist import load

    model_path = tmp_path / "geyser.emkit"
    status, _, err = run(capsys, "fit", "hmm", datasets.path("geyser"), "-k", 2, "-o",
                         model_path)
    assert status == 0, err
    model = load(model_path)
    status, out, err = run(capsys, "info", model_path, "--json")
    assert status == 0, err
    parameters = json.loads(out)["parameters"]
    assert set(parameters) == {"startprob_", "means_", "covars_", "transmat_"}
    for name, value in parameters.items():
        np.testing.assert_array_equal(value, getattr(model, name))
    status, out, err = run(capsys, "info", model_path)
    text = out.split("fitted parameters", 1)[1]
    assert f"{model.transmat_[0, 0]:.6f}".rstrip("0") in text
    assert text.index("startprob_") < text.index("means_") < text.index("transmat_")
    assert f"{model.means_[0, 0]:.6f}" in text
