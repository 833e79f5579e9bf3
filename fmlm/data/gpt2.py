"""The GPT-2 tokenizer built offline from the BPE ranks shipped inside the ``openai-whisper`` sdist.

``openai-whisper`` (installed with ``--no-deps``; never imported, it would pull numba) ships
``whisper/assets/gpt2.tiktoken``: one line ``base64(token bytes) rank`` per token, ranks
0..50255 (tiktoken's ``r50k_base``). ``gpt2_tokenizer()`` turns it into a Hugging Face fast
tokenizer equal to the hub's ``gpt2`` tokenizer:

- vocabulary: ``unicode(token bytes) -> rank``, with ``unicode`` the GPT-2 byte-to-unicode
  alphabet (``bytes_to_unicode``: each of the 256 bytes is one printable character), so a
  token whose bytes are not valid UTF-8 (half of a multi-byte character) is still one string;
  plus ``<|endoftext|>`` = 50256, the special token that is bos, eos and unk (50257 ids, no pad);
- merges: a token ``t`` of rank ``r`` with ``len(t) >= 2`` was created by one merge. Running
  tiktoken's byte-pair merge over the bytes of ``t`` allowing only ranks ``< r`` (repeatedly
  join the adjacent pair whose concatenation has the lowest rank ``< r``) stops at exactly two
  parts ``(a, b)``: the merge is ``a + b -> t``, and its priority is ``r`` (merges sorted by rank);
- byte-level BPE: ``pre_tokenizers.ByteLevel(add_prefix_space=False)`` (the GPT-2 split regex,
  then bytes -> alphabet), ``decoders.ByteLevel`` (alphabet -> bytes -> UTF-8, invalid bytes
  replaced); no normaliser, no special token is added when encoding.

``gpt2_tokenizer(cache_dir)`` writes the converted folder (``tokenizer.json``, loadable with
``AutoTokenizer.from_pretrained``) under ``cache_dir`` atomically; later calls load it.
``offline_tokenizer(name)`` answers that tokenizer for the names in ``GPT2_NAMES``, else None.
"""

from __future__ import annotations

import base64
import importlib.util
from functools import lru_cache
from pathlib import Path

from fmlm.files import write_folder_atomic

WHISPER_PACKAGE = "whisper"
WHISPER_INSTALL_HINT = "pip install --no-deps openai-whisper"
RANKS_FILE = Path("assets") / "gpt2.tiktoken"
ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 50256
N_RANKS = 50256
MODEL_MAX_LENGTH = 1024
CACHE_FOLDER = "gpt2-r50k"  # the converted folder's name under cache_dir
_TOKENIZER_FILE = "tokenizer.json"

GPT2_NAMES = (
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "distilgpt2",
    "openai-community/gpt2",
    "openai-community/gpt2-medium",
    "openai-community/gpt2-large",
    "openai-community/gpt2-xl",
    "distilbert/distilgpt2",
)


def gpt2_ranks_path() -> Path:
    """``whisper/assets/gpt2.tiktoken`` inside the installed ``openai-whisper`` (located, not imported)."""
    spec = importlib.util.find_spec(WHISPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"gpt2 tokenizer: needs the GPT-2 ranks from openai-whisper: {WHISPER_INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / RANKS_FILE
    if not path.is_file():
        raise ValueError(f"gpt2 tokenizer: {path} is missing: reinstall with {WHISPER_INSTALL_HINT}")
    return path


def read_ranks(path: Path) -> dict[bytes, int]:
    """``{token bytes: rank}`` from a ``.tiktoken`` file; ranks must be exactly 0..n-1, tokens distinct."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(f"ranks: {path} line {number} is not 'base64 rank'")
        ranks[base64.b64decode(fields[0])] = int(fields[1])
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"ranks: {path} does not hold distinct tokens with ranks 0..{len(ranks) - 1}")
    return ranks


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character map: printable Latin-1 bytes map to themselves, the other 68 to U+0100.."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


def to_alphabet(token: bytes) -> str:
    """Token bytes written in the byte-level alphabet (any bytes, UTF-8 or not)."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def bpe_parts(token: bytes, ranks: dict[bytes, int], max_rank: int | None = None) -> list[bytes]:
    """tiktoken's byte-pair merge of ``token``: join the adjacent pair of lowest rank (< ``max_rank``) until none."""
    parts = [token[i : i + 1] for i in range(len(token))]
    limit = float("inf") if max_rank is None else max_rank
    while len(parts) > 1:
        best, best_rank = -1, limit
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return parts


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge ``(a, b)`` creating each multi-byte token, in rank order (module docstring)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = bpe_parts(token, ranks, max_rank=rank)
        if len(parts) != 2:
            raise ValueError(f"ranks: token of rank {rank} splits into {len(parts)} parts below its rank, not 2")
        merges.append((parts[0], parts[1]))
    return merges


def build_core(ranks: dict[bytes, int]):
    """The ``tokenizers.Tokenizer``: byte-level BPE over ``ranks`` plus ``<|endoftext|>`` after the last rank."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {to_alphabet(token): rank for token, rank in ranks.items()}
    if len(vocab) != len(ranks):
        raise ValueError("ranks: two tokens map to the same byte-level string")
    merges = [(to_alphabet(a), to_alphabet(b)) for a, b in recover_merges(ranks)]
    vocab[ENDOFTEXT] = len(ranks)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                                end_of_word_suffix="", fuse_unk=False))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(ENDOFTEXT, special=True, normalized=False)])
    return core


def wrap(core):
    """``PreTrainedTokenizerFast`` around ``core`` with ``<|endoftext|>`` as bos, eos and unk; no pad."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    if len(tokenizer) != N_RANKS + 1 or tokenizer.eos_token_id != ENDOFTEXT_ID:
        raise ValueError(f"gpt2 tokenizer: built {len(tokenizer)} ids with eos {tokenizer.eos_token_id}, "
                         f"expected {N_RANKS + 1} with eos {ENDOFTEXT_ID}")
    return tokenizer


def _save_atomic(tokenizer, folder: Path) -> None:
    """``save_pretrained`` into a temporary sibling renamed to ``folder``; another process's finished copy is kept."""
    write_folder_atomic(folder, lambda tmp: tokenizer.save_pretrained(tmp), done_file=_TOKENIZER_FILE)


def gpt2_tokenizer(cache_dir: Path | None = None):
    """The GPT-2 tokenizer from the whisper ranks; with ``cache_dir``, converted once and loaded after."""
    from tokenizers import Tokenizer

    folder = None if cache_dir is None else Path(cache_dir) / CACHE_FOLDER
    if folder is not None and (folder / _TOKENIZER_FILE).is_file():
        return wrap(Tokenizer.from_file(str(folder / _TOKENIZER_FILE)))
    path = gpt2_ranks_path()
    ranks = read_ranks(path)
    if len(ranks) != N_RANKS:
        raise ValueError(f"ranks: {path} holds {len(ranks)} tokens, GPT-2 has {N_RANKS}")
    tokenizer = wrap(build_core(ranks))
    if folder is not None:
        _save_atomic(tokenizer, folder)
    return tokenizer


def offline_tokenizer(name: str, cache_dir: Path | None = None):
    """The offline GPT-2 tokenizer when ``name`` is one of ``GPT2_NAMES``, else None."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty model name, got {name!r}")
    return gpt2_tokenizer(cache_dir) if name in GPT2_NAMES else None
