"""Peak memory per step and the largest batch it allows (``training.py --derive-length``).

Memory derivation (``--derive-length``, default 1024 for ``--preset paper``): the per-sample
memory of a step is the slope, between two batch sizes (``--memory-batches``), of the peak
while the loss runs with gradients enabled (before backward: the activations kept for
backward and the no-grad passes' transients; at small batches a whole step's peak is the
gradients', the same at both sizes), scaled by tokens to the derived length (activations
grow with tokens; attention is the fused kernel, with no n^2 scores kept); the derived
memory adds it to all the gradients at once (conservative: backward frees activations as
gradients appear). The fixed part is counted on paper:
weights, gradients, optimiser states and EMA of the student (4 bytes each, AdamW 2 states,
Muon 1 on the hidden matrices; the preset's optimiser, whatever ``--optimizer`` timed) plus the
frozen teacher's weights. The largest batch that fits
``--derive-memory-gb`` GB is derived from these, not measured on a GPU.

"""

from __future__ import annotations


import torch

from bench_common import (
    fmt, mib, peak_memory,
)
from fmlm.nn import count_parameters
from fmlm.reports.formatting import markdown_table
from fmlm.train.optim import OptimConfig, split_parameters
from train_stages import Stage, loss_forward_fn, step_fn


GB = 1e9


MEMORY_STEPS = 2  # steps per batch size of the memory slope, the highest peak kept (the passes vary per step)


def fixed_bytes(stage: Stage, optim: OptimConfig) -> int:
    """Weights, gradients, optimiser states and EMA of the student plus the frozen teacher's weights (fp32)."""
    p = count_parameters(stage.model)
    if optim.optimizer == "muon":
        hidden = sum(x.numel() for x in split_parameters(stage.model)[0])
        states = 4 * hidden + 8 * (p - hidden)
    else:
        states = 8 * p
    teacher = sum(count_parameters(m) for name, m in stage.watched.items() if name == "teacher")
    return 4 * p + 4 * p + states + 4 * p + 4 * teacher


def derive_batch(per_sample: float, fixed: int, memory_gb: float) -> int | None:
    """Largest batch with ``fixed + batch * per_sample <= memory_gb`` GB (None when per_sample is not positive)."""
    if not per_sample or per_sample <= 0:
        return None
    return max(int((memory_gb * GB - fixed) // per_sample), 0)


def memory_derivation(stages, exp, args, device, make_batch) -> list[dict]:
    """Per stage: measured peaks at two batch sizes, their slope per sample, scaled to the derived length."""
    lo, hi = args.memory_batches
    rows = []
    for stage in stages:
        peaks = {}
        step_peaks = {}
        for b in (lo, hi):
            step = step_fn(stage, make_batch(b), device, args.precision)
            step()  # optimiser states exist before the measured runs, as in training
            forward = loss_forward_fn(stage, make_batch(b), device, args.precision)
            measured = [peak_memory(forward, device) for _ in range(MEMORY_STEPS)]
            peaks[b] = None if None in measured else max(measured)
            step_peaks[str(b)] = peak_memory(step, device)
        row = {"stage": stage.name, "peak_bytes": {str(b): peaks[b] for b in peaks}, "step_peak_bytes": step_peaks}
        if None not in peaks.values():
            slope = (peaks[hi] - peaks[lo]) / (hi - lo)
            prefix = stage.model.config.prefix_len
            scale = (args.derive_length + prefix) / (args.length + prefix)
            per_sample = slope * scale
            fixed = fixed_bytes(stage, exp.train_teacher.optim)  # the preset's own optimiser, as a GPU run uses
            row.update(per_sample_bytes_measured=slope, per_sample_bytes_derived=per_sample, fixed_bytes=fixed,
                       derived_max_batch=derive_batch(per_sample, fixed, args.derive_memory_gb))
        rows.append(row)
    return rows


def memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated during one step, above the memory allocated before it"
    return ("peak CPU tensor memory allocated during one step above what was live before it (weights, optimiser "
            "states; torch.profiler profile_memory=True, the allocator's total_allocated); not the RSS")


def memory_lines(m: dict) -> list[str]:
    rows = [{
        "stage": r["stage"],
        **{f"step peak MiB at batch {b}": fmt(mib(v), 1) for b, v in r["step_peak_bytes"].items()},
        **{f"loss-forward peak MiB at batch {b}": fmt(mib(v), 1) for b, v in r["peak_bytes"].items()},
        "per sample MiB (measured length)": fmt(mib(r.get("per_sample_bytes_measured")), 1),
        f"per sample MiB at length {m['length']}": fmt(mib(r.get("per_sample_bytes_derived")), 1),
        "fixed GB (on paper)": fmt(None if "fixed_bytes" not in r else r["fixed_bytes"] / GB, 2),
        f"derived largest batch in {m['memory_gb']:g} GB": "-" if r.get("derived_max_batch") is None
        else str(r["derived_max_batch"]),
    } for r in m["stages"]]
    return [f"## Largest batch at length {m['length']} (derived, not measured on a GPU)", "",
            f"Per-sample memory: the slope of the measured loss-forward peak (with gradients, before backward; the "
            f"higher of {MEMORY_STEPS} runs) between batches {m['batches'][0]} and "
            f"{m['batches'][1]}, scaled by tokens (length + prefix) to length {m['length']}; fp32 activations as "
            "measured here (bf16 autocast on a GPU stores many activations in half the bytes, so the batch is a "
            "conservative estimate). Fixed part counted on paper (module docstring). GB = 1e9 bytes.", "",
            markdown_table(rows), ""]
