import json

import pytest
import torch

from fmlm.math.flow import FlowConfig
from fmlm.losses.common import DecoderConfig
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.nn import Denoiser, denoiser_config
from fmlm.train.distributed import DistInfo
from fmlm.train.loop import train
from fmlm.train.schedule import TrainConfig, make_schedule, step_rows
from fmlm.train.optim import OptimConfig
from fmlm.train import checkpoint as ckpt

from tests.train.rows import MemoryRows

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _setup(tmp_path, name, max_steps, decoder_prob=0.3):
    rows = MemoryRows(n=64, length=8, dim=8, vocab=20)
    torch.manual_seed(0)
    model = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=8))
    loss = TeacherLoss(TeacherConfig(), FlowConfig())
    loss.decoder_prob = decoder_prob
    cfg = TrainConfig(
        global_batch=8, micro_batch=4, max_steps=max_steps, log_every=1, checkpoint_every=3,
        optim=OptimConfig(lr=1e-3, warmup_epochs=0.25, ema_decay=0.9, ema_warmup=True),
    )
    return model, loss, rows, cfg, tmp_path / name


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_schedule_and_row_order():
    cfg = TrainConfig(global_batch=8, micro_batch=2, epochs=2.0)
    s = make_schedule(cfg, 70, world_size=2)
    assert (s.steps_per_epoch, s.total_steps, s.accumulation, s.micro_batch) == (8, 16, 2, 2)
    rows = step_rows(3, 70, 8, seed=0)
    assert len(set(rows.tolist())) == 8
    assert torch.equal(rows, step_rows(3, 70, 8, seed=0))
    epoch = torch.cat([step_rows(k, 70, 8, seed=0) for k in range(8)])
    assert len(set(epoch.tolist())) == 64  # no row twice within an epoch


def test_resume_reproduces_uninterrupted_losses(tmp_path):
    model, loss, rows, cfg, full = _setup(tmp_path, "full", 6)
    train(model, loss, rows, cfg, full, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    # Interrupted run: stop at step 3 (a checkpoint), then continue in a fresh process state.
    model, loss, rows, cfg3, part = _setup(tmp_path, "part", 3)
    train(model, loss, rows, cfg3, part, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    model, loss, rows, cfg, _ = _setup(tmp_path, "part", 6)
    torch.manual_seed(123)  # a different global RNG state must not matter
    train(model, loss, rows, cfg, part, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    assert _losses(full) == _losses(part)
    a, b = ckpt.load_denoiser(full / "checkpoint"), ckpt.load_denoiser(part / "checkpoint")
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n


def test_finished_checkpoint_is_reused_and_other_stage_refused(tmp_path):
    model, loss, rows, cfg, run = _setup(tmp_path, "run", 2)
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    before = (run / "checkpoint" / "model.safetensors").stat().st_mtime_ns
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    assert (run / "checkpoint" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="stage 'teacher'"):
        train(model, loss, rows, cfg, run, CPU, stage="fixed-point", stage_config={}, data_info={}, progress=False)


def test_training_reduces_the_loss(tmp_path):
    # Decoder steps only, with little decoder noise: cross-entropy starts at ~ln(20) and must fall.
    model, _, rows, cfg, run = _setup(tmp_path, "run", 30)
    loss = TeacherLoss(TeacherConfig(decoder=DecoderConfig(prob=1.0, noise_scale=0.1)), FlowConfig())
    cfg = TrainConfig(global_batch=16, max_steps=30, log_every=1, checkpoint_every=30,
                      optim=OptimConfig(lr=3e-3, warmup_epochs=0.0))
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    losses = _losses(run)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def _step(folder):
    return ckpt.read_meta(folder).step


def test_a_save_cut_between_its_renames_is_recovered(tmp_path):
    model, loss, rows, cfg, run = _setup(tmp_path, "run", 6)
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    folder = run / "checkpoint"
    old, tmp = folder.with_name("checkpoint.old"), folder.with_name("checkpoint.tmp")
    import shutil

    # Cut after "checkpoint -> checkpoint.old" and before "checkpoint.tmp -> checkpoint": tmp is the newer one.
    shutil.copytree(folder, tmp)
    folder.rename(old)
    ckpt.recover_checkpoint(folder)
    assert _step(folder) == 6 and not old.exists() and not tmp.exists()
    # Only the older one left: it is put back.
    folder.rename(old)
    ckpt.recover_checkpoint(folder)
    assert _step(folder) == 6 and not old.exists()
    # A lone .tmp is a first save cut while writing: nothing to recover.
    folder.rename(tmp)
    ckpt.recover_checkpoint(folder)
    assert not folder.exists() and tmp.exists()


def test_a_restart_from_step_0_starts_a_new_metrics_file(tmp_path):
    model, loss, rows, cfg, run = _setup(tmp_path, "run", 2)
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 9.0}\n')  # no checkpoint
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert 9.0 not in _losses(run)


def test_resume_drops_a_metrics_line_cut_short(tmp_path):
    model, loss, rows, cfg3, run = _setup(tmp_path, "run", 3)
    train(model, loss, rows, cfg3, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 4, "lo')  # a process killed mid-append
    model, loss, rows, cfg, _ = _setup(tmp_path, "run", 6)
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="train.seed: must be >= 0"):
        TrainConfig(seed=-1)


def test_a_non_finite_gradient_stops_training_before_the_weights_change(tmp_path):
    model, loss, rows, cfg, run = _setup(tmp_path, "run", 6)
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)  # checkpoint at 6
    saved = ckpt.load_denoiser(run / "checkpoint", "model").state_dict()

    def poisoned(model, batch, generator, decoder_step):
        out = loss(model, batch, generator, decoder_step)
        return type(out)(out.loss * float("nan"), out.metrics)

    poisoned.decoder_prob = loss.decoder_prob
    longer = TrainConfig(**{**cfg.__dict__, "max_steps": 9})
    with pytest.raises(FloatingPointError, match="train teacher: non-finite gradient at step 7"):
        train(model, poisoned, rows, longer, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    after = ckpt.load_denoiser(run / "checkpoint", "model").state_dict()
    assert all(torch.equal(saved[k], after[k]) for k in saved)
    assert all(torch.isfinite(p).all() for p in model.parameters())
