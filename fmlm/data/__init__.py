"""Data pipeline: text source -> documents -> packed token rows -> whitened frozen-encoder latents.

``corpus`` (sources, split by document) -> ``packing`` (rows ``[bos] + body + [eos]``) ->
``encoder`` (frozen Hugging Face encoder) -> ``whitening`` (two scalars mu, sigma) ->
``cache`` (``prepare``: the cached folder) -> ``dataset`` (rows ``(ids, x0)`` for the trainer, decoding to text).
"""

from fmlm.data.corpus import (
    EMBEDDED,
    EMBEDDED_PARTS,
    embedded_part,
    load_documents,
    split_documents,
)
from fmlm.data.dataset import LatentRows, TextDecoder, TokenRows, encoder_for, load_meta, tokenizer_for
from fmlm.data.encoder import FrozenEncoder, special_ids
from fmlm.data.packing import PackStats, RowPacker, pack_rows
from fmlm.data.cache import DataConfig, cache_name, prepare
from fmlm.data.encoded import EncodedRows, rows_for
from fmlm.data.whitening import RunningMoments, estimate_whitening, unwhiten, whiten
from fmlm.data.wiki import clean_wiki_markup, wiki_to_paragraphs

__all__ = [
    "EMBEDDED",
    "EMBEDDED_PARTS",
    "DataConfig",
    "EncodedRows",
    "FrozenEncoder",
    "LatentRows",
    "PackStats",
    "RowPacker",
    "RunningMoments",
    "TextDecoder",
    "TokenRows",
    "cache_name",
    "clean_wiki_markup",
    "embedded_part",
    "encoder_for",
    "estimate_whitening",
    "load_documents",
    "load_meta",
    "pack_rows",
    "prepare",
    "rows_for",
    "special_ids",
    "split_documents",
    "tokenizer_for",
    "unwhiten",
    "whiten",
    "wiki_to_paragraphs",
]
