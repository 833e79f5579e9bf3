"""RMSNorm, and RMSNorm followed by the rotary rotation, as autograd functions with a written-out backward.

Forward (over the last axis, width n; computed in float32, or float64 for float64 inputs):
    r     = 1 / sqrt(mean(x^2) + eps)                  one per row
    xhat  = x r
    y     = g * xhat                                    rms_norm
    y     = rot(g * xhat)                               normed_rotary (fmlm.nn.rotary: rot(u) = u C + swap(u) S)
Backward, with u = g * xhat and gu = dL/du (gu = dL/dy for rms_norm; for normed_rotary
gu = rot^T(dL/dy) = dL/dy C + swap(dL/dy S), as swap is its own inverse):
    dL/dx = r (gu g - xhat mean(gu g xhat))
    dL/dg = sum over rows of gu xhat
Autograd through the composite formula saves more tensors and runs more kernels backward (the
backward of x^2 alone is a kernel of its own); these functions save ``xhat`` and ``r`` only. With
``FMLM_CPU_KERNELS=off`` (``fmlm.nn.cpu.switch``), or without gradients, the same forward runs outside the
functions and autograd differentiates the formula. In the
embedded network's train step that is measured in benchmarks/results/kernels_cpu.md (the norms
timed alone there are within the allocator's noise of the composite). The values are the composite
formula's up to float rounding.
"""

from __future__ import annotations

import torch
from torch.autograd import Function

from fmlm.nn.cpu import switch
from fmlm.nn.rotary import rotary_planes, rotate, swap_halves

RMS_EPS = 1e-6  # keeps 1/rms finite on an all-zero token (e.g. the mode bank when off)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = RMS_EPS) -> torch.Tensor:
    """``weight * x / sqrt(mean(x^2, -1) + eps)``, computed in float32 (float64 stays), returned in x's dtype."""
    if _needs_grad(x, weight):
        return _RMSNorm.apply(x, weight, eps)
    xhat, _ = _normalise(x, eps)
    return _scaled(xhat, weight).to(x.dtype)


def normed_rotary(
    x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float = RMS_EPS
) -> torch.Tensor:
    """``apply_rotary(rms_norm(x, weight), cos, sin)`` in one function: x (..., N, h), cos/sin (N, h/2)."""
    c, s = rotary_planes(cos, sin)
    if _needs_grad(x, weight):
        return _NormedRotary.apply(x, weight, c, s, eps)
    xhat, _ = _normalise(x, eps)
    return rotate(_scaled(xhat, weight), c, s).to(x.dtype)


def _needs_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the written-out backward is to run: autograd will need a backward and the switch is not off
    (else the forward runs outside the function, and autograd, if on, goes through the formula)."""
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad) and switch.enabled()


def _scaled(xhat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return xhat * weight.to(xhat.dtype)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _normalise(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(xhat, r)``: ``x r`` and ``r = 1/sqrt(mean(x^2) + eps)`` (keepdim), in the compute dtype."""
    xf = x.to(_compute_dtype(x))
    r = torch.rsqrt(xf.square().mean(dim=-1, keepdim=True).add_(eps))
    return xf * r, r


def _norm_backward(gu: torch.Tensor, xhat: torch.Tensor, r: torch.Tensor, weight: torch.Tensor,
                   need_weight: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(dL/dx, dL/dg)`` of ``u = g * xhat`` from ``gu = dL/du`` (module docstring)."""
    gw = gu * weight.to(gu.dtype)
    dx = (gw - xhat * (gw * xhat).mean(dim=-1, keepdim=True)).mul_(r)
    dw = (gu * xhat).reshape(-1, xhat.shape[-1]).sum(dim=0) if need_weight else None
    return dx, dw


class _RMSNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        xhat, r = _normalise(x, eps)
        ctx.save_for_backward(xhat, r, weight)
        ctx.x_dtype = x.dtype
        return _scaled(xhat, weight).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        xhat, r, weight = ctx.saved_tensors
        dx, dw = _norm_backward(grad.to(xhat.dtype), xhat, r, weight, ctx.needs_input_grad[1])
        return dx.to(ctx.x_dtype), None if dw is None else dw.to(weight.dtype), None


class _NormedRotary(Function):
    @staticmethod
    def forward(ctx, x, weight, c, s, eps):
        xhat, r = _normalise(x, eps)
        c, s = c.to(xhat.dtype), s.to(xhat.dtype)
        ctx.save_for_backward(xhat, r, weight, c, s)
        ctx.x_dtype = x.dtype
        return rotate(_scaled(xhat, weight), c, s).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        xhat, r, weight, c, s = ctx.saved_tensors
        g = grad.to(xhat.dtype)
        gu = torch.add(g * c, swap_halves(g * s))
        dx, dw = _norm_backward(gu, xhat, r, weight, ctx.needs_input_grad[1])
        return dx.to(ctx.x_dtype), None if dw is None else dw.to(weight.dtype), None, None, None
