"""``emkit fit dmm`` and ``emkit select dmm``: Dirichlet-multinomial mixtures of count tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from emkit.cli import common

FIT_EXAMPLES = """\
examples:
  emkit fit dmm counts.csv -k 4 -o dmm.emkit
  emkit fit dmm src/emkit/datasets/twins.csv -k 4 --samples-in-columns --n-init 10
"""
SELECT_EXAMPLES = """\
examples:
  emkit select dmm counts.csv -k 1-6 --criterion laplace
  emkit select dmm src/emkit/datasets/twins.csv -k 1-6 --samples-in-columns -o best.emkit
"""
CRITERIA = ("laplace", "bic", "aic")


def _add_count_arguments(parser) -> None:
    parser.add_argument("data", type=Path, help="CSV file of counts with a header row; one text "
                        "column, if any, names the rows")
    parser.add_argument("--samples-in-columns", action="store_true",
                        help="the file is categories x samples (one column per sample)")


def add_fit_parser(kinds) -> None:
    parser = kinds.add_parser(
        "dmm", help="Dirichlet-multinomial mixture of a table of counts", epilog=FIT_EXAMPLES,
        description="Fit a Dirichlet-multinomial mixture (emkit.DirichletMultinomialMixture) "
        "to counts: rows are samples, every numeric column a category.")
    _add_count_arguments(parser)
    common.add_k_option(parser)
    common.add_em_options(parser, "dmm")
    common.add_output_options(parser, "model file to write (e.g. dmm.emkit)")
    parser.set_defaults(run=run_fit)


def add_select_parser(kinds) -> None:
    parser = kinds.add_parser(
        "dmm", help="Dirichlet-multinomial mixtures: number of components",
        epilog=SELECT_EXAMPLES,
        description="Fit a Dirichlet-multinomial mixture for every K and choose the one with "
        "the lowest criterion (laplace: the Laplace approximation to -log evidence).")
    _add_count_arguments(parser)
    common.add_k_option(parser, k_range=True)
    # Python's select_model (for Gaussian mixtures) has the default criterion of both.
    common.add_estimator_option(parser, "select", "criterion", "--criterion",
                                choices=CRITERIA, help="criterion to minimise")
    common.add_em_options(parser, "dmm")
    common.add_output_options(parser, "write the chosen model to this file")
    parser.set_defaults(run=run_select)


def read_count_table(path, samples_in_columns: bool = False):
    """Counts from a CSV file with a header row: (X (samples × categories), category names).

    Numeric columns hold counts; one text column, if any, names the rows. With
    ``samples_in_columns`` the file is categories × samples (the layout of many microbiome
    tables, e.g. the bundled ``twins.csv``) and is transposed. The file is read as
    :func:`emkit.data.io.read_table` reads tables (delimiter, encoding, missing-value markers), with
    an unnamed first column kept: it names the rows.
    """
    import numpy as np

    from emkit.data import csvfile
    from emkit.errors import DataError

    path = Path(path)
    layout = csvfile.sniff(path, header=True, index_column=False)
    columns, layout = csvfile.read_numeric(path, layout, range(len(layout.names)))
    numeric = [j for j, column in enumerate(columns) if not isinstance(column, str)]
    if not numeric:
        raise DataError(f"{path} has no numeric column of counts.")
    missing = [layout.names[j] for j in numeric if np.isnan(columns[j]).any()]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} has empty or NA cells; counts cannot be "
                        "missing (write 0 for an absent category).")
    for j in numeric:  # said in the file's terms (column name, data row), not the array's
        values = columns[j]
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values != np.round(values)))
        if bad.size:
            raise DataError(f"{path}: column {layout.names[j]!r} holds "
                            f"{values[bad[0]]:g} in data row {bad[0] + 1}: counts are whole "
                            "numbers >= 0 (raw counts, not proportions or normalised values).")
    for message in layout.notes:
        common.note(message)
    X = np.column_stack([columns[j] for j in numeric])
    if samples_in_columns:
        text = [j for j in range(len(columns)) if j not in numeric]
        rows = csvfile.read_cells(path, layout)
        names = [row[text[0]] for row in rows] if text else [str(i) for i in range(len(X))]
        return np.ascontiguousarray(X.T), names
    return X, [layout.names[j] for j in numeric]


def build_estimator(args: argparse.Namespace, n_components: int) -> Any:
    """The DirichletMultinomialMixture that ``emkit fit dmm`` fits."""
    from emkit.estimators.compound_dirichlet import DirichletMultinomialMixture

    return DirichletMultinomialMixture(n_components, **common.common_keywords(args, "dmm"))


def _row(model: Any, X) -> dict:
    from emkit.errors import NumericalError

    try:
        laplace = model.laplace(X)
    except NumericalError:  # stopped short of a maximum: no evidence, and say why
        laplace = None
        common.note(f"warning: K={model.n_components} stopped before a maximum, so it has no "
                    "Laplace evidence; fit to convergence with a larger --max-iter")
    return {"n_components": int(model.n_components), "objective": model.objective(X),
            "laplace": laplace, "bic": float(model.bic(X)), "aic": float(model.aic(X)),
            "n_parameters": int(model.n_parameters()), "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_)}


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_fit(args) -> None:
    """``emkit fit dmm``: fit a Dirichlet-multinomial mixture and print (or save) it."""
    import numpy as np

    common.check_output_folders(args.output)
    X, names = read_count_table(args.data, args.samples_in_columns)
    model = build_estimator(args, args.n_components).fit(X)
    summary = {"model": type(model).__name__, "n_samples": len(X), "n_categories": len(names),
               **_row(model, X), "weights": model.weights_.tolist(),
               "alpha": model.alpha_.tolist(), "categories": list(names)}
    if args.output is not None:
        common.save_model(model, args.output, names)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    proportions = model.alpha_ / model.alpha_.sum(axis=1, keepdims=True)
    lines = [f"DirichletMultinomialMixture: K={model.n_components}, {len(X)} samples x "
             f"{len(names)} categories",
             f"objective {summary['objective']:.3f} (-log-likelihood - log prior)   "
             f"Laplace {_format(summary['laplace'])}   BIC {summary['bic']:.3f}   "
             f"AIC {summary['aic']:.3f}",
             f"converged {'yes' if model.converged_ else 'NO (raise --max-iter)'} after "
             f"{model.n_iter_} iterations",
             "component  weight  precision α0  largest mean proportions"]
    for k in range(model.n_components):
        top = np.argsort(-proportions[k])[:3]
        shown = ", ".join(f"{names[j]} {proportions[k, j]:.2f}" for j in top)
        lines.append(f"{k:>9}  {model.weights_[k]:6.3f}  {model.alpha_[k].sum():12.4g}  {shown}")
    if args.output is not None:
        lines.append(f"model written to {args.output}")
    print("\n".join(lines))


def run_select(args) -> None:
    """``emkit select dmm``: fit every K of ``-k`` and choose by ``--criterion``."""
    import inspect

    import numpy as np

    from emkit.estimators.selection import select_model

    common.check_output_folders(args.output)
    # select_model's defaults (K from 1 to 8, BIC) unless given: one source for both kinds.
    options = {name: parameter.default for name, parameter
               in inspect.signature(select_model).parameters.items()
               if name in ("n_components", "criterion")}
    options.update(common.estimator_options(args, "select"))
    ks, criterion = list(options["n_components"]), options["criterion"]
    X, names = read_count_table(args.data, args.samples_in_columns)
    if max(ks) > len(X):
        raise common.Failure(f"-k goes up to {max(ks)} components but {args.data} holds only "
                             f"{len(X)} samples.")
    models = []
    for i, k in enumerate(ks):
        if common.progress(args):  # which fit is running: one line each, as select gmm
            common.note(f"fitting K={k} ({i + 1} of {len(ks)})")
        models.append(build_estimator(args, k).fit(X))
    table = [_row(model, X) for model in models]
    values = [np.inf if row[criterion] is None else row[criterion] for row in table]
    best_index = int(np.argmin(values))
    if args.output is not None:
        common.save_model(models[best_index], args.output, names)
    if args.json:
        print(json.dumps({"criterion": criterion, "n_samples": len(X), "table": table,
                          "best_index": best_index, "best": table[best_index],
                          "output": None if args.output is None else str(args.output)},
                         indent=2))
        return
    lines = ["   K     objective       Laplace           BIC           AIC  converged"]
    for i, row in enumerate(table):
        mark = "  <- best" if i == best_index else ""
        lines.append(f"{row['n_components']:>4}  {row['objective']:12.3f}  "
                     f"{_format(row['laplace']):>12}"
                     f"  {row['bic']:12.3f}  {row['aic']:12.3f}  {str(row['converged']):>9}"
                     f"{mark}")
    lines.append(f"best by {criterion}: K={table[best_index]['n_components']}")
    if args.output is not None:
        lines.append(f"model written to {args.output}")
    print("\n".join(lines))
