import dataclasses

import pytest
import torch

from fmlm.losses.common import Batch, sample_guidance
from fmlm.math.flow import FlowConfig
from fmlm.losses.fixed_point import FixedPointConfig, FixedPointLoss, teacher_trajectory
from fmlm.losses.flow_map import FlowMapConfig, FlowMapLoss
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.math.interpolant import interpolate, x_to_velocity
from fmlm.math.times import sample_logit_normal
from fmlm.nn import Denoiser, denoiser_config
from tests.oracle import OracleNet, gaussian


def batch(data, n=16, length=4, seed=0):
    x0 = data.sample(n * length, generator=torch.Generator().manual_seed(seed)).reshape(n, length, -1)
    return Batch(ids=torch.zeros(n, length, dtype=torch.long), x0=x0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_guidance_scale_is_log_uniform_in_range():
    w = sample_guidance(20000, FlowConfig(w_min=0.5, w_max=5.0), gen(), "cpu", torch.float64)
    assert float(w.min()) >= 0.5 and float(w.max()) <= 5.0
    u = torch.log1p(w) - torch.log(torch.tensor(1.5, dtype=torch.float64))
    assert abs(float(u.mean()) / float(torch.log(torch.tensor(6.0 / 1.5))) - 0.5) < 0.01  # log(1+w) uniform


def test_self_conditioned_target_is_the_guided_velocity():
    """With F(s) = D* + L(s - D*): x_uncond = (1-L) D*, x_cond = F(x_uncond) = (1-L^2) D*; the loss must be
    MSE(v(x_cond), v_target + (1 - 1/w)(v(x_cond) - v(x_uncond)))."""
    data, L, w = gaussian(), 0.5, 3.0
    model = OracleNet(data, self_conditioning=True, guided=True, lipschitz=L)
    cfg = TeacherConfig(sc_prob=1.0)
    b = batch(data)
    out = TeacherLoss(cfg, FlowConfig(w_min=w, w_max=w))(model, b, gen(1), decoder_step=False)
    g = gen(1)  # the same draws, in the loss's order: t, eps
    t = sample_logit_normal((16,), generator=g)
    z = interpolate(b.x0, torch.randn(b.x0.shape, generator=g), t)
    exact = data(z, t)
    v = lambda x: x_to_velocity(x, z, t)  # noqa: E731
    v_cond, v_uncond = v((1 - L * L) * exact), v((1 - L) * exact)
    expected = (v_cond - (v(b.x0) + (1 - 1 / w) * (v_cond - v_uncond))).pow(2).mean()
    # a mean of squares (positive terms, no cancellation) from the elementwise oracle, in two fp32 orders:
    # ~1e-7 relative apart on any CPU, and a wrong target moves it by O(1)
    assert float(out.loss) == pytest.approx(float(expected), rel=1e-4)
    assert out.metrics["sc_fraction"] == 1.0


def test_teacher_without_self_conditioning_never_fills_the_slot():
    data = gaussian()
    model = OracleNet(data)  # no slot: an sc argument would be an error in the real network
    net = Denoiser(denoiser_config("tiny", latent_dim=3, vocab_size=5, max_len=4, self_conditioning=False,
                                   guidance_tokens=0))
    for m in (model, net):
        out = TeacherLoss(TeacherConfig(self_conditioning=False), FlowConfig())(m, batch(data), gen(), decoder_step=False)
        assert torch.isfinite(out.loss)


def test_decoder_step_trains_token_cross_entropy():
    net = Denoiser(denoiser_config("tiny", latent_dim=3, vocab_size=5, max_len=4))
    b = Batch(ids=torch.randint(0, 5, (4, 4)), x0=torch.randn(4, 4, 3))
    out = TeacherLoss(TeacherConfig(), FlowConfig())(net, b, gen(), decoder_step=True)
    assert "ce" in out.metrics and out.loss.requires_grad
    out.loss.backward()
    assert net.unembed.weight.grad is not None and float(net.unembed.weight.grad.abs().sum()) > 0


def test_fixed_point_loss_is_zero_for_the_perfect_one_forward_student():
    data = gaussian(dtype=torch.float64)
    teacher = OracleNet(data, self_conditioning=True, guided=True, lipschitz=0.5)
    perfect = OracleNet(data, guided=True)  # returns D* = the teacher's fixed point, whatever the slot
    cfg = FixedPointConfig(iterations=12, cold_prob=1.0)
    b = batch(data)
    out = FixedPointLoss(cfg, teacher, FlowConfig())(perfect, b, gen(), decoder_step=False)
    assert float(out.loss) < 1e-8
    biased = OracleNet(type(data)(data.mu * 1.2, data.var), guided=True)
    assert float(FixedPointLoss(cfg, teacher, FlowConfig())(biased, b, gen(), decoder_step=False).loss) > 1e-3


def test_teacher_trajectory_converges_to_the_fixed_point():
    data = gaussian(dtype=torch.float64)
    teacher = OracleNet(data, self_conditioning=True, lipschitz=0.6)
    b = batch(data)
    t = torch.full((16,), 0.4, dtype=torch.float64)
    z = interpolate(b.x0, torch.randn(b.x0.shape, generator=gen(), dtype=torch.float64), t)
    traj = teacher_trajectory(teacher, z, t, None, FixedPointConfig(iterations=10))
    assert traj.shape[0] == 11 and float(traj[0].abs().max()) == 0.0
    assert float((traj[-1] - data(z, t)).abs().max()) < 1e-6


def test_fixed_point_loss_trains_the_phase_bank_of_a_real_network():
    teacher = Denoiser(denoiser_config("tiny", latent_dim=3, vocab_size=5, max_len=4))
    student = Denoiser(dataclasses.replace(teacher.config, phase_tokens=4))
    out = FixedPointLoss(FixedPointConfig(iterations=4, snap_tail=1, cold_prob=0.0), teacher, FlowConfig())(
        student, Batch(torch.zeros(6, 4, dtype=torch.long), torch.randn(6, 4, 3)), gen(), decoder_step=False)
    out.loss.backward()
    assert set(out.metrics) == {"global", "local", "cold_fraction"}
    assert all(p.grad is not None for n, p in student.named_parameters() if n.startswith("phase_bank"))


def _full_pass_fixed_point_loss(loss, model, b, generator):
    """The stage-2 loss with every member of every triple through the network (2 B rows with gradients,
    B without): what FixedPointLoss computes with a cold row's f_b and f_c taken from its f_a."""
    from fmlm.losses.common import masked_mse, noisy_latents

    cfg, flow = loss.cfg, loss.flow
    x0, (n, dev, dt) = b.x0, b.shape_facts
    t, z = noisy_latents(x0, flow.lam, flow.p_mean, flow.p_std, generator)
    w = sample_guidance(n, flow, generator, dev, dt)
    traj = teacher_trajectory(loss.teacher, z, t, w, cfg)
    K = cfg.iterations
    cold = torch.rand(n, generator=generator) < cfg.cold_prob
    k = torch.where(cold, 0, torch.randint(2, K + 1, (n,), generator=generator))
    ka, kb, kc = k, (k - 1).clamp(min=0), (k - 2).clamp(min=0)
    rows = torch.arange(n)
    s_a, s_b, s_c = traj[ka, rows], traj[kb, rows], traj[kc, rows]
    snap = ((torch.rand(n, generator=generator) < cfg.snap_prob) & (k >= 1) & (k <= K - cfg.snap_tail)).view(-1, 1, 1)
    s_a, s_b, s_c = (torch.where(snap, traj[-1], s) for s in (s_a, s_b, s_c))
    tau_a, tau_b, tau_c = loss._tau(ka).to(dt), loss._tau(kb).to(dt), loss._tau(kc).to(dt)
    f_a, f_b = model(torch.cat([z, z]), torch.cat([t, t]), sc=torch.cat([s_a, s_b]), w=torch.cat([w, w]),
                     tau=torch.cat([tau_a, tau_b])).chunk(2)
    g_k = loss._g(s_a, f_a, s_b, f_b, tau_a)
    with torch.no_grad():
        g_prev = loss._g(s_b, f_b.detach(), s_c, model(z, t, sc=s_c, w=w, tau=tau_c), tau_b)
    return cfg.global_weight * masked_mse(g_k, traj[-1]) + (1 - cfg.global_weight) * masked_mse(g_k, g_prev)


@pytest.mark.parametrize("cold_prob", [0.0, 0.5, 1.0])
def test_cold_rows_pass_through_the_student_once_with_the_same_loss_and_gradient(cold_prob):
    torch.manual_seed(0)
    # float64 throughout: the claim is an identity between two batchings of the same rows. In float32 the
    # two batchings sum each weight gradient over rows in different orders, and which kernel (AMX,
    # AVX512-BF16 or AVX2 blocking) sets that order; elements near zero by cancellation (a bias gradient
    # summed over 24 rows) then differ by ~1e-7 of the largest term, beyond any elementwise rtol. In
    # float64 the same reordering costs ~1e-16 of the terms' magnitude.
    teacher = Denoiser(denoiser_config("tiny", latent_dim=3, vocab_size=5, max_len=4)).double()
    student = Denoiser(dataclasses.replace(teacher.config, phase_tokens=4)).double()
    for p in [*student.phase_bank.parameters(), *student.out_proj.parameters(), *teacher.out_proj.parameters()]:
        torch.nn.init.normal_(p, std=0.1)  # zero-initialised: give the phase and the outputs a say
    loss = FixedPointLoss(FixedPointConfig(iterations=5, snap_tail=1, cold_prob=cold_prob), teacher, FlowConfig())
    b = Batch(torch.zeros(12, 4, dtype=torch.long), torch.randn(12, 4, 3, dtype=torch.float64))
    rows = []
    hook = student.register_forward_hook(lambda m, args, out: rows.append((args[0].shape[0], torch.is_grad_enabled())))
    out = loss(student, b, gen(3), decoder_step=False)
    hook.remove()
    cold = round(out.metrics["cold_fraction"] * 12)
    assert rows[0] == (12 + 12 - cold, True)  # a of every row, b of the warm rows
    assert rows[1:] == ([] if cold == 12 else [(12 - cold, False)])  # c of the warm rows
    out.loss.backward()
    fast = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    student.zero_grad()
    full = _full_pass_fixed_point_loss(loss, student, b, gen(3))
    full.backward()
    # float64, rows batched differently: each gradient is a sum of O(10)-magnitude products over a few dozen
    # rows; reordering it moves it by ~1e-15 of the tensor's largest element, so 1e-10 of that scale holds
    # with orders of magnitude to spare while a real difference (a row counted twice) is O(1) of it.
    assert float(out.loss.detach()) == pytest.approx(float(full.detach()), rel=1e-12)
    for n, p in student.named_parameters():
        if p.grad is not None:
            scale = float(p.grad.abs().max()) + float(fast[n].abs().max())
            assert float((fast[n] - p.grad).abs().max()) <= 1e-10 * max(scale, 1e-300), n


def test_flow_map_loss_vanishes_for_the_exact_flow_map_and_catches_a_wrong_one():
    data = gaussian(dtype=torch.float64)
    teacher = OracleNet(data)  # the one-time exact denoiser: the diagonal target
    cfg = FlowMapConfig(boundary_prob=0.25)
    b = batch(data, n=64)
    out = FlowMapLoss(cfg, teacher, FlowConfig())(OracleNet(data), b, gen(), decoder_step=False)
    assert out.metrics["diagonal"] < 1e-10 and out.metrics["off_diagonal"] < 1e-10
    assert 0.3 < out.metrics["diagonal_fraction"] < 0.7

    class OneTime(OracleNet):  # ignores the source time: not a flow map
        def forward(self, z, t, *, s=None, **kw):
            return super().forward(z, t, **kw)

    wrong = FlowMapLoss(cfg, teacher, FlowConfig())(OneTime(data), b, gen(), decoder_step=False)
    assert wrong.metrics["diagonal"] < 1e-10 and wrong.metrics["off_diagonal"] > 1e-3


def test_flow_map_loss_is_guided_only_for_a_guided_teacher():
    data = gaussian()
    assert FlowMapLoss(FlowMapConfig(), OracleNet(data, guided=True), FlowConfig()).guided
    assert not FlowMapLoss(FlowMapConfig(), OracleNet(data), FlowConfig()).guided


def test_decoder_token_fraction_scores_a_subset_of_positions():
    from fmlm.losses.common import DecoderConfig, decoder_loss

    net = Denoiser(denoiser_config("tiny", latent_dim=3, vocab_size=5, max_len=8))
    b = Batch(ids=torch.randint(0, 5, (4, 8)), x0=torch.randn(4, 8, 3))
    full = decoder_loss(net, b, DecoderConfig(token_fraction=1.0), gen())
    part = decoder_loss(net, b, DecoderConfig(token_fraction=0.25), gen())
    assert torch.isfinite(part.loss) and abs(part.loss.item() - full.loss.item()) < 1.0
    logits = net(b.x0, torch.ones(4), decode=True, positions=torch.zeros(4, 8, dtype=torch.bool).index_fill_(1, torch.tensor([2]), True))
    assert logits.shape == (4, 5)
    with pytest.raises(ValueError, match="positions"):
        net(b.x0, torch.ones(4), positions=torch.ones(4, 8, dtype=torch.bool))
