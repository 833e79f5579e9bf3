"""Training-step cost of every stage on same-shaped random networks of a preset.

    python benchmarks/training.py                                   # embedded preset shapes, CPU
    python benchmarks/training.py --preset paper --device cuda --batch 32 --length 1024
    python benchmarks/training.py --threads 1 --reference /tmp/refco \\
        --out benchmarks/results/training_cpu.json --markdown benchmarks/results/training_cpu.md

Stages and what one step does: ``train_stages``.

Per stage: the median step time over ``--repeats`` interleaved rounds after a warm-up
(``bench_common.interleaved``), tokens/s (rows x length per step), the step in forward-pass
equivalents (FPE: the step's time over one no-grad forward of the same network at the same
batch, timed in the same rounds), the passes the step made (counted by forward hooks), the
peak memory of one step (``bench_common.peak_memory``) and model FLOPs.

The pieces: ``train_stages`` (the stages and their steps), ``train_flops`` (model FLOPs, pass counts,
the device peak), ``train_reference`` (``--reference``), ``train_memory`` (peak memory and the derived
largest batch). This file is the command line and the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from bench_common import (
    DIMS, fmt, header, interleaved, machine, max_rss_bytes, median, mib, networks, peak_memory,
    round_ratios, command_line,
    write_results,
)
from fmlm.experiment import PRESETS, preset
from fmlm.losses.common import Batch
from fmlm.nn import count_parameters
from fmlm.reports.formatting import NOT_MEASURED, markdown_table
from train_flops import count_passes, peak_tflops
from train_memory import (memory_lines, memory_method, memory_derivation)
from train_reference import reference_cases
from train_stages import build_stages, forward_fn, step_fn, trajectory_fn

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="embedded", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=0, help="tokens per row (default: the preset's row length)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds after the warm-up")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 autocast on CUDA, fp32 on CPU (as the trainer)")
    parser.add_argument("--optimizer", default="preset", choices=["preset", "adamw", "muon"],
                        help="optimiser of the stage steps (default: the preset's)")
    parser.add_argument("--reference", default=None, help="checkout of the reference repository to compare with")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device bf16 peak for the MFU (CUDA)")
    parser.add_argument("--memory-batches", default="", help="two batch sizes for the memory slope, e.g. 1,2")
    parser.add_argument("--derive-length", type=int, default=0, help="row length of the derived batch (paper: 1024)")
    parser.add_argument("--derive-memory-gb", type=float, default=80.0)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--out", default=None, help="JSON results file (a list of runs)")
    parser.add_argument("--markdown", default=None, help="markdown results file (default: print it)")
    parser.add_argument("--append", action="store_true", help="add this run to the runs already in --out / --markdown")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch: must be >= 1, got {args.batch}")
    if args.memory_batches:
        try:
            lo, hi = (int(x) for x in args.memory_batches.split(","))
        except ValueError:
            parser.error(f"--memory-batches: expected two integers like 1,2, got {args.memory_batches!r}")
        if not 1 <= lo < hi:
            parser.error(f"--memory-batches: expected 1 <= first < second, got {args.memory_batches!r}")
        args.memory_batches = (lo, hi)
    if not args.derive_length and args.preset == "paper":
        args.derive_length = 1024
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    exp = preset(args.preset)
    args.length = args.length or exp.data.row_len
    dim, vocab = DIMS[args.preset]
    optim = exp.train_teacher.optim
    if args.optimizer != "preset":
        optim = dataclasses.replace(optim, optimizer=args.optimizer)
    models = networks(args.preset, args.length, device, ("teacher", "teacher-nosc", "elf-star", "fmlm-star"))

    def make_batch(b: int) -> Batch:
        gen = torch.Generator().manual_seed(b)
        return Batch(torch.randint(0, vocab, (b, args.length), generator=gen).to(device),
                     torch.randn(b, args.length, dim, generator=gen).to(device))

    batch = make_batch(args.batch)
    stages = build_stages(exp, models, optim, args.batch, device)
    fns = {f"step | {s.name}": step_fn(s, batch, device, args.precision) for s in stages}
    fns.update({f"forward | {s.name}": forward_fn(s, batch, device, args.precision) for s in stages})
    fns["decoder step | teacher"] = step_fn(stages[0], batch, device, args.precision, decoder_step=True)
    fns["trajectory | ELF* (stage 2)"] = trajectory_fn(stages[2], batch, exp, device, args.precision)
    ref_fns, params = reference_cases(args.reference, models, stages, batch, exp, device, args.precision)
    fns.update(ref_fns)
    rounds = interleaved(fns, args.repeats, device)
    times = {k: median(v) for k, v in rounds.items()}
    payload = {
        "machine": machine(device), "command": command_line(),
        "settings": {"preset": args.preset, "batch": args.batch, "length": args.length, "repeats": args.repeats,
                     "precision": args.precision, "optimizer": optim.optimizer, "device": str(device),
                     "dims": DIMS[args.preset], "K": exp.fixed_point.iterations,
                     "parameters": {s.name: count_parameters(s.model) for s in stages},
                     "memory": "not measured" if args.no_memory else memory_method(device)},
        "stages": stage_rows(stages, fns, times, rounds, args, device),
        "reference": reference_rows(times, rounds, params, args),
        "times_s": times, "max_rss_mib": mib(max_rss_bytes()),
    }
    payload["stage2"] = stage2_summary(payload["stages"], rounds, exp)
    if args.memory_batches and not args.no_memory and args.derive_length:
        payload["memory_derivation"] = {"length": args.derive_length, "memory_gb": args.derive_memory_gb,
                                        "batches": list(args.memory_batches),
                                        "stages": memory_derivation(stages, exp, args, device, make_batch)}
    write_runs(payload, args)


def write_runs(payload: dict, args) -> None:
    """Write ``{"runs": [...]}`` and the markdown; with ``--append`` after the runs already there."""
    runs, markdown = [payload], report(payload)
    if args.append and args.out and Path(args.out).is_file():
        runs = json.loads(Path(args.out).read_text())["runs"] + runs
    if args.append and args.markdown and Path(args.markdown).is_file():
        markdown = Path(args.markdown).read_text().rstrip("\n") + "\n\n" + markdown
    write_results({"runs": runs}, markdown, args.out, args.markdown)
    if args.markdown:
        print(summary(payload))


def summary(payload: dict) -> str:
    """The headline on one line: the reference ratio and the stage-2 step in forward-pass equivalents."""
    net, st = payload["reference"]["network step"], payload["stage2"]
    ratio = NOT_MEASURED if net["ratio_reference_over_ours"] is None else f"{net['ratio_reference_over_ours']:.2f}"
    return (f"{payload['settings']['preset']}: network step reference / ours = {ratio}; stage 2 step "
            f"{st['step_fpe']:.2f} FPE against K + 8 = {st['budget_fpe']}")


def stage_rows(stages, fns, times, rounds, args, device) -> list[dict]:
    """JSON rows of the stage table (time, tokens/s, FPE, passes, FLOPs, MFU, peak memory); the FPE is the median
    over rounds of the step's time over the forward's in the same round (``round_ratios``), with its range."""
    peak = peak_tflops(args, device)
    tokens = args.batch * args.length
    rows = []
    cases = [(s, f"step | {s.name}", s.name) for s in stages] + [(stages[0], "decoder step | teacher", "teacher decoder step")]
    for stage, key, label in cases:
        seconds, forward = times[key], times[f"forward | {stage.name}"]
        fpe = round_ratios(rounds, key, f"forward | {stage.name}")
        log = count_passes(fns[key], stage.watched)
        flops = log.flops()
        rows.append({
            "stage": label, "seconds_per_step": seconds, "tokens_per_s": tokens / seconds,
            "forward_s": forward, "forward_pass_equivalents": fpe["median"], "fpe_range": [fpe["min"], fpe["max"]],
            "passes": log.passes(args.batch), "passes_fpe": log.forward_equivalents(args.batch),
            "model_flops_per_step": flops, "achieved_tflops": flops / seconds / 1e12,
            "mfu": None if peak is None else flops / seconds / (peak * 1e12),
            "peak_memory_mib": None if args.no_memory else mib(peak_memory(fns[key], device)),
        })
    return rows


def reference_rows(times: dict, rounds: dict, params: dict, args) -> dict:
    """Our network's and the reference's steps, their ratio (reference time / ours: the median over rounds, and
    its range) and tokens/s."""
    tokens = args.batch * args.length
    out = {"path": args.reference, "parameters": params}
    for kind in ("network step", "stage-1 step"):
        ours, ref = times.get(f"{kind} | ours"), times.get(f"{kind} | reference")
        ratio = None if ours is None or ref is None else round_ratios(rounds, f"{kind} | reference", f"{kind} | ours")
        out[kind] = {"ours_s": ours, "reference_s": ref,
                     "ratio_reference_over_ours": None if ratio is None else ratio["median"],
                     "ratio_range": None if ratio is None else [ratio["min"], ratio["max"]],
                     "ours_tokens_per_s": None if ours is None else tokens / ours,
                     "reference_tokens_per_s": None if ref is None else tokens / ref}
    return out


def stage2_summary(rows: list[dict], rounds: dict, exp) -> dict:
    """The stage-2 step in forward-pass equivalents against K + 8 (medians of per-round ratios, with the step's
    range over rounds), with its trajectory's share."""
    row = next(r for r in rows if r["stage"].startswith("ELF*"))
    K = exp.fixed_point.iterations
    trajectory = round_ratios(rounds, "trajectory | ELF* (stage 2)", "forward | ELF* (stage 2)")["median"]
    return {"K": K, "step_fpe": row["forward_pass_equivalents"], "step_fpe_range": row["fpe_range"],
            "budget_fpe": K + 8, "trajectory_fpe": trajectory,
            "rest_fpe": row["forward_pass_equivalents"] - trajectory, "passes_fpe": row["passes_fpe"],
            "within_budget": bool(row["forward_pass_equivalents"] <= K + 8)}


def report(payload: dict) -> str:
    """The markdown results: machine, command, the stage table, stage 2, the reference, memory."""
    s = payload["settings"]
    cells = [{
        "stage": r["stage"], "s / step": fmt(r["seconds_per_step"], 3), "tokens/s": fmt(r["tokens_per_s"], 0),
        "FPE (step / no-grad forward)": fmt(r["forward_pass_equivalents"]),
        "FPE range over rounds": _range(r.get("fpe_range")),
        "FPE of the passes": fmt(r["passes_fpe"]), "passes": r["passes"],
        "model TFLOP / step": fmt(r["model_flops_per_step"] / 1e12, 4), "achieved TFLOP/s": fmt(r["achieved_tflops"], 4),
        "MFU": NOT_MEASURED if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
        "peak memory MiB": fmt(r["peak_memory_mib"], 1),
    } for r in payload["stages"]]
    lines = [
        *header(f"Training-step cost: preset {s['preset']}", payload),
        f"Preset `{s['preset']}` shapes with random weights and data, batch {s['batch']} x {s['length']} tokens, "
        f"precision {s['precision']}, optimiser {s['optimizer']}, median of {s['repeats']} interleaved rounds after "
        f"a warm-up. Peak memory: {s['memory']}. MFU: {_mfu_note(payload)}{_size_note(s)}", "",
        markdown_table(cells), "",
        "FPE: the step's time over one no-grad forward of the same network at the same batch (timed in the same "
        "rounds; the median over rounds of the step over the forward of the same round, and the range of that "
        "ratio over the rounds). FPE of the passes: rows processed over the batch, a pass with gradients counted 3x "
        "(what the network calls alone would cost; the rest is the loss arithmetic, clipping, the optimiser and the "
        "EMA).", "",
    ]
    st = payload["stage2"]
    verdict = "within" if st["within_budget"] else "over"
    spread = f", {_range(st['step_fpe_range'])} over the rounds" if st.get("step_fpe_range") else ""
    lines += [f"Stage 2 (K = {st['K']}): the step costs {st['step_fpe']:.2f} FPE{spread} against K + 8 = "
              f"{st['budget_fpe']} ({verdict}); the teacher trajectory alone {st['trajectory_fpe']:.2f} FPE, "
              "the rest (student pair pass "
              f"with gradients, third pass, optimiser, EMA) {st['rest_fpe']:.2f} FPE; the passes alone predict "
              f"{st['passes_fpe']:.2f} FPE.", ""]
    lines += _reference_lines(payload["reference"])
    if "memory_derivation" in payload:
        lines += memory_lines(payload["memory_derivation"])
    return "\n".join(lines)


def _range(bounds: list[float] | None) -> str:
    """``[lo, hi]`` as 'lo-hi' (two decimals), or not measured (also for results written before ranges were kept)."""
    return NOT_MEASURED if not bounds else f"{bounds[0]:.2f}-{bounds[1]:.2f}"


def _size_note(s: dict) -> str:
    """What differs from the preset's own training setting on a CPU (ELF-B: batch, rows, optimiser)."""
    if s["preset"] != "paper" or not s["device"].startswith("cpu"):
        return ""
    return (f" ELF-B on this CPU: batch {s['batch']} of {s['length']}-token rows instead of the paper's global batch "
            f"512 of 1024-token rows, optimiser {s['optimizer']}" + (" (the paper's Muon runs its Newton-Schulz "
            "iteration in bfloat16, emulated on CPUs)" if s["optimizer"] != "muon" else "") + ".")


def _mfu_note(payload: dict) -> str:
    if payload["machine"]["device"].startswith("cuda"):
        return "model FLOPs (module docstring) over the device's dense bf16 peak."
    return "not measured on CPU (no peak claimed); achieved TFLOP/s from the same FLOP count."


def _reference_lines(ref: dict) -> list[str]:
    rows = []
    for kind in ("network step", "stage-1 step"):
        r = ref[kind]
        rows.append({"step": kind, "ours s": fmt(r["ours_s"], 3), "reference s": fmt(r["reference_s"], 3),
                     "ratio (reference / ours)": fmt(r["ratio_reference_over_ours"]),
                     "ratio range over rounds": _range(r.get("ratio_range")),
                     "ours tokens/s": fmt(r["ours_tokens_per_s"], 0),
                     "reference tokens/s": fmt(r["reference_tokens_per_s"], 0)})
    where = f"checkout at `{ref['path']}`" if ref["path"] else "no --reference given"
    params = ref["parameters"]
    counts = (f" Parameters: ours {params['ours']:,}, reference {params['reference']:,}." if params else "")
    return ["## Against the reference network", "", f"Reference: {where}.{counts} Network step: the same loss and "
            "AdamW on both networks (no EMA). Stage-1 step: each code base's teacher algorithm (module docstring).",
            "", markdown_table(rows), ""]


if __name__ == "__main__":
    main()
