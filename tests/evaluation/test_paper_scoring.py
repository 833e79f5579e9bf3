"""The paper's scoring (fmlm.evaluation.paper_scoring) on a tiny random GPT-2 with the offline GPT-2
tokenizer: the mask on padded ids, NLL against an independent per-sample loop, chunking, batch-size
independence, dropping blank texts, entropy, the three framings and bad input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from fmlm.data.gpt2 import gpt2_ranks_path, gpt2_tokenizer
from fmlm.evaluation.evaluator import Evaluator
from fmlm.evaluation.paper_scoring import (
    PaperScore,
    compare_framings,
    kept_indices,
    pad_rows,
    paper_entropy,
    paper_token_mask,
    retokenize,
    score_like_paper,
)

try:
    gpt2_ranks_path()
except ValueError as err:  # openai-whisper not installed: no offline GPT-2 tokenizer
    pytest.skip(f"GPT-2 ranks file absent ({err})", allow_module_level=True)

from tests.data.conftest import _one_thread  # noqa: E402,F401  (autouse: tiny models run on one thread)

EOS = 50256
CONTEXT = 64
TEXTS = [
    "Hello world",
    "The cat sat on the mat, and then it slept.",
    "Numbers 1 2 3 and don't forget them.",
    f"Before{'<|endoftext|>'} after the end token.",
    " A leading space\nand a newline.",
    "short",
]




@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return gpt2_tokenizer(tmp_path_factory.mktemp("gpt2_cache"))


@pytest.fixture(scope="module")
def ev(tok) -> Evaluator:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50257, n_positions=CONTEXT, initializer_range=0.5)
    model = GPT2LMHeadModel(cfg).eval().requires_grad_(False)
    return Evaluator(name="tiny-gpt2", model=model, tokenizer=tok, start_id=EOS, end_id=EOS, context_length=CONTEXT)


def loop_reference(ev: Evaluator, texts: list[str], max_length: int, context: int) -> tuple[list[float], list[int]]:
    """Per sample, unpadded: ids truncated to max_length, then eos up to the widest row; each chunk of
    ``context`` positions run alone in float64; target i scored iff it is not eos or is the chunk's first eos."""
    rows = [ev.tokenizer.encode(t)[:max_length] for t in texts]
    width = max(len(r) for r in rows)
    sums, counts = [], []
    for row in rows:
        padded = row + [EOS] * (width - len(row))
        total, n = 0.0, 0
        for start in range(0, width, context):
            chunk = padded[start : start + context]
            eos_seen = chunk[0] == EOS
            scored = []
            for i in range(1, len(chunk)):
                if chunk[i] != EOS:
                    scored.append(i)
                elif not eos_seen:
                    scored.append(i)
                    eos_seen = True
            if not scored:
                continue
            last = max(scored) + 1  # positions after the last scored one cannot change it (causal)
            with torch.no_grad():
                logits = ev.model(input_ids=torch.tensor([chunk[:last]])).logits[0].double()
            logp = logits.log_softmax(-1)
            total += float(sum(-logp[i - 1, chunk[i]] for i in scored))
            n += len(scored)
        sums.append(total)
        counts.append(n)
    return sums, counts


def test_mask_on_a_hand_made_padded_batch():
    e = 9
    ids = torch.tensor([
        [5, 6, 7, e, e, e],  # text of 3 then padding: the first pad is its end, scored
        [e, e, e, e, e, e],  # empty text: its first eos is position 0, never scored
        [5, e, 6, e, e, e],  # literal eos inside: scored, later text scored, padding not
        [5, 6, 7, 8, 1, 2],  # widest row: every target, no end
        [e, 5, 6, e, e, e],  # starts with eos: the pad after the text is a second eos
    ])
    expected = [
        [True, True, True, False, False],
        [False, False, False, False, False],
        [True, True, False, False, False],
        [True, True, True, True, True],
        [True, True, False, False, False],
    ]
    assert paper_token_mask(ids, e).tolist() == expected


def test_retokenize_pads_right_with_eos_and_uses_padded_ids(tok):
    ids, attention = retokenize(tok, ["Hello world", "", " the"], max_length=1024)
    assert ids.tolist() == [[15496, 995], [EOS, EOS], [262, EOS]]
    assert attention.tolist() == [[1, 1], [0, 0], [1, 0]]
    # the first padding token counts though the attention mask is 0 there
    assert paper_token_mask(torch.as_tensor(ids), EOS).tolist() == [[True], [False], [True]]


def test_retokenize_equals_the_reference_tokenizer_call(tok):
    texts = TEXTS + ["", "   ", "a " * 40]
    ref_tok = copy.deepcopy(tok)
    ref_tok.pad_token = ref_tok.eos_token
    ref = ref_tok(texts, return_tensors="np", return_token_type_ids=False, return_attention_mask=True,
                  truncation=True, padding=True, max_length=20)
    ids, attention = retokenize(tok, texts, max_length=20)
    np.testing.assert_array_equal(ids, ref["input_ids"])
    np.testing.assert_array_equal(attention, ref["attention_mask"])
    assert tok.pad_token is None  # the caller's tokenizer is left alone


def test_pad_rows_left_and_bad_side():
    ids, att = pad_rows([[1, 2], [3]], pad_id=0, side="left")
    assert ids.tolist() == [[1, 2], [0, 3]] and att.tolist() == [[1, 1], [0, 1]]
    with pytest.raises(ValueError, match="^side:"):
        pad_rows([[1]], 0, side="middle")


@pytest.mark.parametrize("max_length", [1024, 8])
def test_nll_sums_equal_an_independent_per_sample_loop(ev, max_length):
    score = score_like_paper(ev, TEXTS, batch_size=4, max_length=max_length, progress=False)
    sums, counts = loop_reference(ev, TEXTS, max_length, CONTEXT)
    assert score.n_tokens == tuple(counts)
    # sums of positive per-token NLLs, batched or one by one: relative fp32 reordering ~1e-6 (no cancellation)
    assert score.nll_sums == pytest.approx(sums, rel=1e-4)
    assert score.total_tokens == sum(counts)
    assert score.gen_ppl == pytest.approx(math.exp(sum(sums) / sum(counts)), rel=1e-4)
    assert score.ppls == pytest.approx([math.exp(s / n) for s, n in zip(sums, counts)], rel=1e-4)


def test_counts_follow_the_padding_width(ev, tok):
    """A text shorter than the widest row scores len(ids) targets (its first pad is its end); the widest len-1."""
    texts = ["Hello world", "The cat sat on the mat, and then it slept."]
    lengths = [len(tok.encode(t)) for t in texts]
    assert lengths[0] < lengths[1]
    score = score_like_paper(ev, texts, batch_size=2, progress=False)
    assert score.n_tokens == (lengths[0], lengths[1] - 1)


def test_chunks_of_the_context_are_scored_separately(ev, tok):
    long_text = " ".join(["word"] * 80)
    texts = [long_text, "Hello world"]
    n_long = len(tok.encode(long_text))
    assert CONTEXT < n_long <= 100
    score = score_like_paper(ev, texts, batch_size=2, max_length=100, progress=False)
    sums, counts = loop_reference(ev, texts, 100, CONTEXT)
    # the long row loses the target at the start of its second chunk; the short one's padding chunk scores nothing
    assert score.n_tokens == tuple(counts) == (n_long - 2, 2)
    assert score.nll_sums == pytest.approx(sums, rel=1e-4)


def test_batch_size_does_not_change_the_score(ev):
    runs = [score_like_paper(ev, TEXTS, batch_size=b, progress=False) for b in (1, 4, len(TEXTS))]
    for other in runs[1:]:
        assert other.n_tokens == runs[0].n_tokens
        assert other.nll_sums == pytest.approx(runs[0].nll_sums, rel=1e-5)
        assert other.gen_ppl == pytest.approx(runs[0].gen_ppl, rel=1e-5)
        assert other.entropies == runs[0].entropies


def test_drop_empty_versus_keep(ev, tok):
    texts = ["Hello world", "", "The cat sat on the mat.", "   ", "\n", "Numbers 1 2 3."]
    assert kept_indices(texts, drop_empty=True) == [0, 2, 5]
    drop = score_like_paper(ev, texts, batch_size=3, drop_empty=True, progress=False)
    keep = score_like_paper(ev, texts, batch_size=3, drop_empty=False, progress=False)
    assert (drop.n_samples, drop.n_scored, drop.indices) == (6, 3, (0, 2, 5))
    assert (keep.n_samples, keep.n_scored, keep.indices) == (6, 6, tuple(range(6)))
    # the shared samples get the same values (same padding width: the blank texts are not the widest)
    assert [keep.entropies[i] for i in drop.indices] == list(drop.entropies)
    assert [keep.n_tokens[i] for i in drop.indices] == list(drop.n_tokens)
    # the empty text: no scored token (nan PPL), entropy 0; whitespace texts have tokens and are scored
    assert keep.n_tokens[1] == 0 and math.isnan(keep.ppls[1]) and keep.entropies[1] == 0.0
    assert keep.n_tokens[3] >= 1 and keep.n_tokens[4] >= 1
    assert drop.entropy == pytest.approx(float(np.mean(drop.entropies)))
    assert keep.entropy == pytest.approx(sum(keep.entropies) / 6)
    assert keep.total_tokens == drop.total_tokens + keep.n_tokens[3] + keep.n_tokens[4]
    # with only an empty (not whitespace) text the gen PPL is unchanged: the empty row scores nothing
    only_empty = ["Hello world", "", "The cat sat on the mat."]
    a = score_like_paper(ev, only_empty, batch_size=3, drop_empty=True, progress=False)
    b = score_like_paper(ev, only_empty, batch_size=3, drop_empty=False, progress=False)
    assert b.total_tokens == a.total_tokens and b.gen_ppl == pytest.approx(a.gen_ppl, rel=1e-5)
    assert b.entropy == pytest.approx(a.entropy * 2 / 3)


def test_all_blank_input(ev):
    with pytest.raises(ValueError, match="^texts: all 3 samples are empty or whitespace") as info:
        score_like_paper(ev, ["", "  ", "\n"], progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="^texts: no token to score"):
        score_like_paper(ev, ["", ""], drop_empty=False, progress=False)


@pytest.mark.parametrize(
    ("ids", "length", "expected"),
    [([1, 1, 2, 2], 4, math.log(2)), ([1, 1, 2, 2, 7, 8], 4, math.log(2)), ([3, 3, 3], 3, 0.0), ([], 0, 0.0),
     ([5, 6], 0, 0.0), ([0, 1, 2, 3], 4, math.log(4)),
     ([1, 1, 1, 2], 4, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))],
)
def test_entropy_of_known_token_lists(ids, length, expected):
    assert paper_entropy(ids, length) == pytest.approx(expected, abs=1e-9)


def test_entropy_uses_the_text_tokens_only(ev, tok):
    texts = [" the the the cat", "Hello world", "The cat sat on the mat, and then it slept."]
    score = score_like_paper(ev, texts, batch_size=3, progress=False)
    expected = [paper_entropy(tok.encode(t), len(tok.encode(t))) for t in texts]
    assert score.entropies == pytest.approx(expected, abs=1e-12)
    the, cat = -(0.75 * math.log(0.75)), -(0.25 * math.log(0.25))
    assert tok.encode(texts[0]) == [262, 262, 262, 3797] and score.entropies[0] == pytest.approx(the + cat, abs=1e-9)
    assert score.entropies[1] == pytest.approx(math.log(2), abs=1e-9)  # padding (eos) not counted


def test_compare_framings(ev, tok):
    texts = ["Hello world", "", "The cat sat on the mat.", "Numbers 1 2 3."]
    out = compare_framings(ev, texts, batch_size=2, progress=False)
    assert set(out) == {"paper", "paper_keep_empty", "project"}
    paper, kept, project = out["paper"], out["paper_keep_empty"], out["project"]
    assert (paper["n_samples"], paper["n_scored"], kept["n_scored"], project["n_samples"]) == (4, 3, 4, 4)
    lengths = [len(tok.encode(t)) for t in texts]
    width = max(lengths)
    # paper: len(ids) targets for rows narrower than the widest, len-1 for the widest; the empty row 0
    assert paper["total_tokens"] == sum(n if n < width else n - 1 for n in lengths if n > 0)
    assert kept["total_tokens"] == paper["total_tokens"]
    # project: every text token plus the end token, and the empty text scores its end
    assert project["total_tokens"] == sum(n + 1 for n in lengths)
    assert project["gen_ppl"] != pytest.approx(paper["gen_ppl"], rel=1e-3)
    assert PaperScore.__dataclass_params__.frozen


def test_bad_arguments(ev):
    with pytest.raises(ValueError, match="^texts: expected a list"):
        score_like_paper(ev, "Hello", progress=False)
    with pytest.raises(ValueError, match="^texts: empty list"):
        score_like_paper(ev, [], progress=False)
    with pytest.raises(ValueError, match="^texts: item 1 is int"):
        score_like_paper(ev, ["a", 3], progress=False)
    with pytest.raises(ValueError, match="^batch_size:"):
        score_like_paper(ev, ["a"], batch_size=0, progress=False)
    with pytest.raises(ValueError, match="^max_length:"):
        score_like_paper(ev, ["a"], max_length=1, progress=False)
