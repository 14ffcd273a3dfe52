"""``python -m emkit.cli``: the ``emkit`` command."""

import sys

from emkit.cli import main

sys.exit(main())
