"""Command line: ``python -m fmlm.reports <run-folder> [--out DIR]``, the same as ``python -m fmlm report``.

Exit codes: 0 report written (its path on stdout); 2 the input is not a usable run folder (one-line
message on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def report(run_dir: Path, out_dir: Path | None = None) -> int:
    """Write the report of ``run_dir``, print the path of ``report.md`` and return the exit code.

    ``python -m fmlm report`` and ``python -m fmlm.reports`` both go through here.
    """
    from fmlm.reports.build import build_report  # after argument parsing: --help stays fast

    try:
        path = build_report(run_dir, out_dir)
    except ValueError as err:
        print(f"error: {err}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmlm.reports",
                                     description="Turn a run folder into markdown tables and PNG plots.")
    parser.add_argument("run_dir", type=Path, help="run folder written by python -m fmlm run")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/report)")
    args = parser.parse_args(argv)
    return report(args.run_dir, args.out)


if __name__ == "__main__":
    sys.exit(main())
