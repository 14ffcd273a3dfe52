"""``emkit fit hmm``, and ``emkit predict`` / ``score`` for hidden Markov model files.

Sequences in a table: with ``--lengths-column ID``, consecutive rows with the same value of
column ID form one sequence (the column itself is not a feature); without it the whole file is
one sequence. ``predict`` writes the Viterbi state path (``state``) or, with ``--proba``, the
posterior probability of every state.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from emkit.cli import common

if TYPE_CHECKING:
    import numpy as np

EXAMPLES = """\
examples:
  emkit fit hmm series.csv -k 3 --lengths-column id -o hmm.emkit
  emkit predict hmm.emkit series.csv --lengths-column id > states.csv   # the Viterbi path
"""


def add_fit_parser(kinds) -> None:
    parser = kinds.add_parser(
        "hmm", help="Gaussian hidden Markov model of the rows of a table", epilog=EXAMPLES,
        description="Fit a Gaussian hidden Markov model (emkit.GaussianHMM) by Baum-Welch: "
        "rows are frames in time order, one sequence per file or per value of "
        "--lengths-column.")
    common.add_table_arguments(parser)
    common.add_lengths_option(parser)
    common.add_k_option(parser)
    common.add_gaussian_options(parser, "hmm", init="init")
    common.add_em_options(parser, "hmm")
    common.add_output_options(parser, "model file to write (e.g. hmm.emkit)")
    parser.set_defaults(run=run_fit)


def sequence_lengths(args: argparse.Namespace, use: np.ndarray) -> np.ndarray | None:
    """Run lengths of consecutive equal values of ``--lengths-column`` over the used rows (None:
    one sequence). An id that comes back after another id is an error: its frames would be
    split into separate sequences without a word."""
    column = args.lengths_column
    if column is None:
        return None
    import numpy as np

    from emkit.data.io import read_text_table
    from emkit.errors import DataError

    table = read_text_table(args.data, **common.layout_options(args))
    if column not in table.columns:
        raise DataError(f"--lengths-column {column!r} is not a column of {args.data} (columns: "
                        f"{', '.join(table.columns)}).")
    j = table.position(column)
    ids = np.array([row[j].strip() for row in table.rows], dtype=object)
    if len(ids) != len(use):
        raise DataError(f"{args.data}: could not match the rows of column {column!r} to the data.")
    rows = np.flatnonzero(use)
    ids = ids[use]
    if np.any(ids == ""):
        raise DataError(f"column {column!r} of {args.data} has empty cells: every row needs a "
                        "sequence id.")
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    seen = set()
    for start in starts:
        if ids[start] in seen:
            raise DataError(
                f"sequence id {ids[start]!r} of column {column!r} comes back at data row "
                f"{rows[start] + 1} of {args.data} after other ids: the rows of a sequence must "
                "be together and in time order; sort the file by id (keeping time order).")
        seen.add(ids[start])
    return np.diff(np.r_[starts, len(ids)])


def _feature_columns(args: argparse.Namespace) -> list[str] | None:
    columns = common.parse_columns(args.columns)
    if columns is not None or args.lengths_column is None:
        return columns
    from emkit.data.io import numeric_columns

    return [name for name in numeric_columns(args.data, **common.layout_options(args))
            if name != args.lengths_column]


def build_estimator(args: argparse.Namespace) -> Any:
    """The GaussianHMM that ``emkit fit hmm`` fits."""
    from emkit.estimators.hmm import GaussianHMM

    return GaussianHMM(args.n_components, **common.common_keywords(args, "hmm"))


def run_fit(args: argparse.Namespace) -> None:
    common.check_output_folders(args.output)
    table, use = common.read_rows(args.data, _feature_columns(args), args.drop_missing,
                                  **common.layout_options(args))
    common.require_values(table)
    X = table.data[use]
    lengths = sequence_lengths(args, use)
    model = build_estimator(args).fit(X, lengths)
    log_likelihood = model.score(X, lengths)
    summary = {
        "model": "GaussianHMM",
        "n_components": int(model.n_components),
        "covariance_type": model.covariance_type,
        "n_frames": int(len(X)),
        "n_sequences": 1 if lengths is None else int(len(lengths)),
        "columns": list(table.columns),
        "log_likelihood": float(log_likelihood),
        "bic": float(model.bic(X, lengths)),
        "aic": float(model.aic(X, lengths)),
        "n_parameters": int(model.n_parameters()),
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "startprob": model.startprob_.tolist(),
        "transmat": model.transmat_.tolist(),
        "means": model.means_.tolist(),
    }
    if args.output is not None:
        common.save_model(model, args.output, table.columns)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    converged = "yes" if summary["converged"] else "NO (raise --max-iter or --tol)"
    width = max(10, *(len(name) for name in table.columns))
    lines = [
        f"GaussianHMM: K={summary['n_components']}, covariance {summary['covariance_type']}, "
        f"{summary['n_sequences']} sequence(s), {summary['n_frames']} frames x "
        f"{len(table.columns)} columns ({', '.join(table.columns)})",
        f"log-likelihood  {log_likelihood:.6g}",
        f"BIC {summary['bic']:.6g}   AIC {summary['aic']:.6g}   "
        f"({summary['n_parameters']} parameters)",
        f"converged       {converged} after {summary['n_iter']} iterations",
        "state   start  " + "  ".join(f"{name:>{width}}" for name in table.columns),
        *(f"{k:>5}  {p:6.3f}  " + "  ".join(f"{v:>{width}.5g}" for v in mean)
          for k, (p, mean) in enumerate(zip(model.startprob_, model.means_, strict=True))),
        "transition matrix (row: from, column: to):",
        *("  " + "  ".join(f"{p:6.3f}" for p in row) for row in model.transmat_),
    ]
    if args.output is not None:
        lines.append(f"model written to {args.output}")
    print("\n".join(lines))


def run_predict(args: argparse.Namespace, model: Any) -> None:
    """The state path (or posteriors) of every row; rows left out keep their place, empty."""
    columns = common.model_columns(model, args.columns)
    table, use = common.read_rows(args.data, columns, args.drop_missing, keep_positions=True,
                                  **common.layout_options(args))
    common.check_width(model, table)
    X = table.data[use]
    lengths = sequence_lengths(args, use)
    if args.proba:
        header = [f"proba_{k}" for k in range(model.n_components)]
        values: list[Any] = [list(map(float, row)) for row in model.predict_proba(X, lengths)]
    else:
        header = ["state"]
        values = [int(state) for state in model.predict(X, lengths)]
    common.write_per_row(args, header, values, use, "probabilities" if args.proba else "states")


def run_score(args: argparse.Namespace, model: Any) -> None:
    """Log-likelihood (summed over the sequences), BIC and AIC of an HMM on a data file."""
    table, use = common.read_rows(args.data, common.model_columns(model, args.columns),
                                  args.drop_missing, **common.layout_options(args))
    common.check_width(model, table)
    X = table.data[use]
    lengths = sequence_lengths(args, use)
    log_likelihood = float(model.score(X, lengths))
    result = {
        "n_frames": len(X),
        "n_sequences": 1 if lengths is None else int(len(lengths)),
        "columns": list(table.columns),
        "log_likelihood": log_likelihood,
        "mean_log_likelihood": log_likelihood / len(X),
        "bic": float(model.bic(X, lengths)),
        "aic": float(model.aic(X, lengths)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"frames          {result['n_frames']} in {result['n_sequences']} sequence(s)\n"
          f"log-likelihood  {log_likelihood:.6g} (mean {result['mean_log_likelihood']:.6g} per "
          f"frame)\n"
          f"BIC             {result['bic']:.6g}\n"
          f"AIC             {result['aic']:.6g}")
