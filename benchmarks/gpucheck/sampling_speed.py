"""Part 3, sampling: FMLM* at the preset's flow-map steps (1, 2, 4) and the teacher's SDE (32 steps, warm
self-conditioning) at ``sample_batch`` rows of the preset's length, random networks.

The cases, closures and table are ``benchmarks/sample_cases.py``'s (``sampler_cases``, ``sample_fn``,
``cost_fns``, ``table_rows``), timed interleaved (``bench_common.interleaved``): samples/s, the speed
ratio against the teacher's row (its time over the row's) beside the ratio of network evaluations
(the decoder pass counted as one) and the ratio the measured costs of one forward F and the decoder
pass D predict, (E - 1) F + D per batch.
"""

from __future__ import annotations

from bench_common import fmt, interleaved, median, networks
from sample_cases import cost_fns, sample_fn, sampler_cases, table_rows
from fmlm.experiment import preset


def run(check, rec: dict) -> None:
    s, device = check.sizes, check.device
    exp = preset(s.preset)
    cases = sampler_cases(s.preset, s.sample_batch, None)
    cases = [cases[0]] + [c for c in cases if c.role == "fmlm-star"]
    models = networks(s.preset, s.length, device, ("teacher", "fmlm-star"), s.dims)
    rec["settings"] = {"batch": s.sample_batch, "length": s.length, "repeats": s.sample_repeats,
                       "precision": check.precision}
    nfe = {}
    fns = {c.label: _keeping_nfe(sample_fn(models[c.role], c, exp, s.sample_batch, s.length, device, check.precision),
                                 nfe, c.label) for c in cases}
    costs = cost_fns(models, exp, s.sample_batch, s.length, device, check.precision)
    times = interleaved({**fns, **costs}, s.sample_repeats, device)
    results = {c.label: (median(times[c.label]), nfe[c.label], None) for c in cases}
    rec["network_costs_s"] = {k: median(times[k]) for k in costs}
    rec["samplers"] = table_rows(cases, results, rec["network_costs_s"], s.sample_batch, s.length)
    for row in rec["samplers"]:
        row["times_s"] = times[row["sampler"]]


def _keeping_nfe(fn, nfe: dict, label: str):
    """``fn`` (a ``generate`` closure) that also stores its sample set's network evaluations in ``nfe[label]``."""
    def run():
        out = fn()
        nfe[label] = out.nfe
        return out

    return run


def lines(rec: dict) -> list[str]:
    """The part's markdown: one row per sampler."""
    from fmlm.reports.formatting import markdown_table

    if not rec.get("samplers"):
        return []
    cells = [{"sampler": r["sampler"], "evaluations / sample": str(r["network_evaluations_per_sample"]),
              "s / batch": fmt(r["seconds_per_batch"], 3), "samples/s": fmt(r["samples_per_s"], 1),
              "tokens/s": fmt(r["tokens_per_s"], 0), "speed ratio vs teacher": fmt(r["speed_ratio"]),
              "evaluations ratio": fmt(r["evaluations_ratio"]),
              "predicted ratio ((E-1)F + D)": fmt(r["predicted_ratio"])}
             for r in rec["samplers"]]
    costs = ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in rec["network_costs_s"].items())
    return [markdown_table(cells), "", f"Measured costs per batch: {costs}.", ""]
