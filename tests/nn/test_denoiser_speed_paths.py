"""The denoiser's fast paths: the chunked decoder argmax, the finite-check switch, torch.compile."""

from __future__ import annotations

import pytest
import torch

from fmlm.nn.denoiser import compile_denoiser, finite_checks
from fmlm.nn.cpu.screen_int8 import int_mm_is_exact
from tests.tolerance import FLOAT64_IDENTITY, assert_close_to_scale


@pytest.mark.parametrize("chunk", [1, 4, 21, 10_000])
def test_token_ids_are_the_argmax_of_the_whole_logits(model, batch, chunk):
    z = batch["z"]
    whole = model(z, 1.0, w=2.0, decode=True).argmax(-1)
    ids = model.token_ids(z, 1.0, w=2.0, chunk_tokens=chunk)
    assert ids.shape == (3, 7) and ids.dtype == torch.int64
    assert torch.equal(ids, whole)


def test_token_ids_match_on_a_large_vocabulary_with_phase_and_source_time(build_model, perturbed):
    m = perturbed(build_model(vocab_size=3001, phase_tokens=4), scale=0.05).eval()
    z = torch.randn(5, 12, m.config.latent_dim)
    kwargs = {"s": torch.rand(5), "tau": torch.rand(5), "w": torch.rand(5) + 1}
    whole = m(z, torch.ones(5), decode=True, **kwargs).argmax(-1)
    assert whole.unique().numel() > 10  # a non-trivial decoding
    for chunk in (7, 16, 60):
        assert torch.equal(m.token_ids(z, torch.ones(5), chunk_tokens=chunk, **kwargs), whole)
    screens = ["int8", "none", "auto"] if int_mm_is_exact() else ["none", "auto"]
    for screen, tile in [(name, tile) for name in screens for tile in (500, None)]:
        ids = m.token_ids(z, torch.ones(5), screen=screen, vocab_tile=tile, **kwargs)
        assert torch.equal(ids, whole), (screen, tile)


def test_the_screen_follows_changed_weights(build_model, perturbed):
    if not int_mm_is_exact():
        pytest.skip("torch._int_mm is not exact on this machine")
    screen = "int8"
    m = perturbed(build_model(vocab_size=600), scale=0.05).eval()
    z = torch.randn(2, 9, m.config.latent_dim)
    before = m.token_ids(z, torch.ones(2), screen=screen)
    with torch.no_grad():
        m.unembed.weight[7] += 100 * m.unembed.weight.abs().max()  # token 7 now wins where its logit is positive
    after = m.token_ids(z, torch.ones(2), screen=screen)
    assert torch.equal(after, m(z, torch.ones(2), decode=True).argmax(-1)) and not torch.equal(before, after)
    kept = m._screens[screen]  # kept while the weights stay as they are
    assert torch.equal(m.token_ids(z, torch.ones(2), screen=screen), after) and m._screens[screen] is kept
    assert sorted(m._screens) == ["int8"]


@pytest.mark.parametrize("screen", [True, "fp8", ["int8"]])
def test_token_ids_refuse_an_unknown_screen(model, batch, screen):
    with pytest.raises(ValueError, match="^screen: expected 'auto', 'none' or one of"):
        model.token_ids(batch["z"], 1.0, screen=screen)


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True])
def test_token_ids_refuse_a_bad_chunk_size(model, batch, chunk):
    with pytest.raises(ValueError, match="^chunk_tokens:"):
        model.token_ids(batch["z"], 1.0, chunk_tokens=chunk)


def test_token_ids_check_their_inputs_like_the_forward(model, batch):
    z = batch["z"].clone()
    z[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="^z:"):
        model.token_ids(z, 1.0)


def test_finite_checks_switch_off_for_the_block_only(model, batch):
    z = batch["z"].clone()
    z[0, 0, 0] = float("inf")
    with finite_checks(model, False):
        assert not torch.isfinite(model(z, batch["t"])[0]).all()
    assert model.check_finite is True
    with pytest.raises(ValueError, match="^z:"):
        model(z, batch["t"])
    with pytest.raises(RuntimeError, match="inside"):
        with finite_checks(model, False):
            raise RuntimeError("inside")
    assert model.check_finite is True


def test_finite_checks_leave_a_model_without_the_switch_alone():
    plain = torch.nn.Linear(2, 2)
    with finite_checks(plain, False):
        assert not hasattr(plain, "check_finite")


def test_compiled_denoiser_matches_eager(model, batch):
    # float64: the traced graph runs decomposed kernels that sum in other orders (tests/tolerance.py)
    model, z, sc = model.double(), batch["z"].double(), batch["sc"].double()
    eager = model(z, batch["t"], sc=sc, w=2.0)
    compiled = compile_denoiser(model, backend="aot_eager")
    assert model.check_finite is False
    assert_close_to_scale(compiled(z, batch["t"], sc=sc, w=2.0), eager, FLOAT64_IDENTITY)
    assert compiled.config is model.config
    with finite_checks(compiled, True):  # the switch reaches the module inside the wrapper
        assert model.check_finite is True
    assert model.check_finite is False


def test_compile_denoiser_refuses_another_module():
    with pytest.raises(ValueError, match="^model: expected a Denoiser"):
        compile_denoiser(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_inductor_compiled_denoiser_matches_eager(model, batch):
    # float64: inductor's generated C++ sums in its own order (tests/tolerance.py). t too: the time features
    # follow t's dtype, and float32 cos/sin differ by an ulp between inductor's vector code and eager.
    model, z, sc, t = model.double(), batch["z"].double(), batch["sc"].double(), batch["t"].double()
    eager = model(z, t, sc=sc, w=2.0)
    compiled = compile_denoiser(model)
    assert_close_to_scale(compiled(z, t, sc=sc, w=2.0), eager, FLOAT64_IDENTITY)
