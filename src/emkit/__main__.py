"""``python -m emkit``: the ``emkit`` command."""

import sys

from emkit.cli import main

sys.exit(main())
