"""The reference implementation's network beside ours in the training benchmark (``training.py --reference``).

``--reference PATH`` (a checkout of the paper's reference repository, not part of this
project): PATH/pytorch_lightning goes on sys.path, its ``modules.model.ELF`` is built with the
teacher's dims, and two steps are timed interleaved with ours: (1) the network step, the same
for both networks: one self-conditioned forward with gradients, the velocity MSE, backward,
clipping and AdamW (no EMA); (2) the stage-1 step of each code base, the reference's re-expressed
here from its training step (no-grad passes F(0), then F(0) again and F(F(0)) for the guidance
target, on every row, and one grad pass) against ``TeacherLoss`` (its two no-grad passes on
the self-conditioned rows only). Without ``--reference`` those columns say "not measured".
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
from torch import nn

from bench_common import (
    autocast_for,
)
from fmlm.losses.common import Batch, sample_guidance
from fmlm.math.interpolant import x_to_velocity
from fmlm.nn import count_parameters
from fmlm.train.schedule import micro_generator
from train_stages import Stage


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
