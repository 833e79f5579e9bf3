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

from fmlm.config import apply_overrides
from fmlm.experiment import PRESETS, preset
from fmlm.pipeline import run_experiment
from fmlm.stages import STAGES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="default: embedded")
    parser.add_argument("--quick", action="store_true", help="shorthand for --preset quick")
    parser.add_argument("--run", type=Path, default=None, help="run folder (default: runs/<preset>)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated stages to train and measure (default: all); "
                             "'teacher,teacher-nosc' is the stage-1 study alone")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser.parse_intermixed_args(argv)  # key=value overrides may come before or after the options


def print_summary(run_dir: Path) -> None:
    """One line per measured setting: model, sampler, steps, NFE, gen PPL, entropy."""
    from reports import load_results

    table = load_results(run_dir)
    if table.empty:
        return
    cols = ["label", "sampler", "steps", "w", "gamma", "sc_mode", "fp_iterations", "sweep", "n_samples", "nfe",
            "gen_ppl", "entropy"]
    print("\n" + table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def preset_name(args: argparse.Namespace) -> str:
    """The preset asked for; ``--quick`` with another ``--preset`` is refused."""
    if args.quick and args.preset not in (None, "quick"):
        raise ValueError(f"--quick means --preset quick and conflicts with --preset {args.preset}; pass one of them")
    return "quick" if args.quick else args.preset or "embedded"


def parse_stages(text: str) -> tuple[str, ...]:
    """``--stages`` as a tuple of names; an empty name (``a,,b``, a trailing comma, ``,``) is refused."""
    names = tuple(s.strip() for s in text.split(","))
    if "" in names:
        raise ValueError(f"--stages {text!r} holds an empty stage name; give comma-separated names from {list(STAGES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        name = preset_name(args)
        cfg = apply_overrides(preset(name), args.overrides)
        stages = parse_stages(args.stages)
    except ValueError as err:  # fmlm.config.ConfigError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = args.run or Path("runs") / name
    try:
        run_experiment(cfg, run_dir, progress=not args.no_progress, stages=stages)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 measures and reports
    from reports import build_report

    print_summary(run_dir)
    report = build_report(run_dir)
    print(f"\nrun folder: {run_dir}\nreport:     {report}\ntables:     {report.parent}/*.md\nplots:      {report.parent}/*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
