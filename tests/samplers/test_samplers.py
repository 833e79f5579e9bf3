import dataclasses

import pytest
import torch

from fmlm.math.flow import FlowConfig
from fmlm.samplers import SamplerConfig, batch_sampler, generate
from tests.oracle import OracleNet, gaussian

FLOW = FlowConfig()  # the paper flow (lam 2, P_mean -1.5, P_std 0.8, t_eps 0.05)
# Float tolerances below: the oracle and the samplers are elementwise (no sums across rows or features), so
# two computations of one sample differ by a few fp32 roundings (2^-24) of its O(1) latents on any CPU, far
# inside the defaults (rtol 1.3e-6, atol 1e-5) and the explicit rtol/atol; no kernel choice enters.


def run(model, cfg, n=64, length=4, **kw):
    return generate(model, batch_sampler(cfg), cfg, n, length, progress=False, **kw)


def moments_match(latents, data, tol):
    x = latents.reshape(-1, latents.shape[-1]).double()
    mean_err = (x.mean(0) - data.mu.double()).abs().max()
    std_err = (x.std(0) - data.var.double().sqrt()).abs().max()
    return float(mean_err) < tol and float(std_err) < tol


@pytest.mark.parametrize("kind,steps", [("flow_map", 1), ("flow_map", 3), ("ctm", 1), ("ctm", 4)])
def test_exact_flow_map_samples_the_data_distribution(kind, steps):
    data = gaussian()
    out = run(OracleNet(data), SamplerConfig(flow=FLOW, kind=kind, steps=steps, gamma=1.0, batch_size=256), n=1024)
    assert moments_match(out.latents, data, tol=0.08)
    assert out.nfe == steps + 1  # one evaluation per step plus the decoder pass


def test_wrong_flow_map_is_caught_by_the_same_check():
    data = gaussian()
    wrong = OracleNet(gaussian())
    wrong.data = type(data)(data.mu, data.var * 2.0)  # a map to the wrong distribution
    out = run(wrong, SamplerConfig(flow=FLOW, kind="flow_map", steps=2, batch_size=256), n=1024)
    assert not moments_match(out.latents, data, tol=0.08)


def test_ctm_with_gamma_zero_is_the_deterministic_flow_map_sampler():
    model = OracleNet(gaussian())
    a = run(model, SamplerConfig(flow=FLOW, kind="flow_map", steps=4, seed=3))
    b = run(model, SamplerConfig(flow=FLOW, kind="ctm", steps=4, gamma=0.0, seed=3))
    # elementwise: see the note under FLOW
    torch.testing.assert_close(a.latents, b.latents, rtol=1e-4, atol=1e-5)


def test_euler_with_the_exact_denoiser_reaches_the_data():
    # The paper's grid (P_mean = -1.5) ends its interior at t ~ 0.55, where the final x-prediction step
    # returns a posterior mean (variance collapse by design); a grid reaching t ~ 0.995 checks the integration.
    data = gaussian()
    cfg = SamplerConfig(flow=FlowConfig(p_mean=2.0, p_std=1.5), kind="euler", steps=64, sc_mode="none", batch_size=512)
    out = run(OracleNet(data), cfg, n=1024)
    assert moments_match(out.latents, data, tol=0.12)
    assert out.nfe == 65


def test_sde_without_churn_is_euler():
    # With churn > 0 the SDE sampler is not distribution-preserving even for the exact denoiser: docs/method.md's
    # churn adds noise of std lam sqrt(alpha^2 (1-t)^2 + (1-alpha)^2) < lam (1 - t_b) (see README).
    model = OracleNet(gaussian())
    euler = run(model, SamplerConfig(flow=FLOW, kind="euler", steps=6, sc_mode="none"))
    sde = run(model, SamplerConfig(flow=FLOW, kind="sde", steps=6, sc_mode="none", churn=0.0))
    # elementwise: see the note under FLOW
    torch.testing.assert_close(euler.latents, sde.latents)


def test_samples_do_not_depend_on_batch_size():
    model = OracleNet(gaussian())
    for kind in ("sde", "ctm"):
        cfg = SamplerConfig(flow=FLOW, kind=kind, steps=5, sc_mode="none", gamma=0.5, batch_size=3)
        a = run(model, cfg, n=7)
        b = run(model, dataclasses.replace(cfg, batch_size=7), n=7)
        # elementwise: see the note under FLOW
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-5, atol=1e-6)
        assert torch.equal(a.ids, b.ids)
    # ... and sample i is the same whether it is drawn alone or among others
    cfg = SamplerConfig(flow=FLOW, kind="sde", steps=5, sc_mode="none")
    whole = run(model, cfg, n=6)
    alone = generate(model, batch_sampler(cfg), cfg, 1, 4, first_index=4, progress=False)
    # elementwise: see the note under FLOW
    torch.testing.assert_close(whole.latents[4:5], alone.latents, rtol=1e-5, atol=1e-6)


def test_cold_start_one_iteration_equals_the_zero_slot_and_counts_evaluations():
    model = OracleNet(gaussian(), self_conditioning=True, guided=True, lipschitz=0.5)
    none = run(model, SamplerConfig(flow=FLOW, kind="sde", steps=6, sc_mode="none"), n=8)
    cold1 = run(model, SamplerConfig(flow=FLOW, kind="sde", steps=6, sc_mode="cold", fp_iterations=1), n=8)
    # elementwise: see the note under FLOW
    torch.testing.assert_close(none.latents, cold1.latents)
    for n_iter, solver in [(2, "picard"), (4, "anderson")]:
        cold = run(model, SamplerConfig(flow=FLOW, kind="sde", steps=6, sc_mode="cold", fp_iterations=n_iter, fp_solver=solver), n=8)
        assert cold.nfe == 6 * n_iter + 1
    warm = run(model, SamplerConfig(flow=FLOW, kind="sde", steps=6, sc_mode="warm"), n=8)
    assert warm.nfe == 7 and not torch.allclose(warm.latents, none.latents)


def test_cold_start_converges_to_the_fixed_point_denoiser():
    data = gaussian()
    exact = run(OracleNet(data), SamplerConfig(flow=FLOW, kind="euler", steps=8, sc_mode="none"), n=8)
    sc = OracleNet(data, self_conditioning=True, lipschitz=0.5)
    errors = []
    for n_iter in (1, 2, 4, 8):
        out = run(sc, SamplerConfig(flow=FLOW, kind="euler", steps=8, sc_mode="cold", fp_iterations=n_iter), n=8)
        errors.append(float((out.latents - exact.latents).abs().max()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.01 * errors[0]


def test_bad_sampler_requests_are_refused():
    plain = OracleNet(gaussian())
    with pytest.raises(ValueError, match="sc_mode"):
        run(plain, SamplerConfig(flow=FLOW, kind="sde", sc_mode="warm"))
    with pytest.raises(ValueError, match="length"):
        run(plain, SamplerConfig(flow=FLOW, kind="ctm"), length=99)
    with pytest.raises(ValueError, match="n_samples"):
        run(plain, SamplerConfig(flow=FLOW, kind="ctm"), n=0)
    from fmlm.config import ConfigError

    with pytest.raises(ConfigError, match="sampler.gamma"):
        SamplerConfig(flow=FLOW, gamma=1.5)
