"""The defaults of the estimators behind the command line, read from their source code.

The command line passes an estimator option only when it is given, so every default is the
estimator's own: its constructor's signature is the one source of truth. ``--help`` shows those
defaults; ``inspect.signature`` would import the estimator's module and with it scikit-learn and
scipy (over a second for a help text), so the signatures and the constants the command line
offers as choices are read from the source text instead, without running it. A test checks that
this reading equals ``inspect.signature`` for every estimator.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

# What each command line kind fits: (module, class or function); its signature's defaults are
# the command line's.
ESTIMATORS = {
    "gmm": ("emkit.estimators.gaussian_mixture", "GaussianMixture"),
    "hmm": ("emkit.estimators.hmm", "GaussianHMM"),
    "dmm": ("emkit.estimators.compound_dirichlet", "DirichletMultinomialMixture"),
    "fixed": ("emkit.estimators.fixed_mixture", "FixedMixture"),
    "tones": ("emkit.estimators.superimposed", "SuperimposedSignals"),
    "impute": ("emkit.estimators.imputer", "EMImputer"),
    "select": ("emkit.estimators.selection", "select_model"),
    "poisson": ("emkit.estimators.poisson_mixture", "PoissonMixture"),
    "bernoulli": ("emkit.estimators.latent_class", "BernoulliMixture"),
    "categorical": ("emkit.estimators.latent_class", "CategoricalMixture"),
    "student": ("emkit.estimators.student_mixture", "StudentMixture"),
    "regression": ("emkit.estimators.regression_mixture", "RegressionMixture"),
}


class Expression(str):
    """A default that is not a literal (e.g. ``np.float64``): its source text, for display."""


def _module_path(module: str) -> Path:
    # The file of an emkit module found without importing its packages (importlib's find_spec
    # would run every package's __init__ on the way).
    package, *names = module.split(".")
    if package != "emkit":
        raise LookupError(f"{module} is not a module of emkit")
    path = Path(__file__).parents[1].joinpath(*names)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@functools.cache
def _module_body(module: str) -> tuple[ast.stmt, ...]:
    return tuple(ast.parse(_module_path(module).read_text(encoding="utf-8")).body)


def _imported_module(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from … import`` in ``module`` reads from."""
    if node.level == 0:
        return node.module or ""
    package = module if _module_path(module).name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _definition(module: str, name: str) -> tuple[str, ast.AST]:
    """(module, node) of the module-level definition of ``name``, following ``from … import``."""
    for node in _module_body(module):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == name for target in node.targets):
            return module, node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.target.id == name and node.value is not None:
            return module, node.value
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _definition(_imported_module(module, node), alias.name)
    raise LookupError(f"{module} defines no {name}")


def _value(module: str, node: ast.AST) -> Any:
    """The value of an expression: a literal, a module-level name bound to one, or a range of
    literals (select_model's numbers of components)."""
    if isinstance(node, ast.Name):
        return _value(*_definition(module, node.id))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "range" and not node.keywords:
        return range(*(_value(module, argument) for argument in node.args))
    try:
        return ast.literal_eval(node)
    except ValueError:
        return Expression(ast.unparse(node))


def _signature_node(module: str, name: str) -> tuple[str, ast.FunctionDef]:
    """The function whose parameters ``name`` takes: itself, or a class's (inherited)
    ``__init__``."""
    module, node = _definition(module, name)
    if isinstance(node, ast.FunctionDef):
        return module, node
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                return module, item
        for base in node.bases:
            if isinstance(base, ast.Name):
                return _signature_node(module, base.id)
    raise LookupError(f"{module}.{name} has no readable signature")


@functools.cache
def defaults(kind: str) -> dict[str, Any]:
    """The parameters with a default of the estimator behind ``kind`` (a key of ESTIMATORS)."""
    module, function = _signature_node(*ESTIMATORS[kind])
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    pairs = list(zip(positional[len(positional) - len(arguments.defaults):],
                     arguments.defaults, strict=True))
    pairs += [(argument, default) for argument, default
              in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
              if default is not None]
    return {argument.arg: _value(module, default) for argument, default in pairs}


def default(kind: str, parameter: str) -> Any:
    """The default of one parameter of the estimator behind ``kind``."""
    return defaults(kind)[parameter]


@functools.cache
def constant(module: str, name: str) -> Any:
    """A module-level constant (e.g. the names of the initialisations), read without importing
    ``module``."""
    return _value(*_definition(module, name))


def show(value: Any) -> str:
    """A default as the command line spells it."""
    if value is None:
        return "none"
    if isinstance(value, range) and value.step == 1 and len(value) > 1:
        return f"{value.start}-{value.stop - 1}"
    if isinstance(value, (tuple, list, range)):
        return ",".join(map(show, value))
    return str(value)
