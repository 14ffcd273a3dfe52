"""E-steps where the data live: fitting on Dask arrays and data frames (``pip install
'emkit[dask]'``; Dask is imported only here).

Because statistics add, one EM iteration on a cluster is: send the parameters to the workers
once, run the model's E-step on every block where it is stored, add the statistics in a tree
(log₂ of the number of blocks deep), and run the M-step on the client. The input is persisted
once, so the blocks stay in the workers' memory across iterations. If a worker dies, Dask
recomputes its blocks and tasks from the graph, and the fit goes on to the same result.

With the distributed scheduler the active ``dask.distributed.Client`` is used; without one, the
local threaded scheduler.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from emkit.core.statistics import add_statistics
from emkit.data.chunks import ChunkSource, NpyChunks
from emkit.errors import DataError
from emkit.models.hmm import Sequences, check_lengths


class DaskChunks(ChunkSource):
    """The blocks of a Dask array (rows × features) or data frame, as a data source whose
    E-steps run on the workers (see the module docstring).

    Parameters
    ----------
    data : dask.array.Array or dask.dataframe.DataFrame
        Rows are split as the collection is; the columns are gathered into each block.
    persist : bool
        Keep the blocks in (cluster) memory; do this once, not in every iteration.
    """

    def __init__(self, data: Any, persist: bool = True):
        import dask

        self.columns = None
        if hasattr(data, "to_dask_array"):  # a data frame: numeric columns only
            self.columns = [str(name) for name in data.columns]
            data = data.to_dask_array(lengths=True)
        if data.ndim != 2:
            raise DataError(f"a Dask array to fit must be 2-D (rows × features), got "
                            f"{data.ndim}-D.")
        data = data.rechunk({1: -1})
        if persist:
            data = data.persist()
        self.array = data
        self.n_features = int(data.shape[1])
        self.chunk_rows = int(max(data.chunks[0]))
        self.blocks = list(data.to_delayed().ravel())
        self.check: Callable[[np.ndarray, int], np.ndarray] | None = None
        self._dask = dask

    def checked(self, check: Callable[[np.ndarray, int], np.ndarray]) -> DaskChunks:
        """The same blocks, each passed through ``check(block, index)`` on its worker."""
        checked = copy.copy(self)
        checked.check = check
        return checked

    def __iter__(self) -> Iterator[Any]:
        """The blocks, fetched one at a time (for initialisation on a sample of them)."""
        for index, block in enumerate(self.blocks):
            values = block.compute()
            yield values if self.check is None else self.check(np.asarray(values), index)

    def map_e_step(self, model: Any, params: Any, inverse_temperature: float) -> tuple[Any, float]:
        """The summed statistics and log-likelihood of ``params`` over all blocks, computed where
        the blocks are and added in a tree."""
        delayed = self._dask.delayed
        shared = delayed(params)  # one key: sent to each worker once per iteration
        parts = [delayed(_block_e_step)(model, shared, block, index, inverse_temperature,
                                        self.check)
                 for index, block in enumerate(self.blocks)]
        while len(parts) > 1:  # a tree of pairwise sums
            pairs = [delayed(_add)(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
            parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
        stats, log_likelihood = self._dask.compute(parts[0])[0]
        return stats, float(log_likelihood)


class DaskSequences(DaskChunks):
    """Sequences (for hidden Markov models) whose frames are a Dask array: the blocks are re-cut
    at sequence boundaries, about ``frames_per_block`` frames each, so that every block holds
    whole sequences and its E-step (a forward-backward pass) runs where it is stored.

    Parameters
    ----------
    data : dask.array.Array (n_frames, n_features)
    lengths : array of int (n_sequences,)
        Frames per sequence, summing to n_frames.
    sample_weight : array (n_sequences,), optional
    """

    def __init__(self, data: Any, lengths: Any, sample_weight: Any = None,
                 frames_per_block: int = 65_536, persist: bool = True):
        import dask

        if data.ndim != 2:
            raise DataError(f"HMM frames must be a 2-D Dask array (frames × features), got "
                            f"{data.ndim}-D.")
        lengths = check_lengths(lengths, int(data.shape[0]))
        weights = (np.ones(len(lengths)) if sample_weight is None
                   else np.asarray(sample_weight, dtype=float))
        ends = np.cumsum(lengths)
        # a block ends after the first sequence that reaches each multiple of frames_per_block
        cuts = np.searchsorted(ends, np.arange(frames_per_block, ends[-1], frames_per_block)) + 1
        groups = np.unique(np.concatenate([[0], cuts, [len(lengths)]]))
        starts = np.concatenate([[0], ends])
        frames = [int(starts[b] - starts[a]) for a, b in zip(groups[:-1], groups[1:],
                                                              strict=True)]
        array = data.rechunk({0: tuple(frames), 1: -1})
        if persist:
            array = array.persist()
        self.array, self.columns, self.check = array, None, None
        self.n_features = int(array.shape[1])
        self.chunk_rows = max(frames)
        self.blocks = [dask.delayed(Sequences)(block, lengths[a:b], weights[a:b])
                       for block, a, b in zip(array.to_delayed().ravel(), groups[:-1],
                                              groups[1:], strict=True)]
        self._dask = dask


def _block_e_step(model, params, block, index, inverse_temperature, check):
    if check is not None:
        block = check(np.asarray(block), index)
    if inverse_temperature == 1.0:
        return model.e_step(params, block)
    return model.e_step(params, block, inverse_temperature=inverse_temperature)


def _add(a, b):
    return add_statistics(a[0], b[0]), a[1] + b[1]


def map_rows(function: Callable[[np.ndarray], np.ndarray], data: Any,
             n_outputs: int | None) -> Any:
    """``function`` applied to every block of rows of a Dask collection, lazily: a Dask array
    of one value per row (``n_outputs`` None) or ``n_outputs`` values per row."""
    import dask.array as da

    if hasattr(data, "to_dask_array"):
        data = data.to_dask_array(lengths=True)
    data = data.rechunk({1: -1})
    if n_outputs is None:
        return data.map_blocks(lambda block: function(np.asarray(block)), drop_axis=1,
                               dtype=float)
    return data.map_blocks(lambda block: function(np.asarray(block)),
                           chunks=(data.chunks[0], (n_outputs,)), dtype=float,
                           meta=da.empty((0, n_outputs), dtype=float)._meta)


def npy_dask_array(path: str | os.PathLike, chunk_rows: int) -> Any:
    """A Dask array of the rows of a ``.npy`` file whose blocks the workers read themselves
    (the file must be at ``path`` on every worker, e.g. a shared file system)."""
    import dask
    import dask.array as da

    source = NpyChunks(path, chunk_rows)
    n_rows, n_features = source.shape
    blocks = []
    for start in range(0, n_rows, chunk_rows):
        rows = min(chunk_rows, n_rows - start)
        reader = dask.delayed(_read_npy_rows)(source.path, source.offset, source.dtype.str,
                                              start, rows, n_features)
        blocks.append(da.from_delayed(reader, (rows, n_features), dtype=source.dtype))
    return da.concatenate(blocks, axis=0)


def _read_npy_rows(path, offset, dtype, start, rows, n_features):
    dtype = np.dtype(dtype)
    with open(path, "rb") as stream:
        stream.seek(offset + start * n_features * dtype.itemsize)
        return np.fromfile(stream, dtype=dtype, count=rows * n_features).reshape(rows,
                                                                                 n_features)
