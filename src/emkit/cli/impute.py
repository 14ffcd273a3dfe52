"""``emkit impute``: fill the empty cells of a table from a Gaussian mixture fitted to it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from emkit.cli import common

EXAMPLES = """\
examples:
  emkit impute airquality.csv -o filled.csv                 # conditional means
  emkit impute airquality.csv --draws 20 -o filled.csv      # filled_1.csv ... filled_20.csv
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "impute", help="fill empty cells from a Gaussian mixture fitted to the incomplete data",
        epilog=EXAMPLES,
        description="Fill the empty cells of the numeric columns with their conditional mean "
        "given the observed values of the row (mixed over components by posterior), or, with "
        "--draws N, write N data sets with random draws from the conditional distribution "
        "(multiple imputation, emkit.EMImputer). Every column of the file is written; only the "
        "imputed columns change, and only in their empty cells. Output is CSV.")
    parser.add_argument("data", type=Path, help="CSV file (delimiter, header, index column and "
                        "missing-value markers detected) or Parquet file")
    common.add_layout_options(parser)
    parser.add_argument("--columns", metavar="A,B",
                        help="numeric columns to model and fill (default: every column whose "
                             "cells are all numbers or empty); other columns are copied")
    common.add_k_option(parser, "impute")
    common.add_gaussian_options(parser, "impute", init=None)
    parser.add_argument("--draws", type=common.positive_int, metavar="N",
                        help="write N imputed data sets, drawn at random, to OUTPUT with "
                             "_1 ... _N before the suffix (filled.csv -> filled_1.csv, ...)")
    group = parser.add_argument_group("EM options")
    common.add_estimator_option(group, "impute", "n_init", "--n-init", type=common.positive_int,
                                metavar="N", help="number of EM starts")
    common.add_estimator_option(group, "impute", "max_iter", "--max-iter",
                                type=common.positive_int, metavar="N",
                                help="maximum EM iterations per start")
    common.add_estimator_option(group, "impute", "tol", "--tol", type=common.non_negative_float,
                                metavar="T", help="stop when the log-likelihood's last change "
                                "and its estimated remaining rise are below T per sample")
    common.add_seed_option(group)
    common.add_output_options(parser, "CSV file to write (default stdout; required with "
                              "--draws)", json_option=False)
    parser.set_defaults(run=run)


def build_estimator(args: argparse.Namespace) -> Any:
    """The EMImputer that ``emkit impute`` fits: one fill (conditional means) without
    ``--draws``."""
    from emkit.estimators.imputer import EMImputer

    return EMImputer(n_imputations=args.draws or 1, random_state=args.seed,
                     **common.estimator_options(args, "impute"))


def _draw_paths(output: Path, n_draws: int) -> list[Path]:
    return [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(1, n_draws + 1)]


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from emkit.data.io import numeric_columns, read_table, read_text_table
    from emkit.errors import DataError

    if args.draws is not None and args.output is None:
        raise common.Failure("--draws writes several files: give their base name with -o "
                             "(e.g. -o filled.csv writes filled_1.csv, ...).")
    outputs = [args.output] if args.draws is None else _draw_paths(args.output, args.draws)
    common.check_output_folders(*outputs)
    columns = common.parse_columns(args.columns)
    layout = common.layout_options(args)
    # The file's own errors (empty, ragged, unknown column) first, with their usual messages.
    read_table(args.data, columns or [], **layout)
    text = read_text_table(args.data, **layout)
    if columns is None:
        columns = numeric_columns(args.data, **layout)
        if not columns:
            raise DataError(f"{args.data} has no numeric column to impute.")
    table = read_table(args.data, columns, **layout)
    for message in table.notes:
        common.note(message)
    missing = np.isnan(table.data)
    empty = [name for name, column in zip(table.columns, missing.T, strict=True) if column.all()]
    if empty:
        raise DataError(f"column(s) {', '.join(empty)} of {args.data} have no value at all: "
                        "nothing to impute them from; leave them out of --columns.")
    imputer = build_estimator(args).fit(table.data)
    if args.draws is None:
        completed = [imputer.transform(table.data)]
    else:
        completed = imputer.multiple_imputations(table.data)
    positions = [text.position(name) for name in table.columns]
    texts = []
    for filled in completed:
        out_rows = [list(row) for row in text.rows]
        for i, j in zip(*np.nonzero(missing), strict=True):
            out_rows[i][positions[j]] = text.number(filled[i, j])  # observed cells stay as read
        texts.append(text.format(out_rows))
    summary = (f"imputed {int(missing.sum())} of {missing.size} cells in "
               f"{int(missing.any(axis=1).sum())} of {len(missing)} rows "
               f"(columns {', '.join(table.columns)}; K={imputer.n_components}, covariance "
               f"{imputer.covariance_type})")
    if args.output is None:
        sys.stdout.write(texts[0])
        common.note(summary)
        return
    from emkit.core.atomic import write_atomically

    for path, text in zip(outputs, texts, strict=True):
        write_atomically(path, text)
    print(f"{summary}; written to {', '.join(map(str, outputs))}")
