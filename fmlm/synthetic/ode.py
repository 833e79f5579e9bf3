"""High-accuracy reference flow maps: the probability-flow ODE solved by scipy.

``dz/dt = (D(z, t) - z) / (1 - t)`` with ``D(z, t) = E[x0 | z_t = z]`` (``t = 0`` noise,
``t = 1`` data; the exact velocity, no ``t_eps`` floor). ``ode_flow_map(D, z, s, t)`` integrates it
from ``s`` to ``t < 1`` for the whole batch at once (one system, all rows share the times) in
float64 with ``solve_ivp`` (DOP853 by default).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from fmlm.math.guards import TimeLike, check_ordered, check_times

ODE_RTOL = 1e-10
"""Default relative tolerance: reference solutions accurate to ~1e-9, far below the checks' tolerances."""

ODE_ATOL = 1e-12
"""Default absolute tolerance (latents are O(1))."""


def pf_velocity(denoiser: Callable[[Tensor, TimeLike], Tensor], z: Tensor, t: float) -> Tensor:
    """``(D(z, t) - z) / (1 - t)`` for ``t < 1``."""
    check_times("t", t)
    if not t < 1:
        raise ValueError(f"t must be < 1 for the probability-flow velocity, got {t}")
    return (denoiser(z, t) - z) / (1.0 - t)


def ode_flow_map(
    denoiser: Callable[[Tensor, TimeLike], Tensor],
    z: Tensor,
    s: float,
    t: float,
    *,
    rtol: float = ODE_RTOL,
    atol: float = ODE_ATOL,
    method: str = "DOP853",
) -> Tensor:
    """``X_{s,t}(z)`` by integrating the probability-flow ODE from ``s`` to ``t`` (``s <= t < 1``), in float64."""
    check_times("s", s)
    check_times("t", t)
    check_ordered("s", s, "t", t)
    if not t < 1:
        raise ValueError(f"t must be < 1 (the velocity is singular at t = 1), got {t}")
    if s == t:
        return z.clone()
    shape, dtype, device = z.shape, z.dtype, z.device

    def rhs(time: float, flat: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(flat).reshape(shape)
        return pf_velocity(denoiser, state, float(time)).reshape(-1).numpy()

    start = z.detach().to("cpu", torch.float64).reshape(-1).numpy()
    sol = solve_ivp(rhs, (float(s), float(t)), start, method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return torch.from_numpy(sol.y[:, -1].copy()).reshape(shape).to(device=device, dtype=dtype)
