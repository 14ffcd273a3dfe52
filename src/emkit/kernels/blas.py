"""Keep BLAS single-threaded while compiled kernels run their own threads.

A kernel that calls BLAS from several numba threads at once would otherwise have every call start
BLAS's own thread pool too, oversubscribing the cores.
"""

from __future__ import annotations

import contextlib
import functools


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas():
    with _controller().limit(limits=1, user_api="blas"):
        yield
