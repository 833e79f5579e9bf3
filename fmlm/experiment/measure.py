"""Sample, decode, score, and write the result files of a run folder.

Every evaluated sample set becomes one record in ``<run>/results.jsonl`` and
one file ``<run>/eval/<id>.jsonl`` of per-sample records (text, scored tokens,
NLL, PPL, entropy). A record whose id is already in ``results.jsonl`` is not
measured again, so an interrupted evaluation continues where it stopped.
The reports read these files and nothing else (the contract: ``fmlm.experiment.run_folder``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fmlm.data import LatentRows, TextDecoder
from fmlm.evaluation.evaluator import Evaluator
from fmlm.evaluation.metrics import evaluate_texts
from fmlm.experiment.run_folder import DECODE_SWEEP, EVAL_DIR, MODEL_LABELS, RESULTS_FILE, record_id, recorded_ids
from fmlm.files import append_jsonl, write_jsonl_atomic
from fmlm.samplers import SamplerConfig, batch_sampler, decode, generate


@dataclass(frozen=True)
class Scoring:
    """Where and how sample sets are scored."""

    run_dir: Path
    evaluator: Evaluator
    decoder: TextDecoder
    length: int  # tokens per sample (the data's row length)
    score_batch: int
    max_tokens: int
    device: torch.device
    progress: bool = True


def _write(scoring: Scoring, record: dict[str, Any], texts: list[str], extra: list[dict] | None = None) -> dict:
    """Score ``texts``, write the per-sample file, append the record; returns the finished record."""
    start = time.perf_counter()
    result = evaluate_texts(
        scoring.evaluator, texts, batch_size=scoring.score_batch, max_tokens=scoring.max_tokens,
        progress=scoring.progress,
    )
    record["score_wall_s"] = time.perf_counter() - start
    rows = result.rows()
    for i, row in enumerate(rows):
        row["index"] = extra[i]["index"] if extra else i
    write_jsonl_atomic(scoring.run_dir / EVAL_DIR / f"{record['id']}.jsonl", rows)
    record.update(
        gen_ppl=result.gen_ppl if math.isfinite(result.gen_ppl) else str(result.gen_ppl),
        entropy=result.entropy, total_tokens=result.total_tokens, n_truncated=result.n_truncated,
        samples_file=f"{EVAL_DIR}/{record['id']}.jsonl",
    )
    append_jsonl(scoring.run_dir / RESULTS_FILE, record)
    return record


def measure_model(
    scoring: Scoring,
    model_name: str,
    model: nn.Module,
    cfg: SamplerConfig,
    n_samples: int,
    sweep: str | None = None,
) -> dict[str, Any] | None:
    """Sample ``n_samples`` with ``cfg``, decode, score and record them (skipped if already recorded)."""
    guided = model.config.guidance_tokens > 0
    rid = record_id(model_name, cfg, guided, sweep)
    if rid in recorded_ids(scoring.run_dir):
        return None
    samples = generate(
        model, batch_sampler(cfg), cfg, n_samples, scoring.length, device=scoring.device,
        progress=scoring.progress, desc=rid,
    )
    texts = scoring.decoder.decode_batch(samples.ids)
    flow = cfg.kind in ("euler", "sde")
    record = {
        "id": rid, "model": model_name, "label": MODEL_LABELS.get(model_name, model_name), "sampler": cfg.kind,
        "steps": cfg.steps, "w": cfg.w if guided else None,
        "gamma": cfg.gamma if cfg.kind == "ctm" else None,
        "churn": cfg.churn if cfg.kind == "sde" else None,
        "sc_mode": cfg.sc_mode if flow else None,
        "fp_iterations": cfg.fp_iterations if flow and cfg.sc_mode == "cold" else None,
        "fp_solver": cfg.fp_solver if flow and cfg.sc_mode == "cold" else None,
        "grid": cfg.grid, "seed": cfg.seed, "n_samples": n_samples, "nfe": samples.nfe,
        "wall_s": samples.wall_s, "wall_s_per_sample": samples.wall_s / n_samples, "sweep": sweep,
    }
    return _write(scoring, record, texts, [{"index": i} for i in samples.indices])


def _reference_rows(rows: LatentRows, n_samples: int) -> torch.Tensor:
    """Indices of the held-out rows the reference and the reconstructions use (evenly spread, at most all)."""
    n = min(n_samples, len(rows))
    return torch.linspace(0, len(rows) - 1, n).round().long().unique()


def _data_record(rid: str, model: str, sampler: str, nfe: int, n_samples: int, wall_s: float,
                 sweep: str | None) -> dict[str, Any]:
    return {
        "id": rid, "model": model, "label": MODEL_LABELS.get(model, model), "sampler": sampler, "steps": 0,
        "w": None, "gamma": None, "churn": None, "sc_mode": None, "fp_iterations": None, "fp_solver": None,
        "grid": None, "seed": 0, "n_samples": n_samples, "nfe": nfe, "wall_s": wall_s,
        "wall_s_per_sample": wall_s / n_samples, "sweep": sweep,
    }


def measure_reference(scoring: Scoring, rows: LatentRows, n_samples: int) -> dict[str, Any] | None:
    """Held-out rows through the same decode -> retokenise -> score path: the line a perfect model reaches."""
    rid = "reference_data_0"
    if rid in recorded_ids(scoring.run_dir):
        return None
    if len(rows) < n_samples:
        print(f"note: the validation split has {len(rows)} rows; the reference uses all of them, not {n_samples}")
    idx = _reference_rows(rows, n_samples)
    ids, _ = rows.batch(idx.numpy())
    record = _data_record(rid, "reference", "data", 0, len(idx), 0.0, None)
    return _write(scoring, record, scoring.decoder.decode_batch(ids), [{"index": int(i)} for i in idx])


@torch.no_grad()
def measure_reconstruction(scoring: Scoring, model_name: str, model: nn.Module, rows: LatentRows,
                           n_samples: int) -> dict[str, Any] | None:
    """Held-out latents, spread over the split like the reference's rows, through ``model``'s decoder head
    (one forward, no sampling).

    The text a perfect latent sampler would reach with this model's decoder: its gen PPL and
    entropy bound the model's samples, and ``token_accuracy`` is the fraction of tokens decoded
    back to the held-out ids.
    """
    rid = f"{model_name}_decode_0_s0"
    if rid in recorded_ids(scoring.run_dir):
        return None
    idx = _reference_rows(rows, n_samples)
    ids, x0 = rows.batch(idx.numpy())
    start = time.perf_counter()
    decoded = torch.cat([decode(model, x0[a : a + scoring.score_batch].to(scoring.device)).cpu()
                         for a in range(0, len(idx), scoring.score_batch)])
    record = _data_record(rid, model_name, "decode", 1, len(idx), time.perf_counter() - start, DECODE_SWEEP)
    record["token_accuracy"] = float((decoded == ids.cpu()).float().mean())
    return _write(scoring, record, scoring.decoder.decode_batch(decoded), [{"index": int(i)} for i in idx])
