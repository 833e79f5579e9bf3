"""The named configurations of the main job.

- ``embedded``: the offline default. Real text shipped in PyPI packages (Wikipedia and news from
  gensim's test data), the bundled all-MiniLM-L6-v2 encoder, SmolLM2-135M as evaluator, a small
  network, sized to finish on a 2-core CPU in under 45 minutes.
- ``quick``: the same pipeline on a tiny budget (a smoke run of every stage and every sampler;
  numbers are not meaningful).
- ``paper``: OpenWebText, GPT-2 Large encoder and evaluator, ELF-B, 5 epochs per stage at global
  batch 512 (docs/method.md section 10); meant for ``torchrun`` on 8 GPUs and a machine that can
  reach the Hugging Face hub.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fmlm.config import ConfigError, from_dict
from fmlm.data import DataConfig
from fmlm.experiment.config import EvalConfig, ExperimentConfig, NetworkConfig, upgrade_experiment
from fmlm.experiment.run_folder import EXPERIMENT_FILE
from fmlm.files import read_json_dict
from fmlm.losses.common import DecoderConfig
from fmlm.losses.fixed_point import FixedPointConfig
from fmlm.losses.flow_map import FlowMapConfig
from fmlm.losses.teacher import TeacherConfig
from fmlm.train.schedule import TrainConfig
from fmlm.train.optim import OptimConfig


def _cpu_train(steps: int, batch: int, lr: float = 0.0, log_every: int = 10) -> TrainConfig:
    """AdamW, fp32, no warm-up, EMA 0.999 with warm-up; ``lr = 0`` means the paper's ``0.001 x batch / 256``."""
    # AdamW, not Muon: torch.optim.Muon runs its Newton-Schulz iteration in bfloat16, which CPUs
    # without bf16 units emulate (measured 6.3 s per step for a 4 x 256 network vs 0.07 s for AdamW).
    return TrainConfig(
        global_batch=batch, max_steps=steps, log_every=log_every, checkpoint_every=max(steps // 4, 1),
        precision="fp32",
        optim=OptimConfig(optimizer="adamw", lr=lr, warmup_epochs=0.0, ema_decay=0.999, ema_warmup=True),
    )


def embedded() -> ExperimentConfig:
    """The offline CPU default (see the module docstring)."""
    return ExperimentConfig(
        preset="embedded",
        # Wikipedia + news; the King James Bible part is left out (archaic English, likely memorised
        # by the evaluator, and 63% of the embedded tokens).
        # Rows of 32 tokens, 16,384 of them, batch 64 (the tokens of 8,192 rows of 64 at batch 32): the
        # embedded study's winner (docs/results.md section 10; MAUVE 0.0109 against 0.0057 for rows of 64).
        data=DataConfig(source="gensim-wiki+gensim-lee", encoder="minilm", row_len=32, max_train_rows=16384,
                        max_val_rows=256, stats_rows=256),
        # Phase bank added onto the time tokens: an exact warm start (separate zero tokens moved the
        # student's output off the teacher's, and 100 CPU steps did not win it back).
        network=NetworkConfig(preset="cpu-small", depth=4, width=256, heads=4, bottleneck=64, phase_placement="time"),
        # Decoder noise 1.0 instead of the paper's 5.0: with ~100 decoder steps on a CPU budget the
        # decoder reached 23% token accuracy on clean held-out latents after 60 steps at noise 5.0 and
        # 47% at noise 1.0 (and a 25% token subset, 25%). Probabilities as in the paper.
        teacher=TeacherConfig(decoder=DecoderConfig(prob=0.2, noise_scale=1.0)),
        fixed_point=FixedPointConfig(iterations=10, decoder=DecoderConfig(prob=0.1, noise_scale=1.0)),
        flow_map=FlowMapConfig(decoder=DecoderConfig(prob=0.1, noise_scale=1.0)),
        # The teacher trains from scratch at a raised lr; the two distillation stages start from trained
        # weights and use the paper's batch-scaled lr (0.001 x 32 / 256 = 1.25e-4). At 1e-3, 100 stage-2
        # steps moved ELF*'s one forward away from s* (RMS 0.0750 vs the teacher's F(0) 0.0703); at
        # 1.25e-4 it came to 0.0477.
        # Batch 64 rows of 32 tokens; the distillation lr stays 1.25e-4 (not rescaled with the row count).
        train_teacher=_cpu_train(500, 64, 2e-3),
        train_fixed_point=_cpu_train(100, 64, 1.25e-4),
        train_flow_map=_cpu_train(250, 64, 1.25e-4),
        # ODE references at 32 steps only, every sweep (w, gamma, churn, self-conditioning, ODE references, decoder
        # reconstructions) on 64 samples, cold start up to N = 4: the run measured 2656 s with 128 rows per
        # decoder (~22 s each), 2500 s with the 4-step ODEs (47 s) and no decoders, and 2723 s with the
        # self-conditioning sweep and ODEs on 128 samples and N = 8 (65 evaluations per sample) as well.
        # Every headline setting on 3 sampling seeds (issue 24: one seed gave verdicts at the noise floor; the
        # report resolves a comparison only on >= 3 seeds a side); the sweeps stay on validation seed 1000.
        # The headline sampling (not the sweeps) takes 3x its one-seed time.
        evaluation=EvalConfig(n_samples=128, max_tokens=256, sc_sweep_steps=8, sweep_samples=64, ode_steps=(32,),
                              fp_iterations=(1, 2, 4), seeds=(0, 1, 2)),
    )


def quick() -> ExperimentConfig:
    """Every stage and sampler on a tiny budget (smoke test; numbers are not meaningful)."""
    base = embedded()
    return dataclasses.replace(
        base,
        preset="quick",
        data=dataclasses.replace(base.data, max_train_rows=512, max_val_rows=64, stats_rows=128),
        network=NetworkConfig(preset="tiny", phase_placement="time"),
        fixed_point=FixedPointConfig(iterations=4, snap_tail=1, decoder=base.fixed_point.decoder),
        train_teacher=_cpu_train(12, 16, 2e-3, log_every=4),
        train_fixed_point=_cpu_train(6, 16, log_every=2),
        train_flow_map=_cpu_train(6, 16, log_every=2),
        evaluation=EvalConfig(n_samples=8, score_batch=8, sample_batch=8, max_tokens=128, teacher_steps=8,
                              fp_iterations=(1, 2), sc_sweep_steps=4, w_sweep=(1.0,), gamma_sweep=(0.0,),
                              churn_sweep=(0.5,), ode_steps=(4,), fixed_point_rows=8),
    )


def paper() -> ExperimentConfig:
    """OpenWebText / GPT-2 Large / ELF-B, 5 epochs per stage, global batch 512 (docs/method.md section 10)."""
    gpu_train = TrainConfig(global_batch=512, epochs=5.0, log_every=100, checkpoint_every=2000, precision="bf16",
                            optim=OptimConfig(base_lr=0.001, warmup_epochs=0.5, ema_decay=0.9999))
    return ExperimentConfig(
        preset="paper",
        data=DataConfig(source="hf:openwebtext", encoder="gpt2-large", row_len=1024, val_fraction=0.0005,
                        stats_rows=50_000, encoder_dtype="bfloat16", cache_latents=False),
        network=NetworkConfig(preset="elf-b"),
        teacher=TeacherConfig(decoder=DecoderConfig(prob=0.2)),
        train_teacher=gpu_train,
        train_fixed_point=gpu_train,
        train_flow_map=gpu_train,
        evaluation=EvalConfig(evaluator="gpt2-large", n_samples=1024, score_batch=32, sample_batch=64,
                              max_tokens=1024),
    )


PRESETS = {"embedded": embedded, "quick": quick, "paper": paper}


def preset(name: str) -> ExperimentConfig:
    """The named preset; unknown names are a one-line ValueError listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The configuration stored in a run folder's ``experiment.json`` (older layouts upgraded)."""
    path = Path(run_dir) / EXPERIMENT_FILE
    try:
        return from_dict(ExperimentConfig, upgrade_experiment(read_json_dict(path), str(path)))
    except ConfigError as err:
        raise ValueError(f"{path}: {err}") from None
