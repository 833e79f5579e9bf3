"""Few-step samplers of a two-time flow map (FMLM*, FMLM). docs/method.md section 9.

``flow_map``: ``z_{k+1} = X_{t_k, t_{k+1}}(z_k)
= (1 - t_{k+1})/(1 - t_k) z_k + (t_{k+1} - t_k)/(1 - t_k) D(z_k, t_k, t_{k+1})``.

``ctm`` (gamma-sampling): ``t~ = 1 - (1 - t_{k+1}) sqrt(1 - gamma^2)``,
``xhat = D(z, t_k, t~)``, then re-noise to ``t_{k+1}`` mixing the implied noise
with fresh noise: ``z_{k+1} = t_{k+1} xhat + (1 - t_{k+1}) lam eps_mix``;
the last step returns ``xhat``. gamma = 0 is the deterministic flow-map step.

One network evaluation per step (plus the decoder pass, counted by ``generate``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmlm.math.flow_map import flow_map
from fmlm.math.stochastic import ctm_step, ctm_target_time
from fmlm.samplers.common import NoiseStreams, SamplerConfig, guidance_of


def flow_map_sampler(cfg: SamplerConfig):
    """A batch sampler (``fmlm.samplers.common.BatchSampler``) for ``flow_map`` or ``ctm``."""
    if cfg.kind not in ("flow_map", "ctm"):
        raise ValueError(f"sampler.kind={cfg.kind!r} is not a flow-map sampler (flow_map or ctm)")

    def run(model: nn.Module, noise: NoiseStreams, grid: Tensor) -> tuple[Tensor, int]:
        z = cfg.flow.lam * noise.draw()
        b, dev, dt = z.shape[0], z.device, z.dtype
        w = guidance_of(model, cfg.w, b, dev)
        n = len(grid) - 1
        for k in range(n):
            t_k = torch.full((b,), float(grid[k]), device=dev, dtype=dt)
            t_next = torch.full((b,), float(grid[k + 1]), device=dev, dtype=dt)
            if cfg.kind == "flow_map":
                xhat = model(z, t_next, s=t_k, w=w).to(dt)
                z = flow_map(z, xhat, t_k, t_next)
                continue
            t_tilde = ctm_target_time(t_next, cfg.gamma)
            xhat = model(z, t_tilde, s=t_k, w=w).to(dt)
            z = xhat if k == n - 1 else ctm_step(z, xhat, t_k, t_next, cfg.gamma, noise.draw(), cfg.flow.lam)
        return z, n

    return run
