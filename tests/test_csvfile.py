"""CSV files as R, pandas, Excel and people write them give the table of the clean file.

Every variant is read twice: by pyarrow (the fast path) and by the standard library (the path
without pyarrow), which must agree cell for cell.
"""

import sys

import numpy as np
import pytest

from emkit.data.io import numeric_columns, read_table
from emkit.errors import DataError

DATA = np.array([[1.5, 2.0, -3.25], [4.0, np.nan, 6.5], [7.0, 8.0, np.nan], [1e-3, 1e3, 0.0]])
NAMES = ("a", "b", "c")


def _cell(value, decimal=".", missing=""):
    if np.isnan(value):
        return missing
    return repr(float(value)).replace(".", decimal)


def _text(delimiter=",", decimal=".", missing="", header=True, index=None, newline="\n",
          quote_names=False):
    lines = []
    names = [f'"{name}"' if quote_names else name for name in NAMES]
    if header:
        lines.append(delimiter.join(([index] if index is not None else []) + names))
    for i, row in enumerate(DATA):
        cells = [_cell(v, decimal, missing) for v in row]
        if index is not None:
            cells = [str(i if index == "" else f'"{i + 1}"')] + cells
        lines.append(delimiter.join(cells))
    return newline.join(lines) + newline


pytest.importorskip("pyarrow")


@pytest.fixture(params=["pyarrow", "standard library"])
def engine(request, monkeypatch):
    if request.param == "standard library":
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    return request.param


VARIANTS = {
    "clean": (_text(), "utf-8", {}),
    "R NA cells": (_text(missing="NA"), "utf-8", {}),
    "pandas NaN, N/A, #N/A, dot": (_text(missing="NaN").replace("NaN", "N/A", 1), "utf-8", {}),
    "Excel #N/A": (_text(missing="#N/A"), "utf-8", {}),
    "SAS dot": (_text(missing="."), "utf-8", {}),
    "pandas to_csv index": (_text(index=""), "utf-8", {"index": True}),
    "R write.csv row names": (_text(index='""', quote_names=True), "utf-8", {"index": True}),
    "tab-separated": (_text(delimiter="\t"), "utf-8", {}),
    "semicolon": (_text(delimiter=";"), "utf-8", {}),
    "semicolon, decimal comma (Excel de/fr)": (_text(delimiter=";", decimal=","), "utf-8", {}),
    "bar": (_text(delimiter="|"), "utf-8", {}),
    "CRLF and quoted names": (_text(newline="\r\n", quote_names=True), "utf-8", {}),
    "byte-order mark": (_text(), "utf-8-sig", {}),
    "UTF-16 (Excel Unicode text)": (_text(delimiter="\t"), "utf-16", {}),
    "no header": (_text(header=False), "utf-8", {"names": ("1", "2", "3")}),
    "no header, tabs": (_text(header=False, delimiter="\t"), "utf-8", {"names": ("1", "2", "3")}),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_gives_the_clean_table(name, engine, tmp_path):
    text, encoding, expect = VARIANTS[name]
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode(encoding))
    table = read_table(path)
    np.testing.assert_array_equal(table.data, DATA)
    assert table.columns == expect.get("names", NAMES)
    assert any("index" in note for note in table.notes) == expect.get("index", False)


def test_latin1_names_are_read_with_a_note(engine, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("Länge,Größe\n1,2\n3,4\n".encode("latin-1"))
    table = read_table(path)
    assert table.columns == ("Länge", "Größe")
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])
    assert any("Latin-1" in note for note in table.notes)


def test_a_non_utf8_byte_after_the_sniffed_sample(engine, tmp_path):
    rows = "".join(f"{i},{i * 0.5}\n" for i in range(20_000))  # well past the 64 KiB sample
    path = tmp_path / "late.csv"
    path.write_bytes(("x,y\n" + rows).encode() + "7,8 \xb0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"column 'y' .*line 20002 holds '8 °'"):
        read_table(path)
    np.testing.assert_array_equal(read_table(path, ["x"]).data[-1], [7.0])


def test_a_text_column_is_named_with_its_line(engine, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("x,species\n5.1,setosa\n\n4.9,versicolor\n")
    with pytest.raises(DataError, match=r"column 'species' .*line 2 holds 'setosa'"):
        read_table(path)
    np.testing.assert_array_equal(read_table(path, ["x"]).data, [[5.1], [4.9]])
    assert numeric_columns(path) == ["x"]


def test_labels_without_header_are_data_not_names(engine, tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,3.3,virginica\n")
    table = read_table(path, ["1", "2"])
    np.testing.assert_array_equal(table.data, [[5.1, 3.5], [4.9, 3.0], [6.3, 3.3]])


def test_ragged_row_names_its_line(engine, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4\n5\n")
    with pytest.raises(DataError, match="line 4: 1 cells, but the header has 2 columns"):
        read_table(path)


def test_forced_header_and_index(engine, tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("1,2\n3,4\n")
    assert read_table(path).data.shape == (2, 2)
    forced = read_table(path, header=True)
    assert forced.columns == ("1", "2") and forced.data.tolist() == [[3, 4]]
    kept = tmp_path / "kept.csv"
    kept.write_text(_text(index=""))
    assert read_table(kept, index_column=False, columns=["a"]).data.shape == (4, 1)
    assert read_table(kept, header=True, index_column=True).columns == NAMES
    index_kept = read_table(kept, index_column=False)  # the unnamed column is a column then
    assert index_kept.columns == ("",) + NAMES
    np.testing.assert_array_equal(index_kept.data[:, 0], [0, 1, 2, 3])


def test_one_column_and_header_only(engine, tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("x\n1\n2.5\nNA\n")
    np.testing.assert_array_equal(read_table(one).data, [[1], [2.5], [np.nan]])
    empty = tmp_path / "header.csv"
    empty.write_text("a;b\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(empty)


def test_decimal_comma_is_not_guessed_in_comma_separated_files(engine, tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text('a,b\n"1,5",2\n')
    with pytest.raises(DataError, match="column 'a' .*'1,5'"):
        read_table(path)
