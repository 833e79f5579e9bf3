"""The written-out backward of RMSNorm and RMSNorm-then-rotary, and the attention kernel choice (with the
fast paths on: ``FMLM_CPU_KERNELS=off`` routes around both, tests/nn/cpu/test_switch.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fmlm.nn.cpu import attention, switch
from fmlm.nn.cpu.attention import EXPLICIT_ATTENTION_MAX_TOKENS, attend
from fmlm.nn.cpu.fused_norm import RMS_EPS, normed_rotary, rms_norm
from fmlm.nn.rotary import apply_rotary, rotary_tables
from tests.tolerance import UNIT_ROUNDOFF_BF16, assert_close_to_scale


@pytest.fixture(autouse=True)
def _fast_paths_on():
    """These tests are about the fast paths: on whatever ``FMLM_CPU_KERNELS`` says."""
    with switch.set_mode("on"):
        yield


def composite_rms(x, weight, eps=RMS_EPS):
    """The formula, differentiated by autograd (the oracle)."""
    return weight * x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def tables(n, h, dtype=torch.float32):
    cos, sin = rotary_tables(n, h)
    return cos.to(dtype), sin.to(dtype)


def permuted_heads(batch=2, n=5, heads=3, h=8, dtype=torch.float64):
    """A (B, heads, N, h) view with the strides of the attention's q (a permuted qkv)."""
    qkv = torch.randn(batch, n, 3, heads, h, dtype=dtype)
    return qkv.permute(2, 0, 3, 1, 4)[0].detach().requires_grad_()


def test_gradients_pass_gradcheck_in_float64():
    torch.manual_seed(0)
    x = permuted_heads()
    assert not x.is_contiguous()
    w = (1 + 0.3 * torch.randn(8, dtype=torch.float64)).requires_grad_()
    cos, sin = tables(5, 8, torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: rms_norm(a, b), (x, w))
    assert torch.autograd.gradcheck(lambda a, b: normed_rotary(a, b, cos, sin), (x, w))


@pytest.mark.parametrize("rotary", [False, True])
def test_values_and_gradients_match_the_composite_formula_in_float32(rotary):
    torch.manual_seed(1)
    x = (3 * torch.randn(4, 2, 7, 16)).requires_grad_()
    w = (1 + 0.3 * torch.randn(16)).requires_grad_()
    cos, sin = tables(7, 16)
    grad = torch.randn(4, 2, 7, 16)
    fused = normed_rotary(x, w, cos, sin) if rotary else rms_norm(x, w)
    oracle = apply_rotary(composite_rms(x, w), cos, sin) if rotary else composite_rms(x, w)
    assert fused.dtype == torch.float32
    # both sum 16 squares and scale them, in orders that differ: a few fp32 roundings (2^-24) of the scale
    assert_close_to_scale(fused, oracle, 1e-5)
    with torch.no_grad():  # without autograd the same forward runs outside the function
        plain = normed_rotary(x, w, cos, sin) if rotary else rms_norm(x, w)
    assert plain.grad_fn is None and torch.equal(plain, fused.detach())
    got = torch.autograd.grad(fused, (x, w), grad)
    want = torch.autograd.grad(oracle, (x, w), grad)
    # dL/dg sums 56 rows' products (and dL/dx cancels a mean) in different orders: at most ~56 roundings of
    # the terms, ~1e-5 of the scale; elementwise rtol would fail on entries that cancel (tests/tolerance.py)
    for g, o in zip(got, want):
        assert_close_to_scale(g, o, 1e-4)


@pytest.mark.parametrize("rotary", [False, True])
def test_bf16_inputs_are_computed_in_float32_and_returned_in_bf16(rotary):
    torch.manual_seed(2)
    x32 = torch.randn(3, 9, 32)
    x = x32.bfloat16().requires_grad_()
    w = torch.ones(32, requires_grad=True)
    cos, sin = tables(9, 32)
    out = normed_rotary(x, w, cos, sin) if rotary else rms_norm(x, w)
    ref = composite_rms(x.detach().float(), w.detach())
    ref = apply_rotary(ref, cos, sin) if rotary else ref
    assert out.dtype == torch.bfloat16
    # the same fp32 values but for one bf16 rounding of the output (<= 2^-8 of each value), and 2^-20 for
    # the fp32 arithmetic's ~16 roundings of 2^-24; no absolute term: a zero stays zero
    assert bool(((out.float() - ref).abs() <= (UNIT_ROUNDOFF_BF16 + 2**-20) * ref.abs()).all())
    out.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32


def test_a_zero_row_stays_finite_and_a_frozen_weight_gets_no_gradient():
    x = torch.zeros(2, 4, 8)
    x[1] = torch.randn(4, 8)
    x.requires_grad_()
    w = torch.full((8,), 2.0)  # frozen
    cos, sin = tables(4, 8)
    for out in (rms_norm(x, w), normed_rotary(x, w, cos, sin)):
        assert torch.equal(out[0], torch.zeros(4, 8))
        (g,) = torch.autograd.grad(out.sum(), (x,))
        assert torch.isfinite(g).all()
    assert w.grad is None


def test_attention_uses_the_fused_kernel_except_for_short_bf16_rows_with_gradients(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", lambda *a: calls.append(1) or sdpa(*a))
    q, k, v = torch.randn(3, 2, 4, 6, 8, requires_grad=True).unbind(0)
    assert torch.equal(attend(q, k, v), sdpa(q, k, v))  # fp32
    short = torch.randn(3, 1, 1, 6, 8, dtype=torch.bfloat16, requires_grad=True).unbind(0)
    with torch.no_grad():
        attend(*short)
    attend(*(t.detach() for t in short))
    attend(*torch.randn(3, 1, 1, EXPLICIT_ATTENTION_MAX_TOKENS + 1, 8, dtype=torch.bfloat16,
                        requires_grad=True).unbind(0))
    assert len(calls) == 4  # fp32; bf16 without gradients (twice); bf16 past the limit
    attend(*short)
    assert len(calls) == 4  # short bf16 rows with gradients: explicit


def test_short_bf16_attention_on_a_cpu_matches_the_float32_kernel(monkeypatch):
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", None)  # must not be called
    torch.manual_seed(3)
    q32, k32, v32 = (2 * torch.randn(3, 2, 4, EXPLICIT_ATTENTION_MAX_TOKENS, 16)).unbind(0)
    q, k, v = (t.bfloat16().requires_grad_() for t in (q32, k32, v32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q, k, v)
    assert out.dtype == torch.bfloat16
    probs = torch.softmax(q.detach().float() @ k.detach().float().transpose(-1, -2) / 4.0, dim=-1)  # 1/sqrt(16)
    ref = probs @ v.detach().float()
    # two bf16 roundings (<= 2^-8 each): the probabilities, which moves the output by <= 2^-8 sum_j p_j |v_j|,
    # and the output itself; 2^-12 more covers their product and the fp32 scores and sums (160 terms, ~1e-5)
    bound = (UNIT_ROUNDOFF_BF16 + 2**-12) * (probs @ v.detach().float().abs() + ref.abs())
    assert bool(((out.float() - ref).abs() <= bound).all())
    out.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
