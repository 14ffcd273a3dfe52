"""``emkit predict``: the most probable component (or state, or model) of every row."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from emkit.cli import common, fixed, hmm, mixtures

EXAMPLES = """\
examples:
  emkit predict model.emkit data.csv -o components.csv
  emkit predict model.emkit data.csv --proba --json
  emkit predict hmm.emkit series.csv --lengths-column id     # the Viterbi state path
  emkit predict reg.emkit src/emkit/datasets/ethanol.csv --mean    # regressions: E[y | x]
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict", help="most probable component of each row", epilog=EXAMPLES,
        description="The most probable component of each row under a model written by "
        "'emkit fit' or 'emkit select' (the Viterbi state path for a hidden Markov model). "
        "Rows left out for missing values keep their place, empty.")
    parser.add_argument("model", type=Path, help="model file written by 'emkit fit'")
    common.add_table_arguments(parser)
    parser.add_argument("--proba", action="store_true",
                        help="write the probability of every component instead")
    parser.add_argument("--mean", action="store_true",
                        help="mixtures of regressions: write the conditional mean of the "
                             "response given the predictors instead (needs no response column)")
    mixtures.add_response_option(parser)
    common.add_lengths_option(parser)
    common.add_output_options(parser, "CSV file to write (default stdout)")
    parser.set_defaults(run=run)


def check_model_options(args: argparse.Namespace, model: Any) -> None:
    """Models that describe no table, and options that only some models take, refused
    (shared with score)."""
    if not hasattr(model, "n_features_in_"):  # e.g. tones: fitted on a recording
        raise common.Failure(f"{args.model} holds a {type(model).__name__}, which was not "
                             f"fitted on the rows of a table: emkit {args.command} needs a model "
                             "written by 'emkit fit gmm|hmm|dmm|fixed' or 'emkit select'.")
    if args.lengths_column is not None and not is_hmm(model):
        raise common.Failure(f"--lengths-column is for hidden Markov models; {args.model} holds "
                             f"a {type(model).__name__}.")
    for option in ("--response", "--mean"):
        given = getattr(args, option[2:], None)
        if given not in (None, False) and not is_regression(model):
            raise common.Failure(f"{option} is for mixtures of regressions; {args.model} holds "
                                 f"a {type(model).__name__}.")


def is_regression(model: Any) -> bool:
    return type(model).__name__ == "RegressionMixture"


def is_hmm(model: Any) -> bool:
    return hasattr(model, "transmat_")


def is_fixed_mixture(model: Any) -> bool:
    return type(model).__name__ == "FixedMixture"


def run(args: argparse.Namespace) -> None:
    common.check_output_folders(args.output)
    model = common.load_model(args.model)
    check_model_options(args, model)
    if is_hmm(model):
        return hmm.run_predict(args, model)
    if is_fixed_mixture(model):  # rows x models likelihoods, maybe sparse
        return fixed.run_predict(args, model)
    if is_regression(model):  # rows (x, y)
        return mixtures.run_predict(args, model)
    table, use = common.read_rows(args.data, common.model_columns(model, args.columns),
                                  args.drop_missing, keep_positions=True,
                                  **common.layout_options(args))
    common.check_width(model, table)
    X = table.data[use]
    # Rows left out for missing values keep their place (empty cells, null in JSON), so that
    # output row i always belongs to input row i.
    if args.proba:
        header = [f"proba_{k}" for k in range(model.n_components)]
        values: list[Any] = [list(map(float, row)) for row in model.predict_proba(X)]
    else:
        header = ["component"]
        values = [int(label) for label in model.predict(X)]
    common.write_per_row(args, header, values, use, "probabilities" if args.proba else "components")
