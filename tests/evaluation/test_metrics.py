"""Gen PPL on tiny random evaluators: the paper's token mask checked by hand, batch invariance,
empty samples, truncation and bad arguments."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fmlm.evaluation.metrics import evaluate_texts, generative_perplexity, scored_token_mask
from tests.evaluation.conftest import CONTEXT, reference_nll

TEXTS = ["the cat sat on a mat", "", "big red dog ran", "it was very very quiet and then loud",
         "a", "the small blue cat and the big red dog sat on the mat", "then"]


def end_text(ev) -> str:
    return ev.tokenizer.convert_ids_to_tokens(ev.end_id)


def test_mask_rule_on_ids():
    # positions:        0  1  2  3  4  5  6(pad)
    ids = torch.tensor([[9, 4, 9, 5, 9, 9, 9]])
    mask = scored_token_mask(ids, torch.tensor([6]), end_id=9)
    # targets 1..6: 4 scored, first end (pos 2) scored, 5 scored, later ends and padding not
    assert mask.tolist() == [[True, True, True, False, False, False]]


def test_hand_computed_nll_with_inner_end_token(tiny_evaluator):
    ev = tiny_evaluator
    text = f"the cat {end_text(ev)} sat"
    words = [ev.tokenizer.convert_tokens_to_ids(w) for w in ("the", "cat", "sat")]
    seq = [ev.start_id, words[0], words[1], ev.end_id, words[2], ev.end_id]
    assert [ev.start_id] + ev.encode([text])[0] + [ev.end_id] == seq
    res = generative_perplexity(ev, [text], batch_size=1, max_tokens=CONTEXT, progress=False)
    # position 0 never scored; the inner end token is the first and is scored; the appended one is not
    expected = reference_nll(ev, seq, scored=[1, 2, 3, 4])
    assert res.n_tokens == (4,)
    assert res.nll_sums[0] == pytest.approx(expected, rel=1e-5)
    assert res.gen_ppl == pytest.approx(math.exp(expected / 4), rel=1e-5)


def test_plain_text_scores_every_token_and_its_end_once(tiny_evaluator):
    ev = tiny_evaluator
    ids = ev.encode(["the cat sat"])[0]
    seq = [ev.start_id] + ids + [ev.end_id]
    res = generative_perplexity(ev, ["the cat sat"], batch_size=1, max_tokens=CONTEXT, progress=False)
    assert res.n_tokens == (len(ids) + 1,)
    assert res.nll_sums[0] == pytest.approx(reference_nll(ev, seq, scored=range(1, len(seq))), rel=1e-5)


def test_empty_sample_is_scored_not_dropped(tiny_evaluator):
    ev = tiny_evaluator
    res = generative_perplexity(ev, ["", "the cat"], batch_size=2, max_tokens=CONTEXT, progress=False)
    assert res.n_tokens[0] == 1
    assert res.nll_sums[0] == pytest.approx(reference_nll(ev, [ev.start_id, ev.end_id], scored=[1]), rel=1e-5)
    assert res.total_tokens == 1 + 3


def test_batch_size_does_not_change_results(tiny_evaluator):
    runs = [generative_perplexity(tiny_evaluator, TEXTS, batch_size=b, max_tokens=CONTEXT, progress=False)
            for b in (1, 3, 7)]
    for other in runs[1:]:
        assert other.n_tokens == runs[0].n_tokens
        # sums of positive per-token NLLs (no cancellation): batching moves each by fp32 reordering of the
        # tiny net's logits (~1e-6 of them), so a relative 1e-4 holds on any CPU; a lost token is ~1e-1
        assert other.nll_sums == pytest.approx(runs[0].nll_sums, rel=1e-4)
        assert other.gen_ppl == pytest.approx(runs[0].gen_ppl, rel=1e-4)


def test_aggregate_is_token_weighted(tiny_evaluator):
    res = generative_perplexity(tiny_evaluator, TEXTS, batch_size=4, max_tokens=CONTEXT, progress=False)
    assert res.gen_ppl == pytest.approx(math.exp(sum(res.nll_sums) / sum(res.n_tokens)), rel=1e-9)
    assert res.ppls[2] == pytest.approx(math.exp(res.nll_sums[2] / res.n_tokens[2]), rel=1e-9)


def test_truncation_keeps_prefix_and_drops_end(tiny_evaluator):
    ev = tiny_evaluator
    text = "the small blue cat and the big"
    ids = ev.encode([text])[0]
    res = generative_perplexity(ev, [text, "the cat"], batch_size=2, max_tokens=4, progress=False)
    assert res.truncated == (True, False) and res.n_truncated == 1
    assert res.text_token_ids[0] == tuple(ids[:3])
    seq = [ev.start_id] + ids[:3]
    assert res.n_tokens == (3, 3)
    assert res.nll_sums[0] == pytest.approx(reference_nll(ev, seq, scored=[1, 2, 3]), rel=1e-5)


def test_evaluate_texts_records(tiny_evaluator):
    res = evaluate_texts(tiny_evaluator, ["the the cat cat", "", "dog"], batch_size=2, max_tokens=CONTEXT,
                         progress=False)
    rows = res.rows()
    assert [r["text"] for r in rows] == ["the the cat cat", "", "dog"]
    assert [r["entropy"] for r in rows] == pytest.approx([math.log(2), 0.0, 0.0])
    assert res.entropy == pytest.approx(math.log(2) / 3)
    assert [r["n_tokens"] for r in rows] == [5, 1, 2]
    assert res.total_tokens == 8 and res.n_samples == 3 and res.n_truncated == 0
    json.dumps(rows), json.dumps(res.summary())


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"texts": []}, "texts"), ({"texts": ["ok", 3]}, "texts"), ({"texts": "the cat"}, "texts"),
     ({"batch_size": 0}, "batch_size"), ({"max_tokens": 1}, "max_tokens"),
     ({"max_tokens": CONTEXT + 1}, "max_tokens")],
)
def test_bad_arguments_raise_naming_them(tiny_evaluator, kwargs, key):
    args = {"texts": ["the cat"], "batch_size": 2, "max_tokens": CONTEXT} | kwargs
    texts = args.pop("texts")
    with pytest.raises(ValueError, match=f"^{key}:"):
        generative_perplexity(tiny_evaluator, texts, progress=False, **args)
