"""``emkit demo``: fit the bundled real data sets and write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from emkit.cli.common import Failure, note

EXAMPLES = """\
example:
  emkit demo --output emkit-report      # then open emkit-report/summary.md
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo", help="fit the bundled real data sets and write a report", epilog=EXAMPLES,
        description="Fit every kind of model to the data sets bundled with emkit and write a "
        "report folder: summary.md, summary.json and figures.")
    parser.add_argument("--output", type=Path, default=Path("emkit-report"),
                        help="report folder (default emkit-report)")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    # Fail before the fits (minutes), not after them.
    for folder in (args.output, *args.output.parents):
        if folder.exists():
            if not folder.is_dir():
                raise Failure(f"cannot write the report into {args.output}: {folder} is a file; "
                              "give a folder (created when missing).")
            break
    from emkit.report import run_demo

    path = run_demo(args.output, quick=args.quick, announce=note)  # minutes: say what runs
    print(f"report written to {path}")
