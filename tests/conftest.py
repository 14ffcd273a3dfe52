"""Shared test set-up.

The documentation's example models (``docs/examples/*.py``) are importable by name, e.g.
``import poisson_mixture``, so the tests exercise exactly the code the documentation shows.
"""

import sys
from pathlib import Path

DOCS_EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
if str(DOCS_EXAMPLES) not in sys.path:
    sys.path.insert(0, str(DOCS_EXAMPLES))
