"""Shared test set-up.

The documentation's example models (``docs/examples/*.py``) are importable by name, e.g.
``import poisson_mixture``, so the tests exercise exactly the code the documentation shows.

Property-based tests (hypothesis) run a fixed, derandomised set of examples by default, so the
suite gives the same verdict on every run and CI never fails on a rare draw. ``make stress``
(``EMKIT_STRESS=1``) runs only them, with fresh random examples and at least
``property_budget.STRESS_EXAMPLES`` per test; what it finds becomes a regression test.

The kernels with a numpy and a compiled form run compiled here (see emkit.kernels.tiers): the
default rule also looks at what the process ran before, so a test's last digits would depend on
which tests ran first in its worker, and the compiled forms make the suite twice as fast. The
numpy forms are tested against the same references in the kernels' own tests, which set the
form they need, as do the tests of the rule.
"""

import sys
from pathlib import Path

import pytest
from hypothesis import settings

from emkit.kernels import tiers
from property_budget import STRESS

tiers.MODE = "compiled"

DOCS_EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
if str(DOCS_EXAMPLES) not in sys.path:
    sys.path.insert(0, str(DOCS_EXAMPLES))

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("stress", deadline=None, print_blob=True)
settings.load_profile("stress" if STRESS else "ci")


def pytest_collection_modifyitems(config, items):
    """Mark the hypothesis tests ``property``; under ``make stress`` run only them."""
    selected = []
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)
            selected.append(item)
    if STRESS:
        config.hook.pytest_deselected(items=[i for i in items if i not in selected])
        items[:] = selected
