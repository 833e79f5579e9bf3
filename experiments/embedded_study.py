"""The embedded preset's study (``fmlm.study.embedded``): noise scale, decoder share, row length, and
sampling from EMA or raw weights, each trial a teacher trained on the embedded preset and measured on
the validation seeds; the table goes to OUT/study_table.md (``fmlm.reports.study``).

    python experiments/embedded_study.py                       # OUT = reports/embedded_study, about 50 min on 2 cores
    python experiments/embedded_study.py --out runs/study --cache-dir cache --no-progress
"""

from __future__ import annotations

import argparse
import sys

from fmlm.study.embedded import run_study, study_base
from fmlm.reports.study import write_study_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="reports/embedded_study", help="the study folder (default: %(default)s)")
    parser.add_argument("--cache-dir", default="cache", help="the data and model cache (default: %(default)s)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    run_study(args.out, study_base(args.cache_dir), device=args.device, progress=not args.no_progress)
    print(f"wrote {write_study_table(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
