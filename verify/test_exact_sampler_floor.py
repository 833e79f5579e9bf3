"""The samplers fed the exact denoiser of a known language: what the samplers themselves cost.

``fmlm.synthetic.law_denoiser.LawDenoiser`` puts a language's exact ``E[x0 | z_t]`` behind the network
call signature, so the project's own SDE and Euler samplers run on it unchanged. Scored under the law
(``fmlm.evaluation.exact``), on the exact testbed's language with 256 samples of 32 tokens:

- the Euler probability-flow ODE with 32 steps, on a time grid whose logit-normal law is centred at
  t = 0.5 (``p_mean = 0``), reproduces the language: excess NLL 0.048 and bigram KL 0.165 against
  the true-sample floor of 0.160 (measured 2026-12-08);
- the same Euler ODE on the paper's grid (``p_mean = -1.5``, steps crowded at the noisy end) does not:
  excess NLL 0.447, bigram KL 0.432. The 16-dimensional codebook's tokens become identifiable
  between t = 0.5 and 0.8, where that grid puts few steps;
- the SDE with the paper's churn 1.5 sharpens the law even on the good grid: excess NLL -0.488 (samples
  more probable than true rows), bigram KL 1.03, unigram entropy 2.25 against 2.96.

Each check has its margin from those numbers; a sampler change that moves them fails here.
"""


import pytest
import torch

from fmlm.evaluation.exact import ExactScorer
from fmlm.math.flow import FlowConfig
from fmlm.samplers import batch_sampler, generate, sampler_for
from fmlm.synthetic.hmm_language import HMMLanguage, LanguageSpec
from fmlm.synthetic.law_denoiser import LawDenoiser

LENGTH, N = 32, 256


@pytest.fixture(scope="module")
def scorer():
    law = HMMLanguage(LanguageSpec())
    entropy, se = law.entropy_per_token(4096, LENGTH)
    return ExactScorer(law, LENGTH, entropy, se)


def sample(scorer, kind: str, steps: int, p_mean: float, churn: float = 0.0) -> dict:
    flow = FlowConfig(p_mean=p_mean)
    settings = {"kind": kind, "steps": steps, "seed": 0, "batch_size": 128, "sc_mode": "none"}
    cfg = sampler_for(flow, settings | ({"churn": churn} if kind == "sde" else {}))
    samples = generate(LawDenoiser(scorer.law, LENGTH), batch_sampler(cfg), cfg, N, LENGTH, progress=False)
    return scorer.metrics(samples.ids) | scorer.floor(N)


def test_law_denoiser_refuses_a_slot_or_a_guidance_scale():
    model = LawDenoiser(HMMLanguage(LanguageSpec(vocab=8, topics=2, dim=4, window=4)), 6)
    z, t = torch.zeros(2, 6, 4), torch.full((2,), 0.5)
    with pytest.raises(ValueError, match="no self-conditioning slot"):
        model(z, t, sc=z)
    with pytest.raises(ValueError, match="no self-conditioning slot"):
        model(z, t, w=torch.ones(2))


def test_law_denoiser_decodes_clean_codewords_exactly():
    law = HMMLanguage(LanguageSpec(vocab=8, topics=2, dim=4, window=4))
    ids, _ = law.sample(5, 6, generator=torch.Generator().manual_seed(0))
    logits = LawDenoiser(law, 6)(law.codebook[ids].float(), torch.ones(5), decode=True)
    assert torch.equal(logits.argmax(-1), ids)


def test_euler_on_a_centred_grid_reproduces_the_language(scorer):
    m = sample(scorer, "euler", 32, p_mean=0.0)
    assert abs(m["excess_nll"]) < 0.15, f"excess NLL {m['excess_nll']:.3f} (measured 0.048)"
    assert m["bigram_kl"] < 1.5 * m["floor_bigram_kl"], f"bigram KL {m['bigram_kl']:.3f}, floor {m['floor_bigram_kl']:.3f}"


def test_the_paper_grid_misses_this_language(scorer):
    m = sample(scorer, "euler", 32, p_mean=-1.5)
    assert m["excess_nll"] > 0.25, f"excess NLL {m['excess_nll']:.3f} (measured 0.447)"
    assert m["bigram_kl"] > 2 * m["floor_bigram_kl"], f"bigram KL {m['bigram_kl']:.3f}, floor {m['floor_bigram_kl']:.3f}"


def test_churn_sharpens_the_law(scorer):
    m = sample(scorer, "sde", 32, p_mean=0.0, churn=1.5)
    assert m["excess_nll"] < -0.25, f"excess NLL {m['excess_nll']:.3f} (measured -0.488)"
    assert m["entropy"] < m["floor_entropy"] - 0.3, f"entropy {m['entropy']:.3f}, floor {m['floor_entropy']:.3f}"
