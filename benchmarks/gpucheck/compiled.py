"""Part 6, compile: ``torch.compile`` on and off for the teacher step at the small batch.

Eager: the trainer's step as ``benchmarks/train_stages.py`` times it (``step_fn``; the network's per-call
finite check on). Compiled: a copy of the network with the check off (its host sync would break the
graph, as ``fmlm.nn.denoiser.compile_denoiser`` does for sampling) compiled in place
(``nn.Module.compile``, so the optimisers and the EMA see the same parameter names), with torch's
automatic dynamic shapes: the teacher's no-grad passes run on the self-conditioned rows only, a
number that changes from step to step (``dynamic=True`` from the start fails in dynamo's tracer on
torch 2.13: "lift_tracked_freevar_to_input should not be called on root SubgraphTracer"). ``--tiny``
compiles with the ``eager`` backend (graph capture only; inductor's code generation would take minutes
on a small CPU).

The first ``WARM_STEPS`` compiled steps (compilation and recompilations) are timed together; then
the two are timed interleaved (``bench_common.interleaved``). Speed-up: eager time over compiled
time per round (``round_ratios``); compile "helps" when every round's ratio exceeds 1.
"""

from __future__ import annotations

import copy
import time

import torch

from bench_common import fmt, interleaved, median, networks, round_ratios, synchronize
from train_stages import Stage, step_fn
from fmlm.experiment import preset
from fmlm.losses.common import Batch
from fmlm.losses.teacher import TeacherLoss

WARM_STEPS = 3  # compiled steps timed as compilation (each new shape of the no-grad passes may recompile)


def run(check, rec: dict) -> None:
    s, device = check.sizes, check.device
    exp = preset(s.preset)
    dim, vocab = s.dims
    eager = networks(s.preset, s.length, device, ("teacher",), s.dims)["teacher"]
    fast = copy.deepcopy(eager)
    fast.check_finite = False
    backend = "eager" if check.tiny else "inductor"
    fast.compile(backend=backend)
    loss = TeacherLoss(exp.teacher, exp.flow)
    stages = {name: Stage("teacher", m, {"student": m}, loss, exp.train_teacher.optim, {})
              for name, m in (("eager", eager), ("compiled", fast))}
    gen = torch.Generator().manual_seed(0)
    batch = Batch(torch.randint(0, vocab, (s.small_batch, s.length), generator=gen).to(device),
                  torch.randn(s.small_batch, s.length, dim, generator=gen).to(device))
    steps = {name: step_fn(stage, batch, device, check.precision) for name, stage in stages.items()}
    rec["settings"] = {"batch": s.small_batch, "length": s.length, "backend": backend, "dynamic": "automatic",
                       "precision": check.precision}
    warm = rec["first_compiled_steps_s"] = []  # kept step by step: a part cut while compiling still says how far it got
    for _ in range(WARM_STEPS):
        start = time.perf_counter()
        steps["compiled"]()
        synchronize(device)
        warm.append(time.perf_counter() - start)
        check.write()
    rec["compile_and_first_steps_s"] = sum(warm)
    rounds = interleaved(steps, s.rounds, device)
    ratio = round_ratios(rounds, "eager", "compiled")
    rec.update(eager_s=median(rounds["eager"]), compiled_s=median(rounds["compiled"]), speedup=ratio["median"],
               speedup_range=[ratio["min"], ratio["max"]], helps=bool(ratio["min"] > 1.0), rounds_s=rounds)


def lines(rec: dict) -> list[str]:
    """The part's markdown: the two step times and the verdict."""
    if not rec.get("first_compiled_steps_s"):
        return []
    warm = rec["first_compiled_steps_s"]
    out = [f"- the first {len(warm)} compiled steps (compilation included; backend {rec['settings']['backend']}): "
           + ", ".join(f"{x:.1f}" for x in warm) + " s"]
    if "speedup" in rec:
        lo, hi = rec["speedup_range"]
        out.append(f"- teacher step at batch {rec['settings']['batch']}: eager {fmt(rec['eager_s'], 4)} s, compiled "
                   f"{fmt(rec['compiled_s'], 4)} s; speed-up {rec['speedup']:.2f}x ({lo:.2f}-{hi:.2f} over "
                   f"{len(rec['rounds_s']['eager'])} rounds): {'helps' if rec['helps'] else 'does not help'}")
    return out + [""]
