"""``emkit fit KIND`` and ``emkit select KIND`` for KIND poisson, bernoulli, categorical,
student and regression: the mixture families of
:class:`emkit.estimators.family_mixture.FamilyMixture`, fitted to the columns of a table.

One command shape for all: the table (empty cells are missing values, where the family allows
them), ``-k`` (a range for ``select``), the family's own options, the EM options; the summary
lists each component's weight and parameters. A mixture of regressions reads a response column
(``--response``) and predictor columns (``--predictors``) instead of ``--columns``. ``select``
runs :func:`emkit.select_model` with the family's estimator. ``emkit predict`` and
``emkit score`` take the model files.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, NamedTuple

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
    "regression": ("RegressionMixture", "mixture of linear regressions of a response column",
                   "Fit a mixture of linear regressions (emkit.RegressionMixture, as mixtools' "
                   "regmixEM and flexmix): the response column is a linear function of the "
                   "predictor columns plus Gaussian noise, with K lines; rows must be complete "
                   "in the columns used (--drop-missing leaves out the others).",
                   "  emkit fit regression src/emkit/datasets/ethanol.csv --response Equivalence "
                   "--predictors NO -k 2 -o reg.emkit\n"
                   "  emkit predict reg.emkit src/emkit/datasets/ethanol.csv --mean  # E[y | x]\n"),
}
SELECT_EXAMPLES = {
    "poisson": "  emkit select poisson src/emkit/datasets/discoveries.csv --columns count -k 1-4\n",
    "bernoulli": "  emkit select bernoulli answers.csv -k 1-6 --criterion icl -o lca.emkit\n",
    "categorical": "  emkit select categorical survey.csv -k 1-5 --classification classes.csv\n",
    "student": "  emkit select student src/emkit/datasets/faithful.csv -k 1-4 --dof 4\n",
    "regression": "  emkit select regression src/emkit/datasets/ethanol.csv --response Equivalence "
                  "--predictors NO -k 1-4\n",
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
        add_data_arguments(parser, kind)
        common.add_k_option(parser)
        add_family_options(parser, kind, name)
        common.add_em_options(parser, kind)
        common.add_output_options(parser, "model file to write (e.g. model.emkit)")
        parser.set_defaults(run=run_fit)


def add_select_parser(kinds) -> None:
    for kind, (name, help_text, _, _) in KINDS.items():
        parser = kinds.add_parser(
            kind, help=f"{help_text}: number of components",
            epilog="examples:\n" + SELECT_EXAMPLES[kind],
            description=f"Fit a {name} for every K and choose the one with the lowest "
            "criterion (emkit.select_model); the chosen model's classification and "
            "uncertainty of every row can be written with --classification.")
        add_data_arguments(parser, kind)
        common.add_k_option(parser, k_range=True)
        common.add_estimator_option(parser, "select", "criterion", "--criterion",
                                    type=common.criterion, metavar="{bic,aic,icl}",
                                    help="criterion to minimise")
        add_family_options(parser, kind, name)
        common.add_em_options(parser, kind)
        common.add_selection_options(parser)
        parser.set_defaults(run=run_select)


def add_data_arguments(parser, kind: str) -> None:
    """The table and its columns: ``--columns``, or a regression's response and predictors."""
    if kind != "regression":
        common.add_table_arguments(parser, drop_missing=True)
        return
    common.add_table_arguments(parser, columns=False, drop_missing=False)
    parser.add_argument("--drop-missing", action="store_true",
                        help="leave out rows with empty cells in the columns used (default: "
                             "refuse them; a regression needs complete rows)")
    add_response_option(parser, required=True)
    parser.add_argument("--predictors", metavar="A,B",
                        help="predictor columns, by name (default: every other numeric column)")


def add_response_option(parser, *, required: bool = False) -> None:
    parser.add_argument("--response", metavar="NAME", required=required,
                        help="the response column of a mixture of regressions" + (
                            "" if required else " (default: the one it was fitted on)"))


def add_family_options(parser, kind: str, name: str) -> None:
    """The options of the family's estimator (none for regressions)."""
    if kind == "regression":
        return
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


def estimator_class(kind: str) -> type:
    """The estimator class behind ``kind``."""
    import importlib

    module, name = ESTIMATORS[kind]
    return getattr(importlib.import_module(module), name)


def build_estimator(args: argparse.Namespace) -> Any:
    """The estimator that ``emkit fit KIND`` fits."""
    cls = estimator_class(args.model_kind)
    return cls(args.n_components, **common.common_keywords(args, args.model_kind))


def _parameters(model: Any) -> dict[str, list]:
    """The fitted component parameters (besides the weights), as lists for JSON."""
    names = [f"{field}_" for field in model._components._fields]
    return {name.rstrip("_"): getattr(model, name).tolist() for name in names}


class Rows(NamedTuple):
    """What a command fits or evaluates: ``data`` the arguments of the estimator's methods,
    (X,) or (X, y); the predictor (or all) column names; the response's name (regressions);
    the mask of the table's rows used."""

    data: tuple
    columns: list[str]
    response: str | None
    use: Any


def read_data(args: argparse.Namespace, keep_positions: bool = False) -> Rows:
    """The rows of ``args.data`` for ``emkit fit|select KIND``: ``--columns``, or for a
    regression ``--response`` and ``--predictors``."""
    if args.model_kind != "regression":
        table, use = common.read_rows(args.data, common.parse_columns(args.columns),
                                      args.drop_missing, **common.layout_options(args))
        common.require_values(table)
        return Rows((table.data[use],), list(table.columns), None, use)
    return read_regression_rows(args, common.parse_columns(args.predictors),
                                args.response, keep_positions)


def read_regression_rows(args: argparse.Namespace, predictors: list[str] | None,
                         response: str, keep_positions: bool = False) -> Rows:
    """(X, y) of a mixture of regressions: the predictor columns (None: every numeric column
    but the response) and the response column, rows complete in all of them."""
    import numpy as np

    if predictors is None:
        from emkit.data.io import numeric_columns

        predictors = [name for name in numeric_columns(args.data, **common.layout_options(args))
                      if name != response]
        if not predictors:
            raise common.Failure(f"{args.data} has no numeric column besides the response "
                                 f"{response!r} to use as a predictor.")
    elif response in predictors:
        raise common.Failure(f"the response {response!r} is also among the predictors "
                             f"({', '.join(predictors)}): a column cannot explain itself; "
                             "leave it out of --predictors.")
    table, use = common.read_rows(args.data, [*predictors, response], args.drop_missing,
                                  keep_positions, **common.layout_options(args))
    common.require_values(table)
    incomplete = int(np.isnan(table.data[use]).any(axis=1).sum())
    if incomplete:
        raise common.Failure(f"{args.data}: {incomplete} rows have empty cells in the columns "
                             f"used ({', '.join(table.columns)}); a mixture of regressions "
                             "needs complete rows: add --drop-missing to leave them out.")
    rows = table.data[use]
    return Rows((rows[:, :-1], rows[:, -1]), list(predictors), response, use)


def run_fit(args: argparse.Namespace) -> None:
    common.check_output_folders(args.output)
    rows = read_data(args)
    model = build_estimator(args).fit(*rows.data)
    log_likelihood = float(model.score_samples(*rows.data).sum())
    n_samples = len(rows.data[0])
    described = {"columns": rows.columns} if rows.response is None else {
        "response": rows.response, "predictors": rows.columns}
    summary = {"model": type(model).__name__, "n_components": int(model.n_components),
               "n_samples": n_samples, **described,
               "log_likelihood": log_likelihood, "bic": float(model.bic(*rows.data)),
               "aic": float(model.aic(*rows.data)), "n_parameters": int(model.n_parameters()),
               "converged": bool(model.converged_), "n_iter": int(model.n_iter_),
               "weights": model.weights_.tolist(), **_parameters(model)}
    if args.output is not None:
        common.save_model(model, args.output, rows.columns, rows.response)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    shape = (f"x {len(rows.columns)} columns ({', '.join(rows.columns)})"
             if rows.response is None else f"({rows.response} on {', '.join(rows.columns)})")
    lines = [f"{summary['model']}: K={model.n_components}, {n_samples} rows {shape}",
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


def run_select(args: argparse.Namespace) -> None:
    """``emkit select KIND``: :func:`emkit.select_model` with the family's estimator."""
    common.check_output_folders(args.output, args.classification)
    from emkit.estimators.selection import select_model

    rows = read_data(args)
    X, *y = rows.data
    result = select_model(X, y=y[0] if y else None, estimator=estimator_class(args.model_kind),
                          **common.estimator_options(args, "select"),
                          **common.common_keywords(args, args.model_kind),
                          announce=common.note if common.progress(args) else None)
    common.report_selection(args, result, rows.columns, rows.use, rows.response)


# ---------------------------------------------------------------------------------- predict, score
def regression_rows(args: argparse.Namespace, model: Any) -> Rows:
    """The rows ``emkit predict`` and ``emkit score`` read for a mixture of regressions: the
    predictors it was fitted on (or ``--columns``) and its response (or ``--response``)."""
    stored = getattr(model, "response_name_", None)
    response = args.response if args.response is not None else (
        None if stored is None else str(stored[0]))
    columns = common.model_columns(model, args.columns)
    if response is None:
        raise common.Failure(f"{args.model} does not name the response column of its "
                             "regressions: give it with --response NAME.")
    if columns is None:
        raise common.Failure(f"{args.model} does not name its predictor columns: give them "
                             "with --columns A,B.")
    return read_regression_rows(args, columns, response, keep_positions=True)


def run_predict(args: argparse.Namespace, model: Any) -> None:
    """``emkit predict`` for a RegressionMixture: the most probable component of each row
    (x, y), every component's probability (``--proba``), or E[y | x] (``--mean``, which needs
    no response)."""
    if args.mean:
        if args.proba:
            raise common.Failure("--mean and --proba are different outputs: choose one.")
        columns = common.model_columns(model, args.columns)  # E[y | x] needs no y
        table, use = common.read_rows(args.data, columns, args.drop_missing,
                                      keep_positions=True, **common.layout_options(args))
        common.check_width(model, table)
        values: list[Any] = [float(value) for value in model.predict(table.data[use])]
        return common.write_per_row(args, ["mean"], values, use, "means")
    rows = regression_rows(args, model)
    if args.proba:
        header = [f"proba_{k}" for k in range(model.n_components)]
        values = [list(map(float, row)) for row in model.predict_proba(*rows.data)]
    else:
        header = ["component"]
        values = [int(label) for label in model.predict_component(*rows.data)]
    common.write_per_row(args, header, values, rows.use,
                         "probabilities" if args.proba else "components")


def run_score(args: argparse.Namespace, model: Any) -> None:
    """``emkit score`` for a RegressionMixture: log p(y | x), BIC and AIC."""
    rows = regression_rows(args, model)
    log_likelihood = model.score_samples(*rows.data)
    result = {"n_samples": len(log_likelihood), "response": rows.response,
              "predictors": rows.columns,
              "mean_log_likelihood": float(log_likelihood.mean()),
              "log_likelihood": float(log_likelihood.sum()),
              "bic": float(model.bic(*rows.data)), "aic": float(model.aic(*rows.data))}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"rows            {result['n_samples']}\n"
          f"log-likelihood  {result['log_likelihood']:.6g} of {rows.response} given "
          f"{', '.join(rows.columns)} (mean {result['mean_log_likelihood']:.6g} per row)\n"
          f"BIC             {result['bic']:.6g}\n"
          f"AIC             {result['aic']:.6g}")


def _short(value: Any) -> str:
    """A component's parameter, rounded for reading."""
    import numpy as np

    return np.array2string(np.asarray(value), precision=4, suppress_small=True,
                           max_line_width=88).replace("\n", "\n  " + " " * 2)
