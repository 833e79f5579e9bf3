"""Fixtures for the data-pipeline tests: a tiny text corpus, the bundled MiniLM, a tiny local GPT-2."""

from __future__ import annotations

import pytest

TINY_TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank every morning.",
    "A stitch in time saves nine, said the old tailor to his young apprentice.",
    "Rain fell on the quiet town while the bakers lit their ovens before dawn.",
    "Seven ships sailed north across the cold sea in search of a safe harbour.",
    "The library opened its doors and the children ran in to find new books.",
    "Mountains rose above the valley where farmers grew wheat and barley.",
    "An engineer measured the bridge twice before she signed the final report.",
    "The orchestra tuned their instruments as the audience slowly took their seats.",
    "Bees moved from flower to flower gathering nectar in the warm afternoon sun.",
    "The old clock in the hall struck midnight and the house fell silent again.",
    "Students gathered in the square to celebrate the end of the long exams.",
    "A small boat drifted along the canal carrying apples to the market.",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """The models here are tiny: one thread avoids thread-synchronisation cost on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_corpus(tmp_path):
    """A folder of 12 one-sentence .txt documents."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, text in enumerate(TINY_TEXTS):
        (folder / f"doc{i:02d}.txt").write_text(text + "\n")
    return folder


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 as a FrozenEncoder (loaded once, ~4 s)."""
    from fmlm.data.encoder import FrozenEncoder

    return FrozenEncoder("minilm")


def _tiny_bpe(folder, texts, vocab_size=320):
    """A byte-level BPE tokenizer trained on ``texts``, saved as a PreTrainedTokenizerFast (<|endoftext|>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    fast.save_pretrained(folder)
    return fast


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """Folder of a randomly initialised 2-layer GPT-2 LM (saved with its head) plus a matching BPE tokenizer:
    the same loading path as ``gpt2-large``, but local."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny_gpt2")
    tok = _tiny_bpe(folder, TINY_TEXTS * 4)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_layer=2, n_embd=32, n_head=2,
                        bos_token_id=eot, eos_token_id=eot)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def other_bpe(tmp_path_factory):
    """A second tokenizer, larger than the tiny GPT-2's vocabulary (a mismatched pair)."""
    folder = tmp_path_factory.mktemp("other_bpe")
    _tiny_bpe(folder, TINY_TEXTS * 4 + [t.upper() for t in TINY_TEXTS] * 4, vocab_size=600)
    return folder
