"""Where the data come from: arrays, chunks and streamed sources (:mod:`~emkit.data.chunks`),
tables read for the command line (:mod:`~emkit.data.io`, :mod:`~emkit.data.csvfile`) and Dask
arrays (:mod:`~emkit.data.distributed`).

The chunk sources are re-exported here, where users have always imported them from.
"""

from emkit.data.chunks import (
    ArrayChunks,
    Batch,
    CheckedChunks,
    ChunkSource,
    NpyChunks,
    ParquetChunks,
    chunk_list,
    chunks_from_file,
    in_memory,
    is_single_chunk,
    iter_chunks,
    n_rows,
    row_sample,
)

__all__ = [
    "ArrayChunks",
    "Batch",
    "CheckedChunks",
    "ChunkSource",
    "NpyChunks",
    "ParquetChunks",
    "chunk_list",
    "chunks_from_file",
    "in_memory",
    "is_single_chunk",
    "iter_chunks",
    "n_rows",
    "row_sample",
]
