"""A stand-in for the network with known answers: Gaussian data's exact (two-time) denoiser,
optionally wrapped in a linear self-conditioning map ``F(s) = D* + L (s - D*)``.
It has the network's call signature and the ``config`` fields samplers and losses read."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from fmlm.synthetic import GaussianData


class OracleNet(nn.Module):
    def __init__(self, data: GaussianData, *, max_len: int = 4, self_conditioning: bool = False,
                 guided: bool = False, lipschitz: float = 0.0):
        super().__init__()
        self.data = data
        self.lipschitz = lipschitz
        self.calls = 0
        self.config = SimpleNamespace(
            latent_dim=int(data.mu.shape[-1]), max_len=max_len, self_conditioning=self_conditioning,
            guidance_tokens=4 if guided else 0, phase_tokens=0,
        )

    def forward(self, z, t, *, s=None, sc=None, w=None, tau=None, decode=False):
        self.calls += 1
        if decode:  # two "tokens": the sign of the first latent channel
            return torch.stack([-z[..., 0], z[..., 0]], dim=-1)
        exact = self.data(z, t) if s is None else self.data.two_time(z, s, t)
        if not self.config.self_conditioning:
            return exact
        slot = torch.zeros_like(z) if sc is None else sc
        return exact + self.lipschitz * (slot - exact)


def gaussian(dim: int = 3, dtype=torch.float32) -> GaussianData:
    return GaussianData(torch.linspace(-1.0, 1.0, dim, dtype=dtype), torch.linspace(0.3, 1.5, dim, dtype=dtype))
