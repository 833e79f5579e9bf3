"""The main experiment: teacher (with and without self-conditioning), ELF*, FMLM*
and FMLM, then 1/2/4-step flow-map samples against the 32-step teacher and ELF*.

    python experiments/owt_fmlm_star.py                     # embedded offline preset, CPU
    python experiments/owt_fmlm_star.py --quick             # the same pipeline on a tiny budget
    torchrun --nproc_per_node 8 experiments/owt_fmlm_star.py --preset paper   # OWT / GPT-2 Large / ELF-B

Any field can be overridden with dotted ``key=value`` pairs, e.g.
``train_teacher.max_steps=2000 evaluation.n_samples=256 network.width=384``.
An interrupted run continues where it stopped when started again with the
same ``--run`` folder. Tables and plots are written to ``<run>/report``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fmlm.config import ConfigError, apply_overrides
from fmlm.experiment import PRESETS, preset
from fmlm.pipeline import run_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="embedded", choices=sorted(PRESETS))
    parser.add_argument("--quick", action="store_true", help="shorthand for --preset quick")
    parser.add_argument("--run", type=Path, default=None, help="run folder (default: runs/<preset>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = "quick" if args.quick else args.preset
    try:
        cfg = apply_overrides(preset(name), args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = args.run or Path("runs") / name
    try:
        run_experiment(cfg, run_dir, progress=not args.no_progress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 measures and reports
    from reports import build_report

    report = build_report(run_dir)
    print(f"\nrun folder: {run_dir}\nreport:     {report}\ntables:     {report.parent}/*.md\nplots:      {report.parent}/*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
