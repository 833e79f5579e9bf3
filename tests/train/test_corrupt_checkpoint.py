"""A damaged checkpoint file is one line naming the file, on resume and on sampling, and nothing is
changed: truncated or garbled safetensors, a pickle in optim.pt (never executed), a bad denoiser.json."""

import pickle

import pytest
import torch

from fmlm.cli import main
from fmlm.train import checkpoint as ckpt
from tests.experiment.test_stages import save, teacher_model


class _WritesMarker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture()
def folder(tmp_path):
    return save(tmp_path / "checkpoint", "teacher", teacher_model())


def _one_line(call):
    with pytest.raises(ValueError) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_a_cut_or_garbled_weights_file_is_one_line(folder, name):
    path = folder / name
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], b"\x00" * 64 + data[64:], b""):
        path.write_bytes(damaged)
        message = _one_line(lambda: ckpt.load_weights(teacher_model(), folder, name.split(".")[0]))
        assert str(path) in message and "not a readable safetensors file" in message
        assert path.read_bytes() == damaged


def test_a_pickle_in_optim_pt_is_refused_without_running(folder, tmp_path):
    marker = tmp_path / "marker"
    for writer in (lambda p: torch.save({"optimizers": [_WritesMarker(marker)]}, p),
                   lambda p: p.write_bytes(pickle.dumps({"optimizers": [_WritesMarker(marker)]}))):
        writer(folder / "optim.pt")
        message = _one_line(lambda: ckpt.load_optimizers([], folder))
        assert "refused" in message and "open" in message and "weights_only" not in message
        assert not marker.exists()
    for junk in (b"garbage", b""):  # read as a (broken) pickle, or nothing at all: one line naming the file
        (folder / "optim.pt").write_bytes(junk)
        assert str(folder / "optim.pt") in _one_line(lambda: ckpt.load_optimizers([], folder))


def test_a_bad_denoiser_json_names_the_file(folder):
    (folder / "denoiser.json").write_text("{not json")
    assert "denoiser.json: invalid JSON" in _one_line(lambda: ckpt.read_denoiser_config(folder))
    (folder / "denoiser.json").write_text('{"latent_dim": 8}')
    assert "denoiser.json" in _one_line(lambda: ckpt.read_denoiser_config(folder))


def test_sampling_a_damaged_checkpoint_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    folder = save(run / "stages" / "teacher" / "checkpoint", "teacher", teacher_model())
    (folder / "ema.safetensors").write_bytes(b"\x01" * 10)
    code = main(["sample", "--run-dir", str(run), "--stage", "teacher", "--n", "1", "--device", "cpu",
                 "--out", str(tmp_path / "s.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "ema.safetensors: not a readable safetensors file" in err


@pytest.mark.parametrize("key,value", [("complete", "no"), ("complete", 0), ("complete", None), ("step", "5"),
                                       ("step", True), ("total_steps", 5.0), ("stage", 3)])
def test_a_mistyped_meta_json_value_names_the_file_and_key(folder, key, value):
    import json

    path = folder / "meta.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    message = _one_line(lambda: ckpt.read_meta(folder))
    assert message.startswith(f"{path}: {key}: expected ") and repr(value) in message


def test_a_refused_pickle_prints_no_torch_warning(folder, tmp_path):
    import warnings

    (folder / "optim.pt").write_bytes(pickle.dumps({"optimizers": [_WritesMarker(tmp_path / "marker")]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _one_line(lambda: ckpt.load_optimizers([], folder))
    assert [str(w.message) for w in caught] == []
