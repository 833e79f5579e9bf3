"""The sampling benchmark's speed work (``sampling.py``): previous code paths against the current defaults.

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

import copy
import time

import torch

from bench_common import (
    autocast_for, fmt, interleaved, median, mib, peak_memory,
)
from fmlm.nn.denoiser import DECODE_CHUNK_TOKENS, compile_denoiser
from fmlm.nn.cpu.head_argmax import COL_TILE
from fmlm.nn.cpu.screen_int8 import int_mm_is_exact
from fmlm.samplers import NoiseStreams
from sample_cases import PATHS, sample_fn, spread, stacked_draw


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


def work_cells(r: dict) -> dict:
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
