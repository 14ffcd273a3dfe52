"""Where chunks of data come from.

The engine never looks inside a chunk: it hands each one to the model's E-step and adds the
statistics. A data source is either one chunk (an array, or a :class:`Batch`) or a *re-iterable*
collection of chunks — a list, or any object whose ``__iter__`` starts over on every call
(the engine makes one pass per EM iteration).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

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
    return isinstance(data, Batch) or hasattr(data, "shape")


def iter_chunks(data: Any) -> Iterator[Any]:
    """Iterate over the chunks of ``data`` once. Raises when a pass yields no chunk."""
    if is_single_chunk(data):
        yield data
        return
    if not isinstance(data, Iterable):
        raise DataError(
            f"emkit cannot read data of type {type(data).__name__}: pass an array, an "
            "emkit.data.Batch, or a list (re-iterable collection) of them."
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


def chunk_list(data: Any) -> list[Any]:
    """All chunks of ``data`` in a list (for initialisation, which may need several looks)."""
    return list(iter_chunks(data))
