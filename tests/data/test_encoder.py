"""FrozenEncoder: the bundled MiniLM, a local GPT-2 (the hub path), layers, mismatches and bad names."""

import shutil

import pytest
import torch

from fmlm.data.encoder import FrozenEncoder


def test_minilm_properties_and_encode(minilm):
    assert (minilm.dim, minilm.vocab_size) == (384, 30522)
    assert (minilm.bos_id, minilm.eos_id, minilm.pad_id) == (101, 102, 0)  # [CLS], [SEP], [PAD]
    assert not minilm.model.training
    assert not any(p.requires_grad for p in minilm.model.parameters())
    ids = torch.tensor([[101] + minilm.tokenize(["hello world"])[0] + [102]])
    h = minilm.encode(ids)
    assert h.shape == (1, 4, 384) and h.dtype == torch.float32 and not h.requires_grad
    assert torch.isfinite(h).all()


def test_tokenize_adds_no_special_tokens_and_does_not_truncate(minilm):
    long = " ".join(["word"] * 2000)
    (ids,) = minilm.tokenize([long])
    assert len(ids) == 2000 and 101 not in ids and 102 not in ids


def test_last_layer_equals_hidden_states_index(tiny_gpt2):
    last = FrozenEncoder(str(tiny_gpt2), layer=-1)
    explicit = FrozenEncoder(str(tiny_gpt2), layer=2)
    first = FrozenEncoder(str(tiny_gpt2), layer=1)
    ids = torch.randint(0, last.vocab_size, (2, 9))
    assert torch.equal(last.encode(ids), explicit.encode(ids))
    assert not torch.allclose(last.encode(ids), first.encode(ids))


def test_gpt2_is_used_through_its_base_model(tiny_gpt2):
    enc = FrozenEncoder(str(tiny_gpt2))
    assert type(enc.model).__name__ == "GPT2Model"
    assert enc.dim == 32 and enc.bos_id == enc.eos_id == enc.pad_id == 0  # <|endoftext|>; pad falls back to eos
    ids = torch.randint(0, enc.vocab_size, (2, 10))
    h = enc.encode(ids)
    # causal: changing a later token leaves earlier positions unchanged
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % enc.vocab_size
    assert torch.allclose(enc.encode(ids2)[:, :-1], h[:, :-1])


def test_mismatched_tokenizer_is_refused(tiny_gpt2, other_bpe):
    with pytest.raises(ValueError, match="is not the tokenizer of.*do not match") as err:
        FrozenEncoder(str(tiny_gpt2), tokenizer=str(other_bpe))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="do not match"):  # GPT-2 BPE given to MiniLM
        FrozenEncoder("minilm", tokenizer=str(tiny_gpt2))
    assert FrozenEncoder(str(tiny_gpt2), tokenizer=str(tiny_gpt2)).vocab_size == 320  # its own: accepted


def test_tokenizer_larger_than_embedding_table_is_refused(tiny_gpt2, other_bpe, tmp_path):
    weights_only = tmp_path / "weights_only"  # an encoder folder without a tokenizer of its own
    weights_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_gpt2 / name, weights_only / name)
    with pytest.raises(ValueError, match="600 tokens but encoder .* embeds only 320") as err:
        FrozenEncoder(str(weights_only), tokenizer=str(other_bpe))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="has no vocabulary"):  # and alone it has no usable tokenizer
        FrozenEncoder(str(weights_only))


@pytest.mark.parametrize("name", ["/no/such/model/folder", "./missing-model"])
def test_bad_local_path_names_it(name):
    with pytest.raises(ValueError, match="missing-model|/no/such") as err:
        FrozenEncoder(name)
    assert "\n" not in str(err.value)


def test_hub_name_offline_fails_fast(monkeypatch):
    import fmlm.data.encoder as encoder

    monkeypatch.setattr(encoder, "hub_reachable", lambda: False)
    with pytest.raises(ValueError, match="'gpt2-large'.*unreachable") as err:
        FrozenEncoder("gpt2-large")
    assert "\n" not in str(err.value)


def test_bad_layer_and_bad_ids(tiny_gpt2):
    with pytest.raises(ValueError, match="layer"):
        FrozenEncoder(str(tiny_gpt2), layer=3)
    enc = FrozenEncoder(str(tiny_gpt2))
    with pytest.raises(ValueError, match="ids"):
        enc.encode(torch.tensor([[0, enc.vocab_size]]))
    with pytest.raises(ValueError, match="exceeds"):
        enc.encode(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        enc.encode(torch.zeros(5, dtype=torch.long))
