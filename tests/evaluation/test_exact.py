"""The exact evaluator against hand-computed values, and a collapsed sampler against true samples."""

from __future__ import annotations

import math

import pytest
import torch

from fmlm.evaluation.exact import BIGRAM_ALPHA, ExactScorer, bigram_frequencies, kl_divergence
from fmlm.synthetic.hmm_language import HMMLanguage, LanguageSpec

# Hand-computed values are sums of a few float64 terms: agreement to ~1e-15; 1e-12 leaves room.
TOL = 1e-12


def test_kl_by_hand():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.25, 0.5, 0.25])
    # 0.5 log(0.5 / 0.25) + 0.5 log(0.5 / 0.5) = 0.5 log 2; the p = 0 cell counts nothing
    assert math.isclose(kl_divergence(p, q), 0.5 * math.log(2), abs_tol=TOL)
    assert kl_divergence(q, q) == 0.0


def test_bigram_frequencies_by_hand():
    ids = torch.tensor([[0, 1, 1], [1, 0, 0]])
    # pairs: (0,1), (1,1), (1,0), (0,0): one each, N = 4; V = 2 so alpha V^2 = 4 alpha
    f = bigram_frequencies(ids, 2, alpha=0.5)
    torch.testing.assert_close(f, torch.full((2, 2), 1.5 / 6, dtype=torch.float64), rtol=0, atol=TOL)
    f0 = bigram_frequencies(torch.tensor([[0, 0, 0]]), 2, alpha=0.0)
    torch.testing.assert_close(f0, torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64), rtol=0, atol=TOL)


SPEC = LanguageSpec(vocab=16, topics=3, dim=4, window=7, seed=1)
LENGTH = 12


@pytest.fixture(scope="module")
def scorer() -> ExactScorer:
    law = HMMLanguage(SPEC)
    h, se = law.entropy_per_token(8192, LENGTH, seed=0)
    return ExactScorer(law, LENGTH, h, se)


def test_metrics_of_a_known_set_by_hand(scorer):
    ids, _ = scorer.law.sample(5, LENGTH, generator=torch.Generator().manual_seed(3))
    m = scorer.metrics(ids)
    nll = float((-scorer.law.log_prob(ids)).sum()) / (5 * LENGTH)
    assert math.isclose(m["nll"], nll, abs_tol=TOL)
    assert math.isclose(m["excess_nll"], nll - scorer.entropy, abs_tol=TOL)
    assert math.isclose(m["gen_ppl"], math.exp(nll), rel_tol=TOL)
    counts = torch.zeros(16, 16, dtype=torch.float64)
    for row in ids.tolist():
        for a, b in zip(row[:-1], row[1:]):
            counts[a, b] += 1
    q = (counts + BIGRAM_ALPHA) / (5 * (LENGTH - 1) + BIGRAM_ALPHA * 256)
    p = scorer.law.bigram_law(LENGTH)
    assert math.isclose(m["bigram_kl"], float((p * (p / q).log()).sum()), abs_tol=1e-10)  # 256 terms summed
    assert m["distinct_1"] == len(set(ids.reshape(-1).tolist())) / (5 * LENGTH)


def test_true_samples_sit_at_the_floor(scorer):
    ids, _ = scorer.law.sample(256, LENGTH, generator=torch.Generator().manual_seed(4))
    m, floor = scorer.metrics(ids), scorer.floor(256)
    # the per-row NLL has an sd of ~0.3 nats per token: a mean over 256 rows is within ~0.02 of H_L
    assert abs(m["excess_nll"]) < 0.08
    assert abs(floor["floor_excess_nll"]) < 0.08
    assert m["bigram_kl"] < 2 * floor["floor_bigram_kl"]
    assert m["topic_kl"] < 0.05


def test_collapsed_sampler_is_precise_but_does_not_cover(scorer):
    candidates, _ = scorer.law.sample(256, LENGTH, generator=torch.Generator().manual_seed(5))
    likely = candidates[int(scorer.law.log_prob(candidates).argmax())]
    collapsed = likely.expand(256, LENGTH)
    m, floor = scorer.metrics(collapsed), scorer.floor(256)
    assert m["excess_nll"] < 0  # more likely than a typical row: better than the true law's own samples
    assert m["bigram_kl"] > 5 * floor["floor_bigram_kl"]
    assert m["topic_kl"] > 10 * max(floor["floor_topic_kl"], 0.01)
    assert m["distinct_2"] < 0.01


def test_score_carries_floors_and_refuses_wrong_shapes(scorer):
    ids, _ = scorer.law.sample(8, LENGTH, generator=torch.Generator().manual_seed(6))
    out = scorer.score(ids)
    assert {"floor_excess_nll", "floor_bigram_kl_sd", "entropy_rate", "entropy_rate_se"} <= set(out)
    with pytest.raises(ValueError, match="ids must be"):
        scorer.metrics(ids[:, :5])
