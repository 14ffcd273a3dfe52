"""``emkit fit fixed``, and ``emkit predict`` / ``score`` for FixedMixture model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from emkit.cli import common

EXAMPLES = """\
examples:
  emkit fit fixed likelihoods.csv -o weights.emkit      # dense: header row of model names
  emkit fit fixed likelihoods.npz                       # scipy.sparse.save_npz format
  emkit fit fixed loglik.csv --log --prior 2 --json     # log-likelihoods, MAP weights
"""


def add_fit_parser(kinds) -> None:
    parser = kinds.add_parser(
        "fixed", help="mixing weights of fixed models from a rows x models likelihood matrix",
        epilog=EXAMPLES,
        description="Learn the mixing weights of fixed models (emkit.FixedMixture) from the "
        "likelihood of every row under every model: a CSV or Parquet table (a header row of "
        "model names) or a scipy.sparse .npz matrix.")
    parser.add_argument("data", type=Path, help="likelihood matrix: .csv, .parquet or .npz")
    parser.add_argument("--columns", metavar="A,B",
                        help="models (columns) to use, by name (default: all)")
    common.add_estimator_option(parser, "fixed", "log", "--log", nargs=0, const=True,
                                help="the file holds log-likelihoods, not likelihoods")
    common.add_estimator_option(parser, "fixed", "prior", "--prior",
                                type=common.non_negative_float, metavar="A",
                                help="Dirichlet concentration >= 1 for a MAP fit")
    common.add_em_options(parser, "fixed", starts=False)
    common.add_output_options(parser, "model file to write (e.g. weights.emkit)")
    parser.set_defaults(run=run_fit)


def read_likelihoods(path, columns=None) -> tuple[Any, list[str]]:
    """The likelihood matrix in ``path`` and the names of its models (columns).

    ``.npz``: a scipy.sparse matrix written by ``scipy.sparse.save_npz`` (models named 0 … M−1);
    anything else: a CSV (header row of model names) or Parquet table, read by
    :func:`emkit.data.io.read_table` (``columns`` selects models by name).
    """
    from emkit.errors import DataError

    path = Path(path)
    if path.suffix.lower() == ".npz":
        if columns is not None:
            raise DataError("--columns selects columns of a CSV or Parquet file; a .npz sparse "
                            "matrix has unnamed columns.")
        if not path.exists():
            raise DataError(f"{path} does not exist.")
        import zipfile

        import scipy.sparse as sp

        if not zipfile.is_zipfile(path):  # numpy would suggest loading it as a pickle
            raise DataError(f"{path} is not a .npz archive: write the matrix with "
                            "scipy.sparse.save_npz.")
        try:
            matrix = sp.load_npz(path)
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path} is not a sparse matrix written by scipy.sparse.save_npz "
                            f"({error}).") from None
        return matrix, [str(j) for j in range(matrix.shape[1])]
    from emkit.data.io import read_table

    table = read_table(path, columns)
    return table.data, list(table.columns)


def _columns(args: argparse.Namespace, model: Any = None) -> list[str] | None:
    columns = common.parse_columns(args.columns)
    if columns is None and model is not None and getattr(model, "feature_names_in_", None) \
            is not None and not str(args.data).lower().endswith(".npz"):
        columns = [str(name) for name in model.feature_names_in_]
    return columns


def build_estimator(args: argparse.Namespace) -> Any:
    """The FixedMixture that ``emkit fit fixed`` fits."""
    from emkit.estimators.fixed_mixture import FixedMixture

    return FixedMixture(**common.estimator_options(args, "fixed"),
                        progress=common.progress(args))


def run_fit(args: argparse.Namespace) -> None:
    """``emkit fit fixed FILE``: learn the mixing weights of the models (columns) of a likelihood
    matrix and print (or save) them."""
    common.check_output_folders(args.output)
    X, names = read_likelihoods(args.data, _columns(args))
    model = build_estimator(args).fit(X)
    log_likelihood = model.score_samples(X).sum()
    summary = {"model": "FixedMixture", "n_samples": int(X.shape[0]), "n_models": len(names),
               "models": names, "weights": model.weights_.tolist(),
               "log_likelihood": float(log_likelihood),
               "mean_log_likelihood": float(log_likelihood / X.shape[0]),
               "converged": bool(model.converged_), "n_iter": int(model.n_iter_),
               "accelerate": model.accelerate}
    if args.output is not None:
        common.save_model(model, args.output, names)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    width = max(5, *(len(name) for name in names))
    lines = [f"FixedMixture: {X.shape[0]} rows x {len(names)} models"
             + (f", Dirichlet prior {model.prior:g}" if model.prior is not None else ""),
             f"log-likelihood  {log_likelihood:.6g} (mean {log_likelihood / X.shape[0]:.6g} "
             "per row)",
             f"converged       {'yes' if model.converged_ else 'NO (raise --max-iter)'} after "
             f"{model.n_iter_} iterations",
             f"{'model':<{width}}  weight"]
    lines += [f"{name:<{width}}  {weight:.6g}"
              for name, weight in zip(names, model.weights_, strict=True)]
    if args.output is not None:
        lines.append(f"model written to {args.output}")
    print("\n".join(lines))


def run_predict(args: argparse.Namespace, model: Any) -> None:
    """``emkit predict MODEL FILE`` for a FixedMixture: the most probable model of each row, or
    (``--proba``) every model's posterior probability, as CSV or JSON."""
    import scipy.sparse as sp

    from emkit.data.io import format_csv

    X, _ = read_likelihoods(args.data, _columns(args, model))
    model.__dict__.pop("feature_names_in_", None)  # columns are chosen by name above
    if args.proba:
        resp = model.predict_proba(X)
        resp = resp.toarray() if sp.issparse(resp) else resp
        header = [f"proba_{j}" for j in range(model.n_components_)]
        values = [list(map(float, row)) for row in resp]
    else:
        header = ["model"]
        values = [int(j) for j in model.predict(X)]
    if args.json:
        output = json.dumps({"probabilities" if args.proba else "models": values}) + "\n"
    else:
        output = format_csv(header, (row if args.proba else [row] for row in values))
    common.write_output(args, output)


def run_score(args: argparse.Namespace, model: Any) -> None:
    """``emkit score MODEL FILE`` for a FixedMixture: log-likelihood, BIC and AIC."""
    X, _ = read_likelihoods(args.data, _columns(args, model))
    model.__dict__.pop("feature_names_in_", None)
    row_log_likelihood = model.score_samples(X)
    n = len(row_log_likelihood)
    result = {"n_samples": n, "log_likelihood": float(row_log_likelihood.sum()),
              "mean_log_likelihood": float(row_log_likelihood.mean()),
              "bic": model.bic(X), "aic": model.aic(X)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"rows            {n}\n"
          f"log-likelihood  {result['log_likelihood']:.6g} "
          f"(mean {result['mean_log_likelihood']:.6g} per row)\n"
          f"BIC             {result['bic']:.6g}\n"
          f"AIC             {result['aic']:.6g}")
