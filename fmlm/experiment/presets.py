"""The named configurations of the main job.

- ``embedded``: the offline default. Real text shipped in PyPI packages (Wikipedia and news from
  gensim's test data), the bundled all-MiniLM-L6-v2 encoder, SmolLM2-135M as evaluator, a small
  network, sized to finish on a 2-core CPU in under 45 minutes.
- ``quick``: the same pipeline on a tiny budget (a smoke run of every stage and every sampler;
  numbers are not meaningful).
- ``exact``: the exact testbed: rows drawn from a known language, scored under its exact law (no
  evaluator model), three training seeds of every stage, sized for 15 minutes on 2 idle cores.
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
from fmlm.math.flow import FlowConfig
from fmlm.synthetic.hmm_language import LanguageSpec
from fmlm.train.precision import cpu_training_precision
from fmlm.train.schedule import TrainConfig
from fmlm.train.optim import OptimConfig


BF16_STEP_FACTOR = 2
"""The embedded preset's training steps on a CPU with bf16 matrix units: bf16 autocast trains its network
step about 2.7x faster there (``fmlm.train.precision``), so twice the steps fit in less time than the fp32
steps take on the same CPU (what is not sped up, the optimiser, EMA and data, keeps a margin)."""


TEACHER_DECODER_PROB = 0.2  # the teacher's steps that train the latent readout (decoder steps)
DECODER_P_MEAN = 0.8  # decoder steps' a = sigmoid(N(p_mean, 0.8)) in z_dec = a x0 + (1 - a) eps


def _cpu_train(steps: int, batch: int, lr: float = 0.0, log_every: int = 10,
               precision: str = "fp32") -> TrainConfig:
    """AdamW, no warm-up, EMA 0.999 with warm-up; ``lr = 0`` means the paper's ``0.001 x batch / 256``."""
    # AdamW, not Muon: torch.optim.Muon runs its Newton-Schulz iteration in bfloat16, which CPUs
    # without bf16 units emulate (measured 6.3 s per step for a 4 x 256 network vs 0.07 s for AdamW).
    return TrainConfig(
        global_batch=batch, max_steps=steps, log_every=log_every, checkpoint_every=max(steps // 4, 1),
        precision=precision,
        optim=OptimConfig(optimizer="adamw", lr=lr, warmup_epochs=0.0, ema_decay=0.999, ema_warmup=True),
    )


EMBEDDED_STEPS = (500, 100, 250)
"""Training steps of the embedded preset's teacher, fixed-point and flow-map stages in fp32 (times
``BF16_STEP_FACTOR`` where bf16 autocast runs)."""


def embedded() -> ExperimentConfig:
    """The offline CPU default (see the module docstring)."""
    precision = cpu_training_precision()  # bf16 on CPUs with AMX or AVX512-BF16, fp32 elsewhere
    teacher_steps, fp_steps, fm_steps = (n * (BF16_STEP_FACTOR if precision == "bf16" else 1) for n in EMBEDDED_STEPS)
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
        # The decoder reads the latent (docs/departures.md C9): a linear readout fitted to the training
        # latents and the encoder's token embeddings before the teacher trains, trained further on the
        # teacher's decoder steps and reused by the students (decoder probability 0 there).
        network=NetworkConfig(preset="cpu-small", depth=4, width=256, heads=4, bottleneck=64, phase_placement="time",
                              decoder_input="latent"),
        teacher=TeacherConfig(decoder=DecoderConfig(prob=TEACHER_DECODER_PROB, noise_scale=1.0,
                                                    p_mean=DECODER_P_MEAN)),
        fixed_point=FixedPointConfig(iterations=10, decoder=DecoderConfig(prob=0.0, noise_scale=1.0)),
        flow_map=FlowMapConfig(decoder=DecoderConfig(prob=0.0, noise_scale=1.0)),
        # The teacher trains from scratch at a raised lr; the two distillation stages start from trained
        # weights and use the paper's batch-scaled lr (0.001 x 32 / 256 = 1.25e-4). At 1e-3, 100 stage-2
        # steps moved ELF*'s one forward away from s* (RMS 0.0750 vs the teacher's F(0) 0.0703); at
        # 1.25e-4 it came to 0.0477.
        # Batch 64 rows of 32 tokens; the distillation lr stays 1.25e-4 (not rescaled with the row count).
        train_teacher=_cpu_train(teacher_steps, 64, 2e-3, precision=precision),
        train_fixed_point=_cpu_train(fp_steps, 64, 1.25e-4, precision=precision),
        train_flow_map=_cpu_train(fm_steps, 64, 1.25e-4, precision=precision),
        # ODE references at 32 steps only, every sweep (w, gamma, churn, self-conditioning, ODE references, decoder
        # reconstructions) on 64 samples, cold start up to N = 4: the run measured 2656 s with 128 rows per
        # decoder (~22 s each), 2500 s with the 4-step ODEs (47 s) and no decoders, and 2723 s with the
        # self-conditioning sweep and ODEs on 128 samples and N = 8 (65 evaluations per sample) as well.
        # Every headline setting on 3 sampling seeds (issue 24: one seed gave verdicts at the noise floor; the
        # report resolves a comparison only on >= 3 seeds a side); the sweeps stay on validation seed 1000.
        # The headline sampling (not the sweeps) takes 3x its one-seed time: `make run` from an empty cache measured
        # 78.9 min in fp32 on 2 AVX2 cores (2026-12-08, evaluation 1711 s of it), over the 45-minute aim.
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
        network=NetworkConfig(preset="tiny", phase_placement="time", decoder_input="latent"),
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


def exact() -> ExperimentConfig:
    """The exact testbed: a known language (``fmlm.synthetic.hmm_language``), scored under its law, three
    training seeds of every stage; sized for 15 minutes on 2 idle cores (docs/results.md, the exact testbed)."""
    return ExperimentConfig(
        preset="exact",
        data=DataConfig(source="exact", encoder="codebook", row_len=32, max_train_rows=8192, max_val_rows=512,
                        cache_dtype="float32"),
        # Successor bonus 1.0 (the default 2.5 was not learnable in the budget: the tiny teacher's 32-step Euler
        # samples stayed at excess NLL 0.86 after 1600 steps, against 0.40 at 1.0 after 1200; docs/results.md).
        language=LanguageSpec(succ=1.0),
        training_seeds=(0, 1, 2),
        # Time law centred at t = 0.5 (the paper's p_mean = -1.5 crowds training and the samplers' grids at the
        # noisy end): the 16-dimensional codebook's tokens become identifiable between t = 0.5 and 0.8, and the
        # exact denoiser sampled by 32 Euler steps reaches excess NLL 0.048 on the centred grid, 0.447 on the
        # paper's (verify/test_exact_sampler_floor.py).
        flow=FlowConfig(p_mean=0.0),
        # The "tiny" network (depth 2, width 64): on the shared 2-core machine a teacher step took 0.5 s (depth 3
        # at width 96: 1.2 s), and three seeds of five stages have to fit the budget.
        network=NetworkConfig(preset="tiny", phase_placement="time"),
        teacher=TeacherConfig(decoder=DecoderConfig(prob=0.2, noise_scale=1.0)),
        fixed_point=FixedPointConfig(iterations=6, decoder=DecoderConfig(prob=0.1, noise_scale=1.0)),
        flow_map=FlowMapConfig(decoder=DecoderConfig(prob=0.1, noise_scale=1.0)),
        train_teacher=_cpu_train(1000, 64, 3e-3, log_every=50),
        train_fixed_point=_cpu_train(60, 64, 5e-4, log_every=20),
        train_flow_map=_cpu_train(100, 64, 5e-4, log_every=20),
        # w = 1 is the language's own law; the sweeps may pick another on the three validation seeds (a sweep
        # point replaces the preset's value only when resolved better, which one seed never is). Churn 0.5: the
        # paper's 1.5 sharpens even the exact denoiser's samples (excess NLL -0.49, bigram KL 6x its floor).
        # 128 samples per headline set, 64 per sweep set; every metric sits beside true samples of the same size.
        evaluation=EvalConfig(evaluator="exact", n_samples=128, sweep_samples=64, score_batch=128, sample_batch=128,
                              validation_seeds=(1000, 1001, 1002), churn=0.5,
                              max_tokens=64, teacher_w=1.0, flow_map_w=1.0, w_sweep=(2.0,), churn_sweep=(0.2, 1.5),
                              gamma_sweep=(0.0,), sc_sweep_steps=8, fp_iterations=(1, 4), ode_steps=(32,),
                              fixed_point_rows=64),
    )


PRESETS = {"embedded": embedded, "quick": quick, "paper": paper, "exact": exact}


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
