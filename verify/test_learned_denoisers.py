"""The fixed-point view on a *learned* self-conditioned denoiser.

A tiny teacher network is trained (the real stage-1 loss; float32, as networks run) on synthetic
codebook tokens whose exact posterior mean D*(z, t) is known. For its self-conditioning map
F(s) = D_theta(z_t, t, s, w) the suite checks what the method assumes, row by row:

- L, the largest Jacobian norm ``||dF/ds||_2`` met on the segment from 0 to s* and along the first
  steps of a Picard run from a random start (s* is where that run ends), estimates F's Lipschitz
  constant without looking at the Picard run from zero; where L < 1, s* is a fixed point, the run
  from zero ends there and obeys the Banach bounds with this L (a-posteriori and per step);
- F contracts (L < 1) somewhere, and Anderson reaches the fixed point in no more evaluations;
- the slot matters (s* moves off F(0)), and at t = 0.4, 0.8 the fixed point s* (w = 1, where the
  teacher's target is the posterior mean) is closer to the exact denoiser D* than the prior mean is;
- docs/method.md section 6 says s* is a better denoiser than F(0). Measured against D* on this network
  it holds at t = 0.1 and not at t = 0.4 (a strict xfail, so a change either way is reported).
"""

import pytest
import torch

from fmlm.math.flow import FlowConfig
from fmlm.losses.common import Batch
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.math.fixed_point import anderson, picard
from fmlm.math.guards import row_norms
from fmlm.math.interpolant import interpolate
from fmlm.nn import Denoiser, denoiser_config
from fmlm.synthetic import CodebookData
from verify.checks import banach_violation, evaluations_to_tol, torch_defaults

VOCAB, DIM, LENGTH, STEPS = 6, 8, 6, 200

NOISE_FLOOR = 1e-3
"""Banach bounds are checked until they fall to this fraction of the first: the network runs in
float32, so below ~1e-6 of a row's scale the iterates stop moving by rounding, not by contraction."""

SAME_POINT = 1e-5
"""Row-norm distance under which two Picard runs have reached one fixed point (float32 rounding
of a row of norm ~5 is ~1e-6)."""


@pytest.fixture(scope="module")
def learned():
    """(teacher network, data) after STEPS optimiser steps of the stage-1 loss."""
    with torch_defaults(torch.float32):
        g = torch.Generator().manual_seed(0)
        data = CodebookData(torch.randn(VOCAB, DIM, generator=g))
        torch.manual_seed(0)
        model = Denoiser(denoiser_config("tiny", latent_dim=DIM, vocab_size=VOCAB, max_len=LENGTH))
        model.check_finite = False
        loss = TeacherLoss(TeacherConfig(), FlowConfig(w_min=1.0, w_max=3.0))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(STEPS):
            x0, ids = data.sample(32, LENGTH, generator=g)
            loss(model, Batch(ids, x0), g, decoder_step=False).loss.backward()
            opt.step()
            opt.zero_grad()
        data64 = CodebookData(data.codebook.double())  # uniform prior, as above
        return model.eval().requires_grad_(False), data64


def fixed_point_problem(model, data, t_value, seed=1, w_value=2.0):
    g = torch.Generator().manual_seed(seed)
    x0, _ = data.sample(16, LENGTH, generator=g)
    t = torch.full((16,), t_value)
    z = interpolate(x0, torch.randn(x0.shape, generator=g), t)
    w = torch.full((16,), w_value)

    def F(s):  # the network runs in float32; the iteration is carried in float64
        return model(z.float(), t.float(), sc=s.float(), w=w.float()).double()

    return F, z, t


def jacobian_norms(F, s):
    """Per-row spectral norm ``||dF/ds (s)||_2``, one backward pass per output coordinate.

    Needs F to act on each row alone (the denoiser does: rows never attend to each other), so the
    gradient of an output coordinate summed over rows holds every row's Jacobian row.
    """
    s = s.detach().requires_grad_(True)
    with torch.enable_grad():
        out = F(s).reshape(s.shape[0], -1)
        grads = [torch.autograd.grad(out[:, j].sum(), s, retain_graph=True)[0] for j in range(out.shape[1])]
    jac = torch.stack([g.reshape(s.shape[0], -1) for g in grads], dim=1)  # (B, out, in)
    return torch.linalg.matrix_norm(jac, 2)


def sampled_lipschitz(F, points):
    """Per-row largest ``||dF/ds||_2`` over ``points``: a lower bound on F's Lipschitz constant
    (mean-value inequality), as good as the points cover the region the iteration visits."""
    return torch.stack([jacobian_norms(F, p) for p in points]).max(dim=0).values


T_VALUES = (0.1, 0.4, 0.8)


@pytest.fixture(scope="module")
def contraction_table(learned):
    """Per time: F, z, the Picard run from zero, s* (the end of a run from a random start) and per-row L
    (Jacobian norms on the segment from 0 to s* and at that run's first ten iterates, never on the
    run from zero)."""
    model, data = learned
    table = {}
    with torch_defaults(torch.float64):
        for t_value in T_VALUES:
            F, z, _ = fixed_point_problem(model, data, t_value)
            from_zero = picard(F, torch.zeros_like(z), 60)
            g = torch.Generator().manual_seed(4)
            from_random = picard(F, 5.0 * torch.randn(z.shape, generator=g, dtype=z.dtype), 80)
            s_star = from_random.iterates[-1]
            lipschitz = sampled_lipschitz(F, [0.0 * s_star, 0.5 * s_star, s_star] + from_random.iterates[:10])
            table[t_value] = (F, z, from_zero, s_star, lipschitz)
    counts = {t: f"{int((v[4] < 1).sum())}/{len(v[4])}" for t, v in table.items()}
    print(f"\nlearned teacher: rows whose self-conditioning map contracts (L < 1), per t: {counts}")
    return table


@pytest.mark.parametrize("t_value", T_VALUES)
def test_contraction_learned_map_obeys_banach_where_it_contracts(contraction_table, t_value):
    """Where L < 1: s* is a fixed point, the run from zero ends at s* (Banach's uniqueness) and obeys
    the a-posteriori and per-step Banach bounds with that L."""
    F, z, from_zero, s_star, lipschitz = contraction_table[t_value]
    rows = lipschitz < 1.0
    if not bool(rows.any()):
        pytest.skip(f"no row contracts at t = {t_value} (min L = {float(lipschitz.min()):.2f})")
    assert float(row_norms(F(s_star) - s_star)[rows].max()) < SAME_POINT
    assert float(row_norms(from_zero.iterates[-1] - s_star)[rows].max()) < SAME_POINT
    for r in torch.nonzero(rows).flatten().tolist():
        path = [s[r : r + 1] for s in from_zero.iterates]
        for kind in ("a_posteriori", "step"):
            violation = banach_violation(path, s_star[r : r + 1], float(lipschitz[r]), kind, floor=NOISE_FLOOR)
            assert violation <= 1e-3, (r, kind, float(lipschitz[r]), violation)


def test_contraction_learned_map_contracts_somewhere(contraction_table):
    """The fixed-point view needs a contraction on at least part of the flow: fail if none is found."""
    assert any(bool((v[4] < 1).any()) for v in contraction_table.values())


@pytest.mark.parametrize("t_value", [
    0.1, 0.4,
    pytest.param(0.8, marks=pytest.mark.xfail(strict=True, reason="measured: 7 of 16 rows end in a period-2 cycle")),
])
def test_convergence_picard_from_zero_reaches_a_fixed_point_on_every_row(contraction_table, t_value):
    """200 Picard steps from the zero slot (the sampler's cold start) end at a fixed point of F on every
    row: residual ``||F(s) - s||`` below 1e-4 (float32 rounding of a row of norm ~5 is ~1e-6)."""
    F, _, from_zero, _, _ = contraction_table[t_value]
    with torch_defaults(torch.float64):
        last = picard(F, from_zero.iterates[-1], 140).iterates[-1]
        residual = row_norms(F(last) - last)
    assert float(residual.max()) < 1e-4, [round(float(r), 4) for r in residual]


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


def denoiser_errors(model, data, t_value):
    """Squared distances to the exact D*(z, t), summed over the batch, of the fixed point s* (60 Picard
    steps from zero, w = 1), of the first pass F(0) and of the prior mean E[x0] = D*(z, 0); and the
    squared distance between s* and F(0)."""
    F, z, _ = fixed_point_problem(model, data, t_value, w_value=1.0)
    first = F(torch.zeros_like(z))
    s_star = picard(F, torch.zeros_like(z), 60).iterates[-1]
    exact = data(z, t_value)
    err = lambda x: float(((x - exact) ** 2).sum())  # noqa: E731
    return err(s_star), err(first), err(data(z, 0.0)), float(((s_star - first) ** 2).sum())


@pytest.mark.parametrize("t_value", T_VALUES)
def test_learned_fixed_point_uses_the_slot(learned, t_value):
    """s* moves off the first pass F(0) by at least 10% of F(0)'s distance to D*: a map that ignored
    its slot (as the untrained network does) would pass every contraction check above trivially."""
    _, first, _, moved = denoiser_errors(*learned, t_value)
    assert moved > 1e-2 * first


@pytest.mark.parametrize("t_value", (0.4, 0.8))
def test_learned_fixed_point_beats_the_prior_mean(learned, t_value):
    """Away from t = 0 (where D* is the prior mean itself) s* is closer to D* than the prior mean
    E[x0] = D*(z, 0) is, by at least half in squared distance."""
    star, _, prior, _ = denoiser_errors(*learned, t_value)
    assert star < 0.5 * prior


@pytest.mark.parametrize(
    "t_value",
    [0.1, pytest.param(0.4, marks=pytest.mark.xfail(strict=True, reason="measured: s* is 17% farther from D*"))],
)
def test_learned_fixed_point_beats_the_first_pass(learned, t_value):
    """docs/method.md section 6: the fixed point s* is a better denoiser than F(0), i.e. closer to D*.
    (At t = 0.8 the two are within 3% of each other, too close to call either way.)"""
    star, first, _, _ = denoiser_errors(*learned, t_value)
    assert star < first
