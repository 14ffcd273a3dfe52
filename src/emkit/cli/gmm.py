"""``emkit fit gmm`` and ``emkit select gmm``: Gaussian mixtures of the columns of a table."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.cli import common

if TYPE_CHECKING:
    import numpy as np

FIT_EXAMPLES = """\
examples:
  emkit fit gmm data.csv -k 3 --covariance diag -o model.emkit
  emkit fit gmm big.npy -k 16 --chunk-size 262144 --checkpoint fit.npz   # later: add --resume
"""
SELECT_EXAMPLES = """\
examples:
  emkit select gmm data.csv -k 1-8 --covariance full,diag -o best.emkit
  emkit select gmm data.csv -k 1-6 --criterion icl --plot icl.png
  emkit select gmm data.csv -k 1-9 --models all --mclust-sign   # mclust's mclustBIC table
  emkit select gmm src/emkit/datasets/faithful.csv -k 1-6 --classification rows.csv
"""


def add_fit_parser(kinds) -> None:
    parser = kinds.add_parser(
        "gmm", help="Gaussian mixture of the columns of a table", epilog=FIT_EXAMPLES,
        description="Fit a Gaussian mixture (emkit.GaussianMixture) to the numeric columns of a "
        "table; empty cells are missing values, fitted exactly on the observed values.")
    common.add_table_arguments(parser)
    common.add_k_option(parser)
    common.add_gaussian_options(parser, "gmm", init="init_params")
    parser.add_argument("--float32", action="store_true",
                        help="float32 E-step (faster; statistics still summed in float64)")
    common.add_em_options(parser, "gmm")
    large = parser.add_argument_group("large data and long fits")
    large.add_argument("--chunk-size", type=common.positive_int, metavar="ROWS",
                       help="read a .npy, .parquet or .zarr file this many rows at a time, for "
                            "data larger than memory (.npy and .zarr are always streamed)")
    large.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help="run the E-steps on this Dask cluster (e.g. tcp://host:8786); a .npy "
                            "file is read by the workers, other data are sent from here")
    large.add_argument("--checkpoint", type=Path, metavar="PATH",
                       help="save the state of the fit here every 10 iterations (a .npz file)")
    large.add_argument("--resume", action="store_true",
                       help="continue the interrupted fit saved in --checkpoint")
    common.add_output_options(parser, "model file to write (e.g. model.emkit)")
    parser.set_defaults(run=run_fit)


def add_select_parser(kinds) -> None:
    parser = kinds.add_parser(
        "gmm", help="Gaussian mixtures: number of components and covariance type",
        epilog=SELECT_EXAMPLES,
        description="Fit a Gaussian mixture for every K and covariance type and choose the one "
        "with the lowest criterion (emkit.select_model).")
    common.add_table_arguments(parser)
    common.add_k_option(parser, k_range=True)
    common.add_estimator_option(parser, "select", "covariance_types", "--covariance",
                                "--models", type=common.covariance_list, metavar="TYPES",
                                help="comma-separated covariance types to try (full, tied, "
                                     "diag, spherical, or mclust's models EII, VII, EEI, VEI, "
                                     "EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV); all: "
                                     "the 14 models")
    parser.add_argument("--mclust-sign", action="store_true",
                        help="print the criterion per K and model with mclust's sign (higher "
                             "is better); the model file and --json keep emkit's")
    common.add_estimator_option(parser, "select", "criterion", "--criterion",
                                type=common.criterion,
                                metavar="{bic,aic,icl}", help="criterion to minimise")
    common.add_gaussian_options(parser, "gmm", init="init_params", covariance=False)
    parser.add_argument("--float32", action="store_true",
                        help="float32 E-step (faster; statistics still summed in float64)")
    common.add_em_options(parser, "gmm")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw the criteria against K (needs emkit[plot])")
    common.add_selection_options(parser)
    parser.set_defaults(run=run_select)


# ---------------------------------------------------------------------------------- fit
def build_estimator(args: argparse.Namespace, n_components: int) -> Any:
    """The GaussianMixture that ``emkit fit gmm`` fits (and the template of the fits of
    ``emkit select gmm``)."""
    import numpy as np

    from emkit.estimators.gaussian_mixture import GaussianMixture

    options = common.common_keywords(args, "gmm")
    if args.float32:
        options["dtype"] = np.float32
    return GaussianMixture(n_components, **options)


def run_fit(args: argparse.Namespace) -> None:
    import zipfile

    common.check_output_folders(args.output, args.checkpoint)
    if args.resume and args.checkpoint is None:
        raise common.Failure("--resume needs --checkpoint PATH (the checkpoint of the "
                             "interrupted fit).")
    if args.resume and args.checkpoint.is_file() and not zipfile.is_zipfile(args.checkpoint):
        # Before numpy reads it and suggests loading it as a pickle.
        raise common.Failure(f"{args.checkpoint} is not an emkit checkpoint (not a .npz "
                             "archive); delete it to start the fit afresh.")
    with contextlib.ExitStack() as cleanup:
        data, X, columns = fit_data(args, cleanup)
        model = build_estimator(args, args.n_components).fit(
            data, checkpoint=args.checkpoint, resume=args.resume)
    summary = fit_summary(model, X, columns)
    if args.output is not None:
        common.save_model(model, args.output, columns)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_fit_summary(summary)


def fit_data(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> tuple:
    """What ``emkit fit gmm`` fits: (the data for ``fit``, the rows when they are in memory
    (else None), the column names)."""
    suffix = args.data.suffix.lower()
    columns = common.parse_columns(args.columns)
    if args.chunk_size is None and suffix not in (".npy", ".zarr"):
        table, use = common.read_rows(args.data, columns, args.drop_missing,
                                      **common.layout_options(args))
        common.require_values(table)
        X = table.data[use]
        return (X if args.dask_scheduler is None else
                on_cluster(args, cleanup, X=X)), X, table.columns
    if suffix not in (".npy", ".zarr", ".parquet", ".pq"):
        raise common.Failure(f"{args.data.name}: --chunk-size streams .npy, .parquet and .zarr "
                             "files; a CSV file is read whole (leave out --chunk-size, or "
                             "convert it).")
    if args.drop_missing:
        raise common.Failure("--drop-missing needs the rows in memory; streamed rows with empty "
                             "cells are fitted exactly on their observed values.")
    from emkit.data.chunks import chunks_from_file

    source = chunks_from_file(args.data, args.chunk_size or common.CHUNK_ROWS, columns)
    names = source.columns or [f"x{j}" for j in range(source.n_features)]
    if args.dask_scheduler is not None:
        if suffix != ".npy":
            raise common.Failure("with --dask-scheduler, stream .npy files (read by the "
                                 "workers) or give a table that fits in memory here.")
        return on_cluster(args, cleanup, path=args.data), None, names
    return source, None, names


def on_cluster(args: argparse.Namespace, cleanup: contextlib.ExitStack, X=None, path=None):
    """A Dask array of the data on the cluster at ``--dask-scheduler``, whose client stays
    connected until ``cleanup`` closes."""
    try:
        import dask.array as da
        from dask.distributed import Client

        from emkit.data.distributed import npy_dask_array
    except ImportError:
        raise common.Failure("--dask-scheduler needs Dask: pip install 'emkit[dask]'.") from None
    address = args.dask_scheduler
    try:
        client = Client(address, timeout=5)
    except (OSError, TimeoutError, ValueError) as error:
        raise common.Failure(f"cannot reach the Dask scheduler at {address} ({error}); check "
                             "the address and that the scheduler is running.") from None
    cleanup.callback(client.close)
    rows = args.chunk_size or common.CHUNK_ROWS
    if path is not None:
        return npy_dask_array(path, rows)
    return da.from_array(X, chunks=(rows, -1))


def fit_summary(model: Any, X: np.ndarray | None, columns: Sequence[str]) -> dict:
    """What a fit found; from the fit's own record when the rows were streamed (X None)."""
    import numpy as np

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


def format_components(summary: dict) -> list[str]:
    columns = summary["columns"]
    width = max(10, *(len(name) for name in columns))
    lines = ["component  weight  " + "  ".join(f"{name:>{width}}" for name in columns)]
    for k, (weight, mean) in enumerate(zip(summary["weights"], summary["means"], strict=True)):
        lines.append(f"{k:>9}  {weight:6.3f}  "
                     + "  ".join(f"{value:>{width}.5g}" for value in mean))
    return lines


def print_fit_summary(summary: dict) -> None:
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
        *("  " + line for line in format_components(summary)),
    ]
    if summary.get("output"):
        lines.append(f"model written to {summary['output']}")
    print("\n".join(lines))


# ---------------------------------------------------------------------------------- select
def run_select(args: argparse.Namespace) -> None:
    if args.plot is not None:
        try:  # fail before the fits, not after them
            import matplotlib  # noqa: F401
        except ImportError:
            raise common.Failure("--plot needs matplotlib: pip install 'emkit[plot]'.") from None
    common.check_output_folders(args.output, args.plot, args.classification)
    from emkit.estimators.selection import select_model

    table, use = common.read_rows(args.data, common.parse_columns(args.columns),
                                  args.drop_missing, **common.layout_options(args))
    common.require_values(table)
    X = table.data[use]
    # The template's keywords, and select_model's own (-k, --covariance, --criterion) if given.
    options = build_estimator(args, 1).get_params()
    del options["n_components"], options["covariance_type"]
    result = select_model(X, **common.estimator_options(args, "select"), **options,
                          announce=common.note if common.progress(args) else None)
    if args.plot is not None:
        from emkit.plot import plot_criterion, save_figure

        save_figure(plot_criterion(result), args.plot)
    text = result.to_text()
    if args.mclust_sign or len({row["covariance_type"] for row in result.table}) > 1:
        text += "\n\n" + result.to_grid(mclust_sign=args.mclust_sign)
    common.report_selection(args, result, table.columns, use, text=text)
