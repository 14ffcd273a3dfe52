"""Reading the CSV files people have: from R, pandas, Excel, other tools and by hand.

The layout of a file is worked out from its first 64 KiB (:func:`sniff`): the encoding (UTF-8, with
or without a byte-order mark; UTF-16 as Excel's "Unicode text"; otherwise Latin-1, with a note), the
delimiter (``,`` ``;`` tab or ``|``), a decimal comma (``1,5`` in ``;``- or tab-separated files),
whether the first row is a header, and whether the first column is a row index written by pandas'
``to_csv()`` or R's ``write.csv`` (an unnamed first column). The cells are then parsed by pyarrow
when it is installed (multi-threaded, the fast path for big files) and by the standard library
otherwise; both give the same table.

Missing values are the markers R, pandas and spreadsheets write: an empty cell, ``NA``, ``N/A``,
``NaN``, ``#N/A``, ``NULL``, ``.`` and their usual spellings (:data:`MISSING_MARKERS`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emkit.errors import DataError

MISSING_MARKERS = ("", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "-nan", "#N/A", "#NA",
                   "<NA>", "NULL", "null", "None", ".")
DELIMITERS = (",", "\t", ";", "|")
SAMPLE_BYTES = 1 << 16
_MARKERS = frozenset(MISSING_MARKERS)
_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "bar"}
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?$")
_PANDAS_INDEX = re.compile(r"^(Unnamed: 0)?$")


@dataclass(frozen=True)
class CsvLayout:
    """How a CSV file is written: what :func:`sniff` found or the caller forced.

    ``names`` are the column names after the index column (if any) is dropped; without a header
    they are the columns' positions "1", "2", ...
    """

    encoding: str
    byte_order_mark: int
    delimiter: str
    decimal: str
    header: bool
    index_column: bool
    names: tuple[str, ...]
    notes: tuple[str, ...] = ()


def sniff(path: Path, *, header: bool | None = None,
          index_column: bool | None = None) -> CsvLayout:
    """Work out the layout of the CSV file ``path`` from its first 64 KiB.

    ``header`` and ``index_column`` force those choices when given (None: detect).
    """
    with open(path, "rb") as file:
        sample = file.read(SAMPLE_BYTES)
        complete = not file.read(1)
    encoding, bom = _encoding(sample)
    if encoding == "utf-8" and b"\x00" in sample:  # text never holds NUL bytes; UTF-16 has a BOM
        raise DataError(f"{path} is not a CSV file: it holds binary data{_binary_kind(sample)}.")
    notes = []
    try:
        text = sample[bom:].decode(encoding)
    except UnicodeDecodeError:
        text = _decode_cut(sample[bom:], encoding, complete)
        if text is None:
            encoding = "latin-1"
            text = sample[bom:].decode(encoding)
            notes.append(f"{path} is not UTF-8 text; read it as Latin-1 (re-save it as UTF-8 if "
                         "names or labels look wrong).")
    if not complete:  # the last line of the sample may be cut short
        text = text[:text.rfind("\n") + 1] if "\n" in text else text
    try:
        delimiter, rows = _delimiter(text)
    except csv.Error as error:  # e.g. a lone carriage return inside a field
        raise DataError(f"{path} cannot be read as CSV ({error}).") from None
    if not rows:
        raise DataError(f"{path} is empty: a CSV file needs data rows (and usually a header).")
    decimal = "," if delimiter != "," and _has_decimal_commas(rows) else "."
    if header is None:
        header = _looks_like_header(rows, decimal)
    first = [cell.strip() for cell in rows[0]]
    if index_column is None:
        index_column = header and len(first) > 1 and bool(_PANDAS_INDEX.match(first[0]))
        if index_column:
            notes.append(f"the first column of {path} has no name: it is read as a row index "
                         "(as pandas' to_csv and R's write.csv write it) and left out; "
                         "give --index-column no to keep it.")
    names = first if header else [str(j) for j in range(1, len(first) + 1)]
    if index_column:
        names = names[1:]
    if delimiter != ",":
        notes.append(f"{path} is {_DELIMITER_NAMES[delimiter]}-separated"
                     + (" with decimal commas." if decimal == "," else "."))
    return CsvLayout(encoding, bom, delimiter, decimal, header, index_column, tuple(names),
                     tuple(notes))


def read_numeric(path: Path, layout: CsvLayout,
                 indices: Sequence[int]) -> tuple[list[np.ndarray | str], CsvLayout]:
    """The columns ``indices`` (positions in ``layout.names``) as float64 arrays (NaN where
    missing); a column that is not numeric comes back as the message that says why. Also
    returns the layout, with a note added when the file turned out not to be UTF-8 after all."""
    try:
        import pyarrow  # noqa: F401  (the fast path only when pyarrow is installed)
    except ImportError:
        return _read_with_csv_module(path, _utf8_checked(path, layout), indices)
    return _read_with_pyarrow(path, layout, indices)


def read_cells(path: Path, layout: CsvLayout) -> list[list[str]]:
    """Every data row as its cells' text, index column included, for copying columns through."""
    return [cells for _, cells in _rows(path, layout, keep_index=True)]


def header_cells(path: Path, layout: CsvLayout) -> list[str]:
    """The header row's cells as written (index column's name included)."""
    with _text_stream(path, layout) as file:
        return next(row for row in csv.reader(file, delimiter=layout.delimiter) if row)


# ---------------------------------------------------------------------------------- detection
_BINARY_KINDS = ((b"PK\x03\x04", "a zip archive, such as an emkit model file"),
                 (b"\x93NUMPY", "a NumPy .npy array"),
                 (b"RIFF", "a WAV or other RIFF file"))


def _binary_kind(sample: bytes) -> str:
    """What a binary file looks like, from its first bytes: " (…)" or nothing."""
    for magic, kind in _BINARY_KINDS:
        if sample.startswith(magic):
            return f" ({kind})"
    return ""


def _encoding(sample: bytes) -> tuple[str, int]:
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", 0  # the codec reads the byte-order mark itself
    return "utf-8", 0


def _decode_cut(sample: bytes, encoding: str, complete: bool) -> str | None:
    """Text of a sample that failed to decode only because it ends inside a character."""
    if complete or encoding != "utf-8":
        return None
    for cut in (1, 2, 3):
        try:
            return sample[:-cut].decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _delimiter(text: str) -> tuple[str, list[list[str]]]:
    """The delimiter that splits the sample into the most regular, most numeric table: the most
    rows of the commonest width (above one), then the most numeric cells, then the most columns."""
    best = None
    for rank, delimiter in enumerate(DELIMITERS):
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
                if row]  # newline="": \r, \n and \r\n end lines, as in the file itself
        if not rows:
            return ",", []
        widths = [len(row) for row in rows]
        width = max(set(widths), key=widths.count)
        regular = widths.count(width) / len(rows)
        decimal = "," if delimiter != "," and _has_decimal_commas(rows) else "."
        body = [cell for row in rows[1:] for cell in row] or rows[0]
        numeric = sum(_is_number(cell, decimal) for cell in body) / len(body)
        score = (width > 1, regular, numeric, width, -rank)
        if best is None or score > best[0]:
            best = (score, delimiter, rows)
    return best[1], best[2]


def _has_decimal_commas(rows: list[list[str]]) -> bool:
    cells = [cell.strip() for row in rows[1:] for cell in row]
    return any(_DECIMAL_COMMA.match(cell) for cell in cells) and not any(
        "." in cell and _is_number(cell, ".") for cell in cells)


def _looks_like_header(rows: list[list[str]], decimal: str) -> bool:
    """Whether the first row holds names: decided by the columns of numbers below it (a name
    above numbers, or a number above numbers), else by whether the first row is all numbers."""
    first, body = rows[0], rows[1:]
    verdicts = []
    for j, cell in enumerate(first):
        column = [row[j] for row in body if j < len(row)]
        if column and all(_is_number(c, decimal) or c.strip() in _MARKERS for c in column) \
                and cell.strip() not in _MARKERS:
            verdicts.append(not _is_number(cell, decimal))
    if verdicts:
        return any(verdicts)
    return not all(_is_number(cell, decimal) or cell.strip() in _MARKERS for cell in first)


def _is_number(cell: str, decimal: str) -> bool:
    text = cell.strip()
    if decimal == ",":
        text = text.replace(",", ".")
    try:
        float(text)
    except ValueError:
        return False
    return bool(text)


# ---------------------------------------------------------------------------------- parsing
def _text_stream(path: Path, layout: CsvLayout):
    file = open(path, newline="", encoding=layout.encoding)  # noqa: SIM115 (closed by callers)
    if layout.byte_order_mark:
        file.read(1)  # the mark decodes to one character
    return file


def _rows(path: Path, layout: CsvLayout, keep_index: bool = False):
    """(line number, cells) of every data row, checking that each has the header's width."""
    width = len(layout.names) + layout.index_column
    with _text_stream(path, layout) as file:
        reader = csv.reader(file, delimiter=layout.delimiter)
        seen_first = False
        for row in _checked(reader, path):
            if not row:
                continue  # blank lines carry no sample
            if not seen_first:
                seen_first = True
                if layout.header:
                    continue
            if len(row) != width:
                raise DataError(f"{path}, line {reader.line_num}: {len(row)} cells, but "
                                f"{'the header has' if layout.header else 'the first row has'}"
                                f" {width} columns.")
            yield reader.line_num, row if keep_index else row[layout.index_column:]


def _checked(reader, path: Path):
    """The rows of a csv reader, its errors (odd bytes past the sniffed sample) naming the file
    and line."""
    try:
        yield from reader
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: cannot be read as CSV ({error}).") \
            from None


def _read_with_csv_module(path, layout, indices):
    """Parse with the standard library (no pyarrow, or to name the line of a problem)."""
    lines, columns = [], [[] for _ in indices]
    for line, cells in _rows(path, layout):
        lines.append(line)
        for column, j in zip(columns, indices, strict=True):
            column.append(cells[j])
    if not lines:
        raise DataError(f"{path} has a header row but no data rows.")
    return [_to_floats(np.array(column, dtype=str), path, layout, j, lines)
            for column, j in zip(columns, indices, strict=True)], layout


def _to_floats(cells: np.ndarray, path: Path, layout: CsvLayout, j: int,
               lines: Sequence[int] | None) -> np.ndarray | str:
    """Float64 values of one column of text cells, or the message naming its first non-number."""
    cells = np.char.strip(cells)
    missing = np.isin(cells, MISSING_MARKERS)
    if layout.decimal == ",":
        cells = np.char.replace(cells, ",", ".")
    values = np.full(cells.shape, np.nan)
    try:
        values[~missing] = cells[~missing].astype(np.float64)
    except ValueError:
        for i in np.flatnonzero(~missing):
            if not _is_number(cells[i], "."):
                where = f"line {lines[i]} holds" if lines is not None else "it holds"
                return (f"column {layout.names[j]!r} of {path} is not numeric ({where} "
                        f"{str(cells[i])!r})")
    return values


def _read_with_pyarrow(path, layout, indices):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    width = len(layout.names) + layout.index_column
    internal = [f"c{j}" for j in range(width)]  # file names may repeat or be empty
    wanted = [internal[j + layout.index_column] for j in indices]
    options = dict(
        read_options=pacsv.ReadOptions(column_names=internal, skip_rows=int(layout.header),
                                       encoding=layout.encoding if layout.encoding != "utf-8"
                                       else "utf8"),
        parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(include_columns=wanted,
                                             null_values=list(MISSING_MARKERS),
                                             strings_can_be_null=False,
                                             decimal_point=layout.decimal))
    try:
        with open(path, "rb") as file:
            file.seek(layout.byte_order_mark if layout.encoding == "utf-8" else 0)
            table = pacsv.read_csv(file, **options)
    except pa.ArrowInvalid:
        # A ragged row, or a byte that is not UTF-8 after the sample: the standard library's
        # reader names the line (and a non-UTF-8 file is read again as Latin-1).
        return _read_with_csv_module(path, _utf8_checked(path, layout), indices)
    if table.num_rows == 0:
        raise DataError(f"{path} has a header row but no data rows.")
    result = []
    for j, name in zip(indices, wanted, strict=True):
        column = table.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or \
                pa.types.is_null(column.type):
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            values[np.asarray(column.is_null())] = np.nan
            result.append(values)
        elif pa.types.is_binary(column.type):  # bytes that are not UTF-8
            return _read_with_csv_module(path, _utf8_checked(path, layout), indices)
        else:  # text: numbers pyarrow does not take (" 1", "1."), or a column of labels
            cells = np.array(column.cast(pa.string()).to_pylist(), dtype=str)
            converted = _to_floats(cells, path, layout, j, None)
            if isinstance(converted, str):  # say on which line, as the standard library does
                return _read_with_csv_module(path, layout, indices)
            result.append(converted)
    return result, layout


def _utf8_checked(path: Path, layout: CsvLayout) -> CsvLayout:
    """``layout``, or Latin-1 when a byte after the sniffed sample is not UTF-8."""
    if layout.encoding != "utf-8":
        return layout
    try:
        with open(path, encoding=layout.encoding) as file:
            while file.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return CsvLayout("latin-1", 0, layout.delimiter, layout.decimal, layout.header,
                         layout.index_column, layout.names, layout.notes + (
                             f"{path} is not UTF-8 text; read it as Latin-1.",))
    return layout
