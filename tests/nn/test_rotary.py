"""Rotary position embedding: identity on the prefix, relative positions on the text."""

from __future__ import annotations

import pytest
import torch

from fmlm.nn.rotary import apply_rotary, prefixed_tables, rotary_tables
from tests.tolerance import FLOAT64_IDENTITY, assert_close_to_scale


def test_tables_are_rotations_starting_at_identity():
    cos, sin = rotary_tables(10, 8)
    assert cos.shape == sin.shape == (10, 4)
    assert torch.allclose(cos**2 + sin**2, torch.ones_like(cos), atol=1e-6)  # elementwise, values ~1: a few fp32 ulps
    assert torch.equal(cos[0], torch.ones(4)) and torch.equal(sin[0], torch.zeros(4))
    with pytest.raises(ValueError, match="^head_dim:"):
        rotary_tables(10, 7)


def test_prefix_tokens_are_not_rotated_and_norms_are_kept():
    cos, sin = prefixed_tables(*rotary_tables(6, 8), prefix_len=3)
    x = torch.randn(2, 4, 9, 8)
    y = apply_rotary(x, cos, sin)
    assert torch.equal(y[..., :3, :], x[..., :3, :])  # prefix: identity
    assert torch.allclose(y[..., 3, :], x[..., 3, :])  # text position 0: angle 0
    assert not torch.allclose(y[..., 4:, :], x[..., 4:, :])  # later text positions rotate
    # the same 8-element sum on both sides, norms ~3: a rotation's fp32 rounding is ~1e-7 of them
    assert_close_to_scale(y.norm(dim=-1), x.norm(dim=-1), 1e-5)


def test_scores_depend_only_on_relative_position():
    cos, sin = rotary_tables(16, 8)
    q, k = torch.randn(8), torch.randn(8)

    def score(pq: int, pk: int) -> torch.Tensor:
        rq = apply_rotary(q[None], cos[pq : pq + 1], sin[pq : pq + 1])
        rk = apply_rotary(k[None], cos[pk : pk + 1], sin[pk : pk + 1])
        return (rq * rk).sum()

    # 8 fp32 products at either pair of angles: their rounding is ~1e-7 of |q| |k|, whatever the sum cancels to
    assert abs(float(score(5, 2) - score(13, 10))) <= 1e-5 * float(q.norm() * k.norm())
    assert not torch.allclose(score(5, 2), score(5, 4), atol=1e-3)


def test_model_tables_identity_on_prefix(model):
    p, n = model.prefix_len, model.config.max_len
    cos, sin = rotary_tables(n, model.config.head_dim)
    assert torch.equal(model.rope_cos[:p], torch.ones_like(model.rope_cos[:p]))
    assert torch.equal(model.rope_sin[:p], torch.zeros_like(model.rope_sin[:p]))
    assert torch.equal(model.rope_cos[p:], cos) and torch.equal(model.rope_sin[p:], sin)
    assert "rope_cos" not in model.state_dict()  # derived, not saved


def test_positions_matter_and_rotary_is_their_only_source(model, batch):
    z, t = batch["z"], batch["t"]
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    out, out_perm = model(z, t), model(z[:, perm], t)
    assert not torch.allclose(out_perm, out[:, perm], atol=1e-4)  # rotary breaks equivariance
    model.rope_cos.fill_(1.0)
    model.rope_sin.zero_()
    model, z = model.double(), z.double()  # float64: permuted rows reorder the attention's sums (tests/tolerance.py)
    out, out_perm = model(z, t), model(z[:, perm], t)
    assert_close_to_scale(out_perm, out[:, perm], FLOAT64_IDENTITY)  # without it: permutation-equivariant
