"""The exact law of ``HMMLanguage`` against brute-force enumeration on a tiny vocabulary and short rows."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from fmlm.synthetic.hmm_language import HMMLanguage, LanguageSpec

TINY = LanguageSpec(vocab=3, topics=2, dim=2, stay=0.8, window=2, focus=1.5, successors=1, succ=1.0, seed=3)
LENGTH = 3
# Everything runs in float64 over at most 2^3 * 3^3 = 216 terms: agreement is at rounding level (~1e-15);
# 1e-10 leaves room for the different summation orders of forward-backward and enumeration.
TOL = 1e-10


def brute_joint(lang: HMMLanguage, length: int) -> dict[tuple[int, ...], float]:
    """``p(x)`` for every token row, by summing the product-chain probabilities of every (topics, tokens) path."""
    H, V = lang.topics, lang.vocab
    A, B = lang.log_A.exp(), lang.log_B.exp()
    first = lang.log_first.exp()
    out = {}
    for xs in itertools.product(range(V), repeat=length):
        total = 0.0
        for hs in itertools.product(range(H), repeat=length):
            p = (1.0 / H) * float(first[hs[0], xs[0]])
            for i in range(1, length):
                p *= float(A[hs[i - 1], hs[i]] * B[hs[i], xs[i - 1], xs[i]])
            total += p
        out[xs] = total
    return out


def brute_topics(lang: HMMLanguage, xs: tuple[int, ...]) -> torch.Tensor:
    """``p(h_i | x)`` by enumeration of topic paths, ``(L, H)``."""
    H = lang.topics
    A, B, first = lang.log_A.exp(), lang.log_B.exp(), lang.log_first.exp()
    post = torch.zeros(len(xs), H, dtype=torch.float64)
    for hs in itertools.product(range(H), repeat=len(xs)):
        p = (1.0 / H) * float(first[hs[0], xs[0]])
        for i in range(1, len(xs)):
            p *= float(A[hs[i - 1], hs[i]] * B[hs[i], xs[i - 1], xs[i]])
        for i, h in enumerate(hs):
            post[i, h] += p
    return post / post.sum(1, keepdim=True)


@pytest.fixture(scope="module")
def lang() -> HMMLanguage:
    return HMMLanguage(TINY)


def test_transition_rows_are_distributions(lang):
    # sums of <= 6 float64 probabilities: rounding ~1e-16
    torch.testing.assert_close(lang.T.sum(1), torch.ones(6, dtype=torch.float64), rtol=0, atol=TOL)
    assert math.isclose(float(lang.start.sum()), 1.0, abs_tol=TOL)


def test_log_prob_matches_enumeration(lang):
    joint = brute_joint(lang, LENGTH)
    assert math.isclose(sum(joint.values()), 1.0, abs_tol=TOL)
    ids = torch.tensor(list(joint), dtype=torch.long)
    expected = torch.tensor([math.log(p) for p in joint.values()], dtype=torch.float64)
    torch.testing.assert_close(lang.log_prob(ids), expected, rtol=0, atol=TOL)


def test_posterior_and_mean_match_enumeration(lang):
    gen = torch.Generator().manual_seed(0)
    joint = brute_joint(lang, LENGTH)
    rows = list(joint)
    prior = torch.tensor(list(joint.values()), dtype=torch.float64)
    e = lang.codebook
    for t in (0.0, 0.3, 0.7):
        z = torch.randn(2, LENGTH, TINY.dim, generator=gen, dtype=torch.float64)
        q = lang.posterior(z, t)
        mean = lang(z, t)
        for b in range(2):
            # p(x | z) ∝ p(x) prod_i exp(-||z_i - t e_{x_i}||^2 / (2 (1 - t)^2 lam^2))
            var = 2 * (1 - t) ** 2 * lang.lam**2
            log_w = torch.log(prior) - torch.stack(
                [((z[b] - t * e[list(xs)]) ** 2).sum() / var for xs in rows])
            w = torch.softmax(log_w, 0)
            marg = torch.zeros(LENGTH, TINY.vocab, dtype=torch.float64)
            for wi, xs in zip(w, rows):
                for i, v in enumerate(xs):
                    marg[i, v] += wi
            torch.testing.assert_close(q[b], marg, rtol=0, atol=TOL)
            torch.testing.assert_close(mean[b], marg @ e, rtol=0, atol=TOL)


def test_topic_posterior_matches_enumeration(lang):
    rows = [(0, 1, 2), (2, 2, 0), (1, 0, 1)]
    post = lang.topic_posterior(torch.tensor(rows))
    for b, xs in enumerate(rows):
        torch.testing.assert_close(post[b], brute_topics(lang, xs), rtol=0, atol=TOL)


def test_bigram_and_topic_laws_match_enumeration(lang):
    joint = brute_joint(lang, LENGTH)
    bigram = torch.zeros(TINY.vocab, TINY.vocab, dtype=torch.float64)
    for xs, p in joint.items():
        for i in range(LENGTH - 1):
            bigram[xs[i], xs[i + 1]] += p / (LENGTH - 1)
    torch.testing.assert_close(lang.bigram_law(LENGTH), bigram, rtol=0, atol=TOL)
    # topic occupancy: E_x[mean_i p(h_i | x)] = mean_i p(h_i)
    occupancy = sum(p * brute_topics(lang, xs).mean(0) for xs, p in joint.items())
    torch.testing.assert_close(lang.topic_law(LENGTH), occupancy, rtol=0, atol=TOL)


def test_sampling_frequencies_match_the_law(lang):
    joint = brute_joint(lang, LENGTH)
    n = 40000
    ids, topics = lang.sample(n, LENGTH, generator=torch.Generator().manual_seed(1))
    assert topics.shape == ids.shape and int(topics.max()) < TINY.topics
    counts = {xs: 0 for xs in joint}
    for row in ids.tolist():
        counts[tuple(row)] += 1
    # 27 rows, each frequency within 5 standard errors sqrt(p (1 - p) / n) of its probability
    for xs, p in joint.items():
        assert abs(counts[xs] / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_entropy_estimate_matches_enumeration(lang):
    joint = brute_joint(lang, LENGTH)
    exact = -sum(p * math.log(p) for p in joint.values()) / LENGTH
    est, se = lang.entropy_per_token(20000, LENGTH, seed=2)
    assert 0 < se < 0.01
    assert abs(est - exact) <= 5 * se  # a Monte Carlo mean: 5 standard errors


def test_bad_input_is_refused(lang):
    with pytest.raises(ValueError, match="ids must lie"):
        lang.log_prob(torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match="z must be"):
        lang.posterior(torch.zeros(1, 2, 5, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="stay"):
        LanguageSpec(stay=1.0)
