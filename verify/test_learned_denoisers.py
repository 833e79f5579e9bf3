"""The fixed-point view on a *learned* self-conditioned denoiser.

A tiny teacher network is trained (the real stage-1 loss; float32, as networks run) on synthetic
codebook tokens whose exact posterior mean D*(z, t) is known. For its
self-conditioning map F(s) = D_theta(z_t, t, s, w) the suite checks what the
method assumes: F contracts (measured Lipschitz constant < 1), the Picard
iteration converges to one fixed point from any start, the Banach bound holds
with the measured constant, Anderson reaches it in no more evaluations, and
the fixed point s* is compared with the exact denoiser D* and with F(0).
"""

import pytest
import torch

from fmlm.losses.common import Batch, GuidanceConfig
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.math.fixed_point import anderson, picard
from fmlm.math.guards import row_norms
from fmlm.math.interpolant import interpolate
from fmlm.nn import Denoiser, denoiser_config
from fmlm.synthetic import CodebookData
from verify.checks import banach_violation, evaluations_to_tol

VOCAB, DIM, LENGTH, STEPS = 6, 8, 6, 200


@pytest.fixture(scope="module")
def learned():
    """(teacher network, data) after STEPS optimiser steps of the stage-1 loss."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        data = CodebookData(torch.randn(VOCAB, DIM, generator=g))
        torch.manual_seed(0)
        model = Denoiser(denoiser_config("tiny", latent_dim=DIM, vocab_size=VOCAB, max_len=LENGTH))
        model.check_finite = False
        loss = TeacherLoss(TeacherConfig(guidance=GuidanceConfig(1.0, 3.0)))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(STEPS):
            x0, ids = data.sample(32, LENGTH, generator=g)
            loss(model, Batch(ids, x0), g, decoder_step=False).loss.backward()
            opt.step()
            opt.zero_grad()
        data64 = CodebookData(data.codebook.double())  # uniform prior, as above
        return model.eval().requires_grad_(False), data64
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def fixed_point_problem(model, data, t_value, seed=1):
    g = torch.Generator().manual_seed(seed)
    x0, _ = data.sample(16, LENGTH, generator=g)
    t = torch.full((16,), t_value)
    z = interpolate(x0, torch.randn(x0.shape, generator=g), t)
    w = torch.full((16,), 2.0)

    def F(s):  # the network runs in float32; the iteration is carried in float64
        return model(z.float(), t.float(), sc=s.float(), w=w.float()).double()

    return F, z, t


def row_lipschitz(F, result, s_star, seed=2):
    """Per-row estimate of F's Lipschitz constant: the largest ratio met along the Picard path and
    under random perturbations of s* (a lower bound on the true local constant)."""
    steps = [row_norms(b - a) for a, b in zip(result.iterates[:-1], result.iterates[1:])]
    est = torch.zeros(s_star.shape[0], dtype=s_star.dtype)
    for n0, n1 in zip(steps[:-1], steps[1:]):
        ok = n0 > 1e-4  # below this the ratio is float32 rounding noise
        est = torch.where(ok, torch.maximum(est, n1 / n0.clamp(min=1e-300)), est)
    g = torch.Generator().manual_seed(seed)
    for _ in range(8):
        d = 0.1 * torch.randn(s_star.shape, generator=g, dtype=s_star.dtype)
        est = torch.maximum(est, row_norms(F(s_star + d) - F(s_star)) / row_norms(d))
    return est


T_VALUES = (0.1, 0.4, 0.8)


@pytest.fixture(scope="module")
def contraction_table(learned):
    """Per time: the Picard run, its end point and the per-row Lipschitz estimate."""
    model, data = learned
    table = {}
    for t_value in T_VALUES:
        F, z, _ = fixed_point_problem(model, data, t_value)
        result = picard(F, torch.zeros_like(z), 60)
        s_star = result.iterates[-1]
        table[t_value] = (F, z, result, s_star, row_lipschitz(F, result, s_star))
    counts = {t: f"{int((v[4] < 1).sum())}/{len(v[4])}" for t, v in table.items()}
    print(f"\nlearned teacher: rows whose self-conditioning map contracts (L < 1), per t: {counts}")
    return table


@pytest.mark.parametrize("t_value", T_VALUES)
def test_contraction_learned_map_obeys_banach_where_it_contracts(contraction_table, t_value):
    """Where the measured L < 1 the iterates must obey the a-posteriori Banach bound with that L
    (measured against the end point of a longer run), and where it contracts fast (L < 0.8) a
    distant start must reach the same fixed point (Banach's theorem, row by row)."""
    F, z, result, _, lipschitz = contraction_table[t_value]
    rows = lipschitz < 1.0
    if not bool(rows.any()):
        pytest.skip(f"no row contracts at t = {t_value} (max L = {float(lipschitz.max()):.2f})")
    s_star = picard(F, result.iterates[-1], 60).iterates[-1]
    for r in torch.nonzero(rows).flatten().tolist():
        path = [s[r : r + 1] for s in result.iterates]
        assert banach_violation(path, s_star[r : r + 1], float(lipschitz[r]), "a_posteriori", floor=1e-3) <= 1e-3
    fast = lipschitz < 0.8
    g = torch.Generator().manual_seed(4)
    other = picard(F, 5.0 * torch.randn(z.shape, generator=g, dtype=z.dtype), 80).iterates[-1]
    if bool(fast.any()):
        assert float((other - s_star)[fast].abs().max()) < 1e-4


def test_contraction_learned_map_contracts_somewhere(contraction_table):
    """The fixed-point view needs a contraction on at least part of the flow: fail if none is found."""
    assert any(bool((v[4] < 1).any()) for v in contraction_table.values())


def test_anderson_needs_no_more_evaluations_on_the_learned_map(contraction_table):
    F, z, result, s_star, lipschitz = contraction_table[0.1]
    rows = lipschitz < 1.0
    assert bool(rows.any())

    def F_rows(s):  # the map restricted to the contracting rows
        full = s_star.clone()
        full[rows] = s
        return F(full)[rows]

    tol = 1e-5
    start = torch.zeros_like(z[rows])
    n_picard = evaluations_to_tol(picard(F_rows, start, 60).residual_norms, tol)
    n_anderson = evaluations_to_tol(anderson(F_rows, start, 60, m=3).residual_norms, tol)
    assert n_anderson <= n_picard < 60
