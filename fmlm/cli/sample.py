"""``sample``: one command for both sources of a model, checked the same way before any work.

    python -m fmlm sample --stage flow-map --steps 2 --n 8      # a run's stage checkpoint
    python -m fmlm sample --model models/fmlm-star --steps 1    # a model folder or hub repo id

Either way the sampler is the source's stored setting for ``--steps`` with the model's own flow
constants, then the ``key=value`` overrides; samples go to a JSON-lines file (``--out``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fmlm.cli.options import experiment_config, run_root


def cmd_sample(args: argparse.Namespace) -> int:
    """``sample --stage S`` (a run's checkpoint) or ``sample --model DIR`` (a model folder)."""
    if args.show < 0:
        raise ValueError(f"--show: must be >= 0 (samples to print), got {args.show}")
    if args.n < 1:
        raise ValueError(f"--n: must be >= 1, got {args.n}")
    if args.model is not None:
        if args.checkpoint is not None:
            raise ValueError("--model and --checkpoint name two models; give one of them")
        return sample_model(args)
    if args.length is not None:
        raise ValueError("--length: only with --model (a run's stage samples rows of its cache's length)")
    return sample_stage(args)


def sample_stage(args: argparse.Namespace) -> int:
    """``sample --stage S``: the run's checkpoint of stage ``S``, sampled with its own flow constants."""
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


def sample_model(args: argparse.Namespace) -> int:
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
