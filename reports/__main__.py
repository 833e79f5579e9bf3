"""Command line: ``python -m reports <run-folder> [--out DIR]``.

Exit codes: 0 report written; 2 the input is not a usable run folder (one-line message on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description="Turn a run folder into markdown tables and PNG plots.")
    parser.add_argument("run_dir", type=Path, help="run folder written by an experiment script")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/report)")
    args = parser.parse_args(argv)
    from reports.build import build_report  # after argument parsing: --help stays fast

    try:
        path = build_report(args.run_dir, args.out)
    except ValueError as err:
        print(f"error: {err}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
