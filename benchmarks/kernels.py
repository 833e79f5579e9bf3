"""The two kernel choices of the denoiser's blocks, timed against what they replace.

    python benchmarks/kernels.py --threads 1 \\
        --out benchmarks/results/kernels_cpu.json --markdown benchmarks/results/kernels_cpu.md

1. Norms: ``fmlm.nn.cpu.fused_norm.rms_norm`` and ``normed_rotary`` (written-out backward) against the
   composite formula differentiated by autograd (``weight * x * rsqrt(mean(x^2) + eps)``, then
   ``apply_rotary``), at the embedded preset's block shapes (``--batch`` rows of the preset's
   text plus prefix tokens): the RMSNorm of the hidden state (B, N, width) and the q/k norm of one
   head tensor (B, heads, N, head_dim, a permuted view of qkv as in the attention).
2. Attention: ``F.scaled_dot_product_attention`` (PyTorch's fused kernel) against explicit matmuls
   (scores and softmax in float32, as ``fmlm.nn.cpu.attention.attend`` does for short bf16 rows on a CPU),
   in float32 and bf16, over sequence lengths ``--lengths`` at about ``--tokens`` tokens per call
   (batch = tokens // length) with ``--heads`` heads of 64 channels.

3. Network step: the shared network step of ``benchmarks/training.py`` (one self-conditioned grad
   pass of the embedded teacher, velocity MSE, backward, clipping, AdamW) with the blocks' kernels
   swapped in this process (``fmlm.nn.layers``'s ``rms_norm``, ``normed_rotary`` and ``attend``):
   as before (composite norms, the fused attention kernel), fused norms, fused norms and ``attend``;
   in float32 and under bf16 autocast. What each choice buys where it is used; in isolation (1.)
   a kernel's time also depends on what the allocator does around it.

Each case: forward and backward together ("train"), and forward alone without gradients; median
over ``--repeats`` interleaved rounds after a warm-up (``bench_common.interleaved``); each section
is interleaved on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import copy

import torch
import torch.nn.functional as F

from bench_common import DIMS, command_line, fmt, header, interleaved, machine, median, networks, write_results
from train_reference import network_step_fn
from fmlm.experiment import preset
from fmlm.losses.common import Batch
from fmlm.nn import layers
from fmlm.nn.cpu.attention import explicit_attention
from fmlm.nn.cpu.fused_norm import RMS_EPS, normed_rotary, rms_norm
from fmlm.nn.rotary import apply_rotary, rotary_tables
from fmlm.reports.formatting import markdown_table

HEAD_DIM = 64


def composite_rms(x, weight):
    """The formula as autograd sees it without the fused function."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + RMS_EPS) * weight).to(x.dtype)


def norm_cases(batch: int) -> tuple[dict, dict]:
    """Closures timing both norms both ways, and the shapes they run at."""
    exp = preset("embedded")
    cfg = networks("embedded", exp.data.row_len, torch.device("cpu"), ("teacher",))["teacher"].config
    n = cfg.prefix_len + cfg.max_len
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(batch, n, cfg.width, generator=gen).requires_grad_()
    qkv = torch.randn(batch, n, 3, cfg.heads, cfg.head_dim, generator=gen).requires_grad_()
    w_width = torch.ones(cfg.width, requires_grad=True)
    w_head = torch.ones(cfg.head_dim, requires_grad=True)
    cos, sin = rotary_tables(n, cfg.head_dim)
    g_hidden, g_head = torch.randn_like(hidden), torch.randn(batch, cfg.heads, n, cfg.head_dim)

    def q_view():
        return qkv.permute(2, 0, 3, 1, 4)[0]

    forms = {
        "RMSNorm": {"fused": lambda: rms_norm(hidden, w_width), "composite": lambda: composite_rms(hidden, w_width),
                    "grad": g_hidden},
        "q/k norm + rotary": {"fused": lambda: normed_rotary(q_view(), w_head, cos, sin),
                              "composite": lambda: apply_rotary(composite_rms(q_view(), w_head), cos, sin),
                              "grad": g_head},
    }
    cases = {}
    for op, f in forms.items():
        for form in ("fused", "composite"):
            cases[f"{op} | {form} | train"] = (lambda fn=f[form], g=f["grad"]: fn().backward(g))
            cases[f"{op} | {form} | forward"] = (lambda fn=f[form]: _no_grad(fn))
    shapes = {"RMSNorm": list(hidden.shape), "q/k norm + rotary": [batch, cfg.heads, n, cfg.head_dim]}
    return cases, shapes


def _no_grad(fn):
    with torch.no_grad():
        return fn()


def attention_cases(lengths: list[int], tokens: int, heads: int) -> dict:
    cases = {}
    for n in lengths:
        b = max(1, tokens // n)
        for dtype in (torch.float32, torch.bfloat16):
            qkv = torch.randn(b, n, 3, heads, HEAD_DIM, dtype=dtype).requires_grad_()
            grad = torch.randn(b, heads, n, HEAD_DIM, dtype=dtype)
            for kind, fn in (("fused kernel", F.scaled_dot_product_attention), ("explicit", explicit_attention)):
                def run(fn=fn, qkv=qkv):
                    return fn(*qkv.permute(2, 0, 3, 1, 4).unbind(0))

                key = f"{n} | {b} | {str(dtype)[6:]} | {kind}"
                cases[f"{key} | train"] = (lambda run=run, g=grad: run().backward(g))
                cases[f"{key} | forward"] = (lambda run=run: _no_grad(run))
    return cases


def composite_normed_rotary(x, weight, cos, sin):
    return apply_rotary(composite_rms(x, weight), cos, sin)


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


VARIANTS = {
    "composite norms, fused attention kernel (before)": (composite_rms, composite_normed_rotary, sdpa),
    "fused norms, fused attention kernel": (rms_norm, normed_rotary, sdpa),
    "fused norms, attend (now)": (rms_norm, normed_rotary, layers.attend),
}


@contextlib.contextmanager
def kernels(rms, rotary, attention):
    """``fmlm.nn.layers`` computing with the given norm and attention functions inside the block."""
    saved = layers.rms_norm, layers.normed_rotary, layers.attend
    layers.rms_norm, layers.normed_rotary, layers.attend = rms, rotary, attention
    try:
        yield
    finally:
        layers.rms_norm, layers.normed_rotary, layers.attend = saved


def network_cases(batch: int) -> dict:
    """The network step per kernel variant and precision, each on its own copy of one random teacher."""
    exp, device = preset("embedded"), torch.device("cpu")
    length = exp.data.row_len
    dim, vocab = DIMS["embedded"]
    gen = torch.Generator().manual_seed(0)
    data = Batch(torch.randint(0, vocab, (batch, length), generator=gen), torch.randn(batch, length, dim, generator=gen))
    teacher = networks("embedded", length, device, ("teacher",))["teacher"].train()
    cases = {}
    for precision, label in (("auto", "float32"), ("bf16", "bf16 autocast")):
        for name, fns in VARIANTS.items():
            model = copy.deepcopy(teacher)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
            step = network_step_fn(lambda z, t, s, w, m=model: m(z, t, sc=s, w=w), opt, data, exp, device, precision)

            def run(step=step, fns=fns):
                with kernels(*fns):
                    step()

            cases[f"{label} | {name}"] = run
    return cases


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    parser.add_argument("--batch", type=int, default=64, help="rows of the norm cases")
    parser.add_argument("--lengths", default="44,140,268,524,780,1036", help="attention sequence lengths")
    parser.add_argument("--tokens", type=int, default=8192, help="tokens per attention call (batch = tokens // length)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads (64 channels each)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)
    try:
        args.lengths = [int(v) for v in args.lengths.split(",")]
    except ValueError:
        parser.error(f"--lengths: expected comma-separated integers, got {args.lengths!r}")
    for name in ("batch", "tokens", "heads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if any(n < 1 for n in args.lengths):
        parser.error(f"--lengths: every length must be >= 1, got {args.lengths}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    norms, shapes = norm_cases(args.batch)
    attention = attention_cases(args.lengths, args.tokens, args.heads)
    times = {}
    for cases in (norms, attention, network_cases(args.batch)):
        times.update({k: median(v) for k, v in interleaved(cases, args.repeats, device).items()})
    payload = {"machine": machine(device), "command": command_line(),
               "settings": {"batch": args.batch, "lengths": args.lengths, "tokens": args.tokens, "heads": args.heads,
                            "repeats": args.repeats, "norm_shapes": shapes},
               "norms": norm_rows(times, shapes), "attention": attention_rows(times), "network_step": network_rows(times),
               "times_s": times}
    write_results(payload, report(payload), args.out, args.markdown)


def norm_rows(times: dict, shapes: dict) -> list[dict]:
    rows = []
    for op, shape in shapes.items():
        for mode in ("train", "forward"):
            fused, composite = times[f"{op} | fused | {mode}"], times[f"{op} | composite | {mode}"]
            rows.append({"op": op, "shape": shape, "mode": mode, "fused_ms": fused * 1e3,
                         "composite_ms": composite * 1e3, "composite_over_fused": composite / fused})
    return rows


def attention_rows(times: dict) -> list[dict]:
    rows = []
    keys = sorted({tuple(k.split(" | ")[:3]) for k in times if k.count(" | ") == 4}, key=lambda k: (int(k[0]), k[2]))
    for n, b, dtype in keys:
        for mode in ("train", "forward"):
            fused, explicit = (times[f"{n} | {b} | {dtype} | {kind} | {mode}"] for kind in ("fused kernel", "explicit"))
            rows.append({"length": int(n), "batch": int(b), "dtype": dtype, "mode": mode, "fused_kernel_ms": fused * 1e3,
                         "explicit_ms": explicit * 1e3, "fused_kernel_over_explicit": fused / explicit})
    return rows


def network_rows(times: dict) -> list[dict]:
    rows = []
    for label in ("float32", "bf16 autocast"):
        before = times[f"{label} | {next(iter(VARIANTS))}"]
        for name in VARIANTS:
            t = times[f"{label} | {name}"]
            rows.append({"precision": label, "kernels": name, "step_s": t, "before_over_this": before / t})
    return rows


def report(payload: dict) -> str:
    s = payload["settings"]
    lines = header("Kernel choices of the denoiser's blocks", payload)
    lines += [f"Median of {s['repeats']} interleaved rounds after a warm-up; train = forward and backward, "
              "forward = without gradients.", "", "## Norms (the embedded preset's block shapes)", "",
              "Timed alone, a norm's time moves with the allocator's state from run to run (the same kernel can "
              "rank either way); the network step below is the measure of what the fused norms buy.", ""]
    lines.append(markdown_table([{"op": r["op"], "shape": "x".join(map(str, r["shape"])), "mode": r["mode"],
                                  "fused ms": fmt(r["fused_ms"], 3), "composite ms": fmt(r["composite_ms"], 3),
                                  "composite / fused": fmt(r["composite_over_fused"])} for r in payload["norms"]]))
    lines += ["", f"## Attention ({s['heads']} heads of {HEAD_DIM} channels, about {s['tokens']} tokens per call)", ""]
    lines.append(markdown_table([{"length": r["length"], "batch": r["batch"], "dtype": r["dtype"], "mode": r["mode"],
                                  "fused kernel ms": fmt(r["fused_kernel_ms"], 2), "explicit ms": fmt(r["explicit_ms"], 2),
                                  "fused kernel / explicit": fmt(r["fused_kernel_over_explicit"])}
                                 for r in payload["attention"]]))
    lines += ["", f"## Network step (embedded teacher, batch {s['batch']}, one thread per the command)", ""]
    lines.append(markdown_table([{"precision": r["precision"], "kernels": r["kernels"], "s / step": fmt(r["step_s"], 4),
                                  "before / this": fmt(r["before_over_this"], 3)} for r in payload["network_step"]]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
