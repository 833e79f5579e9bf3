"""The offline GPT-2 tokenizer (fmlm.data.gpt2): anchors, round trips, agreement with an independent
tiktoken-style rank merge over the same ranks file, merge recovery, the cache and bad input."""

from __future__ import annotations

import base64
import random
import time

import pytest

import fmlm.data.gpt2 as gpt2
from fmlm.data.gpt2 import (
    ENDOFTEXT_ID,
    GPT2_NAMES,
    bpe_parts,
    bytes_to_unicode,
    gpt2_ranks_path,
    gpt2_tokenizer,
    offline_tokenizer,
    read_ranks,
    recover_merges,
)

try:
    RANKS_PATH = gpt2_ranks_path()
except ValueError as err:  # openai-whisper not installed: nothing to convert
    pytest.skip(f"GPT-2 ranks file absent ({err})", allow_module_level=True)

# The GPT-2 pre-tokenisation regex (tiktoken r50k_base / the original encoder.py).
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ROUND_TRIP = [
    "Hello world",
    " leading space and trailing space ",
    "   three leading spaces",
    "line one\nline two\n\n\tindented\r\nwindows",
    "Numbers: 0 7 42 1234567890 3.14159 -12,345",
    "Contractions: don't, it's, we're, they've, I'm, you'll, he'd, 'S 'T",
    "Ünïcödé: café naïve Straße Ελληνικά русский 日本語 한국어 עברית العربية",
    "Emoji 🙂🚀👩‍👩‍👧 and symbols ∑∫√ ≤ ≥ € £ ¥ ©®™",
    "control \x00\x01\x7f and nbsp\u00a0here",
    "",
    " ",
    "\n",
    "a<|endoftext|>b",
]


def reference_ranks() -> dict[bytes, int]:
    """The ranks file read directly, without the module under test."""
    ranks = {}
    for line in RANKS_PATH.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def tiktoken_merge(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """tiktoken's ``_byte_pair_merge``: boundaries, merging at the boundary pair of lowest rank."""
    if piece in ranks:
        return [ranks[piece]]
    bounds = list(range(len(piece) + 1))

    def rank_at(i: int) -> float:  # rank of the pair starting at part i
        if i + 2 >= len(bounds):
            return float("inf")
        return ranks.get(piece[bounds[i] : bounds[i + 2]], float("inf"))

    while True:
        pair_ranks = [rank_at(i) for i in range(len(bounds) - 2)]
        if not pair_ranks or min(pair_ranks) == float("inf"):
            break
        del bounds[pair_ranks.index(min(pair_ranks)) + 1]
    return [ranks[piece[a:b]] for a, b in zip(bounds, bounds[1:])]


def tiktoken_encode(text: str, ranks: dict[bytes, int]) -> list[int]:
    import regex

    return [t for piece in regex.findall(GPT2_SPLIT, text) for t in tiktoken_merge(piece.encode("utf-8"), ranks)]


def varied_strings(n: int, seed: int = 0) -> list[str]:
    """``n`` strings mixing words, capitals, digits, punctuation, contractions, unicode and whitespace runs."""
    rng = random.Random(seed)
    pieces = ["the", "The", "tokenizer", "unbelievably", "x", "Q", "don't", "I'll", "we've", "'s", "42", "2024",
              "3.5", "1,000,000", "!!", "?", "...", "--", "(a)", "[b]", "{c}", "#", "@user", "http://a.b/c?d=e",
              "é", "naïve", "Ω", "東京", "日本語", "🙂", "🚀", "👩‍👧", "ß", "ﬁ", "\u200b", "\u00a0", "\t", "\n",
              "\n\n", "\r\n", " ", "  ", "   ", "    ", "\x00", "<", ">", "</p>", "$x^2$", "C++", "a_b", "ÄÖÜ"]
    out = []
    for _ in range(n):
        parts = [rng.choice(pieces) for _ in range(rng.randint(1, 12))]
        out.append("".join(p + rng.choice(["", " ", " ", "  ", "\n"]) for p in parts))
    return out


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gpt2_cache")


@pytest.fixture(scope="module")
def tok(cache_dir):
    return gpt2_tokenizer(cache_dir)


@pytest.fixture(scope="module")
def ranks():
    return reference_ranks()


def test_vocabulary_and_special_token(tok):
    assert len(tok) == 50257 and tok.vocab_size in (50256, 50257)
    assert tok.eos_token == tok.bos_token == tok.unk_token == "<|endoftext|>"
    assert tok.eos_token_id == tok.bos_token_id == tok.unk_token_id == ENDOFTEXT_ID == 50256
    assert tok.pad_token is None
    assert tok.model_max_length == 1024


def test_known_anchors(tok):
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert tok(" Hello world")["input_ids"] == [18435, 995]
    assert tok(" the")["input_ids"] == [262]
    assert tok("<|endoftext|>")["input_ids"] == [50256]
    assert tok("<|endoftext|>", split_special_tokens=True)["input_ids"] != [50256]
    assert tok.convert_ids_to_tokens([262, 198]) == ["Ġthe", "Ċ"]  # byte-level alphabet: space -> Ġ, \n -> Ċ


def test_no_special_tokens_added(tok):
    ids = tok("a b c")["input_ids"]
    assert ids == tok("a b c", add_special_tokens=False)["input_ids"]
    assert ENDOFTEXT_ID not in ids


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(tok, text):
    assert tok.decode(tok(text)["input_ids"]) == text


def test_agrees_with_tiktoken_rank_merge(tok, ranks):
    texts = ROUND_TRIP[:-1] + varied_strings(200)
    mismatches = [t for t in texts if tok(t)["input_ids"] != tiktoken_encode(t, ranks)]
    assert mismatches == []


def test_every_token_encodes_to_itself(tok, ranks):
    """A sample of single tokens that are valid UTF-8 text on their own: encoding their text gives their id."""
    rng = random.Random(1)
    ids = rng.sample(range(50256), 2000)
    by_rank = {r: t for t, r in ranks.items()}
    checked = 0
    for i in ids:
        try:
            text = by_rank[i].decode("utf-8")
        except UnicodeDecodeError:
            continue
        # tokens that the split regex would cut (e.g. "\n\n " or " 's") are not whole pieces
        if tiktoken_encode(text, ranks) == [i]:
            assert tok(text)["input_ids"] == [i]
            checked += 1
    assert checked > 1500


def test_tokens_that_are_not_utf8(tok, ranks):
    """Bytes 0x80.. and partial multi-byte characters are ordinary tokens in the byte-level alphabet."""
    invalid = {}
    for t, r in ranks.items():
        try:
            t.decode("utf-8")
        except UnicodeDecodeError:
            invalid[r] = t
    assert len(invalid) > 128  # all 128 lone high bytes, plus multi-byte pieces of characters
    table = bytes_to_unicode()
    for r, t in list(invalid.items())[:50]:
        assert tok.convert_ids_to_tokens(r) == "".join(table[b] for b in t)
    eye = tok("🙂")["input_ids"]
    assert len(eye) == 2 and all(i in invalid for i in eye)  # the emoji's 4 bytes in two non-UTF-8 tokens
    assert tok.decode(eye) == "🙂" and "\ufffd" in tok.decode(eye[:1])


def test_bytes_to_unicode_is_a_printable_bijection():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"


def test_recovered_merges_rebuild_every_token(ranks):
    merges = recover_merges(ranks)
    multi = sorted((r, t) for t, r in ranks.items() if len(t) > 1)
    assert len(merges) == len(multi) == 50000
    assert all(a + b == t for (a, b), (_, t) in zip(merges, multi))
    assert all(a in ranks and b in ranks and ranks[a] < r and ranks[b] < r for (a, b), (r, _) in zip(merges, multi))
    assert merges[0] == (b" ", b"t")  # GPT-2 merges.txt starts with "Ġ t"


def test_recover_merges_on_a_small_table():
    table = {b"a": 0, b"b": 1, b"c": 2, b"bc": 3, b"ab": 4, b"abc": 5}
    assert recover_merges(table) == [(b"b", b"c"), (b"a", b"b"), (b"a", b"bc")]
    assert bpe_parts(b"abc", table) == [b"abc"] and bpe_parts(b"abc", table, max_rank=5) == [b"a", b"bc"]
    with pytest.raises(ValueError, match="^ranks: token of rank 3 splits into 3 parts"):
        recover_merges({b"a": 0, b"b": 1, b"c": 2, b"abc": 3})


def test_read_ranks_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("YQ== 0\nYg==\n")
    with pytest.raises(ValueError, match="^ranks: .* line 2"):
        read_ranks(bad)
    bad.write_text("YQ== 0\nYg== 2\n")
    with pytest.raises(ValueError, match="^ranks: .* ranks 0..1"):
        read_ranks(bad)


def test_cache_is_reused_without_the_ranks(tok, cache_dir, monkeypatch):
    def gone():
        raise ValueError("ranks looked up")

    monkeypatch.setattr(gpt2, "gpt2_ranks_path", gone)
    with pytest.raises(ValueError, match="ranks looked up"):
        gpt2_tokenizer()  # no cache: the ranks are needed
    start = time.perf_counter()
    again = gpt2_tokenizer(cache_dir)
    elapsed = time.perf_counter() - start
    assert (cache_dir / gpt2.CACHE_FOLDER / "tokenizer.json").is_file()
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no temporary folder left
    for text in ROUND_TRIP:
        assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert len(again) == 50257 and again.eos_token_id == 50256 and again.pad_token is None
    assert elapsed < 5.0  # typically ~0.2 s; loose bound for a shared machine


def test_cached_folder_loads_with_auto_tokenizer(tok, cache_dir):
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(cache_dir / gpt2.CACHE_FOLDER)
    assert loaded("Hello world")["input_ids"] == [15496, 995] and loaded.eos_token_id == 50256


def test_missing_whisper_names_the_install(monkeypatch):
    monkeypatch.setattr(gpt2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install --no-deps openai-whisper") as info:
        gpt2_ranks_path()
    assert "\n" not in str(info.value)


def test_offline_tokenizer_names(tok, cache_dir):
    assert {"gpt2", "gpt2-large", "openai-community/gpt2"} <= set(GPT2_NAMES)
    assert offline_tokenizer("gpt2-large", cache_dir)("Hello world")["input_ids"] == [15496, 995]
    assert offline_tokenizer("bert-base-uncased", cache_dir) is None
    assert offline_tokenizer("GPT2", cache_dir) is None  # hub names are case-sensitive
    with pytest.raises(ValueError, match="^name:"):
        offline_tokenizer("")
