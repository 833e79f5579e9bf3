"""The exact testbed's data source: rows drawn from a known language, written as a prepared data folder.

``prepare_language(spec, data, cache_dir, lam)`` writes the folder contract of ``fmlm.data.cache``
(``ids_{train,val}.npy``, ``latents_{train,val}.npy``, ``tokenizer/``, ``meta.json``) from exact draws
of ``HMMLanguage(spec)`` instead of text. The "encoder" is the language's fixed seeded codebook
(unit variance per dimension, like the whitened latents of the real cache, so ``mu = 0``, ``sigma = 1``),
``x0 = e_{ids}``. The tokenizer is a word-level one over the words ``t0 .. t{V-1}`` (no special tokens),
so rows decode to text like any other folder. ``meta.json`` also holds the language and its per-token
entropy ``H(X_1..X_L) / L`` (Monte Carlo over ``ENTROPY_ROWS`` exact rows, with its standard error).
Train rows use ``data.seed``, validation rows ``data.seed + 1``: disjoint draws of the same law.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from fmlm.config import to_dict
from fmlm.data import DataConfig
from fmlm.data.cache import FORMAT_VERSION, META_FILE, TOKENIZER_DIR
from fmlm.files import write_folder_atomic
from fmlm.synthetic.hmm_language import HMMLanguage, LanguageSpec

ENTROPY_ROWS = 16384
"""Exact rows whose mean ``-log p / L`` estimates the entropy: standard error ~0.002 nats per token."""

SOURCE = "exact"
"""``data.source`` of a folder drawn from the language (the language itself is ``ExperimentConfig.language``)."""


def language_cache_name(spec: LanguageSpec, data: DataConfig, lam: float) -> str:
    """``exact-V<V>-L<L>-<hash>``: the hash covers the language, the data settings, lam and the format."""
    payload = {"format": FORMAT_VERSION, "language": to_dict(spec), "data": to_dict(data), "lam": lam}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    return f"exact-V{spec.vocab}-L{data.row_len}-{digest}"


def word_tokenizer(vocab: int):
    """A fast word-level tokenizer over ``t0 .. t{V-1}`` (ids = the language's ids), whitespace-split."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{v}": v for v in range(vocab)}, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def _write(folder: Path, law: HMMLanguage, data: DataConfig, spec: LanguageSpec, lam: float) -> None:
    t0 = time.perf_counter()
    rows = {"train": data.max_train_rows, "val": data.max_val_rows}
    for offset, (split, n) in enumerate(rows.items()):
        ids, _ = law.sample(n, data.row_len, generator=torch.Generator().manual_seed(data.seed + offset))
        np.save(folder / f"ids_{split}.npy", ids.numpy().astype(np.int32))
        np.save(folder / f"latents_{split}.npy", law.codebook[ids].numpy().astype(data.cache_dtype))
    entropy, entropy_se = law.entropy_per_token(ENTROPY_ROWS, data.row_len, seed=data.seed + 2)
    word_tokenizer(spec.vocab).save_pretrained(folder / TOKENIZER_DIR)
    meta = {
        "format_version": FORMAT_VERSION, "config": to_dict(data), "language": to_dict(spec), "lam": lam,
        "mu": 0.0, "sigma": 1.0, "dim": spec.dim, "vocab_size": spec.vocab,
        "bos_id": -1, "eos_id": -1, "sep_id": -1, "pad_id": -1,  # rows have no frame: no special tokens
        "row_len": data.row_len, "encoder_name": "codebook", "encoder_path": "", "layer": -1,
        "tokenizer_name": "word-level t0..t{V-1}", "tokenizer_class": "PreTrainedTokenizerFast",
        "rows": rows, "documents": 0, "stats_rows_used": 0, "packing": {}, "latents": True, "device": "cpu",
        "entropy_per_token": entropy, "entropy_per_token_se": entropy_se, "entropy_rows": ENTROPY_ROWS,
        "timings_s": {"total": time.perf_counter() - t0},
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def prepare_language(spec: LanguageSpec, data: DataConfig, cache_dir: str | Path, lam: float) -> Path:
    """The prepared folder of ``spec``'s rows under ``cache_dir``: reused if finished, else built atomically."""
    if data.source != SOURCE:
        raise ValueError(f"data.source must be {SOURCE!r} for a language's rows, got {data.source!r}")
    if data.max_train_rows < 1 or data.max_val_rows < 1:
        raise ValueError("data.max_train_rows and data.max_val_rows must be >= 1 (rows drawn from the language)")
    cache_dir = Path(cache_dir).expanduser()
    folder = cache_dir / language_cache_name(spec, data, lam)
    if (folder / META_FILE).is_file():
        return folder
    return write_folder_atomic(folder, lambda tmp: _write(tmp, HMMLanguage(spec, lam), data, spec, lam),
                               done_file=META_FILE)
