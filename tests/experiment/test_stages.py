"""Stage wiring: each distillation stage accepts only a finished checkpoint of the stage it distils,
trained on data of the same shape, and refuses anything else before training starts."""

import dataclasses

import pytest
import torch

from fmlm.nn import Denoiser, denoiser_config
from fmlm.experiment.config import NetworkConfig, StageConfig
from fmlm.experiment.stages import build_stage, check_resume
from fmlm.losses.fixed_point import FixedPointConfig
from fmlm.losses.flow_map import FlowMapConfig
from fmlm.losses.teacher import TeacherConfig
from fmlm.train import checkpoint as ckpt
from fmlm.train.optim import OptimConfig, build_optimizers

META = {"dim": 8, "vocab_size": 20, "row_len": 8}
CFG = StageConfig(network=NetworkConfig(preset="tiny"), teacher=TeacherConfig(), fixed_point=FixedPointConfig(),
                  flow_map=FlowMapConfig())  # every loss section set: builds any stage


def save(folder, stage, model, complete=True):
    meta = ckpt.CheckpointMeta(stage, 5 if complete else 2, 5, complete, {}, {})
    ckpt.save_checkpoint(folder, model, model, build_optimizers(model, OptimConfig(optimizer="adamw")), meta)
    return folder


def teacher_model(sc=True):
    return Denoiser(CFG.network.denoiser(META, self_conditioning=sc))


def test_teacher_stages_build_the_right_networks():
    sc, _ = build_stage("teacher", CFG, META, None)
    nosc, _ = build_stage("teacher-nosc", CFG, META, None)
    assert sc.config.self_conditioning and sc.config.guidance_tokens == 4
    assert not nosc.config.self_conditioning and nosc.config.guidance_tokens == 0
    assert sc.config.latent_dim == 8 and sc.config.vocab_size == 20 and sc.config.max_len == 8


def test_fixed_point_student_is_warm_started_from_the_teacher(tmp_path):
    teacher = teacher_model()
    folder = save(tmp_path / "t", "teacher", teacher)
    student, loss = build_stage("fixed-point", CFG, META, folder)
    assert student.config.phase_tokens == 4
    own = student.state_dict()
    for name, value in teacher.state_dict().items():
        assert torch.equal(own[name], value), name
    assert loss.teacher.config == teacher.config


def test_flow_map_stages_start_from_their_teachers(tmp_path):
    fp = Denoiser(dataclasses.replace(teacher_model().config, phase_tokens=4))
    student, loss = build_stage("flow-map", CFG, META, save(tmp_path / "fp", "fixed-point", fp))
    assert student.config == fp.config and loss.guided
    nosc = teacher_model(sc=False)
    student, loss = build_stage("flow-map-nosc", CFG, META, save(tmp_path / "n", "teacher-nosc", nosc))
    assert student.config == nosc.config and not loss.guided


@pytest.mark.parametrize("stage,given,match", [
    ("fixed-point", "flow-map", "is from stage 'flow-map'; expected one of \\['teacher'\\]"),
    ("flow-map", "teacher", "expected one of \\['fixed-point'\\]"),
    ("flow-map-nosc", "teacher", "expected one of \\['teacher-nosc'\\]"),
])
def test_a_checkpoint_of_the_wrong_stage_is_refused(tmp_path, stage, given, match):
    folder = save(tmp_path / "c", given, teacher_model())
    with pytest.raises(ValueError, match=match):
        build_stage(stage, CFG, META, folder)


def test_unfinished_missing_and_mismatched_teachers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unfinished"):
        build_stage("fixed-point", CFG, META, save(tmp_path / "u", "teacher", teacher_model(), complete=False))
    with pytest.raises(ValueError, match="not a checkpoint"):
        build_stage("fixed-point", CFG, META, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs the checkpoint"):
        build_stage("fixed-point", CFG, META, None)
    folder = save(tmp_path / "t", "teacher", teacher_model())
    with pytest.raises(ValueError, match="dim 8 and vocabulary 20"):
        build_stage("fixed-point", CFG, {**META, "dim": 16}, folder)
    with pytest.raises(ValueError, match="rows of 8 tokens"):
        build_stage("fixed-point", CFG, {**META, "row_len": 32}, folder)
    with pytest.raises(ValueError, match="unknown stage"):
        build_stage("stage-4", CFG, META, None)


def test_weights_of_another_architecture_are_refused(tmp_path):
    folder = save(tmp_path / "t", "teacher", teacher_model())
    wide = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=8, width=128))
    with pytest.raises(ValueError, match="does not fit this network"):
        ckpt.load_weights(wide, folder)
    with pytest.raises(ValueError, match="self-conditioned teacher|expected one of"):
        build_stage("fixed-point", CFG, META, save(tmp_path / "n", "teacher", teacher_model(sc=False)))


def test_the_frozen_teacher_is_loaded_onto_the_training_device(tmp_path, monkeypatch):
    # The training loop moves only the student; a teacher left on the CPU breaks CUDA training.
    folder = save(tmp_path / "t", "teacher", teacher_model())
    asked = []
    load = ckpt.load_denoiser
    monkeypatch.setattr(ckpt, "load_denoiser", lambda f, which, device="cpu": asked.append(device) or load(f, which))
    build_stage("fixed-point", CFG, META, folder, torch.device("cuda", 3))
    assert asked == [torch.device("cuda", 3)]


def _saved_with(tmp_path, cfg, step=5):
    from fmlm.config import to_dict

    model = teacher_model()
    meta = ckpt.CheckpointMeta("teacher", step, 5, True, to_dict(cfg), {})
    folder = tmp_path / "checkpoint"
    ckpt.save_checkpoint(folder, model, model, build_optimizers(model, OptimConfig(optimizer="adamw")), meta)
    return folder


def test_resume_accepts_the_same_settings_and_a_longer_or_quieter_run(tmp_path):
    folder = _saved_with(tmp_path, CFG)
    check_resume(folder, CFG, 5)
    train = dataclasses.replace(CFG.train, max_steps=50, log_every=7)
    check_resume(folder, dataclasses.replace(CFG, train=train), 50)
    check_resume(tmp_path / "absent", CFG, 1)  # nothing to resume


def test_resume_under_other_settings_is_refused_naming_them(tmp_path):
    folder = _saved_with(tmp_path, CFG)
    other = dataclasses.replace(CFG, train=dataclasses.replace(CFG.train, seed=9, global_batch=64))
    with pytest.raises(ValueError, match=r"other settings \(train.global_batch 512 -> 64, train.seed 0 -> 9\)"):
        check_resume(folder, other, 5)
    with pytest.raises(ValueError, match="is at step 5, past this run's 3 steps"):
        check_resume(folder, CFG, 3)
