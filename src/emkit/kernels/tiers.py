"""Numpy first, compiled once it pays: the rule that picks a form for kernels written twice.

In a new environment, compiling one of numba's kernels costs about a second; loading it from
numba's on-disk cache costs milliseconds; and on a small input the same arithmetic in numpy is
only a few times slower than the compiled loop (fractions of a millisecond either way). So a
kernel with both forms runs

- **compiled** when its compiled form is already in memory or in numba's cache for these argument
  types, or when the input is large (``work`` ≥ ``numpy_max_work``: there numpy is many times
  slower, and compiling pays within one fit);
- **in numpy** otherwise, counting the time spent so; once that time reaches what compiling the
  loop costs (the ski-rental rule, which never costs more than twice the better choice made in
  hindsight), it compiles, and runs compiled from then on.

A one-off small fit in a new environment therefore compiles nothing; a process that fits many
small models compiles once, and every later process loads the compiled form from the cache.
The time spent in numpy is also kept across processes, in a small ledger in numba's cache
directory, so that many short processes add up to one compilation as one long process does. The
two forms agree to rounding (tests/test_kernels.py runs both), so which one ran can change a
result only in its last digits: two identical fits in one process can differ there if a switch
came between them (``MODE = "size"`` rules that out).
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import time

# How the form is chosen:
#   "adaptive" (default): as above;
#   "size": numpy exactly below ``numpy_max_work``, compiled above, whatever the process did
#       before (every result a function of its inputs alone, at the price of never compiling for
#       small inputs; the test suite runs so, and so does EMKIT_KERNELS=size);
#   "numpy" or "compiled": one form always (the tests of both forms).
MODE: str = os.environ.get("EMKIT_KERNELS", "adaptive")


class TwoForms:
    """The choice between a kernel's numpy form and its compiled form ``compiled`` (the numba
    dispatcher that Python calls on small inputs).

    ``use_compiled(key, work, args)``: ``key`` names the argument types cheaply (the data's
    dtype, say), ``work`` is the call's size in the kernel's own units, ``args`` are the
    arguments the compiled form would get (read only to look it up in numba's cache). The caller
    runs the numpy form through :meth:`run_numpy`, which counts its time.
    """

    def __init__(self, compiled, numpy_max_work: float, compile_seconds: float):
        self.compiled = compiled
        self.numpy_max_work = numpy_max_work
        self.compile_seconds = compile_seconds  # about what compiling the loop costs
        self._ready: set = set()  # keys whose compiled form is in memory
        self._looked_up: set = set()  # keys already looked up in numba's cache
        self._numpy_seconds = 0.0  # in this process
        self._seconds_before: float | None = None  # in earlier processes (the ledger)
        self._lock = threading.Lock()
        _ALL.append(self)

    def use_compiled(self, key, work: float, args) -> bool:
        if MODE != "adaptive":
            return MODE == "compiled" or (MODE == "size" and work >= self.numpy_max_work)
        if key in self._ready or work >= self.numpy_max_work:
            return True  # (a large input pays for compiling at once)
        with self._lock:
            if self._seconds_before is None:
                self._seconds_before = _ledger(self.compiled).get(_name(self.compiled), 0.0)
            if self._numpy_seconds + self._seconds_before >= self.compile_seconds:
                self._ready.add(key)
                return True
            if key not in self._looked_up:
                self._looked_up.add(key)
                if is_compiled(self.compiled, args):
                    self._ready.add(key)
                    return True
        return False

    def keep_compiled(self, key) -> None:
        """From now on the compiled form for ``key``: for a kernel whose large inputs run
        another compiled function (a threaded twin), once that one has been compiled the
        process is evidently one of large fits."""
        self._ready.add(key)

    def run_numpy(self, form, *args):
        """``form(*args)``, its time counted towards compiling."""
        start = time.perf_counter()
        try:
            return form(*args)
        finally:
            self._numpy_seconds += time.perf_counter() - start


# Every TwoForms, so that at exit the numpy time of those still renting is added to the ledger:
# the rule then counts the time of all processes that share numba's cache, and a kernel that
# many short processes each run briefly in numpy (the fits of a script, a test run, a report) is
# compiled once in a later one, instead of never.
_ALL: list[TwoForms] = []
_LEDGER = "emkit-numpy-seconds.json"


def _name(dispatcher) -> str:
    return f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"


def _ledger_path(dispatcher) -> str | None:
    """The ledger file in ``dispatcher``'s numba cache directory (None if numba's internals
    are not as expected)."""
    try:
        return os.path.join(dispatcher._cache._cache_path, _LEDGER)
    except AttributeError:
        return None


def _ledger(dispatcher) -> dict:
    path = _ledger_path(dispatcher)
    try:
        with open(path, encoding="utf-8") as file:
            entries = json.load(file)
        return {k: float(v) for k, v in entries.items()} if isinstance(entries, dict) else {}
    except (OSError, TypeError, ValueError):
        return {}


@atexit.register
def _save_ledgers() -> None:
    """Add this process's numpy seconds of the kernels not yet compiled to their ledgers
    (written atomically; a lost update between concurrent processes only delays a compilation).
    """
    if MODE != "adaptive":
        return
    paths: dict[str, list[TwoForms]] = {}
    for forms in _ALL:
        path = _ledger_path(forms.compiled)
        if forms._numpy_seconds > 0.0 and not forms._ready and path is not None:
            paths.setdefault(path, []).append(forms)
    for path, group in paths.items():
        entries = _ledger(group[0].compiled)
        for forms in group:
            name = _name(forms.compiled)
            entries[name] = entries.get(name, 0.0) + forms._numpy_seconds
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(entries, file)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only cache: every process starts from its own count


def is_compiled(dispatcher, args) -> bool:
    """Whether ``dispatcher`` can run on ``args`` without compiling: its compiled form is in
    memory, or numba's cache holds it (it is then loaded, which takes milliseconds).

    numba has no public call for "load, but do not compile"; this asks the dispatcher's cache the
    way ``Dispatcher.compile`` does first, and on any surprise from numba's internals answers
    no (the numpy form then runs: slower, never wrong).
    """
    try:
        signature = tuple(dispatcher.typeof_pyval(a) for a in args)
        if signature in dispatcher.overloads:
            return True
        # No index file, nothing cached: the usual case in a new environment, answered without
        # the ~0.3 s in which numba's cache lookup first sets up its compiler.
        if not os.path.exists(dispatcher._cache._cache_file._index_path):
            return False
        if dispatcher._cache.load_overload(signature, dispatcher.targetctx) is None:
            return False
        dispatcher.compile(signature)  # found: this loads it (again) from the cache
        return True
    except Exception:  # noqa: BLE001 - internals of another version of numba
        return False
