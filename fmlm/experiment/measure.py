"""Sample, decode, score, and write the result files of a run folder.

Every evaluated sample set becomes one record in ``<run>/results.jsonl`` and
one file ``<run>/eval/<id>.jsonl`` of per-sample records (text, scored tokens,
NLL, PPL, entropy). A record whose id is already in ``results.jsonl`` is not
measured again, so an interrupted evaluation continues where it stopped.
The reports read these files and nothing else (the contract: ``fmlm.experiment.run_folder``).

Besides gen PPL and entropy every record carries the distribution metrics of
``fmlm.evaluation.mauve_score.distribution_metrics`` (MAUVE, distinct-1/2/3,
rep-4, empty and single-token shares). MAUVE compares a sample set with
held-out text (``with_references``): model samples with the reference rows
(the texts of the record ``reference_data_0``); texts made FROM those rows (the
reference itself, and the decoder reconstructions, sweep "decode") with a
disjoint held-out slice, the validation rows the reference does not use, less
any row the set itself was made from, so no set is ever compared with itself
or with its own source rows. When the split has no row left for that slice,
MAUVE of those records is null and ``mauve_note`` says it was not measured.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fmlm.data import LatentRows, TextDecoder
from fmlm.evaluation.evaluator import Evaluator
from fmlm.evaluation.mauve_score import ReferenceSet, distribution_metrics
from fmlm.evaluation.metrics import evaluate_texts
from fmlm.experiment.run_folder import (DECODE_SWEEP, EVAL_DIR, MODEL_LABELS, NOISED_DECODE_TIMES, RESULTS_FILE,
                                       record_id, recorded_ids)
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
    reference: ReferenceSet | None = None  # held-out texts model samples are compared with (MAUVE)
    holdout: ReferenceSet | None = None  # disjoint held-out texts, for the texts made from the reference rows


NO_REFERENCE_NOTE = "not measured: no held-out reference texts were given to the scoring"
NO_HOLDOUT_NOTE = ("not measured: the validation split has no row outside the reference's rows, and a set made "
                   "from those rows is never compared with them")


def _number(value: Any) -> Any:
    """A float as JSON can hold it: non-finite values as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _distribution(scoring: Scoring, texts: list[str], against: str, own_rows: list[int], features) -> dict[str, Any]:
    """``distribution_metrics`` of ``texts`` against ``scoring.reference`` or ``scoring.holdout`` (``against``),
    without the held-out rows ``texts`` were made from (``own_rows``)."""
    reference = scoring.reference if against == "reference" else scoring.holdout
    reference = reference.excluding(own_rows) if reference is not None else None
    start = time.perf_counter()
    out = distribution_metrics(scoring.evaluator, texts, reference, batch_size=scoring.score_batch,
                               max_tokens=scoring.max_tokens, features=features)
    out = {k: _number(v) for k, v in out.items()}
    out["distribution_wall_s"] = time.perf_counter() - start
    if reference is None:
        out["mauve_note"] = NO_REFERENCE_NOTE if against == "reference" else NO_HOLDOUT_NOTE
    else:
        out["mauve_against"] = against
    return out


def _write(scoring: Scoring, record: dict[str, Any], texts: list[str], extra: list[dict] | None = None,
           against: str = "reference") -> dict:
    """Score ``texts`` (gen PPL, entropy, the distribution metrics against ``against``: "reference" for
    model samples, "holdout" for texts made from held-out rows, whose own rows ``extra[i]["index"]`` are
    then left out of the comparison), write the per-sample file, append the record; returns the record."""
    start = time.perf_counter()
    result = evaluate_texts(
        scoring.evaluator, texts, batch_size=scoring.score_batch, max_tokens=scoring.max_tokens,
        progress=scoring.progress, features=True,  # the MAUVE features come from the same forward pass
    )
    record["score_wall_s"] = time.perf_counter() - start
    own_rows = [e["index"] for e in extra] if extra and against == "holdout" else []
    record.update(_distribution(scoring, texts, against, own_rows, result.features))
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


def setting_id(model_name: str, model: nn.Module, cfg: SamplerConfig, sweep: str | None = None) -> str:
    """The record id of ``model`` sampled with ``cfg`` (w is part of it when the model has a guidance bank)."""
    return record_id(model_name, cfg, model.config.guidance_tokens > 0, sweep)


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
    rid = setting_id(model_name, model, cfg, sweep)
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


def _holdout_rows(rows: LatentRows, n_samples: int) -> torch.Tensor:
    """Indices of held-out rows NOT among ``_reference_rows``: as many as the reference has (or all that are
    left), evenly spread over the rest of the split; empty when none is left."""
    taken = set(_reference_rows(rows, n_samples).tolist())
    rest = torch.tensor([i for i in range(len(rows)) if i not in taken], dtype=torch.long)
    n = min(len(taken), len(rest))
    if n == 0:
        return rest[:0]
    return rest[torch.linspace(0, len(rest) - 1, n).round().long().unique()]


def with_references(scoring: Scoring, rows: LatentRows, n_samples: int) -> Scoring:
    """``scoring`` with the held-out texts MAUVE compares against: the reference rows' texts
    (``_reference_rows``) and the disjoint slice (``_holdout_rows``; None when the split has no row left).
    Their features are computed on first use."""
    def texts(idx: torch.Tensor) -> ReferenceSet | None:
        if len(idx) == 0:
            return None
        ids, _ = rows.batch(idx.numpy())
        return ReferenceSet(scoring.decoder.decode_batch(ids), rows=idx.tolist())

    return dataclasses.replace(scoring, reference=texts(_reference_rows(rows, n_samples)),
                               holdout=texts(_holdout_rows(rows, n_samples)))


def _data_record(rid: str, model: str, sampler: str, nfe: int, n_samples: int, wall_s: float,
                 sweep: str | None) -> dict[str, Any]:
    return {
        "id": rid, "model": model, "label": MODEL_LABELS.get(model, model), "sampler": sampler, "steps": 0,
        "w": None, "gamma": None, "churn": None, "sc_mode": None, "fp_iterations": None, "fp_solver": None,
        "grid": None, "seed": 0, "n_samples": n_samples, "nfe": nfe, "wall_s": wall_s,
        "wall_s_per_sample": wall_s / n_samples, "sweep": sweep,
    }


def measure_reference(scoring: Scoring, rows: LatentRows, n_samples: int) -> dict[str, Any] | None:
    """Held-out rows through the same decode -> retokenise -> score path: the line a perfect model reaches.

    Its MAUVE is against the disjoint held-out slice (``Scoring.holdout``), never against itself."""
    rid = "reference_data_0"
    if rid in recorded_ids(scoring.run_dir):
        return None
    if len(rows) < n_samples:
        print(f"note: the validation split has {len(rows)} rows; the reference uses all of them, not {n_samples}")
    idx = _reference_rows(rows, n_samples)
    ids, _ = rows.batch(idx.numpy())
    record = _data_record(rid, "reference", "data", 0, len(idx), 0.0, None)
    return _write(scoring, record, scoring.decoder.decode_batch(ids), [{"index": int(i)} for i in idx],
                  against="holdout")


NOISE_SEED = 0  # the noise of the noised decodes: the same for every model of a run


@torch.no_grad()
def measure_reconstruction(scoring: Scoring, model_name: str, model: nn.Module, rows: LatentRows,
                           n_samples: int, *, lam: float) -> dict[str, Any] | None:
    """Held-out latents, spread over the split like the reference's rows, through ``model``'s decoder head
    (one forward, no sampling).

    The text a perfect latent sampler would reach with this model's decoder: its gen PPL and
    entropy bound the model's samples, and ``token_accuracy`` is the fraction of tokens decoded
    back to the held-out ids. ``token_accuracy_t<t>``: the same on ``z_t = t x0 + (1 - t) lam eps`` for each
    t of ``NOISED_DECODE_TIMES`` (noise seeded by ``NOISE_SEED``, decoded as it is). MAUVE: against the
    disjoint held-out slice, as the reference's.
    """
    rid = f"{model_name}_decode_0_s0"
    if rid in recorded_ids(scoring.run_dir):
        return None
    idx = _reference_rows(rows, n_samples)
    ids, x0 = rows.batch(idx.numpy())
    x0, ids = x0.to(scoring.device), ids.cpu()

    def decoded_from(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([decode(model, z[a : a + scoring.score_batch]).cpu()
                          for a in range(0, len(idx), scoring.score_batch)])

    start = time.perf_counter()
    decoded = decoded_from(x0)
    record = _data_record(rid, model_name, "decode", 1, len(idx), time.perf_counter() - start, DECODE_SWEEP)
    record["token_accuracy"] = float((decoded == ids).float().mean())
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(NOISE_SEED)).to(x0)
    for t in NOISED_DECODE_TIMES:
        noised = decoded_from(t * x0 + (1 - t) * lam * eps)
        record[f"token_accuracy_t{t:g}"] = float((noised == ids).float().mean())
    return _write(scoring, record, scoring.decoder.decode_batch(decoded), [{"index": int(i)} for i in idx],
                  against="holdout")
