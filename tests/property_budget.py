"""How many examples a property-based test draws: its own small number in the ordinary suite
(derandomised, see ``conftest.py``), at least ``STRESS_EXAMPLES`` under ``make stress``."""

import os

STRESS = os.environ.get("EMKIT_STRESS", "") not in ("", "0")
STRESS_EXAMPLES = int(os.environ.get("EMKIT_STRESS_EXAMPLES", "2000"))


def examples(ordinary: int) -> int:
    """``ordinary`` in the ordinary suite; at least STRESS_EXAMPLES under stress."""
    return max(ordinary, STRESS_EXAMPLES) if STRESS else ordinary
