"""Where chunks of data come from.

The engine never looks inside a chunk: it hands each one to the model's E-step and adds the
statistics. A data source is either one chunk (an array, or a :class:`Batch`) or a *re-iterable*
collection of chunks — a list, or any object whose ``__iter__`` starts over on every call
(the engine makes one pass per EM iteration).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npformat

from emkit.errors import DataError


class Batch(NamedTuple):
    """Rows of a data set with optional per-row weights and known component labels.

    Attributes
    ----------
    X : ndarray of shape (n_rows, n_features)
    sample_weight : ndarray of shape (n_rows,) or None
        Non-negative weights; ``None`` means every row has weight 1.
    labels : ndarray of int of shape (n_rows,) or None
        Known component of each row (semi-supervised fitting); ``-1`` means unknown.
    """

    X: np.ndarray
    sample_weight: np.ndarray | None = None
    labels: np.ndarray | None = None


def is_single_chunk(data: Any) -> bool:
    """True when ``data`` is one chunk rather than a collection of chunks."""
    # A ChunkSource may announce the shape of all its rows (NpyChunks does): it is still many.
    return isinstance(data, Batch) or (hasattr(data, "shape")
                                       and not isinstance(data, ChunkSource))


def iter_chunks(data: Any) -> Iterator[Any]:
    """Iterate over the chunks of ``data`` once. Raises when a pass yields no chunk."""
    if is_single_chunk(data):
        yield data
        return
    if not isinstance(data, Iterable):
        raise DataError(
            f"emkit cannot read data of type {type(data).__name__}: pass an array, an "
            "emkit.data.chunks.Batch, or a list (re-iterable collection) of them."
        )
    if iter(data) is data:
        raise DataError(
            "data is a one-shot iterator (a generator?), but EM reads the data once per "
            "iteration: pass a list of chunks, or an object whose __iter__ starts over each time."
        )
    empty = True
    for chunk in data:
        empty = False
        yield chunk
    if empty:
        raise DataError("data holds no chunk: pass at least one non-empty array.")


def in_memory(data: Any) -> bool:
    """True for data held in memory (a chunk, or a list or tuple of them); False for a source
    that reads its chunks on every pass (a file, a cluster)."""
    return is_single_chunk(data) or isinstance(data, (list, tuple))


def chunk_list(data: Any, max_rows: int = 200_000) -> list[Any]:
    """The chunks of ``data`` in a list, for initialisation (which may need several looks).

    Data in memory give all their chunks. A streamed source gives a uniform random sample of
    its chunks holding at most ``max_rows`` rows (at least one chunk), read in one pass with a
    fixed seed, so that initialising a fit on data larger than memory needs little memory. The
    chunks kept come in their order in the source: a source of at most ``max_rows`` rows gives
    every row in the order an array in memory has, so the same seed gives the same start."""
    if in_memory(data):
        return list(iter_chunks(data))
    rng = np.random.default_rng(0)
    # (random key, position, rows, chunk): the smallest keys win
    kept: list[tuple[float, int, int, Any]] = []
    for position, chunk in enumerate(iter_chunks(data)):
        kept.append((float(rng.uniform()), position, n_rows(chunk), chunk))
        kept.sort(key=lambda item: item[0])
        total = 0
        for count, (_, _, rows, _) in enumerate(kept):
            total += rows
            if total > max_rows and count > 0:
                del kept[count:]
                break
    return [chunk for _, _, _, chunk in sorted(kept, key=lambda item: item[1])]


def row_sample(data: Any, max_rows: int | None, rng: np.random.Generator) -> list[Any]:
    """At most ``max_rows`` rows of ``data`` for an initialisation, as a list of chunks in the
    source's order.

    Every row when ``data`` holds at most ``max_rows`` rows (or ``max_rows`` is None), without
    drawing from ``rng``; otherwise the rows whose *global* index (counted across chunks) is in
    ``rng.choice(n_rows, max_rows, replace=False)``. The sample depends only on the number of
    rows and on ``rng``, never on how the rows are cut into chunks or where they are stored: an
    array in memory, a file read in chunks and a Dask array holding the same rows give the same
    sample, so the same seed gives the same start. A streamed source whose size is unknown is
    read twice when it is larger than the sample (counting, then picking); only the sample is
    kept in memory."""
    enough = (lambda total: True) if max_rows is None else (lambda total: total <= max_rows)
    if in_memory(data):
        chunks = list(iter_chunks(data))
        total = sum(n_rows(chunk) for chunk in chunks)
    else:
        total, chunks = _known_rows(data), []
        if total is None:  # one pass: count, keeping the chunks while they may all be needed
            total = 0
            for chunk in iter_chunks(data):
                total += n_rows(chunk)
                if enough(total):
                    chunks.append(chunk)
                else:
                    chunks.clear()
        elif enough(total):
            chunks = list(iter_chunks(data))
    if enough(total):
        return chunks
    pick = np.sort(rng.choice(total, max_rows, replace=False))
    sample, start = [], 0
    for chunk in chunks if in_memory(data) else iter_chunks(data):
        stop = start + n_rows(chunk)
        rows = pick[np.searchsorted(pick, start):np.searchsorted(pick, stop)] - start
        if len(rows):
            sample.append(_take_rows(chunk, rows))
        start = stop
    if start != total:
        raise DataError(f"the data changed while the initialisation read them: {total} rows "
                        f"in one pass, {start} in the next.")
    return sample


def _known_rows(source: Any) -> int | None:
    """The number of rows a streamed source knows without a pass (a ``.npy`` header, the shape
    of the array it slices), or None."""
    source = getattr(source, "source", source)  # a CheckedChunks: its source's rows
    for holder in (source, getattr(source, "array", None)):
        shape = getattr(holder, "shape", None)
        if shape is not None and len(shape) == 2 and isinstance(shape[0], (int, np.integer)):
            return int(shape[0])
    return None


def _take_rows(chunk: Any, rows: np.ndarray) -> Any:
    """The given rows of an array or Batch chunk."""
    if isinstance(chunk, Batch):
        return Batch(*(None if part is None else np.asarray(part)[rows] for part in chunk))
    return np.asarray(chunk)[rows]


def n_rows(chunk: Any) -> int:
    """The number of rows of a chunk (an array, a Batch, or anything with ``X``)."""
    return len(getattr(chunk, "X", chunk))


# --------------------------------------------------------------------------- streamed sources
class ChunkSource:
    """A re-iterable source of row chunks read anew on every pass (so the data never need to fit
    in memory). Subclasses set ``n_features`` and ``columns`` and implement ``__iter__``."""

    n_features: int
    columns: list[str] | None = None
    chunk_rows: int

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError


class ArrayChunks(ChunkSource):
    """Chunks of ``chunk_rows`` rows of any sliceable 2-D array: a ``numpy.memmap``, a Zarr or
    HDF5 array. Only one chunk is in memory at a time."""

    def __init__(self, array: Any, chunk_rows: int = 65_536):
        shape = getattr(array, "shape", None)
        if shape is None or len(shape) != 2:
            raise DataError(f"ArrayChunks needs a 2-D array (rows × features), got shape "
                            f"{shape}.")
        self.array, self.n_features = array, int(shape[1])
        self.chunk_rows = _positive_rows(chunk_rows)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.array), self.chunk_rows):
            yield np.asarray(self.array[start:start + self.chunk_rows])


class NpyChunks(ChunkSource):
    """The rows of a ``.npy`` file, ``chunk_rows`` at a time, read with plain file reads: unlike
    a memory map, pages already used do not stay in the process's resident memory."""

    def __init__(self, path: str | os.PathLike, chunk_rows: int = 65_536):
        self.path = os.fspath(path)
        self.chunk_rows = _positive_rows(chunk_rows)
        try:
            with open(self.path, "rb") as stream:
                version = npformat.read_magic(stream)
                reader = (npformat.read_array_header_1_0 if version == (1, 0)
                          else npformat.read_array_header_2_0)
                shape, fortran_order, dtype = reader(stream)
                self.offset = stream.tell()
        except OSError as error:
            raise DataError(f"cannot read {self.path}: {error.strerror or error}.") from None
        except (ValueError, EOFError) as error:
            raise DataError(f"{self.path} is not a .npy file ({error}).") from None
        if len(shape) != 2 or fortran_order or dtype.kind not in "biuf":
            raise DataError(f"{self.path} holds a {'Fortran-ordered ' if fortran_order else ''}"
                            f"array of dtype {dtype} and shape {shape}; emkit streams 2-D "
                            "C-ordered numeric arrays (rows × features).")
        self.shape, self.dtype, self.n_features = tuple(shape), dtype, int(shape[1])

    def __iter__(self) -> Iterator[np.ndarray]:
        n_rows, n_features = self.shape
        with open(self.path, "rb") as stream:
            stream.seek(self.offset)
            for start in range(0, n_rows, self.chunk_rows):
                rows = min(self.chunk_rows, n_rows - start)
                chunk = np.fromfile(stream, dtype=self.dtype, count=rows * n_features)
                if chunk.size != rows * n_features:
                    raise DataError(f"{self.path} is truncated: it announces {n_rows} rows.")
                yield chunk.reshape(rows, n_features)


class ParquetChunks(ChunkSource):
    """The numeric columns of a Parquet file, batch by batch (needs ``pyarrow``); null cells are
    missing values (NaN)."""

    def __init__(self, path: str | os.PathLike, columns: list[str] | None = None,
                 chunk_rows: int = 65_536):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("reading Parquet needs pyarrow: pip install 'emkit[parquet]'.") \
                from None
        self.path = os.fspath(path)
        self.chunk_rows = _positive_rows(chunk_rows)
        try:
            schema = pq.ParquetFile(self.path).schema_arrow
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read {self.path} as Parquet: {error}.") from None
        names = list(schema.names) if columns is None else list(columns)
        unknown = [name for name in names if name not in schema.names]
        if unknown:
            raise DataError(f"{self.path} has no column {unknown[0]!r}; it has "
                            f"{', '.join(schema.names)}.")
        import pyarrow.types as pt

        text = [name for name in names if not (pt.is_integer(schema.field(name).type)
                                              or pt.is_floating(schema.field(name).type))]
        if text:
            raise DataError(f"column {text[0]!r} of {self.path} is not numeric; choose numeric "
                            "columns.")
        self.columns, self.n_features = names, len(names)

    def __iter__(self) -> Iterator[np.ndarray]:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(self.path).iter_batches(self.chunk_rows,
                                                              columns=self.columns):
            yield np.column_stack([column.to_numpy(zero_copy_only=False).astype(np.float64)
                                   for column in batch.columns])


def chunks_from_file(path: str | os.PathLike, chunk_rows: int = 65_536,
                     columns: list[str] | None = None) -> ChunkSource:
    """A streamed source for a ``.npy``, ``.parquet`` or ``.zarr`` file (by its suffix)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".npy":
        return NpyChunks(path, chunk_rows)
    if suffix in (".parquet", ".pq"):
        return ParquetChunks(path, columns, chunk_rows)
    if suffix == ".zarr":
        try:
            import zarr
        except ImportError:
            raise DataError("reading Zarr needs zarr: pip install zarr.") from None
        return ArrayChunks(zarr.open(os.fspath(path), mode="r"), chunk_rows)
    raise DataError(f"emkit streams .npy, .parquet and .zarr files, not {suffix or path}.")


def _positive_rows(chunk_rows: Any) -> int:
    if not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive integer, got {chunk_rows!r}.")
    return int(chunk_rows)


class CheckedChunks(ChunkSource):
    """A source whose chunks pass ``check(chunk, index)`` (which returns the chunk to use or
    raises a DataError) on every pass: data read anew can change between passes, e.g. a chunk
    with other columns."""

    def __init__(self, source: ChunkSource, check):
        self.source, self.check = source, check
        self.n_features, self.columns = source.n_features, source.columns
        self.chunk_rows = getattr(source, "chunk_rows", 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index, chunk in enumerate(self.source):
            yield self.check(chunk, index)
