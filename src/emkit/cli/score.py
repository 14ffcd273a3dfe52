"""``emkit score``: log-likelihood, BIC and AIC of a fitted model on a data file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emkit.cli import common, fixed, hmm, mixtures, predict

EXAMPLES = """\
examples:
  emkit score model.emkit data.csv
  emkit score hmm.emkit series.csv --lengths-column id --json
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "score", help="log-likelihood, BIC and AIC of a model on data", epilog=EXAMPLES,
        description="Log-likelihood, BIC and AIC of a model written by 'emkit fit' or "
        "'emkit select' on the rows of a data file.")
    parser.add_argument("model", type=Path, help="model file written by 'emkit fit'")
    common.add_table_arguments(parser)
    mixtures.add_response_option(parser)
    common.add_lengths_option(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    model = common.load_model(args.model)
    predict.check_model_options(args, model)
    if predict.is_fixed_mixture(model):
        return fixed.run_score(args, model)
    if predict.is_hmm(model):  # a hidden Markov model: sequences
        return hmm.run_score(args, model)
    if predict.is_regression(model):  # log p(y | x) of rows (x, y)
        return mixtures.run_score(args, model)
    table, use = common.read_rows(args.data, common.model_columns(model, args.columns),
                                  args.drop_missing, **common.layout_options(args))
    common.check_width(model, table)
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
