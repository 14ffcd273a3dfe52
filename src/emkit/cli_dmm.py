"""``emkit fit dmm`` and ``emkit select dmm``: Dirichlet-multinomial mixtures of count tables."""

from __future__ import annotations

import numpy as np

from emkit.compound_dirichlet import DirichletMultinomialMixture
from emkit.errors import DataError, NumericalError


def read_count_table(path, samples_in_columns: bool = False):
    """Counts from a CSV file with a header row: (X (samples × categories), category names).

    Numeric columns hold counts; one text column, if any, names the rows. With
    ``samples_in_columns`` the file is categories × samples (the layout of many microbiome
    tables, e.g. the bundled ``twins.csv``) and is transposed.
    """
    import csv
    from pathlib import Path

    path = Path(path)
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row]
    if len(rows) < 2:
        raise DataError(f"{path} has no data rows below its header.")
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        raise DataError(f"{path}: every row needs {len(header)} cells, as the header.")

    def number(cell):
        try:
            return float(cell)
        except ValueError:
            return None

    columns = list(zip(*body, strict=True))
    numeric = [j for j, column in enumerate(columns)
               if all(number(cell) is not None for cell in column)]
    text = [j for j in range(len(header)) if j not in numeric]
    if not numeric:
        raise DataError(f"{path} has no numeric column of counts.")
    blank = [header[j] for j in text if any(cell.strip() == "" for cell in columns[j])]
    if blank:
        raise DataError(f"{path}: column {blank[0]} has empty cells; counts cannot be missing "
                        "(write 0 for an absent category).")
    X = np.array([[float(row[j]) for j in numeric] for row in body])
    if samples_in_columns:
        names = [row[text[0]] for row in body] if text else [str(i) for i in range(len(body))]
        return np.ascontiguousarray(X.T), names
    return X, [header[j] for j in numeric]


def _cli_estimator(args, n_components: int) -> DirichletMultinomialMixture:
    import sys

    from emkit.cli import estimator_options

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    return DirichletMultinomialMixture(n_components, n_init=args.n_init, random_state=args.seed,
                                       progress=progress, **estimator_options(args))


def _cli_row(model: DirichletMultinomialMixture, X: np.ndarray) -> dict:
    try:
        laplace = model.laplace(X)
    except NumericalError:  # stopped short of a maximum: no evidence, and say why
        from emkit.cli import _note

        laplace = None
        _note(f"warning: K={model.n_components} stopped before a maximum, so it has no Laplace "
              "evidence; fit to convergence with a larger --max-iter")
    return {"n_components": int(model.n_components), "objective": model.objective(X),
            "laplace": laplace, "bic": float(model.bic(X)), "aic": float(model.aic(X)),
            "n_parameters": int(model.n_parameters()), "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_)}


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cli_data(args):
    if getattr(args, "checkpoint", None) is not None or getattr(args, "resume", False):
        raise DataError("--checkpoint and --resume are not available for dmm (its fits take "
                        "seconds).")
    if args.columns is not None:
        raise DataError("--columns is not available for dmm: every numeric column is a "
                        "category of the counts.")
    return read_count_table(args.data, args.samples_in_columns)


def run_fit(args) -> None:
    """``emkit fit dmm``: fit a Dirichlet-multinomial mixture and print (or save) it."""
    import json

    from emkit.cli import _check_output_folders, _save

    _check_output_folders(args.output)
    X, names = _cli_data(args)
    model = _cli_estimator(args, args.n_components).fit(X)
    summary = {"model": type(model).__name__, "n_samples": len(X), "n_categories": len(names),
               **_cli_row(model, X), "weights": model.weights_.tolist(),
               "alpha": model.alpha_.tolist(), "categories": list(names)}
    if args.output is not None:
        _save(model, args.output, names)
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
    """``emkit select dmm``: fit every K of ``--k`` and choose by ``--criterion``."""
    import json

    from emkit.cli import _check_output_folders, _save

    if args.criterion not in ("laplace", "bic", "aic"):
        raise DataError(f"--criterion {args.criterion} is not available for dmm: use laplace, "
                        "bic or aic.")
    _check_output_folders(args.output)
    X, names = _cli_data(args)
    if max(args.k) > len(X):
        raise DataError(f"--k goes up to {max(args.k)} components but there are only {len(X)} "
                        "samples.")
    models = [_cli_estimator(args, k).fit(X) for k in args.k]
    table = [_cli_row(model, X) for model in models]
    values = [np.inf if row[args.criterion] is None else row[args.criterion] for row in table]
    best_index = int(np.argmin(values))
    if args.output is not None:
        _save(models[best_index], args.output, names)
    if args.json:
        print(json.dumps({"criterion": args.criterion, "n_samples": len(X), "table": table,
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
    lines.append(f"best by {args.criterion}: K={table[best_index]['n_components']}")
    if args.output is not None:
        lines.append(f"model written to {args.output}")
    print("\n".join(lines))
