"""Part 2, training steps: the teacher, ELF* (with its K-pass teacher trajectory) and FMLM* at the preset's
row length, each at a small batch and at the largest batch the README's memory derivation predicts for
this device's memory; then a fixed batch whose loss must fall.

A step is ``benchmarks/train_stages.py``'s (``step_fn``: the stage's loss under the run's precision,
backward, clipping, the optimisers, the EMA), on its stages (``build_stages``, random
networks). Per case: the median step time of ``timed_steps`` after a warm-up, tokens/s, the model
FLOPs of one step (``train_flops.PassLog``, the architecture's formula) and the MFU against the
device's dense bf16 peak (``train_flops.peak_tflops``), and on CUDA the peak of
``torch.cuda.max_memory_allocated`` over the case with only that stage's networks on the device (the
others wait on the CPU).

Prediction (``predictions``): the last paper run of ``benchmarks/results/training_cpu.json``, as the
README reads it: per sample ``per_sample_bytes_derived`` (1024 tokens; for ELF* every row warm: the
batch-1 peak alone, scaled by the same tokens ratio), plus ``fixed_bytes`` (weights, gradients,
optimiser states, EMA, the frozen teacher), so the largest batch in M bytes is
floor((M - fixed) / per_sample) (``train_memory.derive_batch``) and its predicted peak fixed + batch x
per_sample. M is the device's total memory. A batch that does not fit is recorded, and the case is
retried once at ``RETRY_FRACTION`` of it.

Loss fall: the teacher stage at the small batch, one fixed batch, the same generator state at every
step (``FixedDraw``: the same times and noise, so the objective stays put), the preset's peak learning
rate, ``fall_steps`` steps; it passes when the mean of the last ``FALL_TAIL`` losses is below the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from bench_common import fmt, interleaved, median, mib, networks
from train_flops import count_passes, peak_tflops
from train_memory import GB, derive_batch
from train_stages import build_stages, step_fn
from fmlm.experiment import preset
from fmlm.losses.common import Batch
from fmlm.train.optim import set_lr
from fmlm.train.schedule import micro_generator

from gpucheck.common import free_memory

RESULTS = Path(__file__).resolve().parents[1] / "results" / "training_cpu.json"
STAGES = {"teacher": 0, "ELF* (stage 2)": 2, "FMLM* (stage 3)": 3}  # name -> index in training.build_stages
RETRY_FRACTION = 0.75  # a predicted batch that does not fit is retried once at this fraction of it
FALL_TAIL = 5  # losses averaged at the end of the loss-fall run


def predictions(memory_bytes: float, path: Path = RESULTS) -> dict[str, dict]:
    """Per stage the README's derivation (module docstring): per-sample and fixed bytes, the largest batch."""
    runs = json.loads(Path(path).read_text())["runs"]
    derived = [r for r in runs if r["settings"]["preset"] == "paper" and "memory_derivation" in r]
    if not derived:
        raise ValueError(f"{path}: no paper run with a memory derivation")
    m = derived[-1]["memory_derivation"]
    out = {}
    for row in m["stages"]:
        per_sample = row["per_sample_bytes_derived"]
        if row["stage"].startswith("ELF*"):  # every row warm: the batch-1 peak alone, scaled to the length
            per_sample = row["peak_bytes"]["1"] * row["per_sample_bytes_derived"] / row["per_sample_bytes_measured"]
        out[row["stage"]] = {"length": m["length"], "per_sample_bytes": per_sample, "fixed_bytes": row["fixed_bytes"],
                             "batch": derive_batch(per_sample, row["fixed_bytes"], memory_bytes / GB)}
    return out


class FixedDraw:
    """A stage loss called with the same generator state every time (a fixed objective); its values kept."""

    def __init__(self, loss, device: torch.device):
        self.loss, self.device, self.values = loss, device, []
        self.decoder_prob = loss.decoder_prob

    def __call__(self, model, batch, generator, decoder_step):
        out = self.loss(model, batch, micro_generator(0, 0, 0, self.device), decoder_step)
        self.values.append(float(out.loss.detach()))
        return out


def run(check, rec: dict) -> None:
    s, device = check.sizes, check.device
    exp = preset(s.preset)
    dim, vocab = s.dims
    optim = exp.train_teacher.optim
    cuda = device.type == "cuda"
    memory = torch.cuda.get_device_properties(device).total_memory if cuda else None
    predicted = predictions(memory) if cuda and s.preset == "paper" else {}
    peak = peak_tflops(argparse.Namespace(peak_tflops=check.peak_tflops), device)
    rec["settings"] = {"length": s.length, "precision": check.precision, "optimizer": optim.optimizer,
                       "device_memory_bytes": memory, "peak_bf16_tflops": peak, "prediction_source": str(RESULTS.name)}
    rec["predictions"] = predicted

    def make_batch(b: int) -> Batch:
        gen = torch.Generator().manual_seed(b)
        return Batch(torch.randint(0, vocab, (b, s.length), generator=gen).to(device),
                     torch.randn(b, s.length, dim, generator=gen).to(device))

    models = networks(s.preset, s.length, device, ("teacher", "teacher-nosc", "elf-star", "fmlm-star"), s.dims)
    stages = build_stages(exp, models, optim, s.small_batch, device)
    del models
    for stage in stages:  # initialised on the device (fast), kept on the CPU until their stage is measured
        _place(stage, torch.device("cpu"))
    free_memory(device)
    rows = rec["cases"] = []
    for name, index in STAGES.items():
        stage = stages[index]
        _place(stage, device)
        pred = predicted.get(name)
        batches = [s.small_batch] + ([pred["batch"]] if pred and pred["batch"] else [2 * s.small_batch])
        for b in batches:
            rows.append(_predicted(_case(stage, make_batch, b, s.timed_steps, check, peak), pred))
            check.write()
            if rows[-1].get("error") == "out of memory" and b == batches[-1] and b > s.small_batch:
                smaller = max(int(b * RETRY_FRACTION), s.small_batch)
                retry = _case(stage, make_batch, smaller, s.timed_steps, check, peak)
                rows.append(_predicted({**retry, "retry_of_batch": b}, pred))
                check.write()
        if index == 0:
            rec["loss_fall"] = loss_fall(stage, make_batch(s.small_batch), exp, s.fall_steps, check)
            check.write()
        _place(stage, torch.device("cpu"))
        stage.state = None
        free_memory(device)


def _predicted(row: dict, pred: dict | None) -> dict:
    """``row`` with the derivation's largest batch and its predicted peak at the row's batch (when there is one)."""
    if pred:
        row.update(predicted_batch=pred["batch"],
                   predicted_peak_bytes=pred["fixed_bytes"] + row["batch"] * pred["per_sample_bytes"])
    return row


def _place(stage, device: torch.device) -> None:
    """Move the stage's networks (its student and the frozen teacher it calls) to ``device``."""
    for module in {id(m): m for m in [stage.model, *stage.watched.values()]}.values():
        module.to(device)


def _case(stage, make_batch, b: int, steps: int, check, peak: float | None) -> dict:
    """One stage at batch ``b``: median step time, tokens/s, FLOPs, MFU and (CUDA) the peak memory."""
    device = check.device
    row, step = {"stage": stage.name, "batch": b}, None
    free_memory(device)  # the cached blocks of the previous batch size, as a run at this one would start
    try:
        step = step_fn(stage, make_batch(b), device, check.precision)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = interleaved({"step": step}, steps, device)["step"]
        if device.type == "cuda":
            row["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    except torch.cuda.OutOfMemoryError:
        row["error"] = "out of memory"
    if "error" in row:  # outside the except block: its traceback, which holds the step's tensors, is gone
        del step
        for module in [stage.model, *stage.watched.values()]:
            module.zero_grad(set_to_none=True)
        free_memory(device)
        return row
    seconds = median(times)
    flops = count_passes(step, stage.watched).flops()
    row.update(seconds_per_step=seconds, step_times_s=times, tokens_per_s=b * check.sizes.length / seconds,
               model_flops_per_step=flops, achieved_tflops=flops / seconds / 1e12,
               mfu=None if not peak else flops / seconds / (peak * 1e12))
    return row


def loss_fall(stage, batch: Batch, exp, steps: int, check) -> dict:
    """The teacher's loss on one fixed batch and draw over ``steps`` steps at the preset's peak lr (docstring)."""
    fixed = FixedDraw(stage.loss, check.device)
    stage.trainer_state()
    fall = dataclasses.replace(stage, loss=fixed)
    lr = exp.train_teacher.optim.peak_lr(exp.train_teacher.global_batch)
    set_lr(stage.state[0], lr)
    step = step_fn(fall, batch, check.device, check.precision)
    for _ in range(steps):
        step()
    values = fixed.values
    tail = sum(values[-FALL_TAIL:]) / len(values[-FALL_TAIL:])
    return {"steps": steps, "lr": lr, "batch": batch.x0.shape[0], "losses": values, "first": values[0],
            "last_mean": tail, "falls": bool(tail < values[0])}


def lines(rec: dict) -> list[str]:
    """The part's markdown: the case table and the loss fall."""
    from fmlm.reports.formatting import markdown_table

    out = []
    if rec.get("cases"):
        cells = []
        for r in rec["cases"]:
            pred, meas = r.get("predicted_peak_bytes"), r.get("peak_memory_bytes")
            cells.append({
                "stage": r["stage"],
                "batch": str(r["batch"]) + (f" (retry of {r['retry_of_batch']})" if "retry_of_batch" in r else ""),
                "s / step": r.get("error") or fmt(r.get("seconds_per_step"), 3),
                "tokens/s": fmt(r.get("tokens_per_s"), 0), "TFLOP/s": fmt(r.get("achieved_tflops"), 1),
                "MFU": "-" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%",
                "peak GiB": fmt(None if meas is None else meas / 2**30, 2),
                "predicted peak GiB": fmt(None if pred is None else pred / 2**30, 2),
                "measured / predicted": fmt(None if not (pred and meas) else meas / pred, 2),
                "predicted largest batch": str(r.get("predicted_batch", "-")),
            })
        out += [markdown_table(cells), ""]
    fall = rec.get("loss_fall")
    if fall:
        verdict = "falls" if fall["falls"] else "DOES NOT FALL"
        out += [f"Loss on a fixed batch of {fall['batch']} (fixed draw, lr {fall['lr']:g}): {fall['first']:.4f} at "
                "step 1, "
                f"mean of the last {FALL_TAIL} of {fall['steps']} steps {fall['last_mean']:.4f}: {verdict}.", ""]
    if rec.get("settings", {}).get("device_memory_bytes"):
        out += [f"Device memory {mib(rec['settings']['device_memory_bytes']) / 1024:.1f} GiB; predictions from "
                f"`benchmarks/results/{rec['settings']['prediction_source']}` (the README's derivation).", ""]
    return out
