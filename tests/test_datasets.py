"""Bundled data sets: the shapes and missing values documented in their sources, known values."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import emkit
from emkit import datasets
from emkit.errors import ParameterError

# rows × numeric columns, as documented in /work/shared/data/README.md and the R help pages
SHAPES = {
    "faithful": (272, 2),
    "geyser": (299, 2),
    "galaxies": (82, 1),
    "penguins": (344, 5),  # + 3 text columns = 8
    "airquality": (153, 6),
    "ethanol": (88, 2),
    "eustock": (1860, 5),
    "discoveries": (100, 2),
    "twins": (278, 130),  # samples × taxa after the transpose
}


def test_names_are_exactly_the_bundled_files():
    package_folder = Path(datasets.__file__).parent
    assert datasets.names() == sorted(p.stem for p in package_folder.glob("*.csv"))
    assert datasets.names() == sorted(SHAPES)
    assert emkit.datasets is datasets


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_and_metadata(name):
    dataset = datasets.load(name)
    assert dataset.name == name
    assert dataset.data.shape == SHAPES[name]
    assert dataset.data.dtype == np.float64
    assert len(dataset.columns) == dataset.data.shape[1]
    assert dataset.description and dataset.source
    assert datasets.path(name).is_file()
    assert name in repr(dataset)


@pytest.mark.parametrize("name", ["faithful", "geyser", "galaxies", "eustock", "discoveries",
                                  "airquality"])
def test_numeric_files_agree_with_numpy_reader(name):
    expected = np.genfromtxt(datasets.path(name), delimiter=",", skip_header=1,
                             missing_values="", filling_values=np.nan)
    np.testing.assert_array_equal(datasets.load(name).data, expected.reshape(SHAPES[name]))
    with open(datasets.path(name), newline="") as stream:
        assert tuple(next(csv.reader(stream))) == datasets.load(name).columns


def test_published_summaries():
    faithful = datasets.load("faithful")
    # R: mean(faithful$eruptions) = 3.487783, mean(faithful$waiting) = 70.89706
    np.testing.assert_allclose(faithful.data.mean(axis=0), [3.487783, 70.89706], atol=5e-6)
    galaxies = datasets.load("galaxies").column("velocity")
    assert (galaxies.min(), galaxies.max()) == (9172.0, 34279.0)
    # R: mean(airquality$Ozone, na.rm = TRUE) = 42.12931
    assert np.nanmean(datasets.load("airquality").column("Ozone")) == pytest.approx(
        42.12931, abs=5e-6)


def test_airquality_missing_values():
    airquality = datasets.load("airquality")
    missing = dict(zip(airquality.columns, np.isnan(airquality.data).sum(axis=0), strict=True))
    assert missing == {"Ozone": 37, "Solar.R": 7, "Wind": 0, "Temp": 0, "Month": 0, "Day": 0}


def test_penguins_text_columns_and_missing_values():
    penguins = datasets.load("penguins")
    assert penguins.columns == ("bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                "body_mass_g", "year")
    assert list(penguins.strings) == ["species", "island", "sex"]
    species, counts = np.unique(penguins.column("species"), return_counts=True)
    assert dict(zip(species, counts, strict=True)) == {"Adelie": 152, "Chinstrap": 68,
                                                       "Gentoo": 124}
    assert set(penguins.column("island")) == {"Biscoe", "Dream", "Torgersen"}
    sex = penguins.column("sex")
    assert sum(value is None for value in sex) == 11
    assert set(sex) == {"female", "male", None}
    assert list(np.isnan(penguins.data).sum(axis=0)) == [2, 2, 2, 2, 0]
    assert set(penguins.column("year")) == {2007.0, 2008.0, 2009.0}


def test_twins_is_samples_by_taxa_and_file_layout_is_its_transpose():
    twins = datasets.load("twins")
    as_stored = datasets.load("twins", layout="file")
    assert as_stored.data.shape == (130, 278)
    np.testing.assert_array_equal(twins.data, as_stored.data.T)
    assert twins.columns == as_stored.row_names
    assert twins.row_names == as_stored.columns
    assert twins.columns[0] == "Acetanaerobacterium" and len(set(twins.columns)) == 130
    assert twins.row_names[0] == "TS1.2" and len(set(twins.row_names)) == 278
    counts = twins.data
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    assert np.all(counts.sum(axis=1) > 0)  # every sample has reads
    with open(datasets.path("twins"), newline="") as stream:
        rows = list(csv.reader(stream))
    first_taxon = rows[1]
    np.testing.assert_array_equal(twins.column(first_taxon[0]),
                                  np.array(first_taxon[1:], dtype=float))


def test_layout_is_a_no_op_for_ordinary_data_sets():
    np.testing.assert_array_equal(datasets.load("faithful", layout="file").data,
                                  datasets.load("faithful").data)


def test_bad_arguments():
    with pytest.raises(ParameterError, match="unknown data set 'iris'.*faithful"):
        datasets.load("iris")
    with pytest.raises(ParameterError, match="unknown data set"):
        datasets.path("../pyproject")
    with pytest.raises(ParameterError, match="layout"):
        datasets.load("twins", layout="taxa")
    with pytest.raises(ParameterError, match="no column 'Ozone'.*eruptions"):
        datasets.load("faithful").column("Ozone")


def test_every_data_set_is_cited_in_the_docs():
    docs = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
    if not docs.exists():
        pytest.skip("docs/ is not part of this installation")
    text = docs.read_text(encoding="utf-8")
    for name in datasets.names():
        assert f"`{name}`" in text, name
