"""Tiny randomly initialised evaluators (GPT-2- and Llama-style) saved to disk and
loaded back through ``load_evaluator(path)``, with a word-level tokenizer built offline; and, for the
MAUVE / diversity tests, a tiny BPE GPT-2 with and without a copy bias plus real held-out text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fmlm.evaluation.evaluator import Evaluator, load_evaluator

WORDS = "the cat dog sat ran on a mat big small red blue and then it was very quiet loud".split()
SEPARATOR, END_TOKEN, UNK = "<|endoftext|>", "<|end|>", "[UNK]"
CONTEXT = 32


def build_tokenizer(eos: str):
    """Whitespace word-level tokenizer; ``<|endoftext|>`` always in the vocabulary, ``eos`` its EOS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [SEPARATOR, END_TOKEN, UNK]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos, bos_token=SEPARATOR, unk_token=UNK)


def build_model(kind: str, vocab_size: int) -> torch.nn.Module:
    """A 2-layer causal LM with a wide initialisation, so predictions are far from uniform."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    if kind == "gpt2":
        cfg = GPT2Config(vocab_size=vocab_size, n_positions=CONTEXT, n_embd=16, n_layer=2, n_head=2,
                         initializer_range=0.5)
        return GPT2LMHeadModel(cfg)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=CONTEXT,
                      initializer_range=0.5, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def save_tiny(folder, kind: str) -> None:
    """GPT-2 style: EOS = ``<|endoftext|>`` (start = end). Llama style: EOS = ``<|end|>`` (start != end)."""
    tokenizer = build_tokenizer(SEPARATOR if kind == "gpt2" else END_TOKEN)
    build_model(kind, len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny_evaluators")
    folders = {}
    for kind in ("gpt2", "llama"):
        save_tiny(root / kind, kind)
        folders[kind] = root / kind
    return folders


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def tiny_evaluator(request, tiny_folders, tmp_path_factory) -> Evaluator:
    return load_evaluator(str(tiny_folders[request.param]), cache_dir=tmp_path_factory.mktemp("cache"))


def reference_nll(evaluator: Evaluator, seq: list[int], scored: list[int]) -> float:
    """``sum_{i in scored} -log p(seq[i] | seq[:i])`` from one unpadded forward pass in float64."""
    with torch.no_grad():
        logits = evaluator.model(input_ids=torch.tensor([seq])).logits[0].double()
    logp = logits.log_softmax(-1)
    return float(sum(-logp[i - 1, seq[i]] for i in scored))


# --- a tiny GPT-2 that rewards repetition, and real varied text (the MAUVE / diversity tests) ---

REAL_TEXTS_FILE = Path(__file__).resolve().parents[2] / "reports" / "embedded" / "eval" / "reference_data_0.jsonl"
"""128 held-out Wikipedia passages of the committed embedded run (real, varied text)."""
COPY_CONTEXT = 64
COPY_EMBEDDING_SCALE = 10.0
"""Token embeddings scaled up from GPT-2's 0.02 init so the tied head gives the current token the largest
logit: the model predicts 'the same token again', the bias that makes trained LMs score repetition low."""


def real_texts() -> list[str]:
    """The held-out texts of ``REAL_TEXTS_FILE`` in file order."""
    return [json.loads(line)["text"] for line in REAL_TEXTS_FILE.read_text(encoding="utf-8").splitlines() if line]


def _bpe(folder, texts, vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts`` (``<|endoftext|>`` as BOS = EOS), saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SEPARATOR],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=SEPARATOR, eos_token=SEPARATOR,
                                   unk_token=SEPARATOR)
    fast.save_pretrained(folder)
    return fast


@pytest.fixture(scope="session")
def copy_gpt2(tmp_path_factory) -> Evaluator:
    """A randomly initialised 2-layer GPT-2 (BPE tokenizer trained on the real texts) whose token embeddings
    are scaled by ``COPY_EMBEDDING_SCALE``: an evaluator that, like a trained LM, scores repetition low."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("copy_gpt2")
    tokenizer = _bpe(folder, real_texts(), vocab_size=512)
    eot = tokenizer.convert_tokens_to_ids(SEPARATOR)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=COPY_CONTEXT, n_layer=2, n_embd=32,
                                       n_head=2, bos_token_id=eot, eos_token_id=eot))
    with torch.no_grad():
        model.transformer.wte.weight.mul_(COPY_EMBEDDING_SCALE)
    model.save_pretrained(folder)
    return load_evaluator(str(folder), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def plain_gpt2(tmp_path_factory) -> Evaluator:
    """The same tiny GPT-2 at its plain random initialisation (no copy bias)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("plain_gpt2")
    tokenizer = _bpe(folder, real_texts(), vocab_size=512)
    eot = tokenizer.convert_tokens_to_ids(SEPARATOR)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=COPY_CONTEXT, n_layer=2, n_embd=32,
                               n_head=2, bos_token_id=eot, eos_token_id=eot)).save_pretrained(folder)
    return load_evaluator(str(folder), cache_dir=tmp_path_factory.mktemp("cache"))
