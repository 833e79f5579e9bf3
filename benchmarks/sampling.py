"""Sampling speed of every sampler on same-shaped random networks of a preset.

    python benchmarks/sampling.py                                   # embedded preset shapes, CPU
    python benchmarks/sampling.py --preset paper --device cuda --batch 64 --length 1024
    python benchmarks/sampling.py --threads 1 --profile 12 --weights runs/embedded \\
        --out benchmarks/results/sampling_cpu.json --markdown benchmarks/results/sampling_cpu.md

Samplers (settings from the preset's evaluation section): the teacher's SDE with warm
self-conditioning at ``teacher_steps`` (the reference row), the teacher's cold start with
N = ``fp_iterations`` fixed-point iterations at ``sc_sweep_steps`` flow steps (``--cold-steps``),
ELF* (the SDE without self-conditioning), FMLM* and FMLM with CTM gamma-sampling at
``flow_map_steps``. The networks are random (``bench_common.networks``), or with ``--weights RUN_DIR``
the trained EMA networks of a run folder's stages (``bench_common.trained_networks``). The cost of
the network passes does not depend on what the weights learnt; the decoder pass's screen
(``fmlm.nn.cpu.head_argmax``) does: it scores in fp32 only the blocks of ids its bounds cannot rule out,
and a trained head's logits rule out more than a random one's.

Per sampler: network evaluations per sample (the final decoder pass included), the median
wall time of ``fmlm.samplers.generate`` over ``--repeats`` interleaved rounds after a warm-up
(``bench_common.interleaved``), samples/s and tokens/s, the ratio of tokens/s to the reference
row's beside the ratio of network evaluations, and the peak memory of one run
(``bench_common.peak_memory``).

Evaluation-cost model: F (one forward of the sampled network, as the sampler calls it) and D
(the decoder pass, ``Denoiser.token_ids``) are timed at the same batch in the same rounds; a
sampler with E evaluations is predicted to cost (E - 1) F + D, and the predicted ratio is the
reference's prediction over the sampler's. Where D > F, the ratio of evaluations overstates
the speed-up of few-step samplers: the decoder pass is the same for every sampler.
"overhead" is the measured time minus the prediction (sampler arithmetic, noise, checks).

Speed work (each pair measured interleaved in one set of rounds): the previous code paths
(per-evaluation finite check, the whole logits tensor in the decoder pass, noise drawn as
per-sample tensors then stacked) against the current defaults; each of the three alone; the
decoder pass's argmax over 256-token chunks of whole logits against tiles of them, in fp32 and, where
``torch._int_mm`` is exact, through the int8 screen (``fmlm.nn.cpu.head_argmax``, the same ids; the bf16
screen of earlier results files was removed);
``torch.compile`` (``--compile``) against eager. ``--profile N`` adds the N top operators by
self time (``torch.profiler``) of the reference row and FMLM* 1 step, previous and current.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import time

import torch

from bench_common import (
    DIMS, autocast_for, command_line, fmt, header, interleaved, machine, max_rss_bytes, median, mib, networks,
    peak_memory, trained_networks, write_results,
)
from fmlm.experiment import PRESETS, preset
from fmlm.nn.denoiser import DECODE_CHUNK_TOKENS, compile_denoiser
from fmlm.nn.cpu.head_argmax import COL_TILE, default_screen, default_tile
from fmlm.nn.cpu.screen_int8 import int_mm_is_exact
from fmlm.reports.formatting import markdown_table
from fmlm.samplers import NoiseStreams, batch_sampler, generate, sampler_for
from fmlm.samplers.common import guidance_of

TARGET_FRACTION = 0.8  # done-when: FMLM* 1 step reaches 0.8 x its ratio of network evaluations


@dataclasses.dataclass(frozen=True)
class Case:
    """One sampler of the table: its label, the network role it samples and its settings."""

    label: str
    role: str
    setting: dict


def sampler_cases(preset_name: str, batch: int, cold_steps: int | None) -> list[Case]:
    """The samplers of the table, the reference row (teacher SDE, warm) first."""
    e = preset(preset_name).evaluation
    base = {"kind": "sde", "steps": e.teacher_steps, "w": e.teacher_w, "churn": e.churn, "batch_size": batch}
    cold = cold_steps or e.sc_sweep_steps
    cases = [Case(f"teacher SDE {e.teacher_steps} steps, warm SC", "teacher", base)]
    cases += [Case(f"teacher cold start N={n} ({cold} steps)", "teacher",
                   {**base, "steps": cold, "sc_mode": "cold", "fp_iterations": n, "fp_solver": e.fp_solver})
              for n in e.fp_iterations]
    cases.append(Case(f"ELF* SDE {e.teacher_steps} steps", "elf-star", {**base, "sc_mode": "none"}))
    for role, name in (("fmlm-star", "FMLM*"), ("fmlm", "FMLM")):
        for steps, gamma in zip(e.flow_map_steps, e.ctm_gamma):
            setting = {"kind": "ctm", "steps": steps, "gamma": gamma, "w": e.flow_map_w, "batch_size": batch}
            cases.append(Case(f"{name} {steps} step{'s' if steps > 1 else ''} (CTM)", role, setting))
    return cases


def stacked_draw(self: NoiseStreams) -> torch.Tensor:
    """The previous ``NoiseStreams.draw``: one tensor per sample, then a stack (same numbers)."""
    return torch.stack([torch.randn(self.shape, generator=g) for g in self.gens]).to(self.device, self.dtype)


@contextlib.contextmanager
def previous_noise():
    """``NoiseStreams.draw`` as it was before, for the duration of the block (benchmark only)."""
    current = NoiseStreams.draw
    NoiseStreams.draw = stacked_draw
    try:
        yield
    finally:
        NoiseStreams.draw = current


PATHS = {
    "current": {},
    "previous": {"checks": "network", "decode_chunk": None, "noise": "stacked"},
    "per-evaluation checks only": {"checks": "network"},
    "stacked noise only": {"noise": "stacked"},
}
"""Code-path variants of the speed work: keyword changes from the current defaults."""


def sample_fn(model, case: Case, exp, batch: int, length: int, device, precision: str, paths: dict | None = None):
    """A closure running ``generate`` for ``case`` (one batch) under the code-path variant ``paths``."""
    paths = dict(paths or {})
    noise = previous_noise if paths.pop("noise", None) == "stacked" else contextlib.nullcontext
    cfg = sampler_for(exp.flow, case.setting)
    sampler = batch_sampler(cfg)

    def run():
        with noise(), autocast_for(device, precision):
            return generate(model, sampler, cfg, batch, length, device=device, progress=False, **paths)

    return run


def cost_fns(models: dict, exp, batch: int, length: int, device, precision: str) -> dict:
    """Closures timing F (one forward, as the role's sampler calls it) and D (the decoder pass) per role."""
    dim = next(iter(models.values())).config.latent_dim
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, length, dim, generator=gen).to(device)
    t = torch.full((batch,), 0.5, device=device)
    e = exp.evaluation
    fns = {}
    for role, model in models.items():
        w = guidance_of(model, e.flow_map_w if role.startswith("fmlm") else e.teacher_w, batch, device)
        kwargs = {} if w is None else {"w": w}
        if role == "teacher":
            kwargs["sc"] = z
        if role.startswith("fmlm"):
            kwargs["s"] = t * 0.5

        def forward(model=model, kwargs=kwargs):
            with torch.no_grad(), autocast_for(device, precision):
                return model(z, t, **kwargs)

        def decoder(model=model):
            with autocast_for(device, precision):
                return model.token_ids(z, torch.ones(batch, device=device))

        fns[f"F {role}"], fns[f"D {role}"] = forward, decoder
    return fns


def table_rows(cases, results, costs, batch, length) -> list[dict]:
    """JSON rows of the sampler table from the medians (``results``: label -> (seconds, nfe, peak bytes))."""
    ref_seconds, ref_nfe = results[cases[0].label][:2]
    ref_role = cases[0].role
    predicted_ref = (ref_nfe - 1) * costs[f"F {ref_role}"] + costs[f"D {ref_role}"]
    rows = []
    for case in cases:
        seconds, nfe, peak = results[case.label]
        predicted = (nfe - 1) * costs[f"F {case.role}"] + costs[f"D {case.role}"]
        rows.append({
            "sampler": case.label, "model": case.role, "steps": case.setting["steps"],
            "network_evaluations_per_sample": nfe, "evaluations_ratio": ref_nfe / nfe,
            "seconds_per_batch": seconds, "ms_per_sample": 1000 * seconds / batch,
            "samples_per_s": batch / seconds, "tokens_per_s": batch * length / seconds,
            "speed_ratio": ref_seconds / seconds, "predicted_seconds_per_batch": predicted,
            "predicted_ratio": predicted_ref / predicted, "overhead_ms_per_sample": 1000 * (seconds - predicted) / batch,
            "peak_memory_mib": mib(peak),
        })
    return rows


def spread(values: list[float]) -> float:
    """(max - min) / median of a case's round times: how far apart its rounds fell."""
    return (max(values) - min(values)) / median(values)


def markdown_rows(rows: list[dict]) -> list[dict]:
    """The sampler table's cells."""
    return [{
        "sampler": r["sampler"], "evaluations / sample": str(r["network_evaluations_per_sample"]),
        "ms / sample": fmt(r["ms_per_sample"]), "spread": f"{100 * r['spread']:.0f}%", "samples/s": fmt(r["samples_per_s"]),
        "tokens/s": fmt(r["tokens_per_s"], 0), "speed ratio (tokens/s vs row 1)": fmt(r["speed_ratio"]),
        "evaluations ratio": fmt(r["evaluations_ratio"]), "predicted ratio ((E-1)F + D)": fmt(r["predicted_ratio"]),
        "overhead ms / sample": fmt(r["overhead_ms_per_sample"]), "peak memory MiB": fmt(r["peak_memory_mib"], 1),
    } for r in rows]


def speed_work(models, cases, exp, args, device) -> list[dict]:
    """Previous code paths against current ones, torch.compile against eager (module docstring)."""
    ref, one = cases[0], next(c for c in cases if c.role == "fmlm-star" and c.setting["steps"] == 1)
    fns, meta = {}, {}
    for case in (ref, one):
        for variant in ("previous", "current", "per-evaluation checks only", "stacked noise only"):
            fns[f"{case.label} | {variant}"] = sample_fn(models[case.role], case, exp, args.batch, args.length,
                                                           device, args.precision, PATHS[variant])
    model = models["fmlm-star"]
    z = torch.randn(args.batch, args.length, model.config.latent_dim, generator=torch.Generator().manual_seed(1)).to(device)
    ones = torch.ones(args.batch, device=device)
    decoder = {
        "decoder pass | whole logits, then argmax": lambda: model(z, ones, decode=True).argmax(-1),
        f"decoder pass | {CHUNKS_OF_WHOLE_LOGITS}": lambda: model.token_ids(z, ones, chunk_tokens=PREVIOUS_CHUNK,
                                                                           vocab_tile=None, screen="none"),
        f"decoder pass | {TILES}": lambda: model.token_ids(z, ones, screen="none"),
        "decoder pass | token_ids, 1024-token chunks, fp32": lambda: model.token_ids(z, ones, chunk_tokens=1024,
                                                                                   screen="none"),
    }
    if int_mm_is_exact():
        decoder[f"decoder pass | {SCREENS['int8']}"] = lambda: model.token_ids(z, ones, screen="int8")
    decoder = {name: _no_grad(fn, device, args.precision) for name, fn in decoder.items()}
    fns.update(decoder)
    bf16 = "decoder pass | bf16 autocast, token_ids (not exact)"
    if device.type == "cpu" and args.precision != "bf16":
        fns[bf16] = _no_grad(lambda: model.token_ids(z, ones), device, "bf16")
    streams = NoiseStreams(0, list(range(args.batch)), (args.length, model.config.latent_dim), device)
    fns["noise draw | per-sample tensors + stack"] = lambda: stacked_draw(streams)
    fns["noise draw | filled in place"] = streams.draw
    if args.compile:
        for case in (ref, one):
            compiled = compile_denoiser(copy.deepcopy(models[case.role]))
            fn = sample_fn(compiled, case, exp, args.batch, args.length, device, args.precision)
            start = time.perf_counter()
            fn()
            meta[f"{case.label} | torch.compile"] = {"compile_and_first_run_s": time.perf_counter() - start}
            fns[f"{case.label} | torch.compile"] = fn
    raw = interleaved(fns, args.repeats, device)
    times = {name: median(values) for name, values in raw.items()}
    rows = [{**_work_row(name, times, meta), "times_s": raw[name], "spread": spread(raw[name])} for name in times]
    if bf16 in fns:
        row = next(r for r in rows if f"{r['subject']} | {r['variant']}" == bf16)
        low, exact = fns[bf16](), next(iter(decoder.values()))()
        row["ids_agreeing_with_fp32"] = float((low == exact).float().mean())
        row["same_ids_as_whole_logits"] = torch.equal(low, exact)
    ids = {name: fn() for name, fn in decoder.items()}
    first = next(iter(ids.values()))
    for name, fn in decoder.items():
        row = next(r for r in rows if f"{r['subject']} | {r['variant']}" == name)
        row["peak_memory_mib"] = mib(None if args.no_memory else peak_memory(fn, device))
        row["same_ids_as_whole_logits"] = torch.equal(first, ids[name])
    return rows + _identity_rows(models, (ref, one), exp, args, device)


PREVIOUS_CHUNK = 256  # token_ids' chunk before the tiles
CHUNKS_OF_WHOLE_LOGITS = f"token_ids, {PREVIOUS_CHUNK}-token chunks of whole fp32 logits (previous)"
TILES = f"token_ids, {DECODE_CHUNK_TOKENS} x {COL_TILE} tiles, fp32"
SCREENS = {name: f"token_ids, {DECODE_CHUNK_TOKENS} x {COL_TILE} tiles, {name} screen + fp32 candidates"
           for name in ("int8",)}

SPEEDUP_OF = {
    "current": ("previous", "this"),  # previous time / current time
    TILES: (CHUNKS_OF_WHOLE_LOGITS, "this"),  # what the vocabulary tiles alone save
    SCREENS["int8"]: (TILES, "this"),  # what the screen saves on top of the tiles
    "per-evaluation checks only": ("this", "current"),  # what check-once-per-call alone saves
    "stacked noise only": ("this", "current"),  # what the in-place draw alone saves
    "torch.compile": ("current", "this"),
    "filled in place": ("per-sample tensors + stack", "this"),
}
"""Speed-up of a row's change: (numerator variant, denominator variant) of the same subject's times."""


def _work_row(name: str, times: dict, meta: dict) -> dict:
    """One speed-work row: median time and the speed-up its change brings (``SPEEDUP_OF``)."""
    subject, variant = name.split(" | ")
    row = {"subject": subject, "variant": variant, "median_s": times[name], **meta.get(name, {})}
    num, den = SPEEDUP_OF.get(variant, ("whole logits, then argmax", "this") if subject == "decoder pass" else (None, None))
    if num is not None and name != f"{subject} | {num}":
        pick = lambda v: times.get(name if v == "this" else f"{subject} | {v}")  # noqa: E731
        row["speedup"] = pick(num) / pick(den) if pick(num) and pick(den) else None
    return row


def _no_grad(fn, device, precision):
    def run():
        with torch.no_grad(), autocast_for(device, precision):
            return fn()

    return run


def _identity_rows(models, cases, exp, args, device) -> list[dict]:
    """Sample sets of the previous and current paths of ``cases``, compared bit for bit (latents and ids)."""
    rows = []
    for case in cases:
        a = sample_fn(models[case.role], case, exp, args.batch, args.length, device, args.precision, PATHS["previous"])()
        b = sample_fn(models[case.role], case, exp, args.batch, args.length, device, args.precision)()
        same = torch.equal(a.latents, b.latents) and torch.equal(a.ids, b.ids)
        rows.append({"subject": case.label, "variant": "previous vs current sample set", "bit_identical": same})
    return rows


def profile_tables(models, cases, exp, args, device) -> dict:
    """The ``--profile`` top operators by self time of the reference row and FMLM* 1 step, previous and current."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    out = {}
    one = next(c for c in cases if c.role == "fmlm-star" and c.setting["steps"] == 1)
    for case in (cases[0], one):
        for variant in ("previous", "current"):
            fn = sample_fn(models[case.role], case, exp, args.batch, args.length, device, args.precision, PATHS[variant])
            fn()
            with profile(activities=activities) as prof:
                fn()
            events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
            total = sum(getattr(e, key) for e in events) or 1.0
            out[f"{case.label} | {variant}"] = [
                {"op": e.key, "calls": e.count, "self_ms": getattr(e, key) / 1000, "share": getattr(e, key) / total}
                for e in events[: args.profile]
            ]
    return out


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


def target(rows: list[dict]) -> dict:
    """The done-when check: FMLM* 1 step's speed ratio against 0.8 x its ratio of evaluations."""
    one = next((r for r in rows if r["model"] == "fmlm-star" and r["steps"] == 1), None)
    if one is None:
        return {}
    wanted = TARGET_FRACTION * one["evaluations_ratio"]
    return {"sampler": one["sampler"], "speed_ratio": one["speed_ratio"], "evaluations_ratio": one["evaluations_ratio"],
            "wanted_ratio": wanted, "predicted_ratio": one["predicted_ratio"], "met": bool(one["speed_ratio"] >= wanted)}


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
    lines += ["## Speed work", "", markdown_table([_work_cells(r) for r in payload["speed_work"]]), ""]
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


def _work_cells(r: dict) -> dict:
    """One row of the speed-work table."""
    extra = []
    if "compile_and_first_run_s" in r:
        extra.append(f"compile + first run {r['compile_and_first_run_s']:.1f} s")
    if r.get("peak_memory_mib") is not None:
        extra.append(f"peak {r['peak_memory_mib']:.1f} MiB")
    if "same_ids_as_whole_logits" in r and "ids_agreeing_with_fp32" not in r:
        extra.append("same ids" if r["same_ids_as_whole_logits"] else "DIFFERENT ids")
    if "ids_agreeing_with_fp32" in r:
        extra.append(f"{100 * r['ids_agreeing_with_fp32']:.2f}% of ids as in fp32")
    if "bit_identical" in r:
        extra.append("bit-identical" if r["bit_identical"] else "NOT identical")
    return {"subject": r["subject"], "variant": r["variant"],
            "median ms": fmt(1000 * r["median_s"]) if "median_s" in r else "-",
            "spread": f"{100 * r['spread']:.0f}%" if "spread" in r else "-",
            "speed-up of the change": fmt(r.get("speedup")) if "median_s" in r else "-",
            "notes": "; ".join(extra) or "-"}


if __name__ == "__main__":
    main()
