"""The ``emkit`` command line: fit, predict, score, select, impute, info and demo.

One module per command (``fit`` and ``select`` take a model kind, one module per kind), the
shared helpers in :mod:`emkit.cli.common` and the estimators' defaults, read from their
signatures, in :mod:`emkit.cli.defaults`. Only argparse is loaded to parse the command line;
each command imports what it needs when it runs.

Every expected failure (bad input, a missing file, a file that is not an emkit model) ends with
one line ``emkit: error: ...`` on stderr and exit status 2; warnings print as
``emkit: warning: ...``; Ctrl-C prints one line and exits with status 130. A genuine bug still
raises with its traceback, so that it gets reported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

from emkit import __version__
from emkit.cli import (
    common,
    demo,
    dmm,
    fixed,
    gmm,
    hmm,
    impute,
    info,
    mixtures,
    predict,
    score,
    tones,
)
from emkit.cli.common import parse_k_range

FIT_EXAMPLES = """\
examples:
  emkit fit gmm data.csv -k 3 -o model.emkit
  emkit fit hmm series.csv -k 3 --lengths-column id -o hmm.emkit
  emkit fit dmm counts.csv -k 4
  emkit fit poisson counts.csv -k 2     # also bernoulli, categorical, student
  emkit fit regression data.csv --response y --predictors x1,x2 -k 2
"""
SELECT_EXAMPLES = """\
examples:
  emkit select gmm data.csv -k 1-8 --covariance full,diag
  emkit select dmm counts.csv -k 1-6 --criterion laplace
  emkit select poisson counts.csv -k 1-5 --classification rows.csv   # also bernoulli, ...
"""


def build_parser() -> common.Parser:
    """The argument parser of ``emkit``."""
    parser = common.Parser(prog="emkit", description="Maximum-likelihood estimation by the EM "
                           "algorithm: fit, use and choose mixture models from the command "
                           "line.", epilog="'emkit COMMAND --help' and 'emkit fit KIND --help' "
                           "describe each command, with examples.")
    parser.add_argument("--version", action="version", version=f"emkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=common.Parser)
    commands.required = True

    fit = commands.add_parser("fit", help="fit a model to a data file and save it",
                              description="Fit a model of one kind; 'emkit fit KIND --help' "
                              "lists its options.", epilog=FIT_EXAMPLES)
    kinds = common.add_kinds(fit, "model kinds")
    for module in (gmm, hmm, dmm, fixed, tones, mixtures):
        module.add_fit_parser(kinds)
    predict.add_parser(commands)
    score.add_parser(commands)
    select = commands.add_parser("select", help="choose the number of components by a "
                                 "criterion (BIC, ...)", epilog=SELECT_EXAMPLES,
                                 description="Fit models with several numbers of components "
                                 "and choose one by a criterion; 'emkit select KIND --help' "
                                 "lists the options.")
    kinds = common.add_kinds(select, "model kinds")
    for module in (gmm, dmm, mixtures):
        module.add_select_parser(kinds)
    for module in (impute, info, demo):
        module.add_parser(commands)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"emkit: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def _interrupts_outside_compilation() -> Iterator[None]:
    """Ctrl-C handled by :func:`_on_interrupt` while the command runs (in the main thread of a
    process whose Ctrl-C is Python's default; otherwise it is someone else's business: a test
    runner, an embedding program)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _on_interrupt(signum, frame) -> None:
    """Ctrl-C, held while numba compiles.

    Python raises KeyboardInterrupt wherever the main thread is when the signal comes. While
    numba compiles a kernel (seconds, on a first fit) that can be inside a ctypes callback of
    llvmlite's, where the exception is printed and dropped: the fit then went on as if nothing
    had been pressed. So a Ctrl-C that finds numba's or llvmlite's code on the stack is sent
    again a tenth of a second later, until it comes where it can stop the command."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").partition(".")[0] in ("numba", "llvmlite"):
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        frame = frame.f_back
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``emkit`` with ``argv`` (default: the process arguments); return the exit status."""
    with _interrupts_outside_compilation():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # --help, --version and usage errors
            return exit_.code if isinstance(exit_.code, int) else common.EXIT_ERROR
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args.run(args)
        return 0
    except KeyboardInterrupt:
        print(f"emkit: {common.interrupted_message(args)}", file=sys.stderr)
        return common.EXIT_INTERRUPTED
    except common.Failure as error:
        message = str(error)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `emkit predict ... | head`): not an error
        # worth a message.
        common.silence_stdout()
        return 1
    except OSError as error:
        message = common.describe_os_error(error)
    except Exception as error:
        # emkit's own errors are expected failures; the module is loaded by whatever raised one.
        from emkit.errors import DataError, EmkitError

        if not isinstance(error, EmkitError):
            raise
        message = str(error)
        if isinstance(error, DataError):
            message = common.naming_the_data(args, message)
    print(f"emkit: error: {' '.join(message.split())}", file=sys.stderr)
    return common.EXIT_ERROR


__all__ = ["build_parser", "main", "parse_k_range"]
