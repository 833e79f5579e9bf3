"""The commands that work on model folders and samples files: ``import``, ``export`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fmlm.cli.options import experiment_config
from fmlm.files import read_jsonl, write_json_atomic


def cmd_import(args: argparse.Namespace) -> int:
    from fmlm.models import import_checkpoint

    print(import_checkpoint(args.checkpoint, args.out, config_path=args.config, weights=args.weights,
                            stage=args.stage, cache_dir=args.cache_dir, overwrite=args.overwrite))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fmlm.experiment.export import export_checkpoint

    print(export_checkpoint(args.checkpoint, args.out, weights=args.weights, overwrite=args.overwrite))
    return 0


def read_sample_texts(path: Path) -> list[str]:
    """The ``text`` of every line of a samples file (one-line errors naming the file)."""
    if not path.is_file():
        raise ValueError(f"samples file {path} does not exist (write one with `python -m fmlm sample`)")
    records, _ = read_jsonl(path, strict=True)
    missing = [n for n, r in records if not isinstance(r.get("text"), str)]
    if missing:
        raise ValueError(f"{path}:{missing[0]}: a samples line needs a 'text' string")
    if not records:
        raise ValueError(f"samples file {path} holds no samples")
    return [r["text"] for _, r in records]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fmlm.evaluation.evaluator import load_evaluator
    from fmlm.evaluation.metrics import evaluate_texts
    from fmlm.files import write_jsonl_atomic
    from fmlm.train.distributed import resolve_device

    if isinstance(args.max_length, bool) or args.max_length < 2:  # checked before the evaluator loads
        raise ValueError(f"--max-length: must be >= 2 (one context token and one scored), got {args.max_length}")
    cfg = experiment_config(args)
    texts = read_sample_texts(args.samples)
    evaluator = load_evaluator(args.evaluator or cfg.evaluation.evaluator, cache_dir=Path(cfg.cache_dir),
                               device=resolve_device(args.device))
    if args.framing == "paper":
        return _evaluate_like_paper(args, evaluator, texts, cfg.evaluation.score_batch)
    result = evaluate_texts(evaluator, texts, batch_size=cfg.evaluation.score_batch, max_tokens=cfg.evaluation.max_tokens)
    out = args.samples.with_suffix(".scored.jsonl")
    write_jsonl_atomic(out, result.rows())
    print(json.dumps(result.summary(), indent=2))
    print(f"per-sample scores -> {out}")
    return 0


def _evaluate_like_paper(args: argparse.Namespace, evaluator, texts: list[str], batch_size: int) -> int:
    """``evaluate --framing paper``: the reference's scoring (blank samples dropped, as it does, and kept)
    beside this project's framing, side by side."""
    from fmlm.evaluation.paper_scoring import compare_framings

    result = compare_framings(evaluator, texts, batch_size=batch_size, max_length=args.max_length)
    out = args.samples.with_suffix(".paper.json")
    write_json_atomic(out, {"evaluator": evaluator.name, "n_samples": len(texts), **result}, sort_keys=False)
    print(f"{'scoring':<34} {'gen PPL':>10} {'entropy':>8} {'scored':>7}")
    labels = {"paper": "paper (blank samples dropped)", "paper_keep_empty": "paper, blank samples kept",
              "project": "project framing"}
    for key, label in labels.items():
        row = result[key]
        scored = row.get("n_scored", row.get("n_samples"))
        print(f"{label:<34} {row['gen_ppl']:>10.2f} {row['entropy']:>8.3f} {scored:>7}")
    print(f"-> {out}")
    return 0
