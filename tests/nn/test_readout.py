"""The latent readout: the decoder head on the latent itself, and its least-squares initialisation."""

from __future__ import annotations

import pytest
import torch

from fmlm.losses.common import Batch, DecoderConfig, decoder_loss
from fmlm.nn.readout import accumulate_moments, readout_init
from fmlm.nn.warm_start import parameter_breakdown


def _unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    rows = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return rows / rows.norm(dim=1, keepdim=True)


def test_the_fit_reads_seen_and_unseen_tokens_of_a_linear_encoder():
    # latents x = e_y B + noise of unit embeddings e_y through an invertible B: the token means are linear in
    # the embeddings, so the embedding-predicted mean of a token never seen is its true mean, and the
    # Gaussian classifier reads every clean latent e_v B back as v (distinct unit rows, noise 0.01)
    d, vocab = 8, 16
    emb = _unit_rows(vocab, d, 0)
    gen = torch.Generator().manual_seed(1)
    mix = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    seen = torch.arange(480) % 12  # tokens 12..15 never occur in the fit
    x = emb[seen] @ mix + 0.01 * torch.randn(480, d, generator=gen, dtype=torch.float64)
    weight, bias = readout_init(*accumulate_moments(x, seen, vocab), emb)
    assert weight.shape == (vocab, d) and bias.shape == (vocab,) and weight.dtype == torch.float32
    logits = (emb @ mix).float() @ weight.T + bias
    assert torch.equal(logits.argmax(-1), torch.arange(vocab))


def test_moments_add_up_over_chunks_and_bad_fits_are_refused():
    x = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(2))
    ids = torch.randint(0, 9, (2, 6), generator=torch.Generator().manual_seed(3))
    whole = accumulate_moments(x, ids, 9)
    parts = [accumulate_moments(x[i], ids[i], 9) for i in range(2)]
    for a, b, c in zip(whole, *parts):
        # float64 sums of at most 12 products of O(1) numbers, in two orders: equal far below 1e-12
        assert torch.allclose(a, b + c, atol=1e-12)
    assert float(whole[2].sum()) == 12
    emb = torch.randn(9, 4, generator=torch.Generator().manual_seed(4))
    with pytest.raises(ValueError, match="no training tokens"):
        readout_init(whole[0] * 0, whole[1] * 0, whole[2] * 0, emb)
    with pytest.raises(ValueError, match="prior_tokens"):
        readout_init(*whole, emb, prior_tokens=0.0)


def test_the_latent_decoder_is_a_linear_readout_of_z_and_runs_no_block(build_model, perturbed, batch):
    model = perturbed(build_model(decoder_input="latent", mode_tokens=0)).eval()
    assert model.decode_proj is None and parameter_breakdown(model)["decoder_head"] == 40 * 8 + 40
    z = batch["z"]
    logits = model(z, batch["t"], w=2.0, decode=True)
    assert torch.equal(logits, model.unembed(z))  # the same op on the same input
    assert torch.equal(model.token_ids(z, 1.0, chunk_tokens=5), logits.argmax(-1))
    keep = torch.zeros(z.shape[:2], dtype=torch.bool)
    keep[0, 1] = keep[2, 4] = True
    # fp32 dot products of 8 O(1) terms; a 2-row and a 21-row GEMM may sum in another order: within 1e-5
    assert torch.allclose(model(z, 1.0, decode=True, positions=keep), logits[keep], rtol=0, atol=1e-5)
    model.blocks = None  # a decoder pass that touched the blocks would fail now
    assert torch.equal(model(z, 1.0, decode=True), logits)
    with pytest.raises(ValueError, match="z: contains NaN"):
        model(torch.full_like(z, float("nan")), 1.0, decode=True)


def test_decoder_steps_train_only_the_readout(build_model):
    model = build_model(decoder_input="latent", mode_tokens=0)
    ids = torch.randint(0, 40, (2, 5), generator=torch.Generator().manual_seed(5))
    batch = Batch(ids=ids, x0=torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(6)))
    out = decoder_loss(model, batch, DecoderConfig(noise_scale=1.0), torch.Generator().manual_seed(7))
    out.loss.backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None}
    assert trained == {"unembed.weight", "unembed.bias"}


def test_decoder_input_is_checked(build_model):
    with pytest.raises(Exception, match="decoder_input"):
        build_model(decoder_input="embedding")
