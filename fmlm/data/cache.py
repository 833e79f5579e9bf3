"""Prepare a cached dataset (``prepare``): text -> packed token rows -> whitened frozen-encoder latents.

``prepare(cfg, cache_dir)`` writes one folder per configuration (its name ends in a hash of the
config, the format version and a fingerprint of path sources) holding
- ``ids_train.npy``, ``ids_val.npy``: ``(N, row_len)`` int32 packed rows (``fmlm.data.packing``);
- ``latents_train.npy``, ``latents_val.npy``: ``(N, row_len, dim)`` whitened latents
  ``x0 = (E(ids) - mu) / sigma`` in ``cache_dtype`` (absent when ``cache_latents`` is false: then the
  trainer encodes on the fly with ``mu`` and ``sigma`` from the meta);
- ``tokenizer/``: the tokenizer, so the folder decodes on any machine (``fmlm.data.dataset``);
- ``meta.json``: config, mu, sigma, dim, vocab size, special ids, names, row counts, packing stats
  (dropped remainder), timings.
The folder is built under a temporary name and renamed when complete; an existing folder with the
same config is reused without recomputation. ``mu``/``sigma`` come from training rows only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from fmlm.config import require, to_dict
from fmlm.data.corpus import Documents, load_documents, source_fingerprint, split_documents, take
from fmlm.data.encoder import FrozenEncoder, TORCH_DTYPES
from fmlm.data.packing import RowPacker
from fmlm.data.whitening import estimate_whitening, whiten
from fmlm.files import first_line

FORMAT_VERSION = 1  # bump when the folder layout or the text cleaning changes (invalidates caches)
DOC_BATCH = 256  # documents tokenized per call (fast tokenizers batch across threads)
COPY_ROWS = 65536  # rows per chunk when moving packed ids from the raw stream into the .npy file
META_FILE = "meta.json"
TOKENIZER_DIR = "tokenizer"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class DataConfig:
    """What text, which encoder and how to cut it (defaults: all of the embedded corpus, MiniLM, 64 tokens).

    All of "embedded" is 25.6k rows of 64 tokens and takes ~5 min to prepare on 2 idle cores (~12 min
    on a busy one). The CPU recommendation is source="gensim-wiki+gensim-lee", max_train_rows=4096,
    max_val_rows=256, stats_rows=256: ~1 min on 2 idle cores (MiniLM encodes ~5.6k tokens/s there).
    Paper: source="hf:openwebtext", encoder="gpt2-large", row_len=1024, stats_rows=50000.
    """

    source: str = "embedded"  # see fmlm.data.corpus: embedded parts, paths, globs, hf:NAME[:CONFIG]
    encoder: str = "minilm"  # hub name or folder; "minilm" = the bundled all-MiniLM-L6-v2; paper: gpt2-large
    tokenizer: str = ""  # "" = the encoder's own tokenizer
    layer: int = -1  # hidden-state index (-1 = last layer)
    row_len: int = 64  # tokens per row including bos and eos (paper: 1024)
    val_fraction: float = 0.05  # fraction of documents held out for validation
    max_train_rows: int = 0  # 0 = all
    max_val_rows: int = 0  # 0 = all
    stats_rows: int = 512  # training rows sampled to estimate mu/sigma (0 = all; paper: 50000)
    encode_batch_size: int = 32
    encoder_dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # paper: bfloat16 on GPU
    cache_dtype: Literal["float16", "float32"] = "float16"
    cache_latents: bool = True  # False: ids and mu/sigma only (paper scale: latents are TBs)
    seed: int = 0  # document permutation (split and packing order) and the stats-row sample

    def __post_init__(self) -> None:
        require(isinstance(self.source, str) and self.source.strip() != "", "source", "must be a non-empty string")
        require(isinstance(self.encoder, str) and self.encoder.strip() != "", "encoder", "must be a non-empty string")
        require(self.row_len >= 3, "row_len", f"must be at least 3 (bos + a token + eos), got {self.row_len}")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", f"must lie in [0, 1), got {self.val_fraction}")
        for key in ("max_train_rows", "max_val_rows", "stats_rows"):
            require(getattr(self, key) >= 0, key, f"must be >= 0 (0 = all), got {getattr(self, key)}")
        require(self.encode_batch_size >= 1, "encode_batch_size", f"must be positive, got {self.encode_batch_size}")
        require(self.encoder_dtype in TORCH_DTYPES, "encoder_dtype", f"must be one of {sorted(TORCH_DTYPES)}")
        require(self.cache_dtype in ("float16", "float32"), "cache_dtype", "must be float16 or float32")


def cache_name(cfg: DataConfig) -> str:
    """Folder name: readable source/encoder/row_len slug plus a hash of everything that shapes the output."""
    payload = {"format": FORMAT_VERSION, "config": to_dict(cfg), "source_files": source_fingerprint(cfg.source)}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", text.rstrip("/").rsplit("/", 1)[-1]).strip("-")[:32] or "x"

    return f"{slug(cfg.source)}-{slug(cfg.encoder)}-L{cfg.row_len}-{digest}"


def _write_npy_from_raw(raw: Path, path: Path, n_rows: int, row_len: int) -> None:
    """Move ``n_rows`` int32 rows from a raw stream file into ``path`` (.npy), in chunks."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(n_rows, row_len))
    if n_rows:
        src = np.memmap(raw, dtype=np.int32, mode="r", shape=(n_rows, row_len))
        for start in range(0, n_rows, COPY_ROWS):
            out[start:start + COPY_ROWS] = src[start:start + COPY_ROWS]
        del src
    out.flush()
    del out
    raw.unlink()


def _tokenize_pack(encoder: FrozenEncoder, docs: Documents, order: np.ndarray, row_len: int,
                   max_rows: int, path: Path, split: str) -> tuple[int, dict]:
    """Tokenize documents in ``order`` and pack them into ``path`` until ``max_rows`` (0 = all); (rows, stats)."""
    packer = RowPacker(row_len, encoder.bos_id, encoder.eos_id)
    raw = path.with_suffix(".raw")
    n_rows, n_docs, surplus = 0, 0, 0
    with open(raw, "wb") as fh, tqdm(total=len(order), desc=f"tokenize {split}", unit="doc", disable=None) as bar:
        for start in range(0, len(order), DOC_BATCH):
            chunk = order[start:start + DOC_BATCH]
            rows = packer.add(encoder.tokenize(take(docs, chunk)))
            n_docs += len(chunk)
            bar.update(len(chunk))
            if max_rows and n_rows + len(rows) >= max_rows:
                surplus = n_rows + len(rows) - max_rows
                rows = rows[: max_rows - n_rows]
            fh.write(np.ascontiguousarray(rows, dtype=np.int32).tobytes())
            n_rows += len(rows)
            if max_rows and n_rows >= max_rows:
                break
    stats = asdict(packer.finish())
    stats.update(documents_in_split=len(order), documents_packed=n_docs, rows=n_rows, surplus_rows=surplus)
    _write_npy_from_raw(raw, path, n_rows, row_len)
    return n_rows, stats


def _write_latents(encoder: FrozenEncoder, ids: np.ndarray, mu: float, sigma: float, path: Path,
                   dtype: str, batch_size: int, split: str) -> None:
    """Encode, whiten and write ``ids`` batch by batch into ``path`` (.npy memmap of ``dtype``)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(len(ids), ids.shape[1], encoder.dim))
    for start in tqdm(range(0, len(ids), batch_size), desc=f"encode {split}", unit="batch", disable=None):
        x0 = whiten(encoder.encode(ids[start:start + batch_size]), mu, sigma).cpu().numpy().astype(dtype)
        if not np.isfinite(x0).all():
            raise ValueError(f"cache_dtype: whitened latents overflow {dtype} (rows {start}..); use float32")
        out[start:start + len(x0)] = x0
    out.flush()
    del out


def _check_encoder(cfg: DataConfig, encoder: FrozenEncoder) -> None:
    """A caller-supplied encoder must be the one the config names."""
    wanted = (cfg.encoder, cfg.layer, cfg.tokenizer or cfg.encoder, cfg.encoder_dtype)
    have = (encoder.name, encoder.layer, encoder.tokenizer_name, encoder.dtype)
    if wanted != have:
        raise ValueError(f"encoder: the given encoder is {have} but the config asks for {wanted}")


def _build(cfg: DataConfig, folder: Path, encoder: FrozenEncoder | None, device: str) -> None:
    """Write every file of a prepared folder into ``folder`` (see module docstring)."""
    t0 = time.perf_counter()
    if encoder is None:
        encoder = FrozenEncoder(cfg.encoder, cfg.layer, cfg.tokenizer or None, device, cfg.encoder_dtype)
    _check_encoder(cfg, encoder)
    if cfg.row_len > encoder.max_positions:
        raise ValueError(f"row_len: {cfg.row_len} exceeds the {encoder.max_positions} positions of {cfg.encoder!r}")
    t_model = time.perf_counter()
    docs = load_documents(cfg.source)
    t_load = time.perf_counter()
    orders = dict(zip(SPLITS, split_documents(len(docs), cfg.val_fraction, cfg.seed)))
    max_rows = {"train": cfg.max_train_rows, "val": cfg.max_val_rows}
    rows, packing = {}, {}
    for split in SPLITS:
        rows[split], packing[split] = _tokenize_pack(encoder, docs, orders[split], cfg.row_len, max_rows[split],
                                                     folder / f"ids_{split}.npy", split)
    if rows["train"] == 0:
        raise ValueError(f"source: {cfg.source!r} yields no full training row of row_len {cfg.row_len}")
    if cfg.val_fraction > 0 and rows["val"] == 0:
        raise ValueError(f"val_fraction: the validation documents of {cfg.source!r} fill no row of {cfg.row_len}")
    t_pack = time.perf_counter()
    ids = {split: np.load(folder / f"ids_{split}.npy", mmap_mode="r") for split in SPLITS}
    stats_rows = rows["train"] if cfg.stats_rows == 0 else min(cfg.stats_rows, rows["train"])
    mu, sigma = estimate_whitening(encoder, ids["train"], stats_rows, cfg.encode_batch_size, cfg.seed)
    t_stats = time.perf_counter()
    if cfg.cache_latents:
        for split in SPLITS:
            _write_latents(encoder, ids[split], mu, sigma, folder / f"latents_{split}.npy", cfg.cache_dtype,
                           cfg.encode_batch_size, split)
    t_encode = time.perf_counter()
    encoder.tokenizer.save_pretrained(folder / TOKENIZER_DIR)
    encoded_tokens = (stats_rows + (rows["train"] + rows["val"]) * cfg.cache_latents) * cfg.row_len
    meta = {
        "format_version": FORMAT_VERSION, "config": to_dict(cfg), "mu": mu, "sigma": sigma,
        "dim": encoder.dim, "vocab_size": encoder.vocab_size, "bos_id": encoder.bos_id, "eos_id": encoder.eos_id,
        "sep_id": encoder.eos_id, "pad_id": encoder.pad_id, "row_len": cfg.row_len,
        "encoder_name": encoder.name, "encoder_path": encoder.path, "layer": encoder.layer,
        "tokenizer_name": encoder.tokenizer_name, "tokenizer_class": type(encoder.tokenizer).__name__,
        "rows": rows, "documents": len(docs), "stats_rows_used": stats_rows, "packing": packing,
        "latents": cfg.cache_latents, "device": str(encoder.device),
        "timings_s": {"load_encoder": t_model - t0, "load_text": t_load - t_model, "tokenize_pack": t_pack - t_load,
                      "whitening_stats": t_stats - t_pack, "encode": t_encode - t_stats,
                      "total": time.perf_counter() - t0},
        "encode_tokens_per_s": encoded_tokens / max(t_encode - t_pack, 1e-9),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _reusable(folder: Path, cfg: DataConfig) -> bool:
    """True when ``folder`` is a finished preparation of ``cfg`` whose files fit its meta; an unrelated
    folder there is an error."""
    if not folder.exists():
        return False
    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("config") != to_dict(cfg):
        raise ValueError(f"cache_dir: {folder} exists but is not a preparation of this config; remove it")
    check_files(folder, meta)
    return True


def check_files(folder: Path, meta: dict) -> None:
    """Refuse (one line naming the file) an array file of a prepared folder that is missing, or whose
    header or size does not fit ``meta``: ids ``(rows, row_len)`` int32, latents ``(rows, row_len, dim)``
    in the cache dtype. A cut file is found here, when the folder is opened, not when a row is read."""
    for split in SPLITS:
        shape = (int(meta["rows"][split]), int(meta["row_len"]))
        _check_npy(folder / f"ids_{split}.npy", shape, np.dtype(np.int32))
        if meta.get("latents"):
            _check_npy(folder / f"latents_{split}.npy", (*shape, int(meta["dim"])),
                       np.dtype(meta["config"]["cache_dtype"]))


def _check_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """``path`` is a .npy file holding exactly an array of ``shape`` and ``dtype`` (its header read, not its data)."""
    again = f"remove {path.parent} to prepare it again"
    if not path.is_file():
        raise ValueError(f"{path}: missing from the prepared folder; {again}")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            have_shape, _, have_dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npy file ({first_line(err)}); {again}") from None
    if tuple(have_shape) != shape or have_dtype != dtype:
        raise ValueError(f"{path}: holds {have_dtype} {tuple(have_shape)}, meta.json needs {dtype} {shape}; {again}")
    size, need = path.stat().st_size, offset + int(np.prod(shape)) * dtype.itemsize
    if size != need:
        raise ValueError(f"{path}: {size} bytes where its shape needs {need} (the file was cut or damaged); {again}")


def prepare(cfg: DataConfig, cache_dir: str | Path, encoder: FrozenEncoder | None = None,
            device: str = "cpu") -> Path:
    """Prepared folder for ``cfg`` under ``cache_dir``: reused if finished, else built atomically.

    ``encoder`` (optional) is an already loaded ``FrozenEncoder`` matching the config; ``device``
    is where a freshly loaded one runs. Neither changes the folder name.
    """
    if not isinstance(cfg, DataConfig):
        raise ValueError(f"cfg: expected a DataConfig, got {type(cfg).__name__}")
    cache_dir = Path(cache_dir).expanduser()
    folder = cache_dir / cache_name(cfg)
    if _reusable(folder, cfg):
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _build(cfg, tmp, encoder, device)
        try:
            tmp.rename(folder)
        except OSError:
            if not _reusable(folder, cfg):  # another process finished first: keep theirs
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
