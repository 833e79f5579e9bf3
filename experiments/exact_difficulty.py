"""One trial of the exact testbed's difficulty study: the ``exact`` preset's teacher, trained under a few
overrides, then sampled and scored under the language's law (docs/results.md, the exact testbed).

    python experiments/exact_difficulty.py OUT [key=value ...] [--runs KIND:STEPS:CHURN ...]
    python experiments/exact_difficulty.py runs/d0 language.succ=2.5 flow.p_mean=-1.5 train_teacher.max_steps=400

``key=value`` are the run's own overrides (``python -m fmlm run``'s syntax: ``language.succ``,
``flow.p_mean``, ``network.width``, ``train_teacher.max_steps``, ``train_teacher.optim.lr``, ...). One
training seed (``train_teacher.seed``, default 0), 256 samples per sampler setting (sampling seed 0, w = 1),
the teacher's EMA weights. Prints one JSON line (and appends it to ``OUT/trial.jsonl``): the overrides, the
training wall time, the language's entropy, per sampler setting the excess NLL, bigram KL, topic KL and
unigram entropy, and the true-sample floors at 256 samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from fmlm.config import apply_overrides
from fmlm.data import load_meta
from fmlm.experiment.presets import exact
from fmlm.experiment.run import exact_scorer, prepare_data
from fmlm.experiment.stages import run_stage
from fmlm.samplers import batch_sampler, generate, sampler_for
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import init_distributed

SAMPLES = 256
METRICS = ("excess_nll", "bigram_kl", "topic_kl", "entropy")


def sampler_setting(text: str) -> tuple[str, int, float]:
    """``KIND:STEPS:CHURN`` (``sde:32:1.5``, ``euler:32:0``) -> its three parts, or a one-line error."""
    try:
        kind, steps, churn = text.split(":")
        if kind not in ("sde", "euler"):
            raise ValueError
        return kind, int(steps), float(churn)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KIND:STEPS:CHURN with KIND sde or euler, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the trial folder (the teacher's checkpoint goes to OUT/teacher)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--runs", nargs="+", type=sampler_setting, default=[("sde", 32, 1.5), ("euler", 32, 0.0)],
                        metavar="KIND:STEPS:CHURN", help="sampler settings to score (default: sde:32:1.5 euler:32:0)")
    parser.add_argument("--cache-dir", default="cache")
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(apply_overrides(exact(), list(args.overrides)), cache_dir=args.cache_dir,
                              training_seeds=())
    out = Path(args.out)
    info = init_distributed("cpu")
    start = time.perf_counter()
    data = prepare_data(cfg, info)
    folder = run_stage("teacher", cfg.stage_config("teacher"), data, out / "teacher", info, None, progress=False)
    result = {"overrides": list(args.overrides), "train_s": round(time.perf_counter() - start, 1)}
    meta = load_meta(data)
    length = int(meta["row_len"])
    scorer = exact_scorer(cfg, meta)
    result["entropy_per_token"] = scorer.entropy
    model = ckpt.load_denoiser(folder, "ema", "cpu")
    for kind, steps, churn in args.runs:
        setting = {"kind": kind, "steps": steps, "w": 1.0, "seed": 0, "batch_size": 128}
        if kind == "sde":
            setting["churn"] = churn
        sampler = sampler_for(cfg.flow, setting)
        samples = generate(model, batch_sampler(sampler), sampler, SAMPLES, length, progress=False)
        metrics = scorer.metrics(samples.ids)
        result[f"{kind}:{steps}:{churn:g}"] = {m: round(metrics[m], 4) for m in METRICS}
    result["floor"] = {m: round(v, 4) for m, v in scorer.floor(SAMPLES).items()
                       if m in {f"floor_{k}" for k in METRICS}}
    line = json.dumps(result)
    print(line)
    with open(out / "trial.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
