"""``emkit info``: what a model file holds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from emkit.cli import common

EXAMPLES = """\
examples:
  emkit info model.emkit
  emkit info model.emkit --json
"""


def add_parser(commands) -> None:
    parser = commands.add_parser("info", help="what a model file holds", epilog=EXAMPLES,
                                 description="The estimator, its settings and the fitted "
                                 "parameters (weights, means, covariances, transition matrix, "
                                 "...) stored in a model file; --json gives them in full.")
    parser.add_argument("model", type=Path, help="model file")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from emkit.estimators.persist import describe, load

    metadata = describe(args.model)
    metadata["path"] = str(args.model)
    fitted = fitted_parameters(load(args.model), metadata)
    if args.json:
        metadata["parameters"] = {name: value.tolist() for name, value in fitted.items()}
        common.print_json(metadata)
        return
    print("\n".join(format_info(metadata)))
    print()
    print("\n".join(format_parameters(fitted)))


# Arrays a model file stores that are derived from the parameters or record the fit's course.
_NOT_PARAMETERS = ("precisions_", "precisions_cholesky_", "history_", "lower_bounds_",
                   "restart_objectives_")


# The order a reader expects: how often, where, how spread, then how states follow each other.
_READING_ORDER = ("weights_", "startprob_", "means_", "covariances_", "covars_", "transmat_")


def fitted_parameters(model: Any, metadata: dict) -> dict[str, Any]:
    """The fitted parameter arrays of ``model`` (as loaded), in the file's order."""
    import numpy as np

    names = [name for name in metadata.get("arrays", {})
             if name not in _NOT_PARAMETERS and hasattr(model, name)]
    names.sort(key=lambda name: _READING_ORDER.index(name) if name in _READING_ORDER
               else len(_READING_ORDER))
    return {name: np.asarray(getattr(model, name)) for name in names}


def format_parameters(parameters: dict[str, Any]) -> list[str]:
    """Each parameter array, one line per component (or state) where it has one."""
    import numpy as np

    lines = ["fitted parameters"]
    with np.printoptions(precision=6, suppress=True, linewidth=96):
        for name, value in parameters.items():
            if value.ndim <= 1:
                lines.append(f"  {name}: {np.array2string(value, separator='  ')}")
                continue
            lines.append(f"  {name}:")
            for k, row in enumerate(value):
                label = f"    [{k}] "
                text = np.array2string(row, separator="  ")
                lines.append(label + text.replace("\n", "\n" + " " * len(label)))
    return lines


def format_info(metadata: dict) -> list[str]:
    """The model file's metadata as aligned lines: the essentials first, then every parameter,
    fitted scalar and array shape."""
    import numpy as np

    params = dict(metadata.get("params", {}))
    attributes = dict(metadata.get("attributes", {}))
    names = attributes.pop("feature_names_in_", None)
    n_features = attributes.pop("n_features_in_", "?")
    lines = [
        ("file", f"{metadata['path']} ({metadata.get('file_size', '?')} bytes)"),
        ("estimator", metadata.get("estimator")),
        ("schema version", f"{metadata.get('schema_version')} (written by emkit "
                           f"{metadata.get('emkit_version', '?')})"),
        ("components (K)", params.pop("n_components", "?")),
        ("features (D)", f"{n_features}" + (f" ({', '.join(names)})" if names else "")),
    ]
    if "covariance_type" in params:
        lines.append(("covariance type", params.pop("covariance_type")))
    lines += [(name, value) for name, value in attributes.items() if name != "events_"]
    if attributes.get("events_"):
        lines.append(("events", "; ".join(f"iteration {i}: {m}" for i, m in
                                         attributes["events_"])))
    # Encoded parameters (a dtype) are one-entry dicts in the metadata.
    lines += [(f"param {name}", " ".join(map(str, value.values())) if isinstance(value, dict)
               else value) for name, value in params.items()]
    lines += [(f"array {name}", f"{np.dtype(info['dtype']).name} {tuple(info['shape'])}")
              for name, info in metadata.get("arrays", {}).items()]
    lines += [("note", note) for note in metadata.get("notes", [])]
    width = max(len(name) for name, _ in lines)
    return [f"{name:<{width}}  {format_value(value)}" for name, value in lines]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value)
    return str(value)
