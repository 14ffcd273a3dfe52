"""Reading data tables (CSV, Parquet) and writing result tables, for the command line.

CSV files are read by :mod:`emkit.data.csvfile`, which works out their layout (delimiter, header,
index column, encoding, missing-value markers). Parquet needs pyarrow (the ``parquet`` extra).
pandas is deliberately not needed.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emkit.core.atomic import write_atomically
from emkit.data import csvfile
from emkit.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Table:
    """Numeric columns read from a file.

    Attributes
    ----------
    data : ndarray of shape (n_rows, n_columns), float64
        NaN where a cell was empty.
    columns : tuple of str
        Names of the columns of ``data``, in order.
    path : pathlib.Path
        The file the table came from.
    notes : tuple of str
        What the reader decided that the user should know (a dropped index column, a
        non-UTF-8 encoding, a delimiter other than a comma).
    """

    data: np.ndarray
    columns: tuple[str, ...]
    path: Path
    notes: tuple[str, ...] = ()

    def missing_rows(self) -> np.ndarray:
        """Boolean mask of the rows with at least one missing value, shape (n_rows,)."""
        return np.isnan(self.data).any(axis=1)


def parse_columns(text: str | None) -> list[str] | None:
    """Split a ``--columns a,b`` argument into names (None when not given)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise DataError(f"--columns {text!r} has an empty name: give names separated by commas, "
                        "e.g. --columns eruptions,waiting.")
    if len(set(names)) != len(names):
        raise DataError(f"--columns {text!r} names a column twice.")
    return names


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None, *,
               header: bool | None = None, index_column: bool | None = None) -> Table:
    """Read the numeric columns of a CSV or Parquet file.

    Parameters
    ----------
    path : path of a CSV file (any delimiter, encoding and missing-value markers that R, pandas
        or a spreadsheet write: see :mod:`emkit.data.csvfile`) or a Parquet file (recognised by its
        ``.parquet``/``.pq`` suffix or its magic bytes).
    columns : sequence of str, optional
        Names of the columns to read, in this order. Default: every column, all of which must
        then be numeric. A CSV file without a header names its columns "1", "2", ...
    header : bool, optional
        Whether the first row of a CSV file holds the column names. Default: detected (a first
        row of numbers above numbers is data).
    index_column : bool, optional
        Whether the first column of a CSV file is a row index to leave out. Default: detected
        (an unnamed first column, as pandas' ``to_csv`` and R's ``write.csv`` write).

    Raises
    ------
    DataError
        The file is empty, has no data rows, ragged rows, an unknown column name, or a selected
        column that is not numeric (the message names it and shows an example value).
    OSError
        The file cannot be opened.
    """
    path = Path(path)
    if is_parquet(path):
        return _read_parquet(path, columns)
    return _read_csv(path, columns, header, index_column)


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file (by its suffix or its magic bytes)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    with open(path, "rb") as file:
        return file.read(4) == _PARQUET_MAGIC


def _read_csv(path: Path, columns: Sequence[str] | None, header: bool | None,
              index_column: bool | None) -> Table:
    layout = csvfile.sniff(path, header=header, index_column=index_column)
    indices = _select(layout.names, columns, path)
    values, layout = csvfile.read_numeric(path, layout, indices)
    for column in values:
        if isinstance(column, str):
            raise DataError(f"{column}: choose numeric columns with --columns a,b.")
    data = np.empty((len(values[0]) if values else 0, len(values)), dtype=np.float64)
    for j, column in enumerate(values):
        data[:, j] = column
    return Table(data, tuple(layout.names[i] for i in indices), path, layout.notes)


@dataclass(frozen=True)
class TextTable:
    """Every cell of a file as text, in the file's own layout, to copy columns through.

    ``rows`` hold every cell of each data row, the index column included; ``columns`` are the
    names of the data columns (as :func:`read_table` names them), which start at ``offset``.
    """

    columns: tuple[str, ...]
    header_row: list[str] | None
    rows: list[list[str]]
    offset: int
    delimiter: str = ","
    decimal: str = "."

    def position(self, name: str) -> int:
        """Index in each row of the column ``name``."""
        return self.offset + self.columns.index(name)

    def number(self, value: float) -> str:
        """``value`` written as the file writes numbers (full precision, its decimal mark)."""
        return repr(float(value)).replace(".", self.decimal)

    def format(self, rows: Iterable[Sequence[str]]) -> str:
        """CSV text of ``rows`` below the file's header, with the file's delimiter."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator="\n")
        if self.header_row is not None:
            writer.writerow(self.header_row)
        writer.writerows(rows)
        return buffer.getvalue()


def read_text_table(path: str | os.PathLike, *, header: bool | None = None,
                    index_column: bool | None = None) -> TextTable:
    """The cells of a CSV or Parquet file as text (see :class:`TextTable`); a missing Parquet
    value is an empty cell."""
    path = Path(path)
    if is_parquet(path):
        import pyarrow.parquet as parquet

        table = parquet.read_table(path)
        columns = [["" if value is None else str(value) for value in table.column(i).to_pylist()]
                   for i in range(table.num_columns)]
        names = list(table.column_names)
        return TextTable(tuple(names), names, [list(row) for row in zip(*columns, strict=True)],
                         0)
    layout = csvfile.sniff(path, header=header, index_column=index_column)
    rows = csvfile.read_cells(path, layout)
    header_row = csvfile.header_cells(path, layout) if layout.header else None
    return TextTable(layout.names, header_row, rows, int(layout.index_column), layout.delimiter,
                     layout.decimal)


def numeric_columns(path: str | os.PathLike, *, header: bool | None = None,
                    index_column: bool | None = None) -> list[str]:
    """Names of the columns of a CSV or Parquet file whose cells are numbers or missing, with at
    least one number (the columns ``emkit impute`` fills by default)."""
    path = Path(path)
    if is_parquet(path):
        import pyarrow.parquet as parquet

        names = list(parquet.read_schema(path).names)
        numeric = []
        for name in names:
            try:
                column = _read_parquet(path, [name]).data[:, 0]
            except DataError:
                continue
            if not np.isnan(column).all():
                numeric.append(name)
        return numeric
    layout = csvfile.sniff(path, header=header, index_column=index_column)
    values, _ = csvfile.read_numeric(path, layout, range(len(layout.names)))
    return [name for name, column in zip(layout.names, values, strict=True)
            if not isinstance(column, str) and not np.isnan(column).all()]


def _select(header: Sequence[str], columns: Sequence[str] | None, path: Path) -> list[int]:
    if columns is None:
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise DataError(f"{path} has duplicate column names {duplicated}: rename them.")
        return list(range(len(header)))
    indices = []
    for name in columns:
        matches = [i for i, candidate in enumerate(header) if candidate == name]
        if not matches:
            raise DataError(f"{path} has no column {name!r}; its columns are "
                            f"{', '.join(header)}.")
        if len(matches) > 1:
            raise DataError(f"{path} has {len(matches)} columns named {name!r}: rename them.")
        indices.append(matches[0])
    return indices


def _read_parquet(path: Path, columns: Sequence[str] | None) -> Table:
    try:
        import pyarrow.parquet as parquet
        import pyarrow.types as types
    except ImportError:
        raise DataError(f"reading Parquet ({path}) needs pyarrow: "
                        "install emkit[parquet].") from None
    try:
        schema = parquet.read_schema(path)
    except OSError:
        raise  # a missing or unreadable file
    except Exception as error:  # pyarrow raises its own ArrowInvalid for a corrupt file
        raise DataError(f"{path} is not a readable Parquet file: {error}") from error
    names = list(schema.names)
    indices = _select(names, columns, path)
    selected = [names[i] for i in indices]
    table = parquet.read_table(path, columns=selected)
    if table.num_rows == 0:
        raise DataError(f"{path} has no data rows.")
    data = np.empty((table.num_rows, len(selected)), dtype=np.float64)
    for j, name in enumerate(selected):
        column = table.column(name)
        if not (types.is_integer(column.type) or types.is_floating(column.type)
                or types.is_boolean(column.type) or types.is_decimal(column.type)):
            example = next((value for value in column.to_pylist() if value is not None), None)
            raise DataError(f"column {name!r} of {path} is not numeric (type {column.type}, "
                            f"e.g. {example!r}): choose numeric columns with --columns a,b.")
        # Nulls become NaN: the same meaning as an empty CSV cell.
        data[:, j] = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        data[np.asarray(column.is_null()), j] = np.nan
    return Table(data, tuple(selected), path)


def format_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The CSV text of a header and rows (floats written with full precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v
                         for v in row])
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, header: Sequence[str],
              rows: Iterable[Sequence[object]]) -> Path:
    """Write a CSV file atomically (see :func:`write_atomically`)."""
    return write_atomically(path, format_csv(header, rows))


__all__ = ["Table", "TextTable", "format_csv", "is_parquet", "numeric_columns", "parse_columns",
           "read_table", "read_text_table", "write_csv"]


def json_default(value: Any) -> Any:
    """``json.dumps`` hook for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_wav(path) -> tuple[int, np.ndarray]:
    """(sample rate, mono samples as floats) of a WAV file; integer PCM is scaled to [−1, 1)."""
    import os
    import struct
    import warnings

    from scipy.io import wavfile

    if not os.path.isfile(path):
        raise DataError(f"{path} does not exist or is not a file.")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # e.g. WavFileWarning on unknown chunks: harmless
            rate, data = wavfile.read(path)
    except (ValueError, EOFError, struct.error) as error:  # struct: cut inside a header
        raise DataError(f"{path} is not a readable WAV file ({error}).") from None
    for warning in caught:
        if "prematurely" in str(warning.message):  # fewer samples than the header announces
            raise DataError(f"{path} is truncated ({warning.message}): copy the whole file "
                            "again.")
    if len(data) == 0:
        raise DataError(f"{path} holds no samples.")
    if data.ndim != 1:
        raise DataError(f"{path} has {data.shape[1]} channels; emkit fit tones reads mono WAV "
                        "files: mix or split the channels first.")
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        data = (data.astype(float) - (info.max + 1 if data.dtype.kind == "u" else 0)) / (
            info.max + 1)
    return int(rate), np.asarray(data, dtype=float)
