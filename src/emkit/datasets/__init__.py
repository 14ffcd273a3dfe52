"""Small real data sets bundled with emkit, for examples, tests and ``emkit demo``.

>>> from emkit import datasets
>>> datasets.names()[:4]
['airquality', 'discoveries', 'ethanol', 'eustock']
>>> faithful = datasets.load("faithful")
>>> faithful.data.shape, faithful.columns
((272, 2), ('eruptions', 'waiting'))

Numeric columns go to ``data`` (float64, NaN where a cell is empty); text columns (the penguins'
species, island and sex) go to ``strings``. ``twins`` is stored taxa × samples in its CSV, but
:func:`load` returns it samples × taxa (one row of genus counts per sample, taxon names as
``columns``, sample ids as ``row_names``), the orientation every emkit model expects; pass
``layout="file"`` for the CSV's own orientation. Sources: ``docs/datasets.md`` and each
data set's ``source``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from emkit.errors import ParameterError

__all__ = ["Dataset", "names", "path", "load", "recording_path"]

#: Generated audio clips (mono WAV), not tables: name -> how it was made.
_RECORDINGS = {
    "two_tones": "0.25 s at 8 kHz: tones at 440 Hz (amplitude 0.5) and 443 Hz (0.3, phase 1 rad) "
                 "in white noise of sd 0.05; made by docs/examples/make_two_tones_wav.py.",
}


def recording_path(name: str) -> Path:
    """Path of the bundled WAV clip ``name`` (``"two_tones"``), for ``emkit fit tones``."""
    if name not in _RECORDINGS:
        raise ParameterError(f"unknown recording {name!r}: choose one of "
                             f"{', '.join(sorted(_RECORDINGS))}.")
    return Path(str(resources.files(__name__).joinpath(f"{name}.wav")))


@dataclass(frozen=True, eq=False)
class Dataset:
    """One bundled data set.

    Attributes
    ----------
    name : str
    data : ndarray of shape (n_rows, n_columns), float64
        The numeric columns; NaN marks a missing value.
    columns : tuple of str
        Names of the columns of ``data``.
    strings : dict of str to ndarray of object, shape (n_rows,)
        The text columns (``None`` marks a missing value), e.g. the penguins' ``species``.
    row_names : tuple of str or None
        Row labels where the data set has them (the twins' sample ids).
    description : str
    source : str
        Where the data come from, to cite.
    """

    name: str
    data: np.ndarray
    columns: tuple[str, ...]
    strings: dict[str, np.ndarray] = field(default_factory=dict)
    row_names: tuple[str, ...] | None = None
    description: str = ""
    source: str = ""

    def column(self, name: str) -> np.ndarray:
        """One column by name: a float column of ``data`` or a text column of ``strings``."""
        if name in self.strings:
            return self.strings[name]
        if name not in self.columns:
            raise ParameterError(f"data set {self.name!r} has no column {name!r}; its columns "
                                 f"are {', '.join(self.columns + tuple(self.strings))}.")
        return self.data[:, self.columns.index(name)]

    def __repr__(self) -> str:
        n_rows, n_columns = self.data.shape
        shown = ", ".join(self.columns[:6]) + (", …" if n_columns > 6 else "")
        text = f", text columns: {', '.join(self.strings)}" if self.strings else ""
        return (f"Dataset({self.name!r}: {n_rows} rows × {n_columns} numeric columns "
                f"({shown}){text})")


@dataclass(frozen=True)
class _Entry:
    description: str
    source: str
    row_names_column: str | None = None  # a text column that labels the rows
    samples_in_columns: bool = False  # stored variables × samples: transposed by load()


_CATALOGUE = {
    "airquality": _Entry(
        "Daily air quality in New York, May to September 1973: ozone (ppb; 37 of 153 missing), "
        "solar radiation (7 missing), wind (mph), temperature (°F), month and day.",
        "R datasets::airquality; New York State Department of Conservation and the National "
        "Weather Service, as printed in Chambers, Cleveland, Kleiner & Tukey (1983), "
        "Graphical Methods for Data Analysis."),
    "discoveries": _Entry(
        "Number of great inventions and scientific discoveries in each year 1860–1959.",
        "R datasets::discoveries; The World Almanac and Book of Facts 1975."),
    "ethanol": _Entry(
        "Ethanol as a spark-ignition engine fuel: peak nitrogen oxide emission (NO, µg/J) and "
        "the equivalence ratio of the fuel-air mixture, 88 engine runs; two regimes of "
        "Equivalence against NO (mixtures of regressions).",
        "R mixtools::NOdata (mixtools 2.0.0, written with write.csv); Brinkman (1981), "
        "Ethanol Fuel — A Single-Cylinder Engine Study of Efficiency and Exhaust Emissions, "
        "SAE Transactions 90, paper 810345."),
    "eustock": _Entry(
        "Daily closing prices of the DAX, SMI, CAC and FTSE stock indices, 1991–1998 (business "
        "days; 'day' counts them).",
        "R datasets::EuStockMarkets; Erste Bank AG, Vienna."),
    "faithful": _Entry(
        "Old Faithful geyser: eruption time and waiting time to the next eruption (minutes).",
        "R datasets::faithful; Härdle (1991), Smoothing Techniques with Implementation in S; "
        "Azzalini & Bowman (1990), Applied Statistics 39."),
    "galaxies": _Entry(
        "Velocities (km/s) of 82 galaxies in the Corona Borealis region.",
        "R MASS::galaxies; Postman, Huchra & Geller (1986), Astronomical Journal 92; "
        "analysed by Roeder (1990), JASA 85."),
    "geyser": _Entry(
        "Old Faithful, consecutive eruptions (a time series): waiting time before each eruption "
        "and its duration (minutes).",
        "R MASS::geyser; Azzalini & Bowman (1990), Applied Statistics 39."),
    "penguins": _Entry(
        "Palmer Archipelago penguins: bill length and depth, flipper length (mm), body mass (g) "
        "and year, with text columns species, island and sex; some values missing.",
        "R palmerpenguins (Horst, Hill & Gorman 2020, CC0); data from Gorman, Williams & Fraser "
        "(2014), PLoS ONE 9(3): e90081."),
    "twins": _Entry(
        "Gut microbiome of the twins study: counts of 130 bacterial genera in 278 fecal "
        "samples (loaded samples × taxa).",
        "Bioconductor DirichletMultinomial package data (Holmes, Harris & Quince 2012, PLoS "
        "ONE 7(2): e30126); samples from Turnbaugh et al. (2009), Nature 457.",
        row_names_column="Taxa", samples_in_columns=True),
}

_LAYOUTS = ("samples", "file")


def names() -> list[str]:
    """Names of the bundled data sets, sorted."""
    return sorted(_CATALOGUE)


def path(name: str) -> Path:
    """Path of the CSV file of data set ``name`` (inside the installed package)."""
    _check_name(name)
    return Path(str(resources.files(__name__).joinpath(f"{name}.csv")))


def load(name: str, *, layout: str = "samples") -> Dataset:
    """Load a bundled data set.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    layout : {"samples", "file"}, default "samples"
        ``"samples"``: one row per sample, as models expect (transposes ``twins``, which is stored
        taxa × samples). ``"file"``: the CSV's own orientation. Both are the same for every other
        data set.

    Returns
    -------
    Dataset
    """
    _check_name(name)
    if layout not in _LAYOUTS:
        raise ParameterError(f"layout must be one of {_LAYOUTS}, got {layout!r}.")
    entry = _CATALOGUE[name]
    text = resources.files(__name__).joinpath(f"{name}.csv").read_text(encoding="utf-8")
    cells = _read_columns(text)
    numeric = {column: _as_floats(values) for column, values in cells.items()}
    text_columns = {column: np.array([value or None for value in values], dtype=object)
                    for column, values in cells.items() if numeric[column] is None}
    row_names = None
    if entry.row_names_column is not None:
        row_names = tuple(str(value) for value in text_columns.pop(entry.row_names_column))
    numeric_names = tuple(column for column in cells if numeric[column] is not None)
    data = np.column_stack([numeric[column] for column in numeric_names])
    if entry.samples_in_columns and layout == "samples":
        data = np.ascontiguousarray(data.T)
        numeric_names, row_names = row_names, numeric_names
    return Dataset(name, data, numeric_names, text_columns, row_names, entry.description,
                   entry.source)


def _check_name(name: str) -> None:
    if name not in _CATALOGUE:
        raise ParameterError(f"unknown data set {name!r}: choose one of {', '.join(names())}.")


def _read_columns(text: str) -> dict[str, list[str]]:
    """Column name -> its cells (as text), in file order, of a CSV with a header row."""
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [row for row in rows[1:] if row]
    columns = zip(*body, strict=True)  # strict: a ragged bundled file is a packaging bug
    return {name: list(cells) for name, cells in zip(header, columns, strict=True)}


def _as_floats(values: list[str]) -> np.ndarray | None:
    """The column as floats (NaN for empty cells), or None when a cell is not a number."""
    try:
        return np.array([float(value) if value.strip() else math.nan for value in values])
    except ValueError:
        return None
