"""Command line: ``python -m fmlm {prepare,train,sample,evaluate} ...``.

Every command works with no arguments on the embedded offline preset:

    python -m fmlm prepare                         # text -> rows -> cached latents
    python -m fmlm train teacher                   # stage 1 into runs/embedded/stages/teacher
    python -m fmlm train fixed-point               # stage 2 from that teacher
    python -m fmlm sample --n 8                    # 32-step SDE samples of the teacher
    python -m fmlm sample --stage flow-map kind=ctm steps=2 gamma=0.75 w=5
    python -m fmlm evaluate runs/embedded/samples/teacher.jsonl

Model folders (the paper's released checkpoints, or a finished stage of a run):

    python -m fmlm import fmlm_star.ckpt --out models/fmlm-star [--config REFERENCE.yml] [--weights ema|raw]
    python -m fmlm export runs/embedded/stages/flow-map --out models/embedded-flow-map
    python -m fmlm sample --model models/fmlm-star --steps 1 --n 8

Settings are dotted ``key=value`` overrides of the preset's configuration
(``fmlm.experiment.ExperimentConfig``; for ``sample``, of ``SamplerConfig``).
Unknown keys and wrong types are refused with a one-line error. ``train``
runs under ``torchrun`` for DDP.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fmlm.config import ConfigError, apply_overrides
from fmlm.experiment import PRESETS, ExperimentConfig, load_run_config, preset
from fmlm.stages import STAGES, TEACHER_OF

SAMPLER_DEFAULTS = {
    "teacher": {"kind": "sde", "steps": 32, "w": 3.0, "churn": 1.5, "sc_mode": "warm"},
    "teacher-nosc": {"kind": "sde", "steps": 32, "churn": 1.5, "sc_mode": "none"},
    "fixed-point": {"kind": "sde", "steps": 32, "w": 3.0, "churn": 1.5, "sc_mode": "none"},
    "flow-map": {"kind": "ctm", "steps": 4, "w": 5.0, "gamma": 1.0},
    "flow-map-nosc": {"kind": "ctm", "steps": 4, "gamma": 1.0},
}


def _config(args: argparse.Namespace, overrides: list[str]) -> ExperimentConfig:
    """The run folder's stored configuration if it has one, else the preset; then the overrides."""
    from fmlm.pipeline import check_run_folder

    check_run_folder(_run_root(args))
    stored = _run_root(args) / "experiment.json"
    base = load_run_config(stored.parent) if stored.is_file() else preset(args.preset)
    return apply_overrides(base, overrides)


def _run_root(args: argparse.Namespace) -> Path:
    return args.run or Path("runs") / args.preset


def cmd_prepare(args: argparse.Namespace) -> int:
    from fmlm.data import prepare
    from fmlm.train.distributed import resolve_device

    cfg = _config(args, args.overrides)
    print(prepare(cfg.data, Path(cfg.cache_dir), device=str(resolve_device(cfg.device))))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from fmlm.data import prepare
    from fmlm.stages import run_stage
    from fmlm.train.distributed import barrier, init_distributed, shutdown

    cfg = _config(args, args.overrides)
    info = init_distributed(cfg.device)
    if info.is_main:
        prepare(cfg.data, Path(cfg.cache_dir), device=str(info.device))
    barrier()
    data = prepare(cfg.data, Path(cfg.cache_dir), device=str(info.device))
    root = _run_root(args) / "stages"
    teacher = args.teacher
    if teacher is None and args.stage in TEACHER_OF:
        teacher = root / TEACHER_OF[args.stage] / "checkpoint"
    folder = run_stage(args.stage, cfg.stage_config(args.stage), data, root / args.stage, info, teacher)
    shutdown()
    if info.is_main:
        print(folder)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from fmlm.models import import_checkpoint

    out = import_checkpoint(args.checkpoint, args.out, config_path=args.config, weights=args.weights,
                            stage=args.stage, cache_dir=args.cache_dir, overwrite=args.overwrite)
    print(out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fmlm.models import export_checkpoint

    print(export_checkpoint(args.checkpoint, args.out, weights=args.weights, overwrite=args.overwrite))
    return 0


def _sample_model(args: argparse.Namespace) -> int:
    """``sample --model DIR``: the folder's stored sampler setting for ``--steps``, then the overrides."""
    from fmlm.models import load_model, sample_texts
    from fmlm.models.sample import check_output_file, write_samples
    from fmlm.train.distributed import resolve_device

    out = args.out or Path(args.model).expanduser().resolve().parent / "samples" / f"{Path(args.model).name}.jsonl"
    check_output_file(out)
    device = resolve_device(args.device)
    pretrained = load_model(args.model, device=str(device))
    sampler = pretrained.sampler(args.steps, args.overrides)
    samples, texts = sample_texts(pretrained, sampler, args.n, length=args.length, device=device)
    write_samples(out, samples.indices, texts, samples.nfe)
    for text in texts[: args.show]:
        print(f"- {text[:500]}")
    print(f"{args.n} samples of {args.length or pretrained.info.architecture.max_len} tokens, {samples.nfe} network "
          f"evaluations each, {samples.wall_s:.1f} s ({samples.wall_s / args.n:.2f} s per sample) -> {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _sample_model(args)
    from fmlm.data import load_meta, prepare, tokenizer_for
    from fmlm.samplers import SamplerConfig, batch_sampler, generate
    from fmlm.train import checkpoint as ckpt
    from fmlm.train.distributed import resolve_device

    cfg = _config(args, [])
    defaults = [f"{k}={v}" for k, v in SAMPLER_DEFAULTS[args.stage].items()]
    sampler = apply_overrides(SamplerConfig(), defaults + args.overrides)
    folder = args.checkpoint or _run_root(args) / "stages" / args.stage / "checkpoint"
    device = resolve_device(cfg.device)
    model = ckpt.load_denoiser(folder, "ema", device)
    data = prepare(cfg.data, Path(cfg.cache_dir))
    samples = generate(model, batch_sampler(sampler), sampler, args.n, int(load_meta(data)["row_len"]), device=device)
    texts = tokenizer_for(data).decode_batch(samples.ids)
    out = args.out or _run_root(args) / "samples" / f"{args.stage}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for i, text in zip(samples.indices, texts):
            f.write(json.dumps({"index": i, "text": text, "nfe": samples.nfe}) + "\n")
    for text in texts[: args.show]:
        print(f"- {text}")
    print(f"{args.n} samples, {samples.nfe} network evaluations each, {samples.wall_s:.1f} s -> {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fmlm.evaluation.evaluator import load_evaluator
    from fmlm.evaluation.metrics import evaluate_texts
    from fmlm.train.distributed import resolve_device

    cfg = _config(args, [])
    if not args.samples.is_file():
        raise ValueError(f"samples file {args.samples} does not exist (write one with `python -m fmlm sample`)")
    texts = [json.loads(line)["text"] for line in args.samples.read_text().splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"samples file {args.samples} holds no samples")
    evaluator = load_evaluator(args.evaluator or cfg.evaluation.evaluator, cache_dir=Path(cfg.cache_dir),
                               device=resolve_device(cfg.device))
    if args.framing == "paper":
        return _evaluate_like_paper(args, evaluator, texts, cfg.evaluation.score_batch)
    result = evaluate_texts(evaluator, texts, batch_size=cfg.evaluation.score_batch, max_tokens=cfg.evaluation.max_tokens)
    out = args.samples.with_suffix(".scored.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in result.rows()))
    print(json.dumps(result.summary(), indent=2))
    print(f"per-sample scores -> {out}")
    return 0


def _evaluate_like_paper(args: argparse.Namespace, evaluator, texts: list[str], batch_size: int) -> int:
    """``evaluate --framing paper``: the reference's scoring (blank samples dropped, as it does, and kept)
    beside this project's framing, side by side."""
    from fmlm.evaluation.paper_scoring import compare_framings

    result = compare_framings(evaluator, texts, batch_size=batch_size, max_length=args.max_length)
    out = args.samples.with_suffix(".paper.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"evaluator": evaluator.name, "n_samples": len(texts), **result}, indent=2) + "\n")
    tmp.replace(out)
    print(f"{'scoring':<34} {'gen PPL':>10} {'entropy':>8} {'scored':>7}")
    labels = {"paper": "paper (blank samples dropped)", "paper_keep_empty": "paper, blank samples kept",
              "project": "project framing"}
    for key, label in labels.items():
        row = result[key]
        scored = row.get("n_scored", row.get("n_samples"))
        print(f"{label:<34} {row['gen_ppl']:>10.2f} {row['entropy']:>8.3f} {scored:>7}")
    print(f"-> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmlm", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default="embedded", choices=sorted(PRESETS))
        p.add_argument("--run", type=Path, default=None, help="run folder (default: runs/<preset>)")

    p = sub.add_parser("prepare", help="prepare the corpus, rows and cached latents")
    common(p)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one stage (resumes from its checkpoint)")
    common(p)
    p.add_argument("stage", nargs="?", default="teacher", choices=STAGES)
    p.add_argument("--teacher", type=Path, default=None, help="checkpoint of the stage this one distils")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample text from a trained stage or a model folder")
    common(p)
    p.add_argument("--stage", default="teacher", choices=STAGES)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--model", default=None, help="a model folder or hub repo id (its stored sampler settings)")
    p.add_argument("--steps", type=int, default=None, help="with --model: the stored setting for this many steps")
    p.add_argument("--length", type=int, default=None, help="with --model: tokens per sample (default: its max)")
    p.add_argument("--device", default="auto", help="with --model: auto, cpu, cuda or cuda:N")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--show", type=int, default=3, help="samples to print")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="SamplerConfig fields, e.g. steps=4")
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
    common(p)
    p.add_argument("samples", type=Path, nargs="?", default=Path("runs/embedded/samples/teacher.jsonl"))
    p.add_argument("--evaluator", default=None, help="default: the preset's evaluator (paper: gpt2-large)")
    p.add_argument("--framing", default="project", choices=["project", "paper"],
                   help="paper: the reference's exact scoring (dropped and kept blank samples) beside ours")
    p.add_argument("--max-length", type=int, default=1024, help="with --framing paper: retokenised length cap")
    p.set_defaults(func=cmd_evaluate)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, accepting ``key=value`` overrides before or after the options.

    argparse consumes a command's positionals in one run, so overrides written after
    ``--run``/``--teacher`` would be rejected; they are collected here instead.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
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
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
