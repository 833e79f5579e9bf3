"""The exact testbed in small: a teacher trained on a known language, probed against its exact denoiser.

A tiny teacher network is trained (the real stage-1 loss, float32) on rows of a small hidden-topic
language (``fmlm.synthetic.hmm_language``) whose posterior mean ``D*(z, t) = E[x0 | z_t]`` is exact
(forward-backward). Checked, at w = 1 on held-out rows:

- the language has context to learn: ``D*`` is closer to ``x0`` than the per-token denoiser that knows
  only the unigram law (the margin the testbed rests on);
- the network's single pass ``F(0)`` is measurably worse than ``D*`` (self-conditioning has room);
- docs/method.md section 6 says the self-conditioning fixed point ``s*`` is a better denoiser than ``F(0)``.
  Measured on this teacher (200 steps): at t = 0.3 ``s*`` is 7% FARTHER from ``D*`` than ``F(0)`` (0.1736
  against 0.1626; a strict xfail); at t = 0.5 and 0.7 the two are within 1% of each other (0.3120 against
  0.3102, 0.5430 against 0.5406), too close to call, so the check there is that they stay within 5%
  (it fails if self-conditioning starts to matter, either way). The full testbed (docs/results.md,
  the exact testbed) finds the same: the slot barely moves the teacher.
"""

import pytest
import torch

from fmlm.losses.common import Batch
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.math.fixed_point import picard
from fmlm.math.flow import FlowConfig
from fmlm.math.interpolant import interpolate
from fmlm.nn import Denoiser, denoiser_config
from fmlm.synthetic import CodebookData
from fmlm.synthetic.hmm_language import HMMLanguage, LanguageSpec
from verify.checks import torch_defaults

SPEC = LanguageSpec(vocab=16, topics=3, dim=6, window=7, seed=2)
LENGTH, STEPS, BATCH = 12, 200, 32


def rms(a):
    return float(a.double().pow(2).flatten(1).mean(1).sqrt().mean())


@pytest.fixture(scope="module")
def probes():
    """Per t: (rms(D* - x0), rms(unigram denoiser - x0), rms(F(0) - D*), rms(s* - D*))."""
    law = HMMLanguage(SPEC)
    with torch_defaults(torch.float32):
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        model = Denoiser(denoiser_config("tiny", latent_dim=SPEC.dim, vocab_size=SPEC.vocab, max_len=LENGTH))
        model.check_finite = False
        loss = TeacherLoss(TeacherConfig(), FlowConfig(w_min=1.0, w_max=1.0))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(STEPS):
            ids, _ = law.sample(BATCH, LENGTH, generator=g)
            loss(model, Batch(ids, law.codebook[ids].float()), g, decoder_step=False).loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval().requires_grad_(False)
        ids, _ = law.sample(64, LENGTH, generator=torch.Generator().manual_seed(9))
        x0 = law.codebook[ids].float()
        unigram = law.state_marginals(LENGTH).reshape(LENGTH, SPEC.topics, SPEC.vocab).sum(1).mean(0)
        per_token = CodebookData(law.codebook, unigram / unigram.sum())
        out = {}
        for t_value in (0.3, 0.5, 0.7):
            t = torch.full((64,), t_value)
            z = interpolate(x0, torch.randn(x0.shape, generator=g), t)
            exact = law(z.double(), t_value)
            one = torch.ones(64)
            F = lambda s: model(z, t, sc=s.float(), w=one)
            first = F(torch.zeros_like(z))
            s_star = picard(F, torch.zeros_like(z), 30).iterates[-1]
            out[t_value] = (rms(exact - x0), rms(per_token(z.double(), t_value) - x0), rms(first - exact),
                            rms(s_star - exact))
    print(f"\nexact language probes (D*-x0, unigram-x0, F(0)-D*, s*-D*): {out}")
    return out


def test_the_language_has_context_to_learn(probes):
    d_star, unigram, _, _ = probes[0.5]
    assert d_star < 0.97 * unigram, f"D* {d_star:.4f} vs the unigram denoiser {unigram:.4f}"


@pytest.mark.parametrize("t_value", (0.3, 0.5, 0.7))
def test_single_pass_is_measurably_worse_than_the_exact_denoiser(probes, t_value):
    d_star, _, first, _ = probes[t_value]
    assert first > 0.05 * d_star, f"F(0) is {first:.4f} from D* (D* is {d_star:.4f} from x0)"


@pytest.mark.xfail(strict=True, reason="measured: s* is 7% farther from D* than F(0) at t = 0.3 (0.1736 vs 0.1626)")
def test_fixed_point_beats_the_first_pass_at_t_0_3(probes):
    _, _, first, s_star = probes[0.3]
    assert s_star < first, f"s* is {s_star:.4f} from D*, F(0) {first:.4f}"


@pytest.mark.parametrize("t_value", (0.5, 0.7))
def test_fixed_point_and_first_pass_are_equally_far_from_the_exact_denoiser(probes, t_value):
    _, _, first, s_star = probes[t_value]
    assert 0.95 < s_star / first < 1.05, f"s* is {s_star:.4f} from D*, F(0) {first:.4f}"
