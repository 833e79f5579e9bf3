"""The stage-agnostic training loop.

It knows nothing about which stage it trains: a stage is a ``StageLoss``
(``fmlm.losses``) called as ``loss(model, batch, generator, decoder_step)``.
The loop owns data order, gradient accumulation, DDP, mixed precision,
clipping, the Muon + AdamW optimisers and their schedule, EMA, metrics,
checkpoints and resume.

Determinism (``fmlm.train.schedule``): a resumed run repeats the uninterrupted
run exactly, and N processes give the same averaged gradient as one process
accumulating the same N micro-batches. A checkpoint also keeps the metrics
averaged since the last logged step (``fmlm.train.log_window``), so the resumed
``metrics.jsonl`` equals the uninterrupted one whatever the cadences are.

Stopping: SIGTERM or SIGINT during the loop (``fmlm.train.signals``) lets the
current optimiser step finish; then every process agrees on that step, a
checkpoint is saved there, one line goes to stderr and ``TrainingInterrupted``
(exit status 128 + the signal number) is raised. Running the same command again
continues from that step.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from fmlm.losses.common import Batch, StageLoss
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo, barrier
from fmlm.train.ema import EMA
from fmlm.train.lock import FolderLock
from fmlm.train.log_window import LogWindow, truncate_metrics
from fmlm.train.optim import build_optimizers, lr_at, set_lr
from fmlm.train.precision import autocast, uses_bf16
from fmlm.train.schedule import TrainConfig, is_decoder_step, make_schedule, micro_generator, step_rows
from fmlm.train.signals import StopSignals, TrainingInterrupted, agreed_signal, signal_name


def fetch_batch(rows, indices: torch.Tensor, device: torch.device) -> Batch:
    """Gather rows ``indices`` of a ``fmlm.data.LatentRows`` dataset onto ``device``."""
    ids, x0 = rows.batch(indices.numpy())
    return Batch(ids=ids.to(device), x0=x0.to(device))


def _interrupted(signum: int, step: int, total: int, folder: Path) -> TrainingInterrupted:
    """The exception (and its one line) of a run stopped by ``signum`` after saving at ``step``."""
    return TrainingInterrupted(signum, f"stopped by {signal_name(signum)} at step {step} of {total}; "
                                       f"checkpoint saved to {folder}; run the same command again to continue")


def train(
    model: nn.Module,
    loss_fn: StageLoss,
    rows,
    cfg: TrainConfig,
    run_dir: str | Path,
    dist_info: DistInfo,
    *,
    stage: str,
    stage_config: dict[str, Any],
    data_info: dict[str, Any],
    progress: bool = True,
) -> Path:
    """Train ``model`` with ``loss_fn`` on ``rows``; resume from ``run_dir/checkpoint`` if present.

    Returns the checkpoint folder. A finished checkpoint of the same stage is
    reused as it is; one of another stage, or one whose meta.json or metrics window
    does not read, is refused before anything is written. SIGTERM / SIGINT during the
    loop save a checkpoint at the step being trained and raise ``TrainingInterrupted``
    (a ``SystemExit`` with status 128 + the signal number) after printing one line to stderr.
    A folder another live process trains in is refused (``fmlm.train.lock``) before anything is read.
    """
    with FolderLock(run_dir, dist_info.rank, "stage folder"):
        return _train(model, loss_fn, rows, cfg, Path(run_dir), dist_info, stage=stage, stage_config=stage_config,
                      data_info=data_info, progress=progress)


def _train(model: nn.Module, loss_fn: StageLoss, rows, cfg: TrainConfig, run_dir: Path, dist_info: DistInfo, *,
           stage: str, stage_config: dict[str, Any], data_info: dict[str, Any], progress: bool) -> Path:
    """``train`` with the stage folder's lock held."""
    folder = run_dir / "checkpoint"
    metrics_path = run_dir / "metrics.jsonl"
    device = dist_info.device
    sched = make_schedule(cfg, len(rows), dist_info.world_size)
    model.to(device)
    optimizers = build_optimizers(model, cfg.optim)
    ema = EMA(model, cfg.optim.ema_decay, cfg.optim.ema_warmup)
    start = 0
    window = LogWindow()
    if dist_info.is_main:
        ckpt.recover_checkpoint(folder)
    barrier()
    if (folder / "meta.json").exists():
        meta = ckpt.require_stage(folder, (stage,), complete=False)
        if meta.complete and meta.step >= sched.total_steps:
            return folder
        window = LogWindow.restore(ckpt.read_log_window(folder), dist_info.rank, dist_info.world_size,
                                   str(folder / ckpt.LOG_WINDOW_FILE))
        ckpt.load_weights(model, folder, "model")
        ckpt.load_weights(ema.module, folder, "ema")
        ckpt.load_optimizers(optimizers, folder)
        ema.updates = start = meta.step
    if dist_info.is_main:
        truncate_metrics(metrics_path, start)
    run_dir.mkdir(parents=True, exist_ok=True)
    net = model
    if dist_info.world_size > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    peak = cfg.optim.peak_lr(cfg.global_batch)
    precision = "bf16" if uses_bf16(device, cfg.precision) else "fp32"  # what ran, logged with every record
    tokens_per_step = cfg.global_batch * int(rows.meta["row_len"])

    def elapsed() -> float:
        return window.elapsed_before + time.perf_counter() - t_start

    def save(step: int) -> None:
        log_window = window.state(device, elapsed())  # a collective: every process takes part
        if dist_info.is_main:
            meta = ckpt.CheckpointMeta(stage, step, sched.total_steps, step >= sched.total_steps, stage_config, data_info)
            ckpt.save_checkpoint(folder, model, ema.module, optimizers, meta, log_window)
        barrier()

    bar = tqdm(
        total=sched.total_steps, initial=start, desc=f"train {stage}", unit="step",
        disable=not (progress and dist_info.is_main), dynamic_ncols=True,
    )
    t_start = window.started = time.perf_counter()
    model.train()
    try:
        with StopSignals() as stops:
            for step in range(start, sched.total_steps):
                lr = lr_at(step, peak, sched.warmup_steps, sched.total_steps, sched.decay_steps)
                set_lr(optimizers, lr)
                decoder_step = is_decoder_step(cfg.seed, step, loss_fn.decoder_prob)
                global_rows = step_rows(step, len(rows), cfg.global_batch, cfg.seed)
                for a in range(sched.accumulation):
                    j = dist_info.rank * sched.accumulation + a
                    batch = fetch_batch(rows, global_rows[j * sched.micro_batch : (j + 1) * sched.micro_batch], device)
                    gen = micro_generator(cfg.seed, step, j, device)
                    last = a == sched.accumulation - 1
                    sync = contextlib.nullcontext() if (last or net is model) else net.no_sync()
                    with sync:
                        with autocast(device, cfg.precision):
                            out = loss_fn(net, batch, gen, decoder_step)
                        (out.loss / sched.accumulation).backward()
                    window.add({"loss": float(out.loss.detach()), **out.metrics})
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                if not math.isfinite(float(grad_norm)):  # the same on every process: gradients are reduced
                    raise FloatingPointError(f"train {stage}: non-finite gradient at step {step + 1} "
                                             f"(loss {float(out.loss.detach()):.4g}); weights left at the last checkpoint")
                for opt in optimizers:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                ema.update(model)
                done = step + 1
                window.steps += 1
                window.timed += 1
                stop = agreed_signal(stops.received, device)  # every process stops at the same step
                if done % cfg.log_every == 0 or done == sched.total_steps:
                    now = time.perf_counter()
                    record = window.means(device)
                    record.update(
                        step=done, lr=lr, grad_norm=float(grad_norm), decoder_step=decoder_step,
                        tokens_per_s=tokens_per_step * window.timed / max(now - window.started, 1e-9),
                        elapsed_s=elapsed(), precision=precision,
                    )
                    if dist_info.is_main:
                        with metrics_path.open("a") as f:
                            f.write(json.dumps(record) + "\n")
                        bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                    window = LogWindow(elapsed_s=window.elapsed_before)
                bar.update(1)
                if stop or done % cfg.checkpoint_every == 0 or done == sched.total_steps:
                    save(done)  # a further signal meanwhile is only recorded: the save runs to its end
                if stop:
                    bar.close()
                    interrupted = _interrupted(stop, done, sched.total_steps, folder)
                    if dist_info.is_main:
                        print(interrupted.message, file=sys.stderr, flush=True)
                    raise interrupted
    finally:
        bar.close()
    return folder
