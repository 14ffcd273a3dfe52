"""The ``emkit`` command line: fit, predict, score, select, impute, info and demo.

Every expected failure (bad input, a missing file, a file that is not an emkit model) ends with one
line ``emkit: error: ...`` on stderr and exit status 2; warnings print as ``emkit: warning: ...``.
A genuine bug still raises with its traceback, so that it gets reported.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import emkit
from emkit.atomic import write_atomically
from emkit.clustering import DEFAULT_INIT, INIT_METHODS
from emkit.errors import DataError, EmkitError
from emkit.io import Table, format_csv, json_default, parse_columns, read_table

EXIT_ERROR = 2
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
CRITERIA = ("bic", "aic", "icl")


# The estimator behind each model kind. Their constructors are the one source of the fit
# options' defaults: an option left out on the command line is not passed (see
# ``estimator_options``), and ``--help`` reads the defaults from their signatures.
ESTIMATORS = {
    "gmm": ("emkit.estimators", "GaussianMixture"),
    "hmm": ("emkit.hmm", "GaussianHMM"),
    "dmm": ("emkit.compound_dirichlet", "DirichletMultinomialMixture"),
    "fixed": ("emkit.fixed_mixture", "FixedMixture"),
    "tones": ("emkit.superimposed", "SuperimposedSignals"),
    "impute": ("emkit.imputer", "EMImputer"),
}
_ESTIMATOR_DEFAULT = "%(estimator_default)s"  # expanded when --help is shown


def estimator_defaults(parameter: str, kinds: Sequence[str] = tuple(ESTIMATORS)) -> str:
    """Each estimator's default for a constructor parameter, e.g. ``"gmm 1e-06, hmm 1e-06"``."""
    import importlib
    import inspect

    parts = []
    for kind in kinds:
        module, name = ESTIMATORS[kind]
        signature = inspect.signature(getattr(importlib.import_module(module), name))
        if parameter in signature.parameters:
            value = signature.parameters[parameter].default
            parts.append(f"{kind} {'none' if value is None else value}")
    return ", ".join(parts)


def estimator_options(args: argparse.Namespace) -> dict:
    """The fit options given on the command line as estimator keywords; those left out are not
    passed, so every estimator keeps its own default."""
    options = {}
    for name in ("tol", "max_iter", "accelerate"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = None if value == "none" else value
    return options


class _HelpFormatter(argparse.HelpFormatter):
    """Fills in the estimators' defaults of an option (read from their signatures only when
    help is shown, so that a plain run imports no estimator it does not use)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if _ESTIMATOR_DEFAULT in help_text:
            kinds = getattr(action, "estimator_kinds", tuple(ESTIMATORS))
            help_text = help_text.replace(_ESTIMATOR_DEFAULT,
                                          estimator_defaults(action.dest, kinds))
        return help_text


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in emkit's format."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"emkit: error: {message} (see '{self.prog} --help')\n")


class _Failure(Exception):
    """An expected failure: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------- arguments
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive_int.__name__ = "positive integer"


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


_non_negative_float.__name__ = "non-negative number"


def parse_k_range(text: str) -> list[int]:
    """Numbers of components from ``"1-8"``, ``"3"`` or ``"1,2,5-7"``, sorted, without repeats."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high) if high else int(low)
            if first < 1 or last < first:
                raise ValueError
            values.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid K range {text!r}: use e.g. 1-8, 3 or 1,2,5-7 (K >= 1)") from None
    return sorted(values)


def _covariance_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in COVARIANCE_TYPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown covariance type {unknown[0]!r}: choose from {', '.join(COVARIANCE_TYPES)}")
    return list(dict.fromkeys(names))


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="CSV file (header row) or Parquet file")
    parser.add_argument("--columns", metavar="A,B",
                        help="columns to use, by name (default: all; for predict and score, the "
                             "columns the model was fitted on)")
    parser.add_argument("--drop-missing", action="store_true",
                        help="drop rows with empty cells in the used columns (default: keep "
                             "them; the exact EM uses their observed values)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _add_fit_options(parser: argparse.ArgumentParser, kinds: Sequence[str]) -> None:
    parser.add_argument("--n-init", type=_positive_int, default=1, metavar="N",
                        help="number of starts; the best log-likelihood wins (default 1)")
    _add_estimator_option(parser, kinds, "--max-iter", type=_positive_int, metavar="N",
                          help="maximum EM iterations (passes over the data) per start")
    _add_estimator_option(parser, kinds, "--tol", type=_non_negative_float, metavar="T",
                          help="stop when the log-likelihood's last change and its estimated "
                               "remaining rise are below T per sample")
    parser.add_argument("--reg-covar", type=_non_negative_float, default=1e-6, metavar="R",
                        help="added to covariance diagonals (default 1e-6)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed; the same seed gives the same fit (default 0)")
    parser.add_argument("--init", choices=INIT_METHODS, default=None,
                        help="start of Gaussian mixtures and Gaussian HMMs (default "
                             f"{DEFAULT_INIT}: hierarchical agglomeration and k-means "
                             "starts, ranked by short EM runs; see GaussianMixture)")
    _add_estimator_option(parser, kinds, "--accelerate", choices=["none", "squarem"],
                          help="SQUAREM usually needs several times fewer iterations than "
                               "plain EM (none)")
    parser.add_argument("--float32", action="store_true",
                        help="float32 E-step (faster; statistics still summed in float64)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def _add_estimator_option(parser: argparse.ArgumentParser, kinds: Sequence[str], *flags,
                          help: str, **options) -> None:
    """An option without a default of its own: left out, the estimator's default applies."""
    action = parser.add_argument(*flags, help=f"{help} (default: the estimator's: "
                                              f"{_ESTIMATOR_DEFAULT})", **options)
    action.estimator_kinds = tuple(kinds)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``emkit``."""
    parser = _Parser(prog="emkit", description="Maximum-likelihood estimation by the EM "
                     "algorithm: fit, use and choose mixture models from the command line.")
    parser.add_argument("--version", action="version", version=f"emkit {emkit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    fit = commands.add_parser("fit", help="fit a model to a data file and save it")
    fit.add_argument("model_kind", choices=["gmm", "hmm", "dmm", "fixed", "tones"],
                     help="gmm: Gaussian mixture; hmm: Gaussian hidden Markov model; dmm: "
                          "Dirichlet-multinomial mixture of counts; fixed: mixing weights of "
                          "fixed models from a rows x models likelihood matrix (.csv dense, "
                          ".npz scipy.sparse); tones: K real tones in a mono .wav clip")
    _add_data_options(fit)
    fit.add_argument("--samples-in-columns", action="store_true",
                     help="dmm: the file is categories x samples (one column per sample)")
    fit.add_argument("-k", "--n-components", type=_positive_int, metavar="K",
                     help="number of components (required except for fixed)")
    fit.add_argument("--log", action="store_true",
                     help="fixed: the file holds log-likelihoods, not likelihoods")
    fit.add_argument("--prior", type=_non_negative_float, metavar="A",
                     help="fixed: Dirichlet concentration >= 1 for a MAP fit (default: none)")
    fit.add_argument("--covariance", choices=COVARIANCE_TYPES, default="full",
                     help="covariance type (default full)")
    _add_fit_options(fit, ("gmm", "hmm", "dmm", "fixed", "tones"))
    fit.add_argument("-o", "--output", type=Path, help="model file to write (e.g. model.emkit)")
    fit.add_argument("--checkpoint", type=Path, metavar="PATH",
                     help="save the state of the fit here every 10 iterations (a .npz file)")
    fit.add_argument("--resume", action="store_true",
                     help="continue the interrupted fit saved in --checkpoint")
    fit.add_argument("--chunk-size", type=_positive_int, metavar="ROWS",
                     help="read a .npy, .parquet or .zarr file this many rows at a time, for "
                          "data larger than memory (.npy and .zarr are always streamed)")
    fit.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="run the E-steps on this Dask cluster (e.g. tcp://host:8786); a .npy "
                          "file is read by the workers, other data are sent from here")
    fit.add_argument("--lengths-column", metavar="ID",
                     help="hmm: rows with the same value of column ID in a row form one sequence")
    fit.set_defaults(run=_run_fit)

    predict = commands.add_parser("predict", help="most probable component of each row")
    predict.add_argument("model", type=Path, help="model file written by 'emkit fit'")
    _add_data_options(predict)
    predict.add_argument("--proba", action="store_true",
                         help="write the probability of every component instead")
    predict.add_argument("--lengths-column", metavar="ID",
                         help="hmm: rows with the same value of column ID in a row form one "
                              "sequence")
    predict.add_argument("-o", "--output", type=Path, help="CSV file to write (default stdout)")
    predict.set_defaults(run=_run_predict)

    score = commands.add_parser("score", help="log-likelihood, BIC and AIC of a model on data")
    score.add_argument("model", type=Path, help="model file written by 'emkit fit'")
    _add_data_options(score)
    score.add_argument("--lengths-column", metavar="ID",
                       help="hmm: rows with the same value of column ID in a row form one "
                            "sequence")
    score.set_defaults(run=_run_score)

    select = commands.add_parser("select", help="choose the number of components by BIC")
    select.add_argument("model_kind", choices=["gmm", "dmm"],
                        help="gmm: Gaussian mixture; dmm: Dirichlet-multinomial mixture")
    _add_data_options(select)
    select.add_argument("--samples-in-columns", action="store_true",
                        help="dmm: the file is categories x samples (one column per sample)")
    select.add_argument("--k", type=parse_k_range, default=parse_k_range("1-8"), metavar="RANGE",
                        help="numbers of components to try, e.g. 1-8 or 1,2,5-7 (default 1-8)")
    select.add_argument("--covariance", type=_covariance_list, default=["full"],
                        metavar="TYPES", help="comma-separated covariance types to try "
                        f"({','.join(COVARIANCE_TYPES)}; default full)")
    select.add_argument("--criterion", choices=CRITERIA + ("laplace",), default="bic",
                        help="criterion to minimise (default bic; laplace: dmm only)")
    _add_fit_options(select, ("gmm", "dmm"))
    select.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw the criteria against K (needs emkit[plot])")
    select.add_argument("-o", "--output", type=Path, help="write the chosen model to this file")
    select.set_defaults(run=_run_select)

    impute = commands.add_parser(
        "impute", help="fill empty cells from a Gaussian mixture fitted to the incomplete data",
        description="Fill the empty cells of the numeric columns with their conditional mean "
        "given the observed values of the row (mixed over components by posterior), or, with "
        "--draws N, write N data sets with random draws from the conditional distribution "
        "(multiple imputation). Every column of the file is written; only the imputed columns "
        "change, and only in their empty cells. Output is CSV.")
    impute.add_argument("data", type=Path, help="CSV file (header row) or Parquet file")
    impute.add_argument("--columns", metavar="A,B",
                        help="numeric columns to model and fill (default: every column whose "
                             "cells are all numbers or empty); other columns are copied")
    impute.add_argument("-k", "--n-components", type=_positive_int, default=1, metavar="K",
                        help="number of mixture components (default 1: multivariate normal)")
    impute.add_argument("--covariance", choices=COVARIANCE_TYPES, default="full",
                        help="covariance type (default full)")
    impute.add_argument("--draws", type=_positive_int, metavar="N",
                        help="write N imputed data sets, drawn at random, to OUTPUT with "
                             "_1 ... _N before the suffix (filled.csv -> filled_1.csv, ...)")
    impute.add_argument("--n-init", type=_positive_int, default=1, metavar="N",
                        help="number of EM starts (default 1)")
    _add_estimator_option(impute, ["impute"], "--max-iter", type=_positive_int, metavar="N",
                          help="maximum EM iterations per start")
    _add_estimator_option(impute, ["impute"], "--tol", type=_non_negative_float, metavar="T",
                          help="stop when the log-likelihood's last change and its estimated "
                               "remaining rise are below T per sample")
    impute.add_argument("--reg-covar", type=_non_negative_float, default=1e-6, metavar="R",
                        help="added to covariance diagonals (default 1e-6)")
    impute.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed of the fit and the draws (default 0)")
    impute.add_argument("-o", "--output", type=Path,
                        help="CSV file to write (default stdout; required with --draws)")
    impute.set_defaults(run=_run_impute)

    info = commands.add_parser("info", help="what a model file holds")
    info.add_argument("model", type=Path, help="model file")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(run=_run_info)

    demo = commands.add_parser("demo", help="fit the bundled real data sets and write a report")
    demo.add_argument("--output", type=Path, default=Path("emkit-report"),
                      help="report folder (default emkit-report)")
    demo.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(run=_run_demo)
    return parser


# ---------------------------------------------------------------------------------- data
def _read_rows(path: Path, columns: Sequence[str] | None, drop_missing: bool,
               keep_positions: bool = False) -> tuple[Table, np.ndarray]:
    """The table and a boolean mask of the rows to use.

    Empty cells are missing values (NaN), which the Gaussian mixture handles exactly: every row
    is used. With ``drop_missing`` the rows with an empty cell are left out instead and a note
    says how many."""
    table = read_table(path, columns)
    if not drop_missing:
        return table, np.ones(len(table.data), dtype=bool)
    missing = table.missing_rows()
    n_missing = int(missing.sum())
    if n_missing == len(missing):
        raise DataError(f"every row of {path} has a missing value in the columns used "
                        f"({', '.join(table.columns)}): nothing is left to use.")
    if n_missing:
        action = "left out" if keep_positions else "dropped"
        _note(f"{action} {n_missing} of {len(missing)} rows with missing values")
    return table, ~missing


def _check_output_folders(*paths: Path | None) -> None:
    """Fail before the work, not after it, when an output cannot be written."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise DataError(f"cannot write {path}: it is a folder; give a file name.")
        if not path.parent.is_dir():
            raise DataError(f"cannot write {path}: the folder {path.parent} does not exist.")


def _note(message: str) -> None:
    print(f"emkit: {message}", file=sys.stderr)


def _model_columns(model: Any, columns: str | None) -> list[str] | None:
    """Which columns to read for a fitted model: ``--columns``, else the names it was fitted on
    (``feature_names_in_``, stored in the model file). Removes those names from ``model``."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        # The command line selects the columns by name itself and hands the estimator a plain
        # array; scikit-learn would warn that the array has no names.
        del model.feature_names_in_
    if columns is not None:
        return parse_columns(columns)
    return None if names is None else [str(name) for name in names]


def _save(model: Any, path: Path, columns: Sequence[str]) -> None:
    """Save ``model`` with the names of the columns it was fitted on, so that ``predict`` and
    ``score`` read the same columns by default."""
    model.feature_names_in_ = np.asarray(columns, dtype=object)
    try:
        model.save(path)
    finally:
        del model.feature_names_in_


def _check_width(model: Any, table: Table) -> None:
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and table.data.shape[1] != expected:
        raise DataError(
            f"the model was fitted on {expected} columns, but {len(table.columns)} columns were "
            f"read from {table.path} ({', '.join(table.columns)}): choose {expected} with "
            "--columns a,b.")


def _load_model(path: Path) -> Any:
    from emkit.persist import load

    return load(path)


# ---------------------------------------------------------------------------------- commands
def _estimator(args: argparse.Namespace, n_components: int, covariance_type: str) -> Any:
    from emkit.estimators import GaussianMixture

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    return GaussianMixture(
        n_components, covariance_type=covariance_type, reg_covar=args.reg_covar,
        n_init=args.n_init, random_state=args.seed,
        dtype=np.float32 if args.float32 else np.float64, progress=progress,
        **estimator_options(args), **({"init_params": args.init} if args.init else {}))


def _fit_data(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> tuple:
    """What ``emkit fit gmm`` fits: (the data for ``fit``, the rows when they are in memory
    (else None), the column names)."""
    suffix = args.data.suffix.lower()
    if args.chunk_size is None and suffix not in (".npy", ".zarr"):
        table, use = _read_rows(args.data, parse_columns(args.columns), args.drop_missing)
        X = table.data[use]
        return (X if args.dask_scheduler is None else
                _on_cluster(args, cleanup, X=X)), X, table.columns
    if suffix not in (".npy", ".zarr", ".parquet", ".pq"):
        raise _Failure(f"{args.data.name}: --chunk-size streams .npy, .parquet and .zarr files; "
                       "a CSV file is read whole (leave out --chunk-size, or convert it).")
    if args.drop_missing:
        raise _Failure("--drop-missing needs the rows in memory; streamed rows with empty cells "
                       "are fitted exactly on their observed values.")
    from emkit.data import chunks_from_file

    source = chunks_from_file(args.data, args.chunk_size or 65_536, parse_columns(args.columns))
    columns = source.columns or [f"x{j}" for j in range(source.n_features)]
    if args.dask_scheduler is not None:
        if suffix != ".npy":
            raise _Failure("with --dask-scheduler, stream .npy files (read by the workers) or "
                           "give a table that fits in memory here.")
        return _on_cluster(args, cleanup, path=args.data), None, columns
    return source, None, columns


def _on_cluster(args: argparse.Namespace, cleanup: contextlib.ExitStack, X=None, path=None):
    """A Dask array of the data on the cluster at ``--dask-scheduler``, whose client stays
    connected until ``cleanup`` closes."""
    try:
        import dask.array as da
        from dask.distributed import Client

        from emkit.distributed import npy_dask_array
    except ImportError:
        raise _Failure("--dask-scheduler needs Dask: pip install 'emkit[dask]'.") from None
    address = args.dask_scheduler
    try:
        client = Client(address, timeout=5)
    except (OSError, TimeoutError, ValueError) as error:
        raise DataError(f"cannot reach the Dask scheduler at {address} ({error}); check the "
                        "address and that the scheduler is running.") from None
    cleanup.callback(client.close)
    rows = args.chunk_size or 65_536
    if path is not None:
        return npy_dask_array(path, rows)
    return da.from_array(X, chunks=(rows, -1))


def _fit_summary(model: Any, X: np.ndarray | None, columns: Sequence[str]) -> dict:
    """What a fit found; from the fit's own record when the rows were streamed (X None)."""
    if X is None:
        log_likelihood = float(model.history_[-1])
        n_samples = int(round(log_likelihood / model.lower_bound_))
        mean_log_likelihood = log_likelihood / n_samples
        bic = -2 * log_likelihood + model.n_parameters() * np.log(n_samples)
        aic = -2 * log_likelihood + 2 * model.n_parameters()
    else:
        n_samples = len(X)
        mean_log_likelihood = model.score(X)
        bic, aic = model.bic(X), model.aic(X)
    return {
        "model": type(model).__name__,
        "n_components": int(model.n_components),
        "covariance_type": model.covariance_type,
        "n_samples": n_samples,
        "columns": list(columns),
        "log_likelihood": mean_log_likelihood * n_samples,
        "mean_log_likelihood": mean_log_likelihood,
        "bic": float(bic),
        "aic": float(aic),
        "n_parameters": int(model.n_parameters()),
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "weights": model.weights_.tolist(),
        "means": model.means_.tolist(),
    }


def _format_components(summary: dict) -> list[str]:
    columns = summary["columns"]
    width = max(10, *(len(name) for name in columns))
    lines = ["component  weight  " + "  ".join(f"{name:>{width}}" for name in columns)]
    for k, (weight, mean) in enumerate(zip(summary["weights"], summary["means"], strict=True)):
        lines.append(f"{k:>9}  {weight:6.3f}  "
                     + "  ".join(f"{value:>{width}.5g}" for value in mean))
    return lines


def _print_fit_summary(summary: dict) -> None:
    converged = "yes" if summary["converged"] else "NO (raise --max-iter or --tol)"
    lines = [
        f"{summary['model']}: K={summary['n_components']}, covariance {summary['covariance_type']}"
        f", {summary['n_samples']} rows x {len(summary['columns'])} columns "
        f"({', '.join(summary['columns'])})",
        f"log-likelihood  {summary['log_likelihood']:.6g} "
        f"(mean {summary['mean_log_likelihood']:.6g} per row)",
        f"BIC {summary['bic']:.6g}   AIC {summary['aic']:.6g}   "
        f"({summary['n_parameters']} parameters)",
        f"converged       {converged} after {summary['n_iter']} iterations",
        "means:",
        *("  " + line for line in _format_components(summary)),
    ]
    if summary.get("output"):
        lines.append(f"model written to {summary['output']}")
    print("\n".join(lines))


def _run_fit(args: argparse.Namespace) -> None:
    if args.model_kind == "fixed":
        from emkit.cli_fixed import run_fit as fit_fixed

        return fit_fixed(args)
    if args.n_components is None:
        raise _Failure(f"emkit fit {args.model_kind} needs -k/--n-components K.")
    if args.model_kind == "hmm":
        from emkit.cli_hmm import run_fit

        return run_fit(args)
    if args.model_kind == "dmm":
        from emkit.cli_dmm import run_fit as fit_dmm

        return fit_dmm(args)
    if args.model_kind == "tones":
        from emkit.cli_tones import run_fit as fit_tones

        _check_output_folders(args.output)
        return fit_tones(args)
    _check_output_folders(args.output, args.checkpoint)
    if args.resume and args.checkpoint is None:
        raise _Failure("--resume needs --checkpoint PATH (the checkpoint of the interrupted fit).")
    with contextlib.ExitStack() as cleanup:
        data, X, columns = _fit_data(args, cleanup)
        model = _estimator(args, args.n_components, args.covariance).fit(
            data, checkpoint=args.checkpoint, resume=args.resume)
    summary = _fit_summary(model, X, columns)
    if args.output is not None:
        _save(model, args.output, columns)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_fit_summary(summary)


def _run_predict(args: argparse.Namespace) -> None:
    _check_output_folders(args.output)
    model = _load_model(args.model)
    if hasattr(model, "transmat_"):  # a hidden Markov model: the Viterbi state path
        from emkit.cli_hmm import run_predict

        return run_predict(args, model)
    if type(model).__name__ == "FixedMixture":  # rows x models likelihoods, maybe sparse
        from emkit.cli_fixed import run_predict

        return run_predict(args, model)
    table, use = _read_rows(args.data, _model_columns(model, args.columns), args.drop_missing,
                            keep_positions=True)
    _check_width(model, table)
    X = table.data[use]
    # Rows left out for missing values keep their place (empty cells, null in JSON), so that
    # output row i always belongs to input row i.
    if args.proba:
        header = [f"proba_{k}" for k in range(model.n_components)]
        values = [list(map(float, row)) for row in model.predict_proba(X)]
    else:
        header = ["component"]
        values = [int(label) for label in model.predict(X)]
    write_per_row(args, header, values, use, "probabilities" if args.proba else "components")


def write_per_row(args: argparse.Namespace, header: list[str], values: list[Any],
                  use: np.ndarray, name: str) -> None:
    """One result per row used (``use``), written in the rows' own places (rows left out stay
    empty: null in JSON), as CSV or, with ``--json``, as ``{name: [...]}``."""
    results: list[Any] = [None] * len(use)
    for position, value in zip(np.flatnonzero(use), values, strict=True):
        results[position] = value
    if args.json:
        output = json.dumps({name: results}) + "\n"
    else:
        blank = [""] * len(header)
        output = format_csv(header, (blank if value is None else value if args.proba
                                     else [value] for value in results))
    if args.output is None:
        sys.stdout.write(output)
    else:
        write_atomically(args.output, output)


def _run_score(args: argparse.Namespace) -> None:
    model = _load_model(args.model)
    if type(model).__name__ == "FixedMixture":
        from emkit.cli_fixed import run_score

        return run_score(args, model)
    if hasattr(model, "transmat_"):  # a hidden Markov model: sequences
        from emkit.cli_hmm import run_score

        return run_score(args, model)
    table, use = _read_rows(args.data, _model_columns(model, args.columns),
                            args.drop_missing)
    _check_width(model, table)
    X = table.data[use]
    mean_log_likelihood = float(model.score(X))
    result = {
        "n_samples": len(X),
        "columns": list(table.columns),
        "mean_log_likelihood": mean_log_likelihood,
        "log_likelihood": mean_log_likelihood * len(X),
        "bic": float(model.bic(X)),
        "aic": float(model.aic(X)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"rows            {result['n_samples']}\n"
          f"log-likelihood  {result['log_likelihood']:.6g} "
          f"(mean {result['mean_log_likelihood']:.6g} per row)\n"
          f"BIC             {result['bic']:.6g}\n"
          f"AIC             {result['aic']:.6g}")


def _run_select(args: argparse.Namespace) -> None:
    from emkit.selection import select_model

    if args.model_kind == "dmm":
        from emkit.cli_dmm import run_select

        return run_select(args)
    if args.criterion == "laplace":
        raise _Failure("--criterion laplace is for dmm; for gmm use bic, aic or icl.")
    if args.plot is not None:
        from emkit.plot import _matplotlib

        try:  # fail before the fits, not after them
            _matplotlib()
        except ImportError as error:
            raise _Failure(f"--plot: {error}") from None
    _check_output_folders(args.output, args.plot)
    table, use = _read_rows(args.data, parse_columns(args.columns), args.drop_missing)
    X = table.data[use]
    template = _estimator(args, 1, args.covariance[0])
    parameters = {name: value for name, value in template.get_params().items()
                  if name not in ("n_components", "covariance_type")}
    result = select_model(X, n_components=args.k, covariance_types=tuple(args.covariance),
                          criterion=args.criterion, **parameters)
    best_row = result.table[result.best_index]
    if args.output is not None:
        _save(result.best_estimator, args.output, table.columns)
    if args.plot is not None:
        from emkit.plot import plot_criterion, save_figure

        save_figure(plot_criterion(result), args.plot)
    if args.json:
        print(json.dumps({"criterion": args.criterion, "columns": list(table.columns),
                          "n_samples": len(X), "table": result.table, "best_index":
                          int(result.best_index), "best": best_row, "notes": result.notes,
                          "output": None if args.output is None else str(args.output),
                          "plot": None if args.plot is None else str(args.plot)},
                         indent=2, default=json_default))
        return
    print(result.to_text())
    if args.output is not None:
        print(f"model written to {args.output}")
    if args.plot is not None:
        print(f"plot written to {args.plot}")


def _raw_cells(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and cells of every data row as text ("" for empty), to copy columns through.

    Called after :func:`read_table` accepted the file, so it is a well-formed table."""
    from emkit.io import _is_parquet

    if _is_parquet(path):
        import pyarrow.parquet as parquet

        table = parquet.read_table(path)
        columns = [["" if value is None else str(value) for value in table.column(i).to_pylist()]
                   for i in range(table.num_columns)]
        return list(table.column_names), [list(row) for row in zip(*columns, strict=True)]
    with open(path, newline="", encoding="utf-8-sig") as file:
        rows = [row for row in csv.reader(file) if row]  # as read_table: skip blank lines
    return [name.strip() for name in rows[0]], rows[1:]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _numeric_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns whose cells are numbers or empty, with at least one number."""
    cells = [[row[j].strip() for row in rows] for j in range(len(header))]
    return [name for name, column in zip(header, cells, strict=True)
            if any(column) and all(not cell or _is_number(cell) for cell in column)]


def _draw_paths(output: Path, n_draws: int) -> list[Path]:
    return [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(1, n_draws + 1)]


def _run_impute(args: argparse.Namespace) -> None:
    from emkit.imputer import EMImputer

    if args.draws is not None and args.output is None:
        raise _Failure("--draws writes several files: give their base name with -o "
                       "(e.g. -o filled.csv writes filled_1.csv, ...).")
    outputs = [args.output] if args.draws is None else _draw_paths(args.output, args.draws)
    _check_output_folders(*outputs)
    columns = parse_columns(args.columns)
    # The file's own errors (empty, ragged, unknown column) first, with their usual messages.
    read_table(args.data, columns or [])
    header, rows = _raw_cells(args.data)
    if columns is None:
        columns = _numeric_columns(header, rows)
        if not columns:
            raise DataError(f"{args.data} has no numeric column to impute.")
    table = read_table(args.data, columns)
    missing = np.isnan(table.data)
    empty = [name for name, column in zip(table.columns, missing.T, strict=True) if column.all()]
    if empty:
        raise DataError(f"column(s) {', '.join(empty)} of {args.data} have no value at all: "
                        "nothing to impute them from; leave them out of --columns.")
    imputer = EMImputer(args.n_components, covariance_type=args.covariance,
                        n_imputations=args.draws or 1, **estimator_options(args),
                        n_init=args.n_init, reg_covar=args.reg_covar, random_state=args.seed)
    imputer.fit(table.data)
    if args.draws is None:
        completed = [imputer.transform(table.data)]
    else:
        completed = imputer.multiple_imputations(table.data)
    positions = [header.index(name) for name in table.columns]
    texts = []
    for filled in completed:
        out_rows = [list(row) for row in rows]
        for i, j in zip(*np.nonzero(missing), strict=True):
            out_rows[i][positions[j]] = repr(float(filled[i, j]))  # observed cells stay as read
        texts.append(format_csv(header, out_rows))
    summary = (f"imputed {int(missing.sum())} of {missing.size} cells in "
               f"{int(missing.any(axis=1).sum())} of {len(missing)} rows "
               f"(columns {', '.join(table.columns)}; K={args.n_components}, covariance "
               f"{args.covariance})")
    if args.output is None:
        sys.stdout.write(texts[0])
        _note(summary)
        return
    for path, text in zip(outputs, texts, strict=True):
        write_atomically(path, text)
    print(f"{summary}; written to {', '.join(map(str, outputs))}")


def _run_info(args: argparse.Namespace) -> None:
    from emkit.persist import describe

    metadata = describe(args.model)
    metadata["path"] = str(args.model)
    if args.json:
        print(json.dumps(metadata, indent=2, default=json_default))
        return
    print("\n".join(_format_info(metadata)))


def _format_info(metadata: dict) -> list[str]:
    """The model file's metadata as aligned lines: the essentials first, then every parameter,
    fitted scalar and array shape."""
    params = dict(metadata.get("params", {}))
    attributes = dict(metadata.get("attributes", {}))
    names = attributes.pop("feature_names_in_", None)
    n_features = attributes.pop("n_features_in_", "?")
    lines = [
        ("file", f"{metadata['path']} ({metadata.get('file_size', '?')} bytes)"),
        ("estimator", metadata.get("estimator")),
        ("schema version", f"{metadata.get('schema_version')} (written by emkit "
                           f"{metadata.get('emkit_version', '?')})"),
        ("components (K)", params.pop("n_components", "?")),
        ("features (D)", f"{n_features}" + (f" ({', '.join(names)})" if names else "")),
    ]
    if "covariance_type" in params:
        lines.append(("covariance type", params.pop("covariance_type")))
    lines += [(name, value) for name, value in attributes.items() if name != "events_"]
    if attributes.get("events_"):
        lines.append(("events", "; ".join(f"iteration {i}: {m}" for i, m in
                                         attributes["events_"])))
    # Encoded parameters (a dtype) are one-entry dicts in the metadata.
    lines += [(f"param {name}", " ".join(map(str, value.values())) if isinstance(value, dict)
               else value) for name, value in params.items()]
    lines += [(f"array {name}", f"{np.dtype(info['dtype']).name} {tuple(info['shape'])}")
              for name, info in metadata.get("arrays", {}).items()]
    lines += [("note", note) for note in metadata.get("notes", [])]
    width = max(len(name) for name, _ in lines)
    return [f"{name:<{width}}  {_format_value(value)}" for name, value in lines]


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(item) for item in value)
    return str(value)


def _run_demo(args: argparse.Namespace) -> None:
    from emkit.report import run_demo

    path = run_demo(args.output, quick=args.quick)
    print(f"report written to {path}")


# ---------------------------------------------------------------------------------- main
def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"emkit: warning: {message}", file=sys.stderr)


def _describe_os_error(error: OSError) -> str:
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``emkit`` with ``argv`` (default: the process arguments); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args.run(args)
        except (EmkitError, _Failure) as error:
            message = str(error)
        except BrokenPipeError:
            # The reader of our output went away (e.g. `emkit predict ... | head`): not an
            # error worth a message; silence the final flush of stdout, as Python's docs advise.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except OSError as error:
            message = _describe_os_error(error)
        else:
            return 0
    print(f"emkit: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main", "parse_k_range"]
