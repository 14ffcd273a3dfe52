"""The layout's rules, checked on the source: no import cycles (imports inside functions count),
no module importing another module's private names, and the old import paths still working."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SOURCE / "emkit").rglob("*.py"):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported module, imported name or None) for every import of an emkit module in the file,
    at any depth (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports only a type checker runs are not imports at run time
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if not base.startswith("emkit"):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule, None) if submodule in MODULES else (base, alias.name)


def _graph() -> dict[str, set[str]]:
    graph = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _ in _imports(name, path):
            # A package's own __init__ is imported on the way to any of its modules: not an edge.
            if target in MODULES and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names():
    private = [f"{name} imports {target}.{imported}" for name, path in MODULES.items()
               for target, imported in _imports(name, path)
               if imported is not None and imported.startswith("_")
               and not (imported.startswith("__") and imported.endswith("__"))]
    assert private == []


OLD_PATHS = ["emkit.engine", "emkit.accelerate", "emkit.checkpoint", "emkit.online",
             "emkit.atomic", "emkit.io", "emkit.distributed", "emkit.hmm",
             "emkit.compound_dirichlet", "emkit.fixed_mixture", "emkit.superimposed",
             "emkit.imputer", "emkit.selection", "emkit.persist", "emkit.clustering",
             "emkit.signals", "emkit.data", "emkit.estimators"]


@pytest.mark.parametrize("old", OLD_PATHS)
def test_old_import_paths_still_work(old):
    from emkit import _compat

    module = importlib.import_module(old)
    if old in _compat.MOVED_MODULES:
        assert module is importlib.import_module(_compat.MOVED_MODULES[old])


def test_old_names_from_old_paths():
    from emkit.hmm import GaussianHMM
    from emkit.persist import load  # noqa: F401

    import emkit
    from emkit.data import Batch, NpyChunks  # noqa: F401
    from emkit.estimators import GaussianMixture

    assert GaussianMixture is emkit.GaussianMixture and GaussianHMM is emkit.GaussianHMM


def test_import_emkit_loads_no_model_code():
    code = ("import sys, emkit; heavy = [m for m in ('numpy', 'scipy', 'sklearn', 'numba', "
            "'emkit.core.engine') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
