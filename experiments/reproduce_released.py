"""Check the paper's table with its released models: FMLM* at 1, 2 and 4 steps (and ELF and ELF* at
32 steps when given), sampled with each model's stored paper setting, scored as the paper scores them
(and two other ways), reported beside the paper's quoted numbers.

    python -m fmlm import fmlm_star.ckpt --out models/fmlm-star
    python -m fmlm import elf.ckpt --out models/elf
    python -m fmlm import elf_star.ckpt --out models/elf-star
    python experiments/reproduce_released.py --flow-map models/fmlm-star --teacher models/elf \\
        --fixed-point models/elf-star --run-dir runs/released
    torchrun --nproc_per_node 8 experiments/reproduce_released.py --flow-map models/fmlm-star ... --run-dir runs/released

Options torchrun's own parser could take for its own are named so it cannot: --run-dir (not --run),
--n-samples (``--n`` is accepted too, but only without torchrun).

Every input is checked (folders, stages, counts, length, evaluator, run folder) before the first sample.
Under torchrun each setting's samples are split over the processes; the sample set is the same for any
number of them. A setting already in RUN/results.jsonl is skipped, so a killed job continues when
started again. The report (with report/released_table.md) is written to RUN/report.
The logic lives in ``fmlm.reproduce.released`` and ``fmlm.reproduce.shards``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlm.reproduce import released as rel
from fmlm.reproduce import shards
from fmlm.experiment.run_folder import RESULTS_FILE, TIMING_FILE, recorded_ids
from fmlm.files import append_jsonl, read_json_dict, write_json_atomic, write_jsonl_atomic


def _read_optional(path: Path) -> dict | None:
    return read_json_dict(path) if path.is_file() else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--flow-map", required=True, help="FMLM* model folder (python -m fmlm import fmlm_star.ckpt)")
    parser.add_argument("--teacher", default=None, help="ELF model folder (elf.ckpt), sampled at its stored '32'")
    parser.add_argument("--fixed-point", default=None, help="ELF* model folder (elf_star.ckpt), at its stored '32'")
    parser.add_argument("--run-dir", type=Path, required=True, help="run folder (results, samples, report)")
    parser.add_argument("--n-samples", "--n", dest="n", type=int, default=1024,
                        help="samples per setting (paper: 1024); under torchrun write --n-samples (its own parser "
                             "takes --n for an abbreviation of its options)")
    parser.add_argument("--length", type=int, default=1024, help="tokens per sample (paper: 1024)")
    parser.add_argument("--evaluator", default="gpt2-large", help="hub name or local folder (paper: gpt2-large)")
    parser.add_argument("--sample-batch", type=int, default=32, help="samples per sampler batch")
    parser.add_argument("--score-batch", type=int, default=32, help="texts per evaluator batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: one GPU per process)")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"), help="cache of the embedded evaluator")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


@dataclass
class Plan:
    """What a checked call will do."""

    run_dir: Path
    models: dict[str, Any]
    todo: list  # rel.Setting not yet recorded
    skipped: list
    experiment: dict
    evaluator: Any  # rank 0 only (None elsewhere)
    timing: dict | None


def prepare(args: argparse.Namespace, info) -> Plan:
    """Every check, in the order that costs least; nothing is written."""
    for name, value in (("--n-samples", args.n), ("--sample-batch", args.sample_batch),
                        ("--score-batch", args.score_batch), ("--length", args.length)):
        shards.check_count(name, value)
    run_dir = rel.check_run_dir(args.run_dir)
    models = rel.load_released({"flow-map": args.flow_map, "teacher": args.teacher, "fixed-point": args.fixed_point},
                               device=info.device)
    rel.check_length(args.length, models)
    settings = rel.released_settings(models, seed=args.seed, batch_size=args.sample_batch)
    new = rel.experiment_record(models, evaluator=args.evaluator, n=args.n, length=args.length, seed=args.seed)
    experiment = rel.merge_experiment(_read_optional(run_dir / rel.EXPERIMENT_FILE), new)
    done = recorded_ids(run_dir)
    timing = _read_optional(run_dir / TIMING_FILE)
    evaluator = None
    if info.is_main:  # the scorer: loaded now, so a wrong name costs no sampling
        from fmlm.evaluation.evaluator import load_evaluator

        evaluator = load_evaluator(args.evaluator, cache_dir=args.cache_dir, device=info.device)
        rel.check_evaluator(evaluator)
    return Plan(run_dir, models, [s for s in settings if s.id not in done], [s for s in settings if s.id in done],
                experiment, evaluator, timing)


def finish_setting(plan: Plan, setting, args: argparse.Namespace, info, sample_s: float, wall_s: float) -> None:
    """Rank 0: merge the shards, score, write the per-sample file, append the record, update timing.json."""
    rows = shards.merge_shards(plan.run_dir, setting.id, info.world_size, args.n)
    plan.timing = rel.timing_with(plan.timing, f"sample {setting.id}", sample_s)
    write_json_atomic(plan.run_dir / TIMING_FILE, plan.timing, sort_keys=False)
    start = time.perf_counter()
    framings, paper = rel.score_framings(plan.evaluator, [r["text"] for r in rows], batch_size=args.score_batch,
                                         progress=not args.no_progress)
    write_jsonl_atomic(shards.samples_path(plan.run_dir, setting.id), rel.scored_rows(rows, paper))
    record = rel.build_record(setting, framings, n_samples=args.n, nfe=int(rows[0]["nfe"]), wall_s=wall_s,
                              evaluator=args.evaluator, length=args.length)
    append_jsonl(plan.run_dir / RESULTS_FILE, record)
    plan.timing = rel.timing_with(plan.timing, f"score {setting.id}", time.perf_counter() - start)
    write_json_atomic(plan.run_dir / TIMING_FILE, plan.timing, sort_keys=False)
    print(f"{setting.id}: gen PPL {_num(record['gen_ppl'])}, entropy {_num(record['entropy'], 3)} (paper scoring, "
          f"{record['n_scored']} of {args.n} scored); blank kept {_num(record['gen_ppl_keep_empty'])}; "
          f"project framing {_num(record['gen_ppl_project'])}", flush=True)


def _num(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def run(plan: Plan, args: argparse.Namespace, info) -> bool:
    """Sample every setting still to do (each rank its shard), rank 0 scoring and recording each; True
    when every rank finished. Rank 0's failure is seen by all at the next collective."""
    from fmlm.train.distributed import barrier

    progress = info.is_main and not args.no_progress
    ok = True
    for setting in plan.todo:
        start = time.perf_counter()
        if ok:
            pretrained = plan.models[setting.stage]
            shard = shards.sample_shard(pretrained, setting.sampler, args.n, info.rank, info.world_size,
                                     length=args.length, device=info.device, progress=progress)
            shards.write_shard(plan.run_dir, setting.id, info.rank, shard)
        barrier()  # every shard is written
        wall_s = shards.sum_over_ranks(shard.wall_s if ok else 0.0, info.device)
        if not shards.all_agree(ok, info.device):
            return False
        if info.is_main:
            try:
                finish_setting(plan, setting, args, info, time.perf_counter() - start, wall_s)
            except ValueError as err:
                print(f"error: {err}".splitlines()[0], file=sys.stderr)
                ok = False
    return shards.all_agree(ok, info.device)


def print_summary(run_dir: Path) -> None:
    """One line per record: model, steps, the three framings, samples scored."""
    from fmlm.reports import load_results

    table = load_results(run_dir)
    if table.empty:
        return
    cols = [c for c in ("label", "sampler", "steps", "nfe", "gen_ppl", "entropy", "gen_ppl_keep_empty",
                        "gen_ppl_project", "entropy_project", "n_scored", "n_samples") if c in table]
    print("\n" + table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main(argv: list[str] | None = None) -> int:
    from fmlm.train.distributed import init_distributed, shutdown

    args = parse_args(argv)
    try:
        info = init_distributed(args.device)
    except ValueError as err:  # a bad --device (ConfigError is a ValueError)
        print(f"error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    problem = None
    try:
        plan = prepare(args, info)
    except ValueError as err:
        problem = str(err)
    if not shards.all_agree(problem is None, info.device):
        if problem is not None:
            print(f"error: {problem}".splitlines()[0], file=sys.stderr)
        shutdown()
        return 2
    if info.is_main:
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(plan.run_dir / rel.EXPERIMENT_FILE, plan.experiment, sort_keys=False)
        for setting in plan.skipped:
            print(f"{setting.id}: already recorded, skipped")
        print(f"{len(plan.todo)} settings to sample, {args.n} samples each, on {info.world_size} process"
              f"{'es' if info.world_size > 1 else ''} ({info.device})", flush=True)
    ok = run(plan, args, info)
    shutdown()
    if not ok:
        return 2
    if not info.is_main:
        return 0
    from fmlm.reports.build import build_report

    print_summary(plan.run_dir)
    report = build_report(plan.run_dir)
    print(f"\nrun folder: {plan.run_dir}\nreport:     {report}\ntable:      {report.parent / 'released_table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
