"""Command line: ``python -m fmlm {run,prepare,train,sample,import,export,evaluate,report} ...``.

Every command works with no arguments on the embedded offline preset:

    python -m fmlm run                             # the main job: all stages, measurements, report
    python -m fmlm run --quick                     # the same on a tiny budget (a smoke run)
    python -m fmlm prepare                         # text -> rows -> cached latents
    python -m fmlm train teacher                   # stage 1 into runs/embedded/stages/teacher
    python -m fmlm sample --stage flow-map --steps 2 --n 8
    python -m fmlm evaluate runs/embedded/samples/teacher.jsonl
    python -m fmlm report runs/embedded

Model folders (the paper's released checkpoints, or a finished stage of a run):

    python -m fmlm import fmlm_star.ckpt --out models/fmlm-star [--config REFERENCE.yml] [--weights ema|raw]
    python -m fmlm export runs/embedded/stages/flow-map --out models/embedded-flow-map
    python -m fmlm sample --model models/fmlm-star --steps 1 --n 8

Settings are dotted ``key=value`` overrides of the preset's configuration
(``fmlm.experiment.ExperimentConfig``; for ``sample``, of ``SamplerConfig``), before or after the
options. Unknown keys and wrong types are refused with a one-line error. The device (``--device``)
and progress bars (``--no-progress``) are options of a command, not settings. Under ``torchrun``
give the run folder as ``--run-dir`` (torchrun's own parser captures ``--run``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmlm.config import ConfigError, apply_overrides
from fmlm.experiment.run_folder import STAGES, TEACHER_OF
from fmlm.commands import cmd_evaluate, cmd_export, cmd_import, cmd_sample_model

PRESET_NAMES = ("embedded", "exact", "paper", "quick")


def experiment_config(args: argparse.Namespace):
    """The run folder's stored configuration if it has one, else the preset; then the overrides."""
    from fmlm.experiment.presets import load_run_config, preset
    from fmlm.experiment.run_folder import EXPERIMENT_FILE, check_writable_run_dir

    for item in args.overrides:
        if item.split("=", 1)[0].strip() == "device":
            raise ConfigError(f"{item}: the device is an option of the command, not a setting; pass --device")
    run_dir = run_root(args)
    check_writable_run_dir(run_dir)
    base = load_run_config(run_dir) if (run_dir / EXPERIMENT_FILE).is_file() else preset(preset_name(args))
    return apply_overrides(base, args.overrides)


def preset_name(args: argparse.Namespace) -> str:
    """The preset asked for; ``--quick`` with another ``--preset`` is refused."""
    quick = getattr(args, "quick", False)
    if quick and args.preset not in (None, "quick"):
        raise ValueError(f"--quick means --preset quick and conflicts with --preset {args.preset}; pass one of them")
    return "quick" if quick else args.preset or "embedded"


def run_root(args: argparse.Namespace) -> Path:
    return args.run_dir or Path("runs") / preset_name(args)


def parse_stages(text: str) -> tuple[str, ...]:
    """``--stages`` as a tuple of names; an empty name (``a,,b``, a trailing comma, ``,``) is refused."""
    names = tuple(s.strip() for s in text.split(","))
    if "" in names:
        raise ValueError(f"--stages {text!r} holds an empty stage name; give comma-separated names from {list(STAGES)}")
    return names


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
    from fmlm.experiment.run import prepare_data
    from fmlm.experiment.stages import run_stage
    from fmlm.train.distributed import init_distributed, shutdown

    cfg = experiment_config(args)
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


def cmd_sample(args: argparse.Namespace) -> int:
    """``sample --stage S``: a run's checkpoint, sampled with its own flow constants; ``--model``: a folder."""
    if args.model is not None:
        return cmd_sample_model(args)
    from fmlm.data import load_meta, prepare, tokenizer_for
    from fmlm.experiment.stages import stored_stage_config
    from fmlm.models.sample import check_output_file, check_sampler_fits, write_samples
    from fmlm.models.sampling import PROJECT_SAMPLERS, stored_setting
    from fmlm.samplers import batch_sampler, generate, sampler_for
    from fmlm.train import checkpoint as ckpt
    from fmlm.train.distributed import resolve_device

    from fmlm.math.flow import FlowConfig

    cfg = experiment_config(argparse.Namespace(**{**vars(args), "overrides": []}))
    setting = stored_setting(PROJECT_SAMPLERS[args.stage], args.steps)
    sampler_for(FlowConfig(), setting, args.overrides)  # the settings are checked before any file is read
    folder = args.checkpoint or run_root(args) / "stages" / args.stage / "checkpoint"
    out = args.out or run_root(args) / "samples" / f"{args.stage}.jsonl"
    check_output_file(out)
    stage = ckpt.read_meta(folder).stage
    flow = stored_stage_config(folder).flow  # the constants the checkpoint was trained with
    if stage != args.stage:
        raise ValueError(f"checkpoint {folder} is a {stage!r} stage, not the --stage {args.stage!r} asked for")
    sampler = sampler_for(flow, setting, args.overrides)
    check_sampler_fits(stage, sampler)
    device = resolve_device(args.device)
    model = ckpt.load_denoiser(folder, "ema", device)
    data = prepare(cfg.data, Path(cfg.cache_dir))
    samples = generate(model, batch_sampler(sampler), sampler, args.n, int(load_meta(data)["row_len"]), device=device)
    texts = tokenizer_for(data).decode_batch(samples.ids)
    write_samples(out, samples.indices, texts, samples.nfe)
    for text in texts[: args.show]:
        print(f"- {text}")
    print(f"{args.n} samples, {samples.nfe} network evaluations each, {samples.wall_s:.1f} s -> {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fmlm.reports.__main__ import report  # the same as python -m fmlm.reports: output and exit codes

    return report(args.run_folder, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmlm", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default=None, choices=PRESET_NAMES, help="default: embedded")
        p.add_argument("--run-dir", "--run", dest="run_dir", type=Path, default=None,
                       help="run folder (default: runs/<preset>)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")

    def overrides(p: argparse.ArgumentParser) -> None:  # after a command's own positionals
        p.add_argument("overrides", nargs="*", metavar="key=value")

    p = sub.add_parser("run", help="the main job: train every stage, measure, write the report")
    run_options(p)
    overrides(p)
    p.add_argument("--quick", action="store_true", help="shorthand for --preset quick")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("prepare", help="prepare the corpus, rows and cached latents")
    run_options(p)
    overrides(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one stage (resumes from its checkpoint)")
    run_options(p)
    p.add_argument("stage", nargs="?", default="teacher", choices=STAGES)
    p.add_argument("--teacher", type=Path, default=None, help="checkpoint of the stage this one distils")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    overrides(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample text from a trained stage or a model folder")
    run_options(p)
    p.add_argument("--stage", default="teacher", choices=STAGES)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--model", default=None, help="a model folder or hub repo id (its stored sampler settings)")
    p.add_argument("--steps", type=int, default=None, help="the stored sampler setting for this many steps")
    p.add_argument("--length", type=int, default=None, help="with --model: tokens per sample (default: its max)")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--show", type=int, default=3, help="samples to print")
    p.add_argument("--out", type=Path, default=None)
    overrides(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("import", help="import a released reference checkpoint as a model folder")
    p.add_argument("checkpoint", type=Path, help="a reference Lightning .ckpt (elf, elf_star, fmlm_star)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--config", type=Path, default=None, help="the reference's training YAML for this checkpoint")
    p.add_argument("--weights", default="ema", choices=["ema", "raw"])
    p.add_argument("--stage", default=None, choices=STAGES, help="default: from --config or the file name")
    p.add_argument("--cache-dir", type=Path, default=Path("cache"), help="where the offline GPT-2 tokenizer is kept")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export a finished stage checkpoint as a model folder")
    p.add_argument("checkpoint", type=Path, help="RUN/stages/<stage> or its checkpoint/ folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--weights", default="ema", choices=["ema", "raw"])
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="gen PPL and entropy of a samples file")
    run_options(p)
    p.set_defaults(overrides=[])
    p.add_argument("samples", type=Path, nargs="?", default=Path("runs/embedded/samples/teacher.jsonl"))
    p.add_argument("--evaluator", default=None, help="default: the preset's evaluator (paper: gpt2-large)")
    p.add_argument("--framing", default="project", choices=["project", "paper"],
                   help="paper: the reference's exact scoring (dropped and kept blank samples) beside ours")
    p.add_argument("--max-length", type=int, default=1024, help="with --framing paper: retokenised length cap")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="tables and plots of a run folder (into RUN/report)")
    p.add_argument("run_folder", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/report)")
    p.set_defaults(func=cmd_report)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, accepting ``key=value`` overrides before or after the options (the one override parser)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    takes = args.command not in ("evaluate", "import", "export", "report")
    unknown = [a for a in extra if a.startswith("-") or "=" not in a or not takes]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*(args.overrides or []), *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as err:
        print_error(err)
        return 2


def print_error(err: BaseException) -> None:
    """One line on stderr, written at once (under torchrun the processes' lines never run together);
    processes other than rank 0 name their rank."""
    import os

    rank = int(os.environ.get("RANK", "0"))
    line = f"error{f' (rank {rank})' if rank else ''}: {err}".splitlines()[0]
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
