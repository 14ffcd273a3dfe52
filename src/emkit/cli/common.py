"""What the subcommands of ``emkit`` share: the parser and its option types, the estimator
options, reading rows and writing results.

Only argparse and the standard library are imported here at start-up, so that ``emkit --help``
and a usage error answer at once; numpy, scikit-learn and the estimators load inside the
functions that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.cli.defaults import constant, default, show

if TYPE_CHECKING:
    import numpy as np

    from emkit.data.io import Table

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process ended by Ctrl-C
CHUNK_ROWS = 65_536  # rows per chunk of a streamed file when --chunk-size is not given


class Failure(Exception):
    """An expected failure of the command line itself: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------- parser
class EstimatorOption(argparse.Action):
    """An option that is a keyword of the estimator's constructor (or of ``select_model``).

    Its value goes to ``args.estimator_options[kind]``; an option left out is not passed at all, so
    the estimator's own default applies, and ``--help`` shows that default (read from the
    signature of ``defaults.ESTIMATORS[kind]``). ``nargs=0`` makes a flag that passes ``const``.
    """

    def __init__(self, option_strings, dest, kind: str, **kwargs):
        self.kind = kind
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        # A new dict, never the parser's shared default: {kind: {parameter: value}}.
        options = {kind: dict(given) for kind, given
                   in getattr(namespace, "estimator_options", {}).items()}
        options.setdefault(self.kind, {})[self.dest] = self.const if self.nargs == 0 else values
        namespace.estimator_options = options


class Choice:
    """An argument type: one of the names in a module-level constant of emkit (read when first
    needed, without importing the module), e.g. the initialisation methods."""

    def __init__(self, module: str, name: str, what: str):
        self.module, self.name, self.__name__ = module, name, what

    def choices(self) -> tuple[str, ...]:
        return tuple(constant(self.module, self.name))

    def __call__(self, text: str) -> str:
        if text not in self.choices():
            raise argparse.ArgumentTypeError(
                f"unknown {self.__name__} {text!r}: choose from {', '.join(self.choices())}")
        return text


class HelpFormatter(argparse.HelpFormatter):
    """Text with line breaks of its own (examples) as written, other text wrapped; every
    option's help ends with its choices and its default (an estimator option's default read
    from the estimator's signature)."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        text = action.help or ""
        if text == argparse.SUPPRESS:
            return text
        if isinstance(action.type, Choice):
            text += f" ({', '.join(action.type.choices())})"
        if isinstance(action, EstimatorOption):
            value = default(action.kind, action.dest)
            shown = ("on" if value else "off") if isinstance(value, bool) else show(value)
            text += f" (default: {shown})"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with emkit's help layout and one-line errors (exit status 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # The innermost command's defaults win: command_prog names the command that was run.
        self.set_defaults(estimator_options={}, command_prog=self.prog)

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:  # an option of another command: point to the help of the one that was run
            self.exit(EXIT_ERROR, usage_error(f"unrecognized arguments: {' '.join(extras)}",
                                              namespace.command_prog))
        return namespace

    def error(self, message: str):
        self.exit(EXIT_ERROR, usage_error(message, self.prog))


def usage_error(message: str, prog: str) -> str:
    return f"emkit: error: {message} (see '{prog} --help')\n"


def add_kinds(parser: argparse.ArgumentParser, what: str):
    """The subparsers of a command that takes a model kind (``emkit fit gmm``, …)."""
    kinds = parser.add_subparsers(dest="model_kind", metavar="KIND", title=what,
                                  parser_class=Parser)
    kinds.required = True
    return kinds


# ---------------------------------------------------------------------------------- types
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "positive integer"


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


non_negative_float.__name__ = "non-negative number"


def parse_k_range(text: str) -> list[int]:
    """Numbers of components from ``"1-8"``, ``"3"`` or ``"1,2,5-7"``, sorted, without repeats."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high) if high else int(low)
            if first < 1 or last < first:
                raise ValueError
            values.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid K range {text!r}: use e.g. 1-8, 3 or 1,2,5-7 (K >= 1)") from None
    return sorted(values)


COVARIANCE_TYPE = Choice("emkit.families.gaussian", "COVARIANCE_TYPES", "covariance type")
# The Gaussian mixture's: scikit-learn's four and mclust's 14 models.
MIXTURE_COVARIANCE_TYPE = Choice("emkit.families.parsimonious", "COVARIANCE_TYPES",
                                 "covariance type")
INIT_METHOD = Choice("emkit.models.clustering", "INIT_METHODS", "initialisation")


def covariance_list(text: str) -> list[str]:
    """Comma-separated covariance types of a Gaussian mixture, without repeats; "all": mclust's
    14 models."""
    if text.strip() == "all":
        return list(constant("emkit.families.parsimonious", "MODELS"))
    return list(dict.fromkeys(MIXTURE_COVARIANCE_TYPE(name.strip()) for name in text.split(",")))


SELECTION_CRITERIA = ("bic", "aic", "icl")  # select_model's (dmm adds the Laplace evidence)


def criterion(text: str) -> str:
    """``--criterion`` of ``emkit select`` for the kinds that select_model fits."""
    if text == "laplace":
        raise argparse.ArgumentTypeError("laplace is for dmm; for this kind use bic, aic or icl")
    if text not in SELECTION_CRITERIA:
        raise argparse.ArgumentTypeError(f"unknown criterion {text!r}: choose bic, aic or icl")
    return text


def accelerate(text: str) -> str | None:
    if text not in ("none", "squarem"):
        raise argparse.ArgumentTypeError(f"unknown acceleration {text!r}: choose none or squarem")
    return None if text == "none" else text


# ---------------------------------------------------------------------------------- options
def add_estimator_option(parser, kind: str, parameter: str, *flags: str, **options):
    """An option passed to the estimator as ``parameter`` only when given (see
    :class:`EstimatorOption`)."""
    return parser.add_argument(*flags, dest=parameter, action=EstimatorOption, kind=kind,
                               **options)


def add_table_arguments(parser, *, columns: bool = True, drop_missing: bool = True) -> None:
    """The data file of a table and the options that choose its columns and rows."""
    parser.add_argument("data", type=Path, help="CSV file (delimiter, header, index column and "
                        "missing-value markers detected) or Parquet file")
    add_layout_options(parser)
    if columns:
        parser.add_argument("--columns", metavar="A,B",
                            help="columns to use, by name (default: all; for predict and score, "
                                 "the columns the model was fitted on)")
    if drop_missing:
        parser.add_argument("--drop-missing", action="store_true",
                            help="drop rows with empty cells in the used columns (default: keep "
                                 "them; the exact EM uses their observed values)")


def add_layout_options(parser) -> None:
    """--header/--no-header and --index-column/--no-index-column: force what is detected."""
    group = parser.add_argument_group("CSV layout (detected unless given)")
    header = group.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_const", const=True,
                        help="the first row holds the column names")
    header.add_argument("--no-header", dest="header", action="store_const", const=False,
                        help="the first row is data; columns are named 1, 2, ...")
    index = group.add_mutually_exclusive_group()
    index.add_argument("--index-column", dest="index_column", action="store_const", const=True,
                       help="the first column is a row index: leave it out")
    index.add_argument("--no-index-column", dest="index_column", action="store_const",
                       const=False, help="the first column is data, even when it has no name")


def layout_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``header``/``index_column`` keywords of :func:`emkit.data.io.read_table`, from the
    options."""
    return {"header": getattr(args, "header", None),
            "index_column": getattr(args, "index_column", None)}


def add_k_option(parser, kind: str | None = None, *, k_range: bool = False) -> None:
    """``-k``/``--k``/``--n-components``, spelled the same by every command: one number of
    components (required when ``kind`` is None), a range for ``select``, or an estimator option
    with the estimator's default."""
    flags = ("-k", "--n-components", "--k")
    if k_range:
        add_estimator_option(parser, "select", "n_components", *flags, type=parse_k_range,
                             metavar="RANGE", help="numbers of components to try, e.g. 1-8 or "
                             "1,2,5-7")
    elif kind is not None:
        add_estimator_option(parser, kind, "n_components", *flags, type=positive_int,
                             metavar="K", help="number of components")
    else:
        parser.add_argument(*flags, dest="n_components", type=positive_int, metavar="K",
                            required=True, help="number of components")


def add_gaussian_options(parser, kind: str, *, init: str | None, covariance: bool = True):
    """Covariance type, regularisation and start of the Gaussian models; ``init`` is the name of
    the estimator's initialisation parameter (None: no --init)."""
    if covariance:
        add_estimator_option(parser, kind, "covariance_type", "--covariance",
                             type=MIXTURE_COVARIANCE_TYPE if kind == "gmm" else COVARIANCE_TYPE,
                             metavar="TYPE", help="covariance type")
    add_estimator_option(parser, kind, "reg_covar", "--reg-covar", type=non_negative_float,
                         metavar="R", help="added to covariance diagonals")
    if init is not None:
        add_estimator_option(parser, kind, init, "--init", type=INIT_METHOD, metavar="METHOD",
                             help="how the starts are chosen (auto: hierarchical agglomeration "
                                  "and k-means starts, ranked by short EM runs)")


def add_em_options(parser, kind: str, *, starts: bool = True, accelerate_option: bool = True):
    """The options of the EM loop; ``starts``: --n-init and --seed (random starts)."""
    group = parser.add_argument_group("EM options")
    if starts:
        add_estimator_option(group, kind, "n_init", "--n-init", type=positive_int, metavar="N",
                             help="number of starts; the best log-likelihood wins")
    add_estimator_option(group, kind, "max_iter", "--max-iter", type=positive_int, metavar="N",
                         help="maximum EM iterations (passes over the data) per start")
    add_estimator_option(group, kind, "tol", "--tol", type=non_negative_float, metavar="T",
                         help="stop when the log-likelihood's last change and its estimated "
                              "remaining rise are below T per sample")
    if accelerate_option:
        add_estimator_option(group, kind, "accelerate", "--accelerate", type=accelerate,
                             metavar="{none,squarem}", help="SQUAREM usually needs several "
                             "times fewer iterations than plain EM (none)")
    if starts:
        add_seed_option(group)
    add_progress_option(group)
    return group


def add_seed_option(parser) -> None:
    # The one default of its own: a command line run repeats unless told otherwise, where
    # Python's random_state=None draws fresh starts.
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed; the same seed gives the same fit (default 0; "
                             "Python's random_state)")


def add_progress_option(parser) -> None:
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress on stderr: which fit is running (select) and a bar per "
                             "fit (default: when stderr is a terminal)")


def add_output_options(parser, output_help: str, *, json_option: bool = True) -> None:
    parser.add_argument("-o", "--output", type=Path, help=output_help)
    if json_option:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def add_selection_options(parser, output_help: str = "write the chosen model to this file"):
    """What ``emkit select`` writes: the chosen model (-o), each row's classification and
    uncertainty (--classification), --json."""
    parser.add_argument("--classification", type=Path, metavar="FILE.csv",
                        help="write each row's classification (most probable component of the "
                             "chosen model) and uncertainty (1 - that probability) to this CSV "
                             "file; rows left out stay empty")
    add_output_options(parser, output_help)


def add_lengths_option(parser) -> None:
    parser.add_argument("--lengths-column", metavar="ID",
                        help="hidden Markov models: rows with the same value of column ID in a "
                             "row form one sequence (default: one sequence)")


# ---------------------------------------------------------------------------------- estimators
def estimator_options(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The options for ``kind``'s estimator given on the command line, as keywords (see
    EstimatorOption)."""
    return dict(args.estimator_options.get(kind, {}))


def progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else args.progress


def common_keywords(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The keywords of an estimator with random starts: the given options, the seed and
    progress."""
    return {**estimator_options(args, kind), "random_state": args.seed,
            "progress": progress(args)}


# ---------------------------------------------------------------------------------- data
def note(message: str) -> None:
    print(f"emkit: {message}", file=sys.stderr)


def read_rows(path: Path, columns: Sequence[str] | None, drop_missing: bool,
              keep_positions: bool = False, *, header: bool | None = None,
              index_column: bool | None = None) -> tuple[Table, np.ndarray]:
    """The table and a boolean mask of the rows to use.

    Empty cells are missing values (NaN), which the Gaussian mixture handles exactly: every row
    is used. With ``drop_missing`` the rows with an empty cell are left out instead and a note
    says how many."""
    import numpy as np

    from emkit.data.io import read_table
    from emkit.errors import DataError

    table = read_table(path, columns, header=header, index_column=index_column)
    for message in table.notes:
        note(message)
    if not drop_missing:
        return table, np.ones(len(table.data), dtype=bool)
    missing = table.missing_rows()
    n_missing = int(missing.sum())
    if n_missing == len(missing):
        raise DataError(f"every row of {path} has a missing value in the columns used "
                        f"({', '.join(table.columns)}): nothing is left to use.")
    if n_missing:
        action = "left out" if keep_positions else "dropped"
        note(f"{action} {n_missing} of {len(missing)} rows with missing values")
    return table, ~missing


def require_values(table: Table) -> None:
    """Refuse a column without a single value before a fit (the estimator could only number
    it)."""
    import numpy as np

    from emkit.errors import DataError

    empty = [name for name, column in zip(table.columns, np.isnan(table.data).T, strict=True)
             if column.all()]
    if empty:
        raise DataError(f"column(s) {', '.join(map(repr, empty))} of {table.path} have no value "
                        "(every cell empty or NA): nothing can be learned about them; leave "
                        "them out with --columns.")


def parse_columns(text: str | None) -> list[str] | None:
    from emkit.data.io import parse_columns as parse
    from emkit.errors import DataError

    try:
        return parse(text)
    except DataError as error:  # about the option, not the data file
        raise Failure(str(error)) from None


# ---------------------------------------------------------------------------------- models
def check_output_folders(*paths: Path | None) -> None:
    """Fail before the work, not after it, when an output cannot be written."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise Failure(f"cannot write {path}: it is a folder; give a file name.")
        if not path.parent.is_dir():
            raise Failure(f"cannot write {path}: the folder {path.parent} does not exist.")


def load_model(path: Path) -> Any:
    from emkit.estimators.persist import load

    return load(path)


def model_columns(model: Any, columns: str | None) -> list[str] | None:
    """Which columns to read for a fitted model: ``--columns``, else the names it was fitted on
    (``feature_names_in_``, stored in the model file). Removes those names from ``model``."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        # The command line selects the columns by name itself and hands the estimator a plain
        # array; scikit-learn would warn that the array has no names.
        del model.feature_names_in_
    if columns is not None:
        return parse_columns(columns)
    return None if names is None else [str(name) for name in names]


def save_model(model: Any, path: Path, columns: Sequence[str], response: str | None = None,
               ) -> None:
    """Save ``model`` with the names of the columns it was fitted on (and of the response of a
    regression), so that ``predict`` and ``score`` read the same columns by default."""
    import numpy as np

    model.feature_names_in_ = np.asarray(columns, dtype=object)
    if response is not None:
        model.response_name_ = np.asarray([response], dtype=object)
    try:
        model.save(path)
    finally:
        del model.feature_names_in_
        if response is not None:
            del model.response_name_


def check_width(model: Any, table: Table) -> None:
    from emkit.errors import DataError

    expected = getattr(model, "n_features_in_", None)
    if expected is not None and table.data.shape[1] != expected:
        raise DataError(
            f"the model was fitted on {expected} columns, but {len(table.columns)} columns were "
            f"read from {table.path} ({', '.join(table.columns)}): choose {expected} with "
            "--columns a,b.")


# ---------------------------------------------------------------------------------- output
def write_output(args: argparse.Namespace, text: str) -> None:
    """``text`` to ``--output`` (written atomically) or to stdout."""
    if args.output is None:
        sys.stdout.write(text)
    else:
        from emkit.core.atomic import write_atomically

        write_atomically(args.output, text)


def in_place(values: Sequence[Any], use: np.ndarray) -> list[Any]:
    """One result per row used (``use``) put in the rows' own places; None for rows left out,
    so that output row i always belongs to input row i."""
    import numpy as np

    results: list[Any] = [None] * len(use)
    for position, value in zip(np.flatnonzero(use), values, strict=True):
        results[position] = value
    return results


def per_row_csv(header: list[str], values: Sequence[Any], use: np.ndarray) -> str:
    """CSV text of one result (a value or a list of values) per row used, in the rows' own
    places; rows left out are empty lines of cells."""
    from emkit.data.io import format_csv

    blank = [""] * len(header)
    return format_csv(header, (blank if value is None else value if isinstance(value, list)
                               else [value] for value in in_place(values, use)))


def write_per_row(args: argparse.Namespace, header: list[str], values: list[Any],
                  use: np.ndarray, name: str) -> None:
    """One result per row used (``use``), written in the rows' own places (rows left out stay
    empty: null in JSON), as CSV or, with ``--json``, as ``{name: [...]}``."""
    if args.json:
        output = json.dumps({name: in_place(values, use)}) + "\n"
    else:
        output = per_row_csv(header, values, use)
    write_output(args, output)


def write_classification(path: Path, result: Any, use: np.ndarray) -> None:
    """The chosen model's ``classification`` and ``uncertainty`` of every row (a
    :class:`emkit.estimators.selection.SelectionResult`) to a CSV file, atomically."""
    from emkit.core.atomic import write_atomically

    values = [[int(label), float(uncertainty)] for label, uncertainty
              in zip(result.classification, result.uncertainty, strict=True)]
    write_atomically(path, per_row_csv(["classification", "uncertainty"], values, use))


def classification_summary(result: Any, use: np.ndarray) -> dict[str, Any]:
    """Rows per component of the chosen model's classification and the uncertainty's mean and
    largest value, with the (1-based) data row where it is largest."""
    import numpy as np

    counts = np.bincount(result.classification, minlength=result.best["n_components"])
    worst = int(np.argmax(result.uncertainty))
    return {"rows_per_component": counts.tolist(),
            "mean_uncertainty": float(result.uncertainty.mean()),
            "max_uncertainty": float(result.uncertainty[worst]),
            "max_uncertainty_row": int(np.flatnonzero(use)[worst]) + 1}


def report_selection(args: argparse.Namespace, result: Any, columns: Sequence[str],
                     use: np.ndarray, response: str | None = None,
                     text: str | None = None) -> None:
    """What ``emkit select`` writes after the fits: the chosen model (``-o``), the per-row
    classification (``--classification``), then the table as JSON (``--json``) or as ``text``
    (default: ``result.to_text()``) with the classification summary."""
    if args.output is not None:
        save_model(result.best_estimator, args.output, columns, response)
    if args.classification is not None:
        write_classification(args.classification, result, use)
    summary = classification_summary(result, use)
    written = {"output": args.output, "classification_file": args.classification,
               "plot": getattr(args, "plot", None)}
    if args.json:
        print_json({"criterion": result.criterion, "columns": list(columns),
                    **({} if response is None else {"response": response}),
                    "n_samples": len(result.uncertainty), "table": result.table,
                    "best_index": int(result.best_index), "best": result.best,
                    "notes": result.notes, "classification": summary,
                    **{key: None if path is None else str(path)
                       for key, path in written.items()}})
        return
    counts = ", ".join(f"{k}: {n}" for k, n in enumerate(summary["rows_per_component"]))
    lines = [result.to_text() if text is None else text,
             f"classification  rows per component {counts}",
             f"uncertainty     mean {summary['mean_uncertainty']:.4g}, largest "
             f"{summary['max_uncertainty']:.4g} (data row {summary['max_uncertainty_row']})"]
    names = {"output": "model", "classification_file": "classification",
             "plot": "plot"}
    lines += [f"{names[key]} written to {path}" for key, path in written.items()
              if path is not None]
    print("\n".join(lines))


def print_json(value: Any) -> None:
    from emkit.data.io import json_default

    print(json.dumps(value, indent=2, default=json_default))


def naming_the_data(args: argparse.Namespace | None, message: str) -> str:
    """``message`` of a DataError, with the data file in front when it does not name it: the
    estimators speak of rows and columns of an array, the user needs to know which file."""
    data = getattr(args, "data", None)
    if data is None or str(data) in message:
        return message
    return f"{data}: {message}"


def describe_os_error(error: OSError) -> str:
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def silence_stdout() -> None:
    """After a broken pipe (``emkit predict … | head``): silence the final flush of stdout, as
    Python's docs advise."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def interrupted_message(args: argparse.Namespace) -> str:
    """What to say after Ctrl-C: where a checkpointed fit can resume from."""
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is None or not checkpoint.exists():
        return "interrupted"
    iteration = checkpoint_iteration(checkpoint)
    where = "" if iteration is None else f" at iteration {iteration}"
    return f"interrupted{where}; resume with --resume"


def checkpoint_iteration(path: Path) -> int | None:
    """The iteration of the start in progress saved in a checkpoint (where ``--resume``
    continues), None when the checkpoint holds none or cannot be read.

    Reads the two members it needs (see emkit.core.checkpoint): the JSON ``state`` and the objective
    history of the start in progress, whose first entry is the start (iteration 0)."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            state = json.loads(bytes(archive["state"]).decode("utf-8"))
            if state.get("current") is None:
                return None
            return len(archive["current_history"]) - 1
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
