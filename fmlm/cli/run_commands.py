"""The commands that work on a run folder: ``run``, ``prepare``, ``train``, ``report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmlm.cli.options import experiment_config, parse_stages, run_root
from fmlm.experiment.run_folder import TEACHER_OF


def cmd_run(args: argparse.Namespace) -> int:
    from fmlm.experiment.run import run_experiment

    cfg, stages = experiment_config(args), parse_stages(args.stages)
    run_dir = run_root(args)
    run_experiment(cfg, run_dir, device=args.device, progress=not args.no_progress, stages=stages)
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 measures and reports
    if cfg.training_seeds:  # several training seeds: the seeds' report with intervals over them
        from fmlm.reports import build_report
        from fmlm.reports.exact import build_exact_report, seed_folders

        for folder in seed_folders(run_dir).values():  # each seed's own report (gen PPL: the law's perplexity)
            build_report(folder)
        report = build_exact_report(run_dir)
        print(f"\nrun folder: {run_dir}\nreport:     {report}")
        return 0
    from fmlm.reports import build_report, load_results

    table = load_results(run_dir)
    if not table.empty:
        cols = ["label", "sampler", "steps", "w", "gamma", "sc_mode", "fp_iterations", "sweep", "n_samples", "nfe",
                "gen_ppl", "entropy"]
        print("\n" + table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    report = build_report(run_dir)
    print(f"\nrun folder: {run_dir}\nreport:     {report}\ntables:     {report.parent}/*.md\nplots:      {report.parent}/*.png")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from fmlm.data import prepare
    from fmlm.train.distributed import resolve_device

    cfg = experiment_config(args)
    print(prepare(cfg.data, Path(cfg.cache_dir), device=str(resolve_device(args.device))))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from fmlm.experiment.run import check_experiment, prepare_data
    from fmlm.experiment.stages import run_stage
    from fmlm.train.distributed import init_distributed, shutdown

    cfg = experiment_config(args)
    check_experiment(cfg, evaluator=False)
    info = init_distributed(args.device)
    data = prepare_data(cfg, info)
    root = run_root(args) / "stages"
    teacher = args.teacher
    if teacher is None and args.stage in TEACHER_OF:
        teacher = root / TEACHER_OF[args.stage] / "checkpoint"
    folder = run_stage(args.stage, cfg.stage_config(args.stage), data, root / args.stage, info, teacher,
                       progress=not args.no_progress)
    shutdown()
    if info.is_main:
        print(folder)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fmlm.reports.__main__ import report  # the same as python -m fmlm.reports: output and exit codes

    return report(args.run_folder, args.out)
