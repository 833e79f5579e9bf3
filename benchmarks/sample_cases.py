"""The samplers the sampling benchmark (``sampling.py``) times, one batch of each as a closure, the
evaluation-cost model and the table's rows.

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
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch

from bench_common import (
    autocast_for, fmt, median, mib,
)
from fmlm.experiment import preset
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


def target(rows: list[dict]) -> dict:
    """The done-when check: FMLM* 1 step's speed ratio against 0.8 x its ratio of evaluations."""
    one = next((r for r in rows if r["model"] == "fmlm-star" and r["steps"] == 1), None)
    if one is None:
        return {}
    wanted = TARGET_FRACTION * one["evaluations_ratio"]
    return {"sampler": one["sampler"], "speed_ratio": one["speed_ratio"], "evaluations_ratio": one["evaluations_ratio"],
            "wanted_ratio": wanted, "predicted_ratio": one["predicted_ratio"], "met": bool(one["speed_ratio"] >= wanted)}
