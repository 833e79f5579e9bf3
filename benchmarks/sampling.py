"""Sampling speed of every sampler on same-shaped random networks of a preset.

    python benchmarks/sampling.py                                   # embedded preset shapes, CPU
    python benchmarks/sampling.py --preset paper --device cuda --batch 64 --length 1024
    python benchmarks/sampling.py --threads 1 --profile 12 --weights runs/embedded \\
        --out benchmarks/results/sampling_cpu.json --markdown benchmarks/results/sampling_cpu.md

Per sampler: network evaluations per sample (the final decoder pass included), the median
wall time of ``fmlm.samplers.generate`` over ``--repeats`` interleaved rounds after a warm-up
(``bench_common.interleaved``), samples/s and tokens/s, the ratio of tokens/s to the reference
row's beside the ratio of network evaluations, and the peak memory of one run
(``bench_common.peak_memory``).

The pieces: ``sample_cases`` (the samplers, their closures, the cost model and the table rows) and
``sample_speed_work`` (previous code paths, decoder-pass variants, profiles). This file is the command
line and the report.
"""

from __future__ import annotations

import argparse

import torch

from bench_common import (
    DIMS, command_line, fmt, header, interleaved, machine, max_rss_bytes, median, mib, networks, peak_memory,
    trained_networks, write_results,
)
from fmlm.experiment import PRESETS, preset
from fmlm.nn.denoiser import DECODE_CHUNK_TOKENS
from fmlm.nn.cpu.head_argmax import default_screen, default_tile
from fmlm.reports.formatting import markdown_table
from sample_cases import (TARGET_FRACTION, cost_fns, markdown_rows, sample_fn, sampler_cases, spread, table_rows,
                          target)
from sample_speed_work import SCREENS, TILES, profile_tables, speed_work, work_cells


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="embedded", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=0, help="tokens per row (default: the preset's row length)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds after the warm-up")
    parser.add_argument("--cold-steps", type=int, default=0, help="flow steps of the cold-start rows (default: the preset's)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 autocast on CUDA, fp32 on CPU")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (inductor) against eager")
    parser.add_argument("--profile", type=int, default=0, help="top operators to report from torch.profiler (0: none)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--weights", default=None, metavar="RUN_DIR",
                        help="a run folder whose trained stage checkpoints to time (default: random weights)")
    parser.add_argument("--out", default=None, help="JSON results file")
    parser.add_argument("--markdown", default=None, help="markdown results file (default: print it)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch: must be >= 1, got {args.batch}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    exp = preset(args.preset)
    args.length = args.length or exp.data.row_len
    if args.weights:
        models, sources = trained_networks(args.weights, device)
    else:
        models, sources = networks(args.preset, args.length, device), None
    cases = sampler_cases(args.preset, args.batch, args.cold_steps or None)
    fns = {c.label: sample_fn(models[c.role], c, exp, args.batch, args.length, device, args.precision) for c in cases}
    costs = cost_fns(models, exp, args.batch, args.length, device, args.precision)
    times = interleaved({**fns, **costs}, args.repeats, device)
    nfe = {c.label: fns[c.label]().nfe for c in cases}
    peaks = {c.label: None if args.no_memory else peak_memory(fns[c.label], device) for c in cases}
    results = {c.label: (median(times[c.label]), nfe[c.label], peaks[c.label]) for c in cases}
    rows = table_rows(cases, results, {k: median(times[k]) for k in costs}, args.batch, args.length)
    for row in rows:
        row["times_s"], row["spread"] = times[row["sampler"]], spread(times[row["sampler"]])
    work = speed_work(models, cases, exp, args, device)
    profiles = profile_tables(models, cases, exp, args, device) if args.profile else {}
    payload = {
        "machine": machine(device), "command": command_line(),
        "settings": {"preset": args.preset, "batch": args.batch, "length": args.length, "repeats": args.repeats,
                     "precision": args.precision, "device": str(device), "dims": DIMS[args.preset],
                     "memory": "not measured" if args.no_memory else _memory_method(device),
                     "decoder_argmax": default_decoder(device, args.precision), "weights": sources},
        "network_costs_s": {k: median(times[k]) for k in costs},
        "samplers": rows, "speed_work": work, "profiles": profiles, "target": target(rows),
        "max_rss_mib": mib(max_rss_bytes()),
    }
    write_results(payload, report(payload), args.out, args.markdown)
    if args.markdown:
        print(summary(payload))


def summary(payload: dict) -> str:
    """The headline on one line: the target row's speed ratio against the wanted one."""
    t = payload["target"]
    if not t:
        return "no FMLM* 1-step row"
    return (f"{t['sampler']}: {t['speed_ratio']:.2f}x the reference row's tokens/s (evaluations ratio "
            f"{t['evaluations_ratio']:.2f}, wanted {t['wanted_ratio']:.2f}, cost model {t['predicted_ratio']:.2f})")


def _memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated during one run, above the memory allocated before it"
    return ("peak CPU tensor memory allocated during one run above what was live before it (torch.profiler "
            "profile_memory=True, the allocator's total_allocated); not the RSS")


def report(payload: dict) -> str:
    """The markdown results: machine, command, the sampler table, the cost model, the speed work, profiles."""
    s, rows = payload["settings"], payload["samplers"]
    costs = payload["network_costs_s"]
    lines = [
        *header("Sampling speed", payload),
        f"Preset `{s['preset']}` shapes with {_weights_text(s.get('weights'))}, batch {s['batch']} x {s['length']} tokens, "
        f"precision {s['precision']}, median of {s['repeats']} interleaved rounds after a warm-up. "
        f"Peak memory: {s['memory']}. Decoder pass of every sampler (the default on this machine): "
        f"{s.get('decoder_argmax', 'not recorded')}.", "",
        markdown_table(markdown_rows(rows)), "",
        "Speed ratio: tokens/s of the row over the first row's (the same batch). Evaluations ratio: the first row's "
        "network evaluations per sample over the row's (the decoder pass counted as one). Predicted ratio: the same "
        "from the measured cost of one forward F and of the decoder pass D, (E - 1) F + D per batch. "
        "Overhead: measured minus predicted time (sampler arithmetic, noise, checks; negative = within noise). "
        "Spread: (slowest - fastest round) / median, the noise of the shared machine.", "",
        "Measured costs per batch: " + ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in costs.items()) + ".", "",
    ]
    t = payload["target"]
    if t:
        verdict = "met" if t["met"] else "not met"
        lines += [f"Target ({verdict}): {t['sampler']} speed ratio {t['speed_ratio']:.2f}x against "
                  f"{TARGET_FRACTION} x {t['evaluations_ratio']:.2f} = {t['wanted_ratio']:.2f}x; the evaluation-cost "
                  f"model predicts {t['predicted_ratio']:.2f}x.", ""]
    lines += ["## Speed work", "", markdown_table([work_cells(r) for r in payload["speed_work"]]), ""]
    for name, top in payload["profiles"].items():
        lines += [f"### Top operators: {name}", "",
                  markdown_table([{"op": r["op"], "calls": str(r["calls"]), "self ms": fmt(r["self_ms"], 1),
                                   "share": f"{100 * r['share']:.1f}%"} for r in top]), ""]
    return "\n".join(lines)


def default_decoder(device: torch.device, precision: str) -> str:
    """Which decoder-pass variant ``token_ids`` takes by default here (its "auto" rules, under
    ``FMLM_CPU_KERNELS``)."""
    if default_tile(device) is None:
        return f"token_ids, {DECODE_CHUNK_TOKENS}-token chunks of whole logits"
    fp32_features = precision != "bf16"  # on a CPU only --precision bf16 autocasts (autocast_for)
    screen = default_screen(device) if fp32_features else "none"
    return SCREENS.get(screen, TILES)


def _weights_text(sources: dict | None) -> str:
    if not sources:
        return "random weights"
    return "trained EMA weights (" + ", ".join(f"{role}: `{v['checkpoint']}` step {v['step']}"
                                              for role, v in sources.items()) + ")"


if __name__ == "__main__":
    main()
