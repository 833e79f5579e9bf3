"""Importing the paper's released checkpoints: safe reading, key accounting, shape inference, the rotary
convention, model folders and sampling from them."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import yaml

from fmlm.cli import main
from fmlm.models import load_model, read_info
from fmlm.models.reference import import_reference, rotary_permutation
from fmlm.models.safe_load import load_reference_file
from fmlm.nn.rotary import apply_rotary, rotary_tables
from tests.models.reference_layout import lightning_checkpoint, reference_state

pytest.importorskip("fmlm.data.gpt2")


def write(tmp_path, name, state, **kw):
    path = tmp_path / name
    torch.save(lightning_checkpoint(state, **kw), path)
    return path


@pytest.fixture()
def fmlm_star(tmp_path):
    return write(tmp_path, "fmlm_star.ckpt", reference_state(phase=True))


def test_shapes_give_the_architecture_and_the_file_name_the_stage(fmlm_star):
    ref = import_reference(fmlm_star)
    c = ref.config
    assert ref.stage == "flow-map" and ref.weights == "ema" and ref.skipped == 2
    assert (c.latent_dim, c.width, c.heads, c.depth, c.bottleneck, c.vocab_size) == (8, 32, 2, 2, 8, 50257)
    assert (c.time_tokens, c.guidance_tokens, c.phase_tokens, c.mode_tokens) == (4, 4, 4, 4)
    assert c.mlp_hidden == 85 and c.self_conditioning and c.max_len == 1024
    assert c.default_phase == 0.002 and c.decode_phase == 0.0


def test_ema_weights_by_default_raw_on_request(fmlm_star):
    shadow = reference_state(phase=True)
    ema, raw = import_reference(fmlm_star), import_reference(fmlm_star, weights="raw")
    assert torch.equal(ema.state["unembed.bias"], shadow["unembed_bias"])
    assert torch.equal(raw.state["unembed.bias"], shadow["unembed_bias"] + 1.0)
    assert torch.equal(ema.state["unembed.weight"], shadow["unembed_kernel"].t())


def test_yaml_sets_stage_and_row_length(tmp_path):
    path = write(tmp_path, "anything.ckpt", reference_state(phase=True))
    (tmp_path / "r.yml").write_text(yaml.safe_dump({"cdeq_enabled": True, "max_length": 64, "self_cond_prob": 0.5}))
    ref = import_reference(path, config_path=tmp_path / "r.yml")
    assert ref.stage == "fixed-point" and ref.config.max_len == 64
    with pytest.raises(ValueError, match="cannot tell the stage from the file name"):
        import_reference(path)
    teacher = write(tmp_path, "elf.ckpt", reference_state())
    assert import_reference(teacher).stage == "teacher"
    with pytest.raises(ValueError, match="have a phase bank, so they are not a 'teacher' model"):
        import_reference(path, stage="teacher")


@pytest.mark.parametrize("change,match", [
    (lambda s: s.update({"blocks.0.attn.extra": torch.zeros(2)}), "'blocks.0.attn.extra' has no place"),
    (lambda s: s.pop("blocks.1.mlp.w3.bias"), "missing tensor 'blocks.1.mlp.w3.bias'"),
    (lambda s: s.pop("proj_bias"), "missing tensor 'proj_bias'"),
])
def test_every_tensor_is_used_exactly_once(tmp_path, change, match):
    state = reference_state(phase=True)
    change(state)
    path = write(tmp_path, "fmlm_star.ckpt", state, raw=state)
    with pytest.raises(ValueError, match=match):
        import_reference(path)


def test_unknown_state_dict_part_and_missing_ema_are_refused(tmp_path):
    state = reference_state(phase=True)
    ckpt = lightning_checkpoint(state)
    ckpt["state_dict"]["teacher.x"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "fmlm_star.ckpt")
    with pytest.raises(ValueError, match="'teacher.x' belongs to no known part"):
        import_reference(tmp_path / "fmlm_star.ckpt")
    del ckpt["ema"], ckpt["state_dict"]["teacher.x"]
    torch.save(ckpt, tmp_path / "fmlm_star.ckpt")
    with pytest.raises(ValueError, match="no EMA weights"):
        import_reference(tmp_path / "fmlm_star.ckpt")
    assert import_reference(tmp_path / "fmlm_star.ckpt", weights="raw").weights == "raw"


class WritesMarker:
    """A pickle payload that would create a file if it were ever executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker"
    path = tmp_path / "fmlm_star.ckpt"
    payload = {"state_dict": {}, "ema": WritesMarker(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError) as err:
        load_reference_file(path)
    message = str(err.value)
    assert "\n" not in message and "refused" in message and "open" in message, message
    assert not marker.exists()
    assert main(["import", str(path), "--out", str(tmp_path / "out")]) == 2
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_refused_pickle_prints_no_torch_warning(tmp_path):
    import warnings

    path = tmp_path / "fmlm_star.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": {}, "ema": WritesMarker(tmp_path / "marker")}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="refused"):
            load_reference_file(path)
    assert [str(w.message) for w in caught] == []


def test_not_a_checkpoint_is_one_line(tmp_path):
    (tmp_path / "fmlm_star.ckpt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint|refused"):
        load_reference_file(tmp_path / "fmlm_star.ckpt")


def reference_rotary(x, angles):
    """The reference convention, stated independently: rotate adjacent pairs (2j, 2j+1) by angle j."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


def test_permuted_channels_give_the_reference_attention_scores():
    torch.manual_seed(0)
    n, h = 12, 16
    q, k = torch.randn(n, h, dtype=torch.float64), torch.randn(n, h, dtype=torch.float64)
    cos, sin = rotary_tables(n, h)
    angles = torch.atan2(sin.double(), cos.double())
    ref = reference_rotary(q, angles) @ reference_rotary(k, angles).T
    perm = rotary_permutation(h)
    ours = apply_rotary(q[:, perm], cos.double(), sin.double()) @ apply_rotary(k[:, perm], cos.double(), sin.double()).T
    assert torch.allclose(ours, ref, atol=1e-10)
    unpermuted = apply_rotary(q, cos.double(), sin.double()) @ apply_rotary(k, cos.double(), sin.double()).T
    assert not torch.allclose(unpermuted, ref, atol=1e-3)  # the permutation is what makes them agree


def test_import_writes_a_model_folder_that_round_trips_and_samples(tmp_path, fmlm_star):
    out = tmp_path / "fmlm-star"
    assert main(["import", str(fmlm_star), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "README.md", "tokenizer"}
    info = read_info(out)
    assert info.stage == "flow-map" and info.encoder == "gpt2-large" and info.flow.lam == 2.0
    assert set(info.samplers) == {"1", "2", "4"} and info.samplers["2"]["gamma"] == 0.75
    assert len(info.source["sha256"]) == 64 and info.source["file"] == "fmlm_star.ckpt"
    card = (out / "README.md").read_text()
    assert info.source["sha256"] in card and "FMLM*" in card
    loaded = load_model(out)
    ref = import_reference(fmlm_star)
    for name, tensor in ref.state.items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    z = torch.randn(2, 5, 8)
    assert torch.equal(loaded.model(z, torch.full((2,), 0.7), s=torch.full((2,), 0.3)),
                       load_model(out).model(z, torch.full((2,), 0.7), s=torch.full((2,), 0.3)))
    samples = tmp_path / "s.jsonl"
    code = main(["sample", "--model", str(out), "--steps", "1", "--n", "3", "--length", "6", "--device", "cpu",
                 "--out", str(samples), "batch_size=2"])
    assert code == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2] and all(r["nfe"] == 2 for r in rows)
    assert all(isinstance(r["text"], str) for r in rows)
    # a second import into the same folder is refused, --overwrite replaces it
    assert main(["import", str(fmlm_star), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert main(["import", str(fmlm_star), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--overwrite"]) == 0


def test_sampler_must_fit_the_stage(tmp_path, fmlm_star, capsys):
    out = tmp_path / "m"
    assert main(["import", str(fmlm_star), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    args = ["sample", "--model", str(out), "--n", "1", "--length", "4", "--device", "cpu", "--out",
            str(tmp_path / "s.jsonl")]
    assert main(args + ["kind=sde"]) == 2
    assert "needs one of ['flow_map', 'ctm']" in capsys.readouterr().err
    assert main(args[:-2] + ["--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_hub_ids_need_the_hub(monkeypatch, tmp_path, fmlm_star):
    import fmlm.data.hub

    monkeypatch.setattr(fmlm.data.hub, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(ValueError, match="hub is unreachable") as err:
        load_model("someone/fmlm-star")
    assert "\n" not in str(err.value)
    out = tmp_path / "m"
    main(["import", str(fmlm_star), "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    monkeypatch.setattr(fmlm.data.hub, "hub_reachable", lambda *a, **k: True)
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, revision=None, allow_patterns=None: calls.append((repo, allow_patterns)) or str(out))
    assert load_model("someone/fmlm-star").info.stage == "flow-map"
    assert calls[0][0] == "someone/fmlm-star" and "model.safetensors" in calls[0][1]
    with pytest.raises(ValueError, match="not a model folder"):
        load_model(str(tmp_path / "missing"))


def test_a_loaded_model_folder_generates_texts_in_one_line(tmp_path, fmlm_star):
    out = tmp_path / "fmlm-star"
    assert main(["import", str(fmlm_star), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    model = load_model(out)
    texts = model.generate(n=3, steps=1, length=6)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert model.generate(n=2, steps=1, length=6) == texts[:2]  # sample i does not depend on n
    with pytest.raises(ValueError, match="generate\\(seed="):
        model.generate(n=1, steps=1, overrides=["seed=3"])
