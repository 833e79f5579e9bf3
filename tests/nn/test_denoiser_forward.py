"""Denoiser forward pass: shapes, conditioning identities, input validation."""

from __future__ import annotations

import pytest
import torch

from tests.tolerance import FLOAT64_IDENTITY, assert_close_to_scale


def test_denoise_and_decode_shapes(model, batch):
    z, t = batch["z"], batch["t"]
    xhat = model(z, t, sc=batch["sc"])
    logits = model(z, torch.ones(3), decode=True)
    assert xhat.shape == z.shape and xhat.dtype == torch.float32
    assert logits.shape == (3, 7, model.config.vocab_size)
    assert torch.isfinite(xhat).all() and torch.isfinite(logits).all()


def test_full_length_and_single_token_inputs(model):
    n, d = model.config.max_len, model.config.latent_dim
    assert model(torch.randn(2, n, d), torch.rand(2)).shape == (2, n, d)
    assert model(torch.randn(1, 1, d), torch.rand(1)).shape == (1, 1, d)


def test_untrained_model_predicts_zero(build_model, batch):
    assert torch.equal(build_model()(batch["z"], batch["t"]), torch.zeros_like(batch["z"]))


def test_s_none_is_exactly_s_equal_t(model, batch):
    z, t = batch["z"], batch["t"]
    assert torch.equal(model(z, t), model(z, t, s=t))
    assert torch.equal(model(z, t, sc=batch["sc"], w=2.0), model(z, t, s=t.clone(), sc=batch["sc"], w=2.0))


def test_source_time_changes_the_output(model, batch):
    z, t = batch["z"], batch["t"]
    assert not torch.allclose(model(z, t), model(z, t, s=t * 0.5))


def test_sc_none_is_exactly_a_zero_slot(model, batch):
    z, t = batch["z"], batch["t"]
    assert torch.equal(model(z, t), model(z, t, sc=torch.zeros_like(z)))
    assert not torch.allclose(model(z, t), model(z, t, sc=batch["sc"]))


def test_defaults_w_one_and_default_phase(build_model, perturbed, batch):
    m = perturbed(build_model(phase_tokens=4)).eval()
    z, t = batch["z"], batch["t"]
    base = m(z, t)
    assert torch.equal(base, m(z, t, w=torch.ones(3)))
    assert torch.equal(base, m(z, t, tau=torch.full((3,), m.config.default_phase)))
    assert not torch.allclose(base, m(z, t, w=3.0))
    assert not torch.allclose(base, m(z, t, tau=4.0))


def test_scalar_times_broadcast_like_per_row_tensors(model, batch):
    z = batch["z"]
    assert torch.equal(model(z, 0.3), model(z, torch.full((3,), 0.3)))
    assert torch.equal(model(z, torch.tensor(0.3)), model(z, torch.full((3,), 0.3)))


def test_rows_are_independent(model, batch):
    # float64: a batch of 3 and a batch of 1 block their GEMMs differently (tests/tolerance.py)
    model = model.double()
    z, t, sc = batch["z"].double(), batch["t"], batch["sc"].double()
    full = model(z, t, sc=sc, w=torch.tensor([1.0, 2.0, 3.0]))
    one = model(z[1:2], t[1:2], sc=sc[1:2], w=torch.tensor([2.0]))
    assert_close_to_scale(full[1:2], one, FLOAT64_IDENTITY)


def test_decode_mode_tokens_matter(model, batch):
    z = batch["z"]
    on = model(z, 1.0, decode=True)
    model.mode_tokens.data.zero_()
    off = model(z, 1.0, decode=True)
    assert not torch.allclose(on, off)


def test_no_self_conditioning_model_rejects_sc(build_model, batch):
    m = build_model(self_conditioning=False, guidance_tokens=0)
    assert m.sc_mix is None and m.guidance_bank is None
    assert m(batch["z"], batch["t"]).shape == batch["z"].shape
    with pytest.raises(ValueError, match="^sc:"):
        m(batch["z"], batch["t"], sc=batch["sc"])
    with pytest.raises(ValueError, match="^w:"):
        m(batch["z"], batch["t"], w=2.0)


def test_tau_refused_without_phase_bank(model, batch):
    with pytest.raises(ValueError, match="^tau:"):
        model(batch["z"], batch["t"], tau=0.5)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        (lambda a, n, d: a.update(z=torch.randn(3, 7, d + 1)), "z"),  # wrong latent dim
        (lambda a, n, d: a.update(z=torch.randn(3, n + 1, d)), "z"),  # L > max_len
        (lambda a, n, d: a.update(z=torch.randn(7, d)), "z"),  # not 3-D
        (lambda a, n, d: a.update(z=torch.zeros(3, 7, d, dtype=torch.long)), "z"),  # integer
        (lambda a, n, d: a["z"].__setitem__((0, 0, 0), float("nan")), "z"),  # non-finite
        (lambda a, n, d: a.update(t=torch.rand(2)), "t"),  # wrong batch
        (lambda a, n, d: a.update(t=torch.rand(3, 1)), "t"),  # wrong rank
        (lambda a, n, d: a.update(t="0.5"), "t"),  # not a number
        (lambda a, n, d: a.update(t=torch.tensor([0.1, float("inf"), 0.2])), "t"),
        (lambda a, n, d: a.update(s=torch.rand(4)), "s"),
        (lambda a, n, d: a.update(sc=torch.randn(3, 6, d)), "sc"),  # sc shape != z shape
        (lambda a, n, d: a.update(sc=torch.full((3, 7, d), float("nan"))), "sc"),
        (lambda a, n, d: a.update(w=torch.rand(2)), "w"),
        (lambda a, n, d: a.update(w=float("nan")), "w"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(model, batch, change, name):
    args = {"z": batch["z"].clone(), "t": batch["t"]}
    change(args, model.config.max_len, model.config.latent_dim)
    z, t = args.pop("z"), args.pop("t")
    with pytest.raises(ValueError, match=f"^{name}:"):
        model(z, t, **args)


def test_check_finite_can_be_switched_off(model, batch):
    z = batch["z"].clone()
    z[0, 0, 0] = float("nan")
    model.check_finite = False
    out = model(z, batch["t"])
    assert torch.isnan(out[0]).any() and torch.isfinite(out[1:]).all()
