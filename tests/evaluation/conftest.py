"""Tiny randomly initialised evaluators (GPT-2- and Llama-style) saved to disk and
loaded back through ``load_evaluator(path)``, with a word-level tokenizer built offline."""

from __future__ import annotations

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
