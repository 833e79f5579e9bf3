"""Two-time flow maps and the semigroup target (docs/method.md section 8).

Time convention: ``t = 0`` pure noise, ``t = 1`` clean data; every map runs forward, ``s <= t``.

- flow map:        ``X_{s,t}(z) = (1 - t)/(1 - s) z + (t - s)/(1 - s) D(z, s, t)``
- its inverse:     ``D = ((1 - s) x_t - (1 - t) z) / (t - s)``   (for ``t > s``)
- semigroup:       ``X_{u,t}(X_{s,u}(z)) = X_{s,t}(z)`` for ``s <= u <= t`` holds iff
  ``D(z, s, t) = gamma A + (1 - gamma) B`` with ``A = D(z, s, u)``, ``B = D(X_{s,u}(z), u, t)``,
  ``gamma = (1 - t)(u - s) / ((1 - u)(t - s))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from fmlm.math.guards import TimeLike, as_time_tensors, check_ordered, check_same_shape, check_times, expand_like

GAP_STANDIN = 1.0
"""Stand-in for a zero denominator (``1 - s`` at ``s = 1``, ``t - s`` at ``s = t``): the numerator is 0 there too."""

DEGENERATE_GAMMA = 1.0
"""``gamma`` where the formula is 0/0 (``t = s``, or ``u = 1``): the target is ``A``.

At ``t = s`` (so ``u = s``) both maps are the identity and ``A == B``; any value gives the
same target. At ``u = 1`` (so ``t = 1``) ``X_{s,1}(z) = A`` and ``X_{1,1}`` is the identity,
so ``D(z, s, 1) = A`` exactly, without trusting the network at ``u = t = 1``.
"""


def _check_pair(s: TimeLike, t: TimeLike) -> None:
    check_times("s", s)
    check_times("t", t)
    check_ordered("s", s, "t", t)


def _positive_or_standin(gap: Tensor) -> Tensor:
    return torch.where(gap > 0, gap, torch.full_like(gap, GAP_STANDIN))


def flow_map(z: Tensor, xhat: Tensor, s: TimeLike, t: TimeLike) -> Tensor:
    """``X_{s,t}(z) = (1 - t)/(1 - s) z + (t - s)/(1 - s) xhat`` for ``s <= t``.

    Written as ``z + w (xhat - z)`` with ``w = (t - s)/(1 - s)`` so that ``s = t``
    (including ``s = t = 1``, where ``w = 0/0`` is read as 0) is exactly the identity.
    """
    check_same_shape("z", z, "xhat", xhat)
    _check_pair(s, t)
    ss, tt = expand_like(s, z), expand_like(t, z)
    weight = (tt - ss) / _positive_or_standin(1.0 - ss)
    return z + weight * (xhat - z)


def flow_map_denoiser(
    z: Tensor, x_t: Tensor, s: TimeLike, t: TimeLike, *, on_diagonal: Tensor | None = None
) -> Tensor:
    """The two-time denoiser ``D`` with ``flow_map(z, D, s, t) == x_t``: ``D = ((1 - s) x_t - (1 - t) z)/(t - s)``.

    At ``t = s`` the map is the identity whatever ``D`` is, so ``D`` is not determined
    by ``x_t``: rows with ``t = s`` take ``on_diagonal`` (the one-time denoiser, the limit
    ``t -> s``), which is then required. Cancellation grows like ``1 / (t - s)`` close to
    the diagonal.
    """
    check_same_shape("z", z, "x_t", x_t)
    _check_pair(s, t)
    ss, tt = expand_like(s, z), expand_like(t, z)
    gap = tt - ss
    diagonal = gap <= 0
    if on_diagonal is None and bool(diagonal.any()):
        raise ValueError("t must exceed s in flow_map_denoiser (D is not determined at s = t); pass on_diagonal")
    d = ((1.0 - ss) * x_t - (1.0 - tt) * z) / _positive_or_standin(gap)
    if on_diagonal is None:
        return d
    check_same_shape("z", z, "on_diagonal", on_diagonal)
    return torch.where(diagonal, on_diagonal, d)


def semigroup_weight(s: TimeLike, u: TimeLike, t: TimeLike) -> Tensor:
    """``gamma = (1 - t)(u - s) / ((1 - u)(t - s))`` for ``s <= u <= t``, in [0, 1].

    Where the formula is 0/0 (``t = s``, or ``u = 1``) the value is ``DEGENERATE_GAMMA``.
    Returns a tensor of the broadcast shape of the inputs.
    """
    for name, x in (("s", s), ("u", u), ("t", t)):
        check_times(name, x)
    check_ordered("s", s, "u", u)
    check_ordered("u", u, "t", t)
    ss, uu, tt = as_time_tensors(s, u, t)
    regular = (tt > ss) & (uu < 1)
    numerator = (1.0 - tt) * (uu - ss)
    denominator = _positive_or_standin((1.0 - uu) * (tt - ss))
    return torch.where(regular, numerator / denominator, torch.full_like(numerator, DEGENERATE_GAMMA))


def semigroup_target(a: Tensor, b: Tensor, s: TimeLike, u: TimeLike, t: TimeLike) -> Tensor:
    """The target for ``D(z_s, s, t)``: ``gamma a + (1 - gamma) b``.

    ``a = D(z_s, s, u)``, ``b = D(X_{s,u}(z_s), u, t)``, ``gamma = semigroup_weight(s, u, t)``.
    """
    check_same_shape("a", a, "b", b)
    gamma = expand_like(semigroup_weight(s, u, t), a)
    return gamma * a + (1.0 - gamma) * b


def compose_flow_maps(
    z: Tensor, denoise: Callable[[Tensor, Tensor, Tensor], Tensor], times: Tensor | Sequence[TimeLike]
) -> Tensor:
    """Apply ``X_{t_k, t_{k+1}}`` for consecutive ``times``.

    Each step is ``z <- flow_map(z, denoise(z, t_k, t_{k+1}), t_k, t_{k+1})``.

    ``times`` is a non-decreasing sequence of ``N + 1`` scalars (``(N + 1,)``) or of per-row
    times (``(N + 1, B)``). ``denoise`` always receives per-row times of shape ``(B,)`` in
    ``z``'s dtype.
    """
    grid = times if isinstance(times, Tensor) else torch.stack(as_time_tensors(*times))
    if grid.dim() not in (1, 2) or grid.shape[0] < 1:
        raise ValueError(f"times must have shape (N + 1,) or (N + 1, B), got {tuple(grid.shape)}")
    grid = grid.to(device=z.device, dtype=z.dtype)
    if grid.dim() == 1:
        grid = grid[:, None].expand(-1, z.shape[0])
    check_times("times", grid)
    check_ordered("times[k]", grid[:-1], "times[k + 1]", grid[1:])
    for k in range(grid.shape[0] - 1):
        s, t = grid[k], grid[k + 1]
        z = flow_map(z, denoise(z, s, t), s, t)
    return z
