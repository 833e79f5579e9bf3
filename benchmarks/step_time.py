"""Time one optimiser step of each stage, and sampling, for a preset's network on this machine.

    python benchmarks/step_time.py                         # embedded preset network, CPU
    python benchmarks/step_time.py --preset paper --device cuda --batch 64 --length 1024

Random latents of the preset's shape stand in for data (no corpus or encoder
is loaded), so the numbers are the network's and the losses' cost alone.
Prints seconds per step and tokens per second; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time

import torch

from fmlm.experiment import PRESETS, preset
from fmlm.losses.common import Batch
from fmlm.losses.fixed_point import FixedPointLoss
from fmlm.losses.flow_map import FlowMapLoss
from fmlm.losses.teacher import TeacherLoss
from fmlm.nn import Denoiser, count_parameters
from fmlm.samplers import batch_sampler, generate, sampler_for
from fmlm.train.optim import build_optimizers, set_lr

DIMS = {"embedded": (384, 30522), "quick": (384, 30522), "paper": (1280, 50257)}  # encoder width, vocabulary


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="embedded", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=0, help="tokens per row (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = preset(args.preset)
    device = torch.device(args.device)
    dim, vocab = DIMS[args.preset]
    length = args.length or cfg.data.row_len
    meta = {"dim": dim, "vocab_size": vocab, "row_len": length}
    teacher = Denoiser(cfg.network.denoiser(meta, self_conditioning=True)).to(device)
    student = Denoiser(dataclasses.replace(teacher.config, phase_tokens=4)).to(device)
    flow_map = Denoiser(student.config).to(device)
    print(f"network: {count_parameters(teacher) / 1e6:.1f}M parameters, batch {args.batch} x {length} tokens, {device}")
    batch = Batch(torch.randint(0, vocab, (args.batch, length), device=device),
                  torch.randn(args.batch, length, dim, device=device))
    use_bf16 = cfg.train_teacher.precision == "bf16" or (cfg.train_teacher.precision == "auto" and device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    # Losses are built when their case runs: the distillation losses freeze the model they are given.
    cases = [
        ("teacher", teacher, lambda: TeacherLoss(cfg.teacher, cfg.flow), cfg.train_teacher),
        ("fixed-point", student, lambda: FixedPointLoss(cfg.fixed_point, teacher, cfg.flow), cfg.train_fixed_point),
        ("flow-map", flow_map, lambda: FlowMapLoss(cfg.flow_map, student, cfg.flow), cfg.train_flow_map),
    ]
    gen = torch.Generator(device=device).manual_seed(0)
    for name, model, make_loss, train in cases:
        loss = make_loss()
        opts = build_optimizers(model, train.optim)
        set_lr(opts, 1e-4)
        for decoder in (False, True):
            def step():
                with autocast:
                    out = loss(model, batch, gen, decoder)
                out.loss.backward()
                for opt in opts:
                    opt.step()
                    opt.zero_grad(set_to_none=True)

            sec = timed(step, args.repeats, device)
            kind = "decoder step" if decoder else "denoising step"
            print(f"{name:12s} {kind:15s} {sec:7.3f} s/step  {args.batch * length / sec:10.0f} tokens/s")
    sampler = sampler_for(cfg.flow, {"kind": "sde", "steps": 8, "batch_size": args.batch})
    with autocast:
        sec = timed(lambda: generate(teacher.eval(), batch_sampler(sampler), sampler, args.batch, length,
                                     device=device, progress=False), 1, device)
    print(f"sampling     8 SDE steps      {sec / args.batch:7.4f} s/sample")


if __name__ == "__main__":
    main()
