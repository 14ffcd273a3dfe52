"""``emkit fit fixed``, and ``emkit predict`` / ``score`` for FixedMixture model files."""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp

from emkit.errors import DataError
from emkit.fixed_mixture import FixedMixture


def read_likelihoods(path, columns=None) -> tuple[Any, list[str]]:
    """The likelihood matrix in ``path`` and the names of its models (columns).

    ``.npz``: a scipy.sparse matrix written by ``scipy.sparse.save_npz`` (models named 0 … M−1);
    anything else: a CSV (header row of model names) or Parquet table, read by
    :func:`emkit.io.read_table` (``columns`` selects models by name).
    """
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() == ".npz":
        if columns is not None:
            raise DataError("--columns selects columns of a CSV or Parquet file; a .npz sparse "
                            "matrix has unnamed columns.")
        if not path.exists():
            raise DataError(f"{path} does not exist.")
        try:
            matrix = sp.load_npz(path)
        except (ValueError, OSError, KeyError, EOFError) as error:
            raise DataError(f"{path} is not a sparse matrix written by scipy.sparse.save_npz "
                            f"({error}).") from None
        return matrix, [str(j) for j in range(matrix.shape[1])]
    from emkit.io import read_table

    table = read_table(path, columns)
    return table.data, list(table.columns)


def _cli_columns(args, model=None):
    from emkit.io import parse_columns

    columns = parse_columns(args.columns)
    if columns is None and model is not None and getattr(model, "feature_names_in_", None) \
            is not None and not str(args.data).lower().endswith(".npz"):
        columns = [str(name) for name in model.feature_names_in_]
    return columns


def run_fit(args) -> None:
    """``emkit fit fixed FILE``: learn the mixing weights of the models (columns) of a likelihood
    matrix and print (or save) them."""
    import json

    from emkit.cli import _check_output_folders, _save, estimator_options

    _check_output_folders(args.output)
    X, names = read_likelihoods(args.data, _cli_columns(args))
    model = FixedMixture(log=args.log, prior=args.prior, progress=bool(args.progress),
                         **estimator_options(args)).fit(X)
    log_likelihood = model.score_samples(X).sum()
    summary = {"model": "FixedMixture", "n_samples": int(X.shape[0]), "n_models": len(names),
               "models": names, "weights": model.weights_.tolist(),
               "log_likelihood": float(log_likelihood),
               "mean_log_likelihood": float(log_likelihood / X.shape[0]),
               "converged": bool(model.converged_), "n_iter": int(model.n_iter_),
               "accelerate": model.accelerate}
    if args.output is not None:
        _save(model, args.output, names)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    width = max(5, *(len(name) for name in names))
    lines = [f"FixedMixture: {X.shape[0]} rows x {len(names)} models"
             + (f", Dirichlet prior {args.prior:g}" if args.prior is not None else ""),
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


def run_predict(args, model: FixedMixture) -> None:
    """``emkit predict MODEL FILE`` for a FixedMixture: the most probable model of each row, or
    (``--proba``) every model's posterior probability, as CSV or JSON."""
    import json

    from emkit.atomic import write_atomically
    from emkit.io import format_csv

    X, _ = read_likelihoods(args.data, _cli_columns(args, model))
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
    if args.output is None:
        import sys

        sys.stdout.write(output)
    else:
        write_atomically(args.output, output)


def run_score(args, model: FixedMixture) -> None:
    """``emkit score MODEL FILE`` for a FixedMixture: log-likelihood, BIC and AIC."""
    import json

    X, _ = read_likelihoods(args.data, _cli_columns(args, model))
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
