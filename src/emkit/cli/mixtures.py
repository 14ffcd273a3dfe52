"""``emkit fit poisson|bernoulli|categorical|student``: the mixture families of
:class:`emkit.estimators.family_mixture.FamilyMixture`, fitted to the columns of a table.

One command shape for the four: the table (empty cells are missing values, where the family
allows them), ``-k``, the family's own options, the EM options; the summary lists each
component's weight and parameters. ``emkit predict`` and ``emkit score`` take the model files.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from emkit.cli import common
from emkit.cli.defaults import ESTIMATORS

# kind -> (estimator class, one-line help, description, examples)
KINDS = {
    "poisson": ("PoissonMixture", "Poisson mixture of count columns",
                "Fit a mixture of Poisson distributions (emkit.PoissonMixture) to count columns: "
                "columns are independent given the component; empty cells are missing counts.",
                "  emkit fit poisson src/emkit/datasets/discoveries.csv --columns count -k 2\n"),
    "bernoulli": ("BernoulliMixture", "latent classes of binary (0/1) items",
                  "Fit a latent class model of binary items (emkit.BernoulliMixture): 0/1 "
                  "columns, independent given the class; empty cells are missing answers.",
                  "  emkit fit bernoulli answers.csv -k 3 --n-init 20 -o lca.emkit\n"),
    "categorical": ("CategoricalMixture", "latent classes of items coded 0, 1, ...",
                    "Fit a latent class model of polytomous items (emkit.CategoricalMixture, as "
                    "R's poLCA but coded from 0): columns of integer codes, independent given "
                    "the class; empty cells are missing answers.",
                    "  emkit fit categorical survey.csv -k 3 --n-levels 3,4,2 -o lca.emkit\n"),
    "student": ("StudentMixture", "Student-t mixture (robust to outliers)",
                "Fit a mixture of multivariate t distributions with full scale matrices "
                "(emkit.StudentMixture): clustering that outliers do not drag; rows must be "
                "complete.",
                "  emkit fit student src/emkit/datasets/faithful.csv -k 2 -o t.emkit\n"
                "  emkit fit student data.csv -k 3 --dof 4        # fixed degrees of freedom\n"),
}


def levels(text: str) -> int | list[int]:
    """``--n-levels``: one number for every item, or one per item (comma-separated)."""
    values = [common.positive_int(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else values


levels.__name__ = "number of levels"


def add_fit_parser(kinds) -> None:
    for kind, (name, help_text, description, examples) in KINDS.items():
        parser = kinds.add_parser(kind, help=help_text, description=description,
                                  epilog="examples:\n" + examples)
        common.add_table_arguments(parser, drop_missing=True)
        common.add_k_option(parser)
        family = parser.add_argument_group(f"{name} options")
        if kind == "poisson":
            common.add_estimator_option(family, kind, "rate_prior_shape", "--rate-prior-shape",
                                        type=common.non_negative_float, metavar="A",
                                        help="shape of a Gamma prior on every rate")
            common.add_estimator_option(family, kind, "rate_prior_rate", "--rate-prior-rate",
                                        type=common.non_negative_float, metavar="B",
                                        help="rate of a Gamma prior on every rate")
        elif kind in ("bernoulli", "categorical"):
            common.add_estimator_option(family, kind, "prior", "--prior",
                                        type=common.non_negative_float, metavar="A",
                                        help="Beta/Dirichlet concentration of every item's "
                                             "probabilities (1: none)")
            if kind == "categorical":
                common.add_estimator_option(family, kind, "n_levels", "--n-levels", type=levels,
                                            metavar="L[,L...]", help="levels of each item, or one "
                                            "number for all; none: the largest code + 1")
        else:
            common.add_estimator_option(family, kind, "dof", "--dof",
                                        type=common.non_negative_float, metavar="NU",
                                        help="fixed degrees of freedom (none: estimated per "
                                             "component)")
            common.add_estimator_option(family, kind, "reg_covar", "--reg-covar",
                                        type=common.non_negative_float, metavar="R",
                                        help="added to the scale matrices' diagonals")
        common.add_em_options(parser, kind)
        common.add_output_options(parser, "model file to write (e.g. model.emkit)")
        parser.set_defaults(run=run_fit)


def build_estimator(args: argparse.Namespace) -> Any:
    """The estimator that ``emkit fit KIND`` fits."""
    import importlib

    module, name = ESTIMATORS[args.model_kind]
    cls = getattr(importlib.import_module(module), name)
    return cls(args.n_components, **common.common_keywords(args, args.model_kind))


def _parameters(model: Any) -> dict[str, list]:
    """The fitted component parameters (besides the weights), as lists for JSON."""
    names = [f"{field}_" for field in model._components._fields]
    return {name.rstrip("_"): getattr(model, name).tolist() for name in names}


def run_fit(args: argparse.Namespace) -> None:
    common.check_output_folders(args.output)
    table, use = common.read_rows(args.data, common.parse_columns(args.columns),
                                  args.drop_missing, **common.layout_options(args))
    common.require_values(table)
    X = table.data[use]
    model = build_estimator(args).fit(X)
    log_likelihood = float(model.score_samples(X).sum())
    summary = {"model": type(model).__name__, "n_components": int(model.n_components),
               "n_samples": len(X), "columns": list(table.columns),
               "log_likelihood": log_likelihood, "bic": float(model.bic(X)),
               "aic": float(model.aic(X)), "n_parameters": int(model.n_parameters()),
               "converged": bool(model.converged_), "n_iter": int(model.n_iter_),
               "weights": model.weights_.tolist(), **_parameters(model)}
    if args.output is not None:
        common.save_model(model, args.output, table.columns)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    lines = [f"{summary['model']}: K={model.n_components}, {len(X)} rows x "
             f"{len(table.columns)} columns ({', '.join(table.columns)})",
             f"log-likelihood {log_likelihood:.6g}   BIC {summary['bic']:.6g}   "
             f"AIC {summary['aic']:.6g}   ({summary['n_parameters']} parameters)",
             f"converged {'yes' if model.converged_ else 'NO (raise --max-iter)'} after "
             f"{model.n_iter_} iterations"]
    for k in range(model.n_components):
        lines.append(f"component {k}: weight {model.weights_[k]:.4f}")
        for name, values in _parameters(model).items():
            lines.append(f"  {name}: {_short(values[k])}")
    if args.output is not None:
        lines.append(f"model written to {args.output}")
    print("\n".join(lines))


def _short(value: Any) -> str:
    """A component's parameter, rounded for reading."""
    import numpy as np

    return np.array2string(np.asarray(value), precision=4, suppress_small=True,
                           max_line_width=88).replace("\n", "\n  " + " " * 2)
