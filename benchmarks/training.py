"""Training-step cost of every stage on same-shaped random networks of a preset.

    python benchmarks/training.py                                   # embedded preset shapes, CPU
    python benchmarks/training.py --preset paper --device cuda --batch 32 --length 1024
    python benchmarks/training.py --threads 1 --reference /tmp/refco \\
        --out benchmarks/results/training_cpu.json --markdown benchmarks/results/training_cpu.md

Stages: the teacher (self-conditioned, stage 1), the no-SC teacher, ELF* (stage 2: the frozen
teacher's K-step Anderson trajectory, then the student's pair pass and its no-grad third pass)
and FMLM* (stage 3: the frozen ELF*'s diagonal targets and the student's two no-grad target
passes, then its grad pass). One step is what ``fmlm.train.loop.train`` does for one
micro-batch of a denoising step: the loss under the preset's precision (bf16 autocast on CUDA
under ``auto``), backward, gradient clipping, the optimiser steps and the EMA update. The
teacher's decoder step (``decoder_step=True``, the same branch in every stage) is timed once.
Random latents and ids of the preset's shapes stand in for data.

Per stage: the median step time over ``--repeats`` interleaved rounds after a warm-up
(``bench_common.interleaved``), tokens/s (rows x length per step), the step in forward-pass
equivalents (FPE: the step's time over one no-grad forward of the same network at the same
batch, timed in the same rounds), the passes the step made (counted by forward hooks), the
peak memory of one step (``bench_common.peak_memory``) and model FLOPs.

Model FLOPs of one network call (w width, h SwiGLU hidden, d latent dim, b bottleneck,
V vocabulary, D depth, L text tokens, P prefix tokens, n = L + P; a multiply-add is 2 FLOPs):

    per token per block:  attention projections 4 * 2 w^2  (q, k, v and the output)
                          SwiGLU                 3 * 2 w h  (gate, up, down)
                          attention scores       2 * 2 n w  (q k^T and the weighted sum of v)
    blocks                n * D * (8 w^2 + 6 w h + 4 n w)
    input (L tokens)      2 (2d) d  [self-conditioned only]  + 2 d b + 2 b w
    prefix banks (per row) per scalar embedded (t, s, w, tau): 2 * 256 w + 2 w^2
    head                  x-prediction: L * 2 w d; decoder: T * (2 w d + 2 d V) for the T decoded tokens

A call with gradients counts 3x its forward FLOPs (forward + backward), one without 1x; a
step's FLOPs are the sum over the calls it made. On CUDA the model FLOPs utilisation is
step FLOPs / step time / the device's dense bf16 peak (``--peak-tflops``, or the known value
of the device); on CPU no peak is claimed, the achieved GFLOP/s is reported instead.

``--reference PATH`` (a checkout of the paper's reference repository, not part of this
project): PATH/pytorch_lightning goes on sys.path, its ``modules.model.ELF`` is built with the
teacher's dims, and two steps are timed interleaved with ours: (1) the network step, the same
for both networks: one self-conditioned forward with gradients, the velocity MSE, backward,
clipping and AdamW (no EMA); (2) the stage-1 step of each code base, the reference's re-expressed
here from its training step (no-grad passes F(0), then F(0) again and F(F(0)) for the guidance
target, on every row, and one grad pass) against ``TeacherLoss`` (its two no-grad passes on
the self-conditioned rows only). Without ``--reference`` those columns say "not measured".

Memory derivation (``--derive-length``, default 1024 for ``--preset paper``): the per-sample
memory of a step is the slope, between two batch sizes (``--memory-batches``), of the peak
while the loss runs with gradients enabled (before backward: the activations kept for
backward and the no-grad passes' transients; at small batches a whole step's peak is the
gradients', the same at both sizes), scaled by tokens to the derived length (activations
grow with tokens; attention is the fused kernel, with no n^2 scores kept); the derived
memory adds it to all the gradients at once (conservative: backward frees activations as
gradients appear). The fixed part is counted on paper:
weights, gradients, optimiser states and EMA of the student (4 bytes each, AdamW 2 states,
Muon 1 on the hidden matrices; the preset's optimiser, whatever ``--optimizer`` timed) plus the
frozen teacher's weights. The largest batch that fits
``--derive-memory-gb`` GB is derived from these, not measured on a GPU.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch import nn

from bench_common import (
    DIMS, autocast_for, fmt, header, interleaved, machine, max_rss_bytes, median, mib, networks,
    peak_memory, round_ratios,
    command_line, write_results,
)
from fmlm.experiment import PRESETS, preset
from fmlm.losses.common import Batch, sample_guidance
from fmlm.losses.fixed_point import FixedPointLoss, teacher_trajectory
from fmlm.losses.flow_map import FlowMapLoss
from fmlm.losses.teacher import TeacherLoss
from fmlm.math.interpolant import x_to_velocity
from fmlm.nn import count_parameters
from fmlm.nn.embedding import SCALAR_FEATURES
from fmlm.reports.formatting import NOT_MEASURED, markdown_table
from fmlm.train.ema import EMA
from fmlm.train.optim import OptimConfig, build_optimizers, set_lr, split_parameters
from fmlm.train.schedule import micro_generator

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
"""Dense bf16 peak (TFLOP/s, no sparsity) by a name found in ``torch.cuda.get_device_name``."""

GB = 1e9
MEMORY_STEPS = 2  # steps per batch size of the memory slope, the highest peak kept (the passes vary per step)


# ---------------------------------------------------------------- model FLOPs


def forward_flops(cfg, length: int, decoded_tokens: int | None = None) -> float:
    """Forward FLOPs of one row through a network of ``cfg`` (module docstring); decoder head when
    ``decoded_tokens`` is given (tokens decoded in that row), else the x-prediction head."""
    w, h, d, b, n = cfg.width, cfg.mlp_hidden, cfg.latent_dim, cfg.bottleneck, length + cfg.prefix_len
    blocks = n * cfg.depth * (8 * w * w + 6 * w * h + 4 * n * w)
    inputs = length * ((4 * d * d if cfg.self_conditioning else 0) + 2 * d * b + 2 * b * w)
    scalars = 2 + (cfg.guidance_tokens > 0) + (cfg.phase_tokens > 0)
    banks = scalars * (2 * SCALAR_FEATURES * w + 2 * w * w)
    head = length * 2 * w * d if decoded_tokens is None else decoded_tokens * (2 * w * d + 2 * d * cfg.vocab_size)
    return float(blocks + inputs + banks + head)


class PassLog:
    """Forward hooks recording every call of the watched networks: (name, rows, length, decoded tokens, grad)."""

    def __init__(self, watched: dict[str, nn.Module]):
        self.calls: list[tuple[str, int, int, int | None, bool]] = []
        self.configs = {name: m.config for name, m in watched.items()}
        self.handles = [m.register_forward_hook(self._hook(name), with_kwargs=True) for name, m in watched.items()]

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            z = args[0]
            decoded = None
            if kwargs.get("decode"):
                positions = kwargs.get("positions")
                decoded = int(positions.sum()) if positions is not None else z.shape[0] * z.shape[1]
            self.calls.append((name, z.shape[0], z.shape[1], decoded, torch.is_grad_enabled()))

        return hook

    def flops(self) -> float:
        """Model FLOPs of the recorded calls (3x for calls with gradients)."""
        total = 0.0
        for name, rows, length, decoded, grad in self.calls:
            per_row = forward_flops(self.configs[name], length, None if decoded is None else decoded / rows)
            total += rows * per_row * (3 if grad else 1)
        return total

    def passes(self, batch: int) -> str:
        """The calls as text, e.g. 'teacher 10 x no-grad (32 rows); student grad (64 rows)'."""
        parts: list[list] = []
        for name, rows, _, decoded, grad in self.calls:
            key = (name, rows, grad, decoded is not None)
            if parts and parts[-1][0] == key:
                parts[-1][1] += 1
            else:
                parts.append([key, 1])
        text = []
        for (name, rows, grad, dec), count in parts:
            kind = ("grad" if grad else "no-grad") + (" decoder" if dec else "")
            text.append(f"{name} {count} x {kind} ({rows} rows)" if count > 1 else f"{name} {kind} ({rows} rows)")
        return "; ".join(text)

    def forward_equivalents(self, batch: int) -> float:
        """Rows processed over ``batch``, 3x for grad calls: the FPE the passes alone predict."""
        return sum(rows / batch * (3 if grad else 1) for _, rows, _, _, grad in self.calls)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


# ---------------------------------------------------------------- stage steps


@dataclasses.dataclass
class Stage:
    """A stage to time: its student, the networks it calls, its loss and its optimiser settings."""

    name: str
    model: nn.Module
    watched: dict[str, nn.Module]
    loss: object
    optim: OptimConfig
    forward_kwargs: dict
    state: tuple | None = None  # (optimisers, EMA), built on first use and shared by every step of the stage

    def trainer_state(self) -> tuple:
        """The stage's optimisers (lr 1e-5) and EMA, one set however many step closures use them."""
        if self.state is None:
            optimizers = build_optimizers(self.model, self.optim)
            set_lr(optimizers, 1e-5)
            self.state = (optimizers, EMA(self.model, self.optim.ema_decay, self.optim.ema_warmup))
        return self.state


def build_stages(exp, models: dict, optim: OptimConfig, batch: int, device) -> list[Stage]:
    """The four stages on their own copies of the networks (a distillation loss freezes its teacher)."""
    frozen_teacher = copy.deepcopy(models["teacher"])
    frozen_elf = copy.deepcopy(models["elf-star"])
    student_elf, student_fm = models["elf-star"], models["fmlm-star"]
    w = torch.full((batch,), 3.0, device=device)
    t = torch.full((batch,), 0.5, device=device)
    tau = torch.full((batch,), student_elf.config.default_phase, device=device)
    return [
        Stage("teacher", models["teacher"], {"student": models["teacher"]}, TeacherLoss(exp.teacher, exp.flow), optim,
              {"sc": "z", "w": w}),
        Stage("teacher-nosc", models["teacher-nosc"], {"student": models["teacher-nosc"]},
              TeacherLoss(dataclasses.replace(exp.teacher, self_conditioning=False), exp.flow), optim, {}),
        Stage("ELF* (stage 2)", student_elf, {"teacher": frozen_teacher, "student": student_elf},
              FixedPointLoss(exp.fixed_point, frozen_teacher, exp.flow), optim, {"sc": "z", "w": w, "tau": tau}),
        Stage("FMLM* (stage 3)", student_fm, {"teacher": frozen_elf, "student": student_fm},
              FlowMapLoss(exp.flow_map, frozen_elf, exp.flow), optim, {"s": t * 0.5, "w": w}),
    ]


def step_fn(stage: Stage, batch: Batch, device, precision: str, decoder_step: bool = False):
    """One training step of ``stage`` as the trainer takes it (module docstring), a fresh generator per step."""
    stage.model.train()
    optimizers, ema = stage.trainer_state()
    counter = [0]

    def step():
        gen = micro_generator(0, counter[0], 0, device)
        counter[0] += 1
        with autocast_for(device, precision):
            out = stage.loss(stage.model, batch, gen, decoder_step)
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(stage.model.parameters(), stage.optim.grad_clip)
        float(grad_norm)  # the trainer's finite-gradient check (one sync)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        ema.update(stage.model)

    return step


def loss_forward_fn(stage: Stage, batch: Batch, device, precision: str):
    """The stage's loss with gradients enabled, without backward: what its graph keeps for backward (the
    activations) plus its no-grad passes' transients; the graph is dropped on return."""
    counter = [0]

    def run():
        gen = micro_generator(0, counter[0], 0, device)
        counter[0] += 1
        with autocast_for(device, precision):
            out = stage.loss(stage.model, batch, gen, False)
        return float(out.loss.detach())

    return run


def forward_fn(stage: Stage, batch: Batch, device, precision: str):
    """One no-grad forward of the stage's network at the batch, called as the stage calls it."""
    z = batch.x0
    t = torch.full((z.shape[0],), 0.5, device=device)
    kwargs = {k: (z if v == "z" else v) for k, v in stage.forward_kwargs.items()}

    def forward():
        with torch.no_grad(), autocast_for(device, precision):
            return stage.model(z, t, **kwargs)

    return forward


def trajectory_fn(stage: Stage, batch: Batch, exp, device, precision: str):
    """Stage 2's K-step teacher trajectory alone (no grad), at the step's batch."""
    z, teacher = batch.x0, stage.watched["teacher"]
    t = torch.full((z.shape[0],), 0.5, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    w = sample_guidance(z.shape[0], exp.flow, gen, device, z.dtype)

    def run():
        with autocast_for(device, precision):
            return teacher_trajectory(teacher, z, t, w, exp.fixed_point)

    return run


def count_passes(fn, watched: dict[str, nn.Module]) -> PassLog:
    """Run ``fn`` once with forward hooks on ``watched``; the log of its network calls."""
    log = PassLog(watched)
    try:
        fn()
    finally:
        log.close()
    return log


# ---------------------------------------------------------------- the reference network


def load_reference(path: str):
    """The reference repository's ``ELF`` class from a checkout at ``path`` (never vendored)."""
    root = Path(path) / "pytorch_lightning"
    if not (root / "modules" / "model.py").is_file():
        raise SystemExit(f"error: --reference {path}: no pytorch_lightning/modules/model.py there")
    sys.path.insert(0, str(root))
    from modules.model import ELF  # noqa: E402  (the reference's own module)

    return ELF


def reference_network(elf_class, cfg, device) -> nn.Module:
    """The reference ELF with the dims of our teacher config ``cfg`` (its fp32 attention path)."""
    return elf_class(
        text_encoder_dim=cfg.latent_dim, max_length=cfg.max_len, hidden_size=cfg.width, depth=cfg.depth,
        num_heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, bottleneck_dim=cfg.bottleneck, num_time_tokens=cfg.time_tokens,
        num_self_cond_cfg_tokens=cfg.guidance_tokens, num_model_mode_tokens=cfg.mode_tokens,
        vocab_size=cfg.vocab_size, self_cond_input=True, use_flash=False,
    ).to(device)


def network_step_fn(predict, opt, batch: Batch, exp, device, precision: str):
    """The shared network step: one self-conditioned grad pass, velocity MSE, backward, clip, AdamW (``opt``)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    z = batch.x0
    gen = torch.Generator(device=device).manual_seed(0)
    t = torch.rand(z.shape[0], generator=gen, device=device) * 0.9
    w = sample_guidance(z.shape[0], exp.flow, gen, device, z.dtype)
    slot = torch.randn(z.shape, generator=gen, device=device)
    target = torch.randn(z.shape, generator=gen, device=device)

    def step():
        with autocast_for(device, precision):
            xhat = predict(z, t, slot, w)
        v = x_to_velocity(xhat.float(), z, t, exp.flow.t_eps)
        loss = (v - target).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def reference_teacher_step_fn(ref: nn.Module, opt, batch: Batch, exp, device, precision: str):
    """The reference's stage-1 step re-expressed on its network: F(0) for the slot (no grad), the grad
    pass, then F(0) and F(F(0)) again for the guidance target (no grad), on every row; AdamW (``opt``)."""
    flow, z0 = exp.flow, batch.x0
    b = z0.shape[0]
    counter = [0]

    def predict(z, t, slot, w):
        return ref(torch.cat([z, slot], dim=-1), t, self_cond_cfg_scale=w)[0]

    def step():
        gen = micro_generator(0, counter[0], 0, device)
        counter[0] += 1
        t = torch.sigmoid(torch.randn(b, generator=gen, device=device) * flow.p_std + flow.p_mean)
        eps = torch.randn(z0.shape, generator=gen, device=device)
        z = t.view(-1, 1, 1) * z0 + (1 - t.view(-1, 1, 1)) * flow.lam * eps
        v_target = x_to_velocity(z0, z, t, flow.t_eps)
        use_sc = (torch.rand(b, generator=gen, device=device) < exp.teacher.sc_prob).view(-1, 1, 1).float()
        w = sample_guidance(b, flow, gen, device, z0.dtype)
        zero = torch.zeros_like(z)
        with autocast_for(device, precision):
            with torch.no_grad():
                slot = predict(z, t, zero, w).float() * use_sc
            xhat = predict(z, t, slot, w).float()
            with torch.no_grad():
                x_unc = predict(z, t, zero, w).float()
                x_cond = predict(z, t, x_unc, w).float()
        v_unc, v_cond = x_to_velocity(x_unc, z, t, flow.t_eps), x_to_velocity(x_cond, z, t, flow.t_eps)
        shift = (1 - 1 / w).view(-1, 1, 1) * (v_cond - v_unc) * use_sc
        loss = (x_to_velocity(xhat, z, t, flow.t_eps) - (v_target + shift)).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def reference_cases(path: str | None, models: dict, stages: list[Stage], batch: Batch, exp, device, precision):
    """Closures of the reference comparison (empty without ``--reference``) and the parameter counts."""
    if path is None:
        return {}, {}
    ours = copy.deepcopy(models["teacher"]).train()
    ref = reference_network(load_reference(path), ours.config, device).train()
    betas = exp.train_teacher.optim.betas
    ours_opt = torch.optim.AdamW(ours.parameters(), lr=1e-5, betas=betas)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-5, betas=betas)
    fns = {
        "network step | ours": network_step_fn(lambda z, t, s, w: ours(z, t, sc=s, w=w), ours_opt,
                                               batch, exp, device, precision),
        "network step | reference": network_step_fn(lambda z, t, s, w: ref(torch.cat([z, s], -1), t,
                                                                            self_cond_cfg_scale=w)[0],
                                                    ref_opt, batch, exp, device, precision),
        "stage-1 step | ours": _no_ema_teacher_step(ours, stages[0].loss, ours_opt, batch, device, precision),
        "stage-1 step | reference": reference_teacher_step_fn(ref, ref_opt, batch, exp, device, precision),
    }
    return fns, {"ours": count_parameters(ours), "reference": count_parameters(ref)}


def _no_ema_teacher_step(model: nn.Module, loss, opt, batch: Batch, device, precision: str):
    """Our stage-1 step (``TeacherLoss``) with AdamW and without the EMA update, as the reference's runs."""
    counter = [0]

    def step():
        gen = micro_generator(0, counter[0], 0, device)
        counter[0] += 1
        with autocast_for(device, precision):
            out = loss(model, batch, gen, False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


# ---------------------------------------------------------------- memory derivation


def fixed_bytes(stage: Stage, optim: OptimConfig) -> int:
    """Weights, gradients, optimiser states and EMA of the student plus the frozen teacher's weights (fp32)."""
    p = count_parameters(stage.model)
    if optim.optimizer == "muon":
        hidden = sum(x.numel() for x in split_parameters(stage.model)[0])
        states = 4 * hidden + 8 * (p - hidden)
    else:
        states = 8 * p
    teacher = sum(count_parameters(m) for name, m in stage.watched.items() if name == "teacher")
    return 4 * p + 4 * p + states + 4 * p + 4 * teacher


def derive_batch(per_sample: float, fixed: int, memory_gb: float) -> int | None:
    """Largest batch with ``fixed + batch * per_sample <= memory_gb`` GB (None when per_sample is not positive)."""
    if not per_sample or per_sample <= 0:
        return None
    return max(int((memory_gb * GB - fixed) // per_sample), 0)


def memory_derivation(stages, exp, args, device, make_batch) -> list[dict]:
    """Per stage: measured peaks at two batch sizes, their slope per sample, scaled to the derived length."""
    lo, hi = args.memory_batches
    rows = []
    for stage in stages:
        peaks = {}
        step_peaks = {}
        for b in (lo, hi):
            step = step_fn(stage, make_batch(b), device, args.precision)
            step()  # optimiser states exist before the measured runs, as in training
            forward = loss_forward_fn(stage, make_batch(b), device, args.precision)
            measured = [peak_memory(forward, device) for _ in range(MEMORY_STEPS)]
            peaks[b] = None if None in measured else max(measured)
            step_peaks[str(b)] = peak_memory(step, device)
        row = {"stage": stage.name, "peak_bytes": {str(b): peaks[b] for b in peaks}, "step_peak_bytes": step_peaks}
        if None not in peaks.values():
            slope = (peaks[hi] - peaks[lo]) / (hi - lo)
            prefix = stage.model.config.prefix_len
            scale = (args.derive_length + prefix) / (args.length + prefix)
            per_sample = slope * scale
            fixed = fixed_bytes(stage, exp.train_teacher.optim)  # the preset's own optimiser, as a GPU run uses
            row.update(per_sample_bytes_measured=slope, per_sample_bytes_derived=per_sample, fixed_bytes=fixed,
                       derived_max_batch=derive_batch(per_sample, fixed, args.derive_memory_gb))
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the run


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
                     "memory": "not measured" if args.no_memory else _memory_method(device)},
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


def _memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated during one step, above the memory allocated before it"
    return ("peak CPU tensor memory allocated during one step above what was live before it (weights, optimiser "
            "states; torch.profiler profile_memory=True, the allocator's total_allocated); not the RSS")


def peak_tflops(args, device) -> float | None:
    """The bf16 peak for the MFU: ``--peak-tflops``, else the known value of the CUDA device, else None."""
    if args.peak_tflops:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


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
        lines += _memory_lines(payload["memory_derivation"])
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


def _memory_lines(m: dict) -> list[str]:
    rows = [{
        "stage": r["stage"],
        **{f"step peak MiB at batch {b}": fmt(mib(v), 1) for b, v in r["step_peak_bytes"].items()},
        **{f"loss-forward peak MiB at batch {b}": fmt(mib(v), 1) for b, v in r["peak_bytes"].items()},
        "per sample MiB (measured length)": fmt(mib(r.get("per_sample_bytes_measured")), 1),
        f"per sample MiB at length {m['length']}": fmt(mib(r.get("per_sample_bytes_derived")), 1),
        "fixed GB (on paper)": fmt(None if "fixed_bytes" not in r else r["fixed_bytes"] / GB, 2),
        f"derived largest batch in {m['memory_gb']:g} GB": "-" if r.get("derived_max_batch") is None
        else str(r["derived_max_batch"]),
    } for r in m["stages"]]
    return [f"## Largest batch at length {m['length']} (derived, not measured on a GPU)", "",
            f"Per-sample memory: the slope of the measured loss-forward peak (with gradients, before backward; the "
            f"higher of {MEMORY_STEPS} runs) between batches {m['batches'][0]} and "
            f"{m['batches'][1]}, scaled by tokens (length + prefix) to length {m['length']}; fp32 activations as "
            "measured here (bf16 autocast on a GPU stores many activations in half the bytes, so the batch is a "
            "conservative estimate). Fixed part counted on paper (module docstring). GB = 1e9 bytes.", "",
            markdown_table(rows), ""]


if __name__ == "__main__":
    main()
