"""Old import paths keep working after the modules moved into core/, data/ and estimators/.

``import emkit.hmm`` (and every other path below) gives the module that now lives at the new
path: the same module object, so attributes and monkeypatching behave as before.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED_MODULES = {
    "emkit.engine": "emkit.core.engine",
    "emkit.accelerate": "emkit.core.accelerate",
    "emkit.checkpoint": "emkit.core.checkpoint",
    "emkit.online": "emkit.core.online",
    "emkit.atomic": "emkit.core.atomic",
    "emkit.io": "emkit.data.io",
    "emkit.distributed": "emkit.data.distributed",
    "emkit.hmm": "emkit.estimators.hmm",
    "emkit.compound_dirichlet": "emkit.estimators.compound_dirichlet",
    "emkit.fixed_mixture": "emkit.estimators.fixed_mixture",
    "emkit.superimposed": "emkit.estimators.superimposed",
    "emkit.imputer": "emkit.estimators.imputer",
    "emkit.selection": "emkit.estimators.selection",
    "emkit.persist": "emkit.estimators.persist",
    "emkit.clustering": "emkit.models.clustering",
    "emkit.signals": "emkit.models.signals",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module):
        pass  # the module was executed under its new name


def install() -> None:
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
