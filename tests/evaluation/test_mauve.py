"""MAUVE on the evaluator's own features, and the distribution metrics of a degenerate sampler.

The claim under test: a sampler that emits one token over and over gets a LOW gen PPL from an evaluator
that, like a trained LM, predicts repetition, yet a low MAUVE and a high repetition rate. A tiny GPT-2 at
its plain random initialisation does not score repetition low (its predictions carry no copy bias), so
the gen PPL half uses ``copy_gpt2`` (token embeddings scaled up: the tied head then predicts the current
token again); MAUVE separates the two sets on the plain random model as well.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmlm.evaluation.mauve_score import (ReferenceSet, default_num_buckets, distribution_metrics, feature_source,
                                         mauve_from_features, text_features)
from fmlm.evaluation.metrics import evaluate_texts
from tests.evaluation.conftest import COPY_CONTEXT, real_texts

BATCH = 16


def _sets() -> tuple[list[str], list[str], list[str]]:
    """(reference, varied samples, one-token samples): the real texts split in two, and 'the' repeated."""
    texts = real_texts()
    reference, varied = texts[0::2], texts[1::2]
    return reference, varied, [" ".join(["the"] * 80)] * len(varied)


def _measure(evaluator, texts, reference):
    ppl = evaluate_texts(evaluator, texts, batch_size=BATCH, max_tokens=COPY_CONTEXT, progress=False).gen_ppl
    return ppl, distribution_metrics(evaluator, texts, reference, batch_size=BATCH, max_tokens=COPY_CONTEXT)


def test_one_repeated_token_scores_a_low_gen_ppl_but_a_low_mauve(copy_gpt2):
    reference, varied, repeated = _sets()
    ppl_rep, rep = _measure(copy_gpt2, repeated, reference)
    ppl_var, var = _measure(copy_gpt2, varied, reference)
    assert ppl_rep < ppl_var / 10  # gen PPL prefers the repetition by far
    assert rep["mauve"] < 0.1 and var["mauve"] > 0.8
    assert rep["rep4"] > 0.8 and var["rep4"] < 0.1
    assert rep["distinct_2"] < 0.05 < 0.3 < var["distinct_2"]
    assert rep["single_token_share"] == 1.0 and var["single_token_share"] == 0.0
    assert rep["empty_share"] == var["empty_share"] == 0.0


def test_mauve_separates_them_without_a_copy_bias(plain_gpt2):
    reference, varied, repeated = _sets()
    rep = distribution_metrics(plain_gpt2, repeated, reference, batch_size=BATCH, max_tokens=COPY_CONTEXT)
    var = distribution_metrics(plain_gpt2, varied, reference, batch_size=BATCH, max_tokens=COPY_CONTEXT)
    assert rep["mauve"] < 0.1 and var["mauve"] > 0.8


def test_the_record_states_counts_buckets_and_features(copy_gpt2):
    reference, varied, _ = _sets()
    out = distribution_metrics(copy_gpt2, varied[:30], reference, batch_size=BATCH, max_tokens=COPY_CONTEXT)
    assert (out["mauve_n"], out["mauve_n_reference"], out["mauve_num_buckets"]) == (30, 64, 3)
    assert out["mauve_features"] == f"{copy_gpt2.name} mean-pooled last hidden state" == feature_source(copy_gpt2)
    none = distribution_metrics(copy_gpt2, varied[:4], None, batch_size=BATCH, max_tokens=COPY_CONTEXT)
    assert none["mauve"] is None and none["mauve_n"] is None and math.isfinite(none["distinct_2"])


def test_default_buckets_are_a_tenth_of_the_smaller_side():
    assert default_num_buckets(64, 128) == 6
    assert default_num_buckets(250, 300) == 25
    assert default_num_buckets(68, 100) == 6  # floor, not round
    assert default_num_buckets(15, 900) == 2  # never fewer than two
    with pytest.raises(ValueError, match="at least one text on each side"):
        default_num_buckets(0, 10)


def test_features_do_not_depend_on_batching(copy_gpt2):
    texts = ["", *real_texts()[:6], "the the the"]
    one = text_features(copy_gpt2, texts, batch_size=1, max_tokens=COPY_CONTEXT)
    many = text_features(copy_gpt2, texts, batch_size=5, max_tokens=COPY_CONTEXT)
    assert one.shape == (len(texts), copy_gpt2.model.config.n_embd)
    # the features are ln_f outputs (unit RMS per token, so ~1 whatever the CPU); batching only reorders a
    # 2-layer, 32-wide net's fp32 sums, ~1e-6 of that scale at most: 1e-5 holds, a padding leak is O(1)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_features_are_the_mean_last_hidden_state_over_the_text(copy_gpt2):
    text = real_texts()[3]
    ids = copy_gpt2.encode([text])[0][: COPY_CONTEXT - 1]
    with torch.no_grad():
        hidden = copy_gpt2.model(input_ids=torch.tensor([[copy_gpt2.start_id, *ids]]),
                                 output_hidden_states=True).hidden_states[-1][0]
        alone = copy_gpt2.model(input_ids=torch.tensor([[copy_gpt2.start_id]]),
                                output_hidden_states=True).hidden_states[-1][0]
    got = text_features(copy_gpt2, [text, ""], batch_size=2, max_tokens=COPY_CONTEXT)
    # atol: unit-RMS ln_f features, the same net unpadded and padded (see test_features_do_not_depend_on_batching)
    np.testing.assert_allclose(got[0], hidden[1:].double().mean(0).numpy(), atol=1e-5)  # the start token left out
    np.testing.assert_allclose(got[1], alone[0].numpy(), atol=1e-5)  # an empty text: the start token's state


def test_reference_set_caches_and_leaves_out_rows(copy_gpt2):
    texts = real_texts()[:3]
    ref = ReferenceSet(texts, rows=[10, 11, 12])
    full = ref.features(copy_gpt2, batch_size=BATCH, max_tokens=COPY_CONTEXT)
    assert ref.features(copy_gpt2, batch_size=BATCH, max_tokens=COPY_CONTEXT) is full
    rest = ref.excluding([11, 99])
    assert rest.texts == (texts[0], texts[2]) and rest.rows == (10, 12)
    np.testing.assert_array_equal(rest.features(copy_gpt2, batch_size=BATCH, max_tokens=COPY_CONTEXT), full[[0, 2]])
    assert ref.excluding([]) is ref and ref.excluding([10, 11, 12]) is None
    assert ReferenceSet(texts).excluding([0]).texts == tuple(texts)  # no row indices: nothing to leave out


@pytest.mark.parametrize("p, q, buckets, message", [
    (np.zeros((4, 3)), np.zeros((4, 2)), None, "features: expected"),
    (np.full((4, 3), np.nan), np.zeros((4, 3)), None, "features: non-finite"),
    (np.zeros((4, 3)), np.zeros((4, 3)), 1, "num_buckets: expected an integer in"),
    (np.zeros((2, 3)), np.zeros((2, 3)), 5, "num_buckets: expected an integer in"),
])
def test_bad_features_are_one_line(p, q, buckets, message):
    with pytest.raises(ValueError, match=message):
        mauve_from_features(p, q, num_buckets=buckets)


def test_bad_texts_are_one_line(copy_gpt2):
    with pytest.raises(ValueError, match="texts: empty list"):
        text_features(copy_gpt2, [], batch_size=2, max_tokens=COPY_CONTEXT)
    with pytest.raises(ValueError, match="max_tokens: expected an integer in"):
        text_features(copy_gpt2, ["a"], batch_size=2, max_tokens=COPY_CONTEXT + 1)
    with pytest.raises(ValueError, match="rows: 1 row indices for 2 texts"):
        ReferenceSet(["a", "b"], rows=[0])


def test_the_scoring_pass_gives_the_same_features_as_a_separate_pass(tiny_evaluator):
    """MAUVE's features come from the gen PPL forward (no second pass): equal to a pass of their own,
    for texts that get an end token, one cut by max_tokens, and an empty one."""
    import numpy as np

    from fmlm.evaluation.mauve_score import text_features
    from fmlm.evaluation.metrics import evaluate_texts

    texts = ["the river bank every morning", "", "a stitch in time saves nine " * 6, "rain fell"]
    fused = evaluate_texts(tiny_evaluator, texts, batch_size=3, max_tokens=24, progress=False, features=True).features
    alone = text_features(tiny_evaluator, texts, batch_size=2, max_tokens=24)
    # unit-RMS final-norm features of a tiny net, batched differently: fp32 reordering ~1e-6 of them at most
    assert fused.shape == alone.shape and np.allclose(fused, alone, atol=1e-5)
    assert evaluate_texts(tiny_evaluator, texts, batch_size=3, max_tokens=24, progress=False).features is None
