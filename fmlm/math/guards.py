"""Argument checks and broadcasting shared by every formula of the math layer.

Times follow the project convention: ``t = 0`` is pure noise, ``t = 1`` clean data.
A time argument is a python number, a 0-d tensor, or a per-row tensor of shape
``(B,)`` that broadcasts against a latent of shape ``(B, ...)``.

The checks read tensor values (one host synchronisation each); bad input raises a
one-line ``ValueError`` that names the argument instead of poisoning results.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

TimeLike = float | int | Tensor


def _as_tensor(x: TimeLike) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(x, dtype=torch.float64)


def as_time_tensors(*xs: TimeLike) -> tuple[Tensor, ...]:
    """Convert numbers and tensors to tensors on one device with one floating dtype, broadcast together.

    The device and dtype are those of the tensor arguments (promoted); float64 if all are numbers.
    """
    tensors = [x for x in xs if isinstance(x, Tensor)]
    device = tensors[0].device if tensors else None
    dtype = torch.float64
    if tensors:
        dtype = tensors[0].dtype if tensors[0].is_floating_point() else torch.float64
        for x in tensors[1:]:
            dtype = torch.promote_types(dtype, x.dtype) if x.is_floating_point() else dtype
    return tuple(torch.broadcast_tensors(*(torch.as_tensor(x, dtype=dtype, device=device) for x in xs)))


def _describe(x: Tensor) -> str:
    """A short description of the offending values for an error message."""
    flat = x.detach().reshape(-1)
    return f"got {flat[:4].tolist()}{' ...' if flat.numel() > 4 else ''}"


def check_times(name: str, t: TimeLike) -> None:
    """Raise ``ValueError("<name> must lie in [0, 1]")`` if any value is outside [0, 1] or not finite."""
    if isinstance(t, Real) and not isinstance(t, bool):
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"{name} must lie in [0, 1] (got {t})")
        return
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a number or a tensor, got {type(t).__name__}")
    bad = ~(torch.isfinite(t) & (t >= 0) & (t <= 1))
    if bool(bad.any()):
        raise ValueError(f"{name} must lie in [0, 1] ({_describe(t[bad])})")


def check_ordered(s_name: str, s: TimeLike, t_name: str, t: TimeLike) -> None:
    """Raise ``ValueError`` if any ``s > t`` (elementwise after broadcasting)."""
    s_t, t_t = as_time_tensors(s, t)
    bad = s_t > t_t
    if bool(bad.any()):
        raise ValueError(f"{s_name} must not exceed {t_name} ({s_name} > {t_name} in {int(bad.sum())} entries)")


def check_finite(name: str, x: TimeLike) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or +-inf."""
    x_t = _as_tensor(x)
    if x_t.is_floating_point() or x_t.is_complex():
        if not bool(torch.isfinite(x_t).all()):
            raise ValueError(f"{name} must be finite (it holds NaN or inf)")


def check_same_shape(a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    """Raise ``ValueError`` unless the two tensors have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def expand_like(t: TimeLike, x: Tensor) -> Tensor:
    """Reshape a scalar or per-row ``(B,)`` time to broadcast against ``x`` of shape ``(B, ...)``.

    The result has ``x``'s dtype and device: a 0-d tensor for a scalar, else shape
    ``(B, 1, ..., 1)`` with ``x.dim()`` dimensions.
    """
    t_t = _as_tensor(t).to(device=x.device, dtype=x.dtype)
    if t_t.dim() == 0:
        return t_t
    if t_t.dim() != 1 or x.dim() == 0 or t_t.shape[0] != x.shape[0]:
        raise ValueError(
            f"times must be a scalar or have shape (B,) = ({x.shape[0] if x.dim() else '?'},), got {tuple(t_t.shape)}"
        )
    return t_t.reshape((t_t.shape[0],) + (1,) * (x.dim() - 1))


def row_norms(x: Tensor) -> Tensor:
    """Euclidean norm of each row of ``x`` (B, ...) over all non-batch dims: shape (B,)."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)


def row_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-row inner product ``<a_i, b_i>`` over all non-batch dims: shape (B,)."""
    return (a.reshape(a.shape[0], -1) * b.reshape(b.shape[0], -1)).sum(dim=1)
