"""Stage 2: fixed-point distillation ("ELF*", a consistency deep equilibrium
model). docs/method.md section 7.

The frozen teacher's self-conditioning map ``F(s) = D(z_t, t, s, w)`` is
iterated with Anderson acceleration from ``s_0 = 0`` for K steps (no grad):
``[s_0 .. s_K]``, ``s* = s_K``. The student ``h(z, s, tau)`` (the teacher's
network plus a phase bank) learns the map
``g(s_a, s_b, tau_a) = c_skip(tau_a) s_a + (1 - c_skip(tau_a)) P``, P the
two-point learned-Anderson combination of ``f_a = h(z, s_a, tau_a)`` and
``f_b = h(z, s_b, tau_b)``, on index triples (a, b, c) = (k, k-1, k-2)
(clamped at 0): k = 0 with probability ``cold_prob``, else k ~ U{2..K};
with probability ``snap_prob`` and 1 <= k <= K - snap_tail the iterates are
replaced by s* (phases kept). Loss:
``global_weight * MSE(g_k, s*) + (1 - global_weight) * MSE(g_k, sg(g_{k-1}))``
with ``g_{k-1} = g(s_b, s_c, tau_b)``.

At inference (``tau_0 = e``, zero slot) ``c_skip = 0`` and the degenerate
pair makes g the plain network output: one forward per flow step.

A cold row (k = 0) has a = b = c = 0: one input (s_0 = 0, tau_0) three times, so
its f_b and f_c are its f_a, computed once (the same values and, as f_b = f_a is
the same function of the weights, the same gradient). The pair pass takes the
B rows of a and the warm rows of b, the third pass the warm rows of c: about
1.75 B and 0.75 B rows at the paper's cold_prob 0.25, against 2 B and B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from fmlm.config import require
from fmlm.losses.common import Batch, DecoderConfig, LossOutput, decoder_loss, masked_mse, noisy_latents, sample_guidance
from fmlm.math.flow import FlowConfig
from fmlm.math.consistency import RHO, TAU_E, TAU_T, consistency_time, student_map
from fmlm.math.fixed_point import anderson


@dataclass(frozen=True)
class FixedPointConfig:
    """Stage-2 loss settings (paper values as defaults)."""

    iterations: int = 20  # K
    anderson_m: int = 3
    anderson_beta: float = 0.9
    anderson_lam: float = 1e-4
    tau_e: float = TAU_E
    tau_T: float = TAU_T
    rho: float = RHO
    c_skip_power: float = 1.0
    student_beta: float = 1.0
    cold_prob: float = 0.25
    snap_prob: float = 0.1
    snap_tail: int = 3
    global_weight: float = 0.8
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(prob=0.1))

    def __post_init__(self) -> None:
        require(self.iterations >= 2, "fixed_point.iterations", f"must be >= 2, got {self.iterations}")
        require(self.anderson_m >= 1, "fixed_point.anderson_m", f"must be >= 1, got {self.anderson_m}")
        require(0 < self.anderson_beta <= 1, "fixed_point.anderson_beta", "must lie in (0, 1]")
        require(self.anderson_lam >= 0, "fixed_point.anderson_lam", "must be >= 0")
        require(0 <= self.tau_e < self.tau_T, "fixed_point.tau_e", "must satisfy 0 <= tau_e < tau_T")
        require(self.rho > 0, "fixed_point.rho", "must be > 0")
        require(0 <= self.cold_prob <= 1, "fixed_point.cold_prob", "must lie in [0, 1]")
        require(0 <= self.snap_prob <= 1, "fixed_point.snap_prob", "must lie in [0, 1]")
        require(0 <= self.global_weight <= 1, "fixed_point.global_weight", "must lie in [0, 1]")


def teacher_trajectory(teacher: nn.Module, z, t, w, cfg: FixedPointConfig) -> torch.Tensor:
    """Anderson iterates ``[s_0 = 0, ..., s_K]`` of ``F(s) = teacher(z, t, s, w)``, stacked (K+1, B, ...)."""
    with torch.no_grad():
        result = anderson(
            lambda s: teacher(z, t, sc=s, w=w).to(z.dtype),
            torch.zeros_like(z),
            cfg.iterations,
            m=cfg.anderson_m,
            beta=cfg.anderson_beta,
            lam_reg=cfg.anderson_lam,
        )
    return torch.stack(result.iterates[: cfg.iterations + 1])


class FixedPointLoss:
    """Consistency-deep-equilibrium distillation of the frozen teacher's fixed point."""

    def __init__(self, cfg: FixedPointConfig, teacher: nn.Module, flow: FlowConfig):
        self.cfg, self.flow = cfg, flow
        self.teacher = teacher.eval().requires_grad_(False)
        self.decoder_prob = cfg.decoder.prob

    def _tau(self, k: torch.Tensor) -> torch.Tensor:
        return consistency_time(k, self.cfg.tau_e, self.cfg.tau_T, self.cfg.rho)

    def _g(self, s_a, f_a, s_b, f_b, tau_a):
        c = self.cfg
        return student_map(s_a, f_a, s_b, f_b, tau_a, beta=c.student_beta, e=c.tau_e, T=c.tau_T, g=c.c_skip_power)

    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator, decoder_step: bool) -> LossOutput:
        if decoder_step:
            return decoder_loss(model, batch, self.cfg.decoder, generator)
        cfg, flow = self.cfg, self.flow
        x0, (b, dev, dt) = batch.x0, batch.shape_facts
        t, z = noisy_latents(x0, flow.lam, flow.p_mean, flow.p_std, generator)
        w = sample_guidance(b, flow, generator, dev, dt)
        traj = teacher_trajectory(self.teacher, z, t, w, cfg)
        s_star = traj[-1]
        K = cfg.iterations
        cold = torch.rand(b, generator=generator, device=dev) < cfg.cold_prob
        k = torch.where(cold, 0, torch.randint(2, K + 1, (b,), generator=generator, device=dev))
        ka, kb, kc = k, (k - 1).clamp(min=0), (k - 2).clamp(min=0)
        rows = torch.arange(b, device=dev)
        s_a, s_b, s_c = traj[ka, rows], traj[kb, rows], traj[kc, rows]
        snap = (torch.rand(b, generator=generator, device=dev) < cfg.snap_prob) & (k >= 1) & (k <= K - cfg.snap_tail)
        snap_ = snap.view(-1, *[1] * (x0.dim() - 1))
        s_a, s_b, s_c = (torch.where(snap_, s_star, s) for s in (s_a, s_b, s_c))
        tau_a, tau_b, tau_c = self._tau(ka).to(dt), self._tau(kb).to(dt), self._tau(kc).to(dt)
        # One forward for a of every row and b of the warm rows (one graph for DDP); a cold row's b is its a.
        warm = (~cold).nonzero().flatten()
        f_ab = model(torch.cat([z, z[warm]]), torch.cat([t, t[warm]]), sc=torch.cat([s_a, s_b[warm]]),
                     w=torch.cat([w, w[warm]]), tau=torch.cat([tau_a, tau_b[warm]])).to(dt)
        f_a = f_ab[:b]
        f_b = f_a.index_copy(0, warm, f_ab[b:])
        g_k = self._g(s_a, f_a, s_b, f_b, tau_a)
        with torch.no_grad():
            f_c = f_a.detach()
            if warm.numel():
                f_c = f_c.index_copy(0, warm, model(z[warm], t[warm], sc=s_c[warm], w=w[warm], tau=tau_c[warm]).to(dt))
            g_prev = self._g(s_b, f_b.detach(), s_c, f_c, tau_b)
        loss_global = masked_mse(g_k, s_star)
        loss_local = masked_mse(g_k, g_prev)
        loss = cfg.global_weight * loss_global + (1 - cfg.global_weight) * loss_local
        return LossOutput(
            loss,
            {
                "global": float(loss_global.detach()),
                "local": float(loss_local.detach()),
                "cold_fraction": float(cold.float().mean()),
            },
        )
