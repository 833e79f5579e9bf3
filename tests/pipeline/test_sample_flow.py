"""`python -m fmlm sample` samples a checkpoint with the flow constants it was trained with, and a device
setting that nothing would read is refused."""

import json

from fmlm.cli import main
from fmlm.config import apply_overrides
from fmlm.experiment.run import run_experiment
from tests.pipeline.conftest import tiny_paper_config


def test_a_run_trained_with_lam_3_is_sampled_with_lam_3(tmp_path, text_folder, tiny_gpt2, monkeypatch):
    cfg = apply_overrides(tiny_paper_config(tmp_path, text_folder, tiny_gpt2), ["flow.lam=3.0", "flow.p_mean=-1.0"])
    run = tmp_path / "run"
    run_experiment(cfg, run, device="cpu", progress=False, stages=("teacher",))
    import fmlm.samplers

    seen = []
    real = fmlm.samplers.generate
    monkeypatch.setattr(fmlm.samplers, "generate", lambda m, b, s, *a, **k: seen.append(s.flow) or real(m, b, s, *a, **k))
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--run-dir", str(run), "--stage", "teacher", "--n", "2", "--device", "cpu",
                 "--out", str(out), "steps=2", "batch_size=2"]) == 0
    assert [(f.lam, f.p_mean) for f in seen] == [(3.0, -1.0)]
    assert len(out.read_text().splitlines()) == 2
    assert main(["sample", "--run-dir", str(run), "--stage", "teacher", "--n", "1", "--out", str(out),
                 "flow.lam=2.0"]) == 2  # the flow is the checkpoint's, never an override
    stored = json.loads((run / "stages" / "teacher" / "checkpoint" / "meta.json").read_text())["stage_config"]
    assert stored["flow"]["lam"] == 3.0 and stored["fixed_point"] is None and stored["flow_map"] is None


def test_device_is_an_option_never_a_stage_setting(tmp_path, capsys):
    for argv in (["train", "teacher", "train_teacher.device=cuda"], ["train", "teacher", "train_teacher.progress=false"]):
        assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
        assert "unknown config key" in capsys.readouterr().err
    assert main(["train", "teacher", "device=cuda", "--run-dir", str(tmp_path / "run")]) == 2
    assert "pass --device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
