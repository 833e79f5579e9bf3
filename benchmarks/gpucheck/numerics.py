"""Part 1, numerics: the network in bf16 autocast against fp32 on the same inputs, and which SDPA kernel ran.

Random networks of the preset's shapes (``bench_common.networks``), each called as its stage calls it:
the teacher (self-conditioning slot and guidance w), ELF* (and its phase tau), FMLM* (source time s
and w); rows at times t spread over [0.1, 0.9]. Per call the relative error of the x-prediction,

    rel = ||x_bf16 - x_fp32||_F / ||x_fp32||_F,

and per network the decoder pass (``Denoiser.token_ids``): the fraction of token ids on which the
bf16 argmax agrees with the fp32 one.

SDPA backend: the ``torch.backends.cuda.*_sdp_enabled()`` switches, and the attention operators and
kernels that ran in one profiled forward (no grad, as the samplers call it) and one forward and
backward (as training does), both under the run's precision.
"""

from __future__ import annotations

import torch

from bench_common import autocast_for, networks
from fmlm.experiment import preset

SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
    "aten::_scaled_dot_product_fused_attention_overrideable": "fused (overrideable)",
    "aten::_scaled_dot_product_attention_math": "math",
}
"""The operator each SDPA backend dispatches to, and the backend's name."""

KERNEL_WORDS = ("flash", "fmha", "attention", "sdpa", "cudnn")  # CUDA kernel names of fused attention
KERNEL_NAME_CHARS = 100  # a kernel's name is cut here (its template arguments run to thousands of characters)


def run(check, rec: dict) -> None:
    s, device = check.sizes, check.device
    exp = preset(s.preset)
    models = networks(s.preset, s.length, device, ("teacher", "elf-star", "fmlm-star"), s.dims)
    b, dim = s.numerics_batch, s.dims[0]
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(b, s.length, dim, generator=gen).to(device)
    slot = (0.5 * torch.randn(b, s.length, dim, generator=gen)).to(device)
    t = torch.linspace(0.1, 0.9, b, device=device)
    w = torch.full((b,), exp.evaluation.teacher_w, device=device)
    tau = torch.full((b,), models["elf-star"].config.default_phase, device=device)
    calls = {"teacher": ("teacher", {"sc": slot, "w": w}),
             "ELF* (stage 2)": ("elf-star", {"sc": slot, "w": w, "tau": tau}),
             "FMLM* (stage 3)": ("fmlm-star", {"s": t * 0.5, "w": torch.full_like(w, exp.evaluation.flow_map_w)})}
    rec["settings"] = {"rows": b, "length": s.length, "low": "bf16 autocast", "reference": "fp32 (no autocast)"}
    rows = rec["calls"] = []
    for label, (role, kwargs) in calls.items():
        model = models[role]
        with torch.no_grad():
            exact = model(z, t, **kwargs).float()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                low = model(z, t, **kwargs).float()
            ones = torch.ones(b, device=device)
            ids = model.token_ids(z, ones)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                low_ids = model.token_ids(z, ones)
        rows.append({"call": label, "x_rel_error": float((low - exact).norm() / exact.norm()),
                     "x_max_abs_error": float((low - exact).abs().max()),
                     "decoder_argmax_agreement": float((low_ids == ids).float().mean())})
        check.write()
    teacher, kwargs = models["teacher"], calls["teacher"][1]
    check.payload["sdpa"] = rec["sdpa"] = sdpa_backend(teacher, z[:1], t[:1], {k: v[:1] for k, v in kwargs.items()},
                                                       device, check.precision)


def sdpa_backend(model, z, t, kwargs: dict, device: torch.device, precision: str) -> dict:
    """The SDPA switches and, per pass (no grad; forward + backward), the attention ops and kernels that ran."""
    from torch.profiler import ProfilerActivity, profile

    out = {"enabled": _switches()}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name, grad in (("no-grad forward", False), ("forward + backward", True)):
        with profile(activities=activities) as prof, torch.set_grad_enabled(grad):
            with autocast_for(device, precision):
                x = model(z, t, **kwargs)
            if grad:
                x.float().square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        events = {e.key for e in prof.key_averages()}
        ops = sorted(k for k in events if "scaled_dot_product" in k or "attention" in k.lower())
        kernels = sorted(k[:KERNEL_NAME_CHARS] for k in events
                         if k not in ops and any(w in k.lower() for w in KERNEL_WORDS))
        backends = [SDPA_OPS[k] for k in SDPA_OPS if k in events]
        out[name] = {"backend": ", ".join(backends) or "no SDPA operator (explicit matrix products)",
                     "ops": ops, "kernels": kernels[:6]}
    model.zero_grad(set_to_none=True)
    return out


def _switches() -> dict:
    """``torch.backends.cuda.*_sdp_enabled()`` (what SDPA may choose from; the CPU has its own dispatch)."""
    names = ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled")
    return {n.replace("_sdp_enabled", ""): getattr(torch.backends.cuda, n)() for n in names
            if hasattr(torch.backends.cuda, n)}


def lines(rec: dict) -> list[str]:
    """The part's markdown: one row per call."""
    from bench_common import fmt
    from fmlm.reports.formatting import markdown_table

    out = []
    if rec.get("calls"):
        out += [markdown_table([{"call": r["call"], "x-prediction relative error": f"{r['x_rel_error']:.2e}",
                                 "max abs error": fmt(r["x_max_abs_error"], 4),
                                 "decoder argmax agreement": f"{100 * r['decoder_argmax_agreement']:.2f}%"}
                                for r in rec["calls"]]), ""]
    if rec.get("sdpa"):
        sd = rec["sdpa"]
        out += [f"SDPA switches: {sd['enabled']}. " + " ".join(
            f"{name}: {sd[name]['backend']} (kernels: {', '.join(sd[name]['kernels']) or 'none named'})."
            for name in ("no-grad forward", "forward + backward") if name in sd), ""]
    return out
