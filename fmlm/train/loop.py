"""The stage-agnostic training loop.

It knows nothing about which stage it trains: a stage is a ``StageLoss``
(``fmlm.losses``) called as ``loss(model, batch, generator, decoder_step)``.
The loop owns data order, gradient accumulation, DDP, mixed precision,
clipping, the Muon + AdamW optimisers and their schedule, EMA, metrics,
checkpoints and resume.

Determinism: step n reads the rows ``perm_e[p G : (p + 1) G]`` of the
epoch-e permutation (G the global batch); micro-batch j of that step (j runs
over processes x accumulation steps) draws its noise from a generator seeded
by (seed, n, j), and whether step n is a decoder step is a function of
(seed, n). Hence a resumed run repeats the uninterrupted run exactly, and N
processes give the same averaged gradient as one process accumulating the
same N micro-batches. A checkpoint also keeps the metrics averaged since the
last logged step (``LogWindow``), so the resumed ``metrics.jsonl`` equals the
uninterrupted one whatever ``checkpoint_every`` and ``log_every`` are.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from fmlm.config import require
from fmlm.losses.common import Batch, StageLoss
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo, barrier
from fmlm.train.ema import EMA
from fmlm.train.optim import OptimConfig, build_optimizers, lr_at, set_lr
from fmlm.train.signals import StopSignals, TrainingInterrupted, agreed_signal, signal_name


@dataclass(frozen=True)
class TrainConfig:
    """Batch sizes, length of training, precision and checkpointing of one stage."""

    global_batch: int = 512
    micro_batch: int = 0  # rows per forward per process; 0 = global_batch / world_size
    epochs: float = 5.0
    max_steps: int = 0  # > 0: stop after this many optimiser steps
    log_every: int = 20
    checkpoint_every: int = 500
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        require(self.global_batch > 0, "train.global_batch", f"must be > 0, got {self.global_batch}")
        require(self.micro_batch >= 0, "train.micro_batch", "must be >= 0")
        require(self.epochs > 0 or self.max_steps > 0, "train.epochs", "epochs or max_steps must be > 0")
        require(self.max_steps >= 0, "train.max_steps", "must be >= 0")
        require(self.log_every > 0, "train.log_every", "must be > 0")
        require(self.checkpoint_every > 0, "train.checkpoint_every", "must be > 0")
        require(self.seed >= 0, "train.seed", f"must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class Schedule:
    """Derived step counts of a run."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    decay_steps: int
    micro_batch: int
    accumulation: int


def make_schedule(cfg: TrainConfig, n_rows: int, world_size: int) -> Schedule:
    """Steps per epoch, total and warm-up steps, micro-batch and accumulation for ``n_rows`` rows."""
    if cfg.global_batch % world_size:
        raise ValueError(f"train.global_batch={cfg.global_batch} is not divisible by {world_size} processes")
    per_rank = cfg.global_batch // world_size
    micro = cfg.micro_batch or per_rank
    if per_rank % micro:
        raise ValueError(f"train.micro_batch={micro} does not divide the per-process batch {per_rank}")
    spe = n_rows // cfg.global_batch
    if spe == 0:
        raise ValueError(f"the training split has {n_rows} rows, fewer than train.global_batch={cfg.global_batch}")
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * spe)
    warmup = round(cfg.optim.warmup_epochs * spe)
    decay = round(cfg.optim.decay_fraction * total)
    return Schedule(spe, total, warmup, decay, micro, per_rank // micro)


def step_rows(step: int, n_rows: int, global_batch: int, seed: int) -> torch.Tensor:
    """Row indices of optimiser step ``step``: a slice of the epoch's seeded permutation."""
    spe = n_rows // global_batch
    epoch, pos = divmod(step, spe)
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[pos * global_batch : (pos + 1) * global_batch]


def micro_generator(seed: int, step: int, micro_index: int, device: torch.device) -> torch.Generator:
    """The noise generator of micro-batch ``micro_index`` of step ``step``."""
    state = int(np.random.SeedSequence([seed, step, micro_index]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def is_decoder_step(seed: int, step: int, prob: float) -> bool:
    """Whether step ``step`` trains the decoder branch (same answer on every process)."""
    return bool(np.random.default_rng([seed, step, 7]).random() < prob)


def fetch_batch(rows, indices: torch.Tensor, device: torch.device) -> Batch:
    """Gather rows ``indices`` of a ``fmlm.data.LatentRows`` dataset onto ``device``."""
    ids, x0 = rows.batch(indices.numpy())
    return Batch(ids=ids.to(device), x0=x0.to(device))


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _logged_step(line: str) -> int | None:
    """The step of a metrics line; None for a line cut short by a killed process."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the logged lines up to ``last_step``, the step training restarts from (0: none).

    Lines past it were written after the checkpoint (they are logged again), and so is a
    partial last line of a killed process."""
    if not path.exists():
        return
    steps = [(line, _logged_step(line)) for line in path.read_text().splitlines()]
    keep = [line for line, step in steps if step is not None and step <= last_step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    tmp.replace(path)


def _all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of ``value`` over all processes (identity without a process group)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def _all_gather(value: torch.Tensor) -> list[torch.Tensor]:
    """``value`` of every process, by rank (``[value]`` without a process group)."""
    if not dist.is_initialized():
        return [value]
    out = [torch.empty_like(value) for _ in range(dist.get_world_size())]
    dist.all_gather(out, value)
    return out


def _share(rows: list[list], rank: int, world_size: int) -> list:
    """Process ``rank``'s row of a table saved with one row per process: its own row when the table
    has ``world_size`` rows; otherwise process 0 takes the column sums and the others zeros."""
    if len(rows) == world_size:
        return rows[rank]
    columns = [sum(column) for column in zip(*rows)]
    return columns if rank == 0 else [0 * c for c in columns]


class LogWindow:
    """The metrics of the optimiser steps since the last logged one, on this process.

    Per key a running sum (added in step order) and a count; the logged value of a key is the sum
    over all processes divided by the count over all processes. ``state`` / ``restore`` carry a
    window through a checkpoint: restored under the same world size, each process continues its own
    sums, so the resumed log equals the uninterrupted one bit for bit."""

    def __init__(self, steps: int = 0, elapsed_s: float = 0.0) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps = steps  # optimiser steps in the window, restored ones included
        self.timed = 0  # steps since ``started`` (for the throughput)
        self.started = time.perf_counter()
        self.elapsed_before = elapsed_s  # training time of the calls before this one (restored)

    def add(self, values: dict[str, float]) -> None:
        """Add one micro-batch's metrics."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def _local(self, device: torch.device) -> torch.Tensor:
        values = [*self.sums.values(), *map(float, self.counts.values())]
        return torch.tensor(values, dtype=torch.float64, device=device)

    def means(self, device: torch.device) -> dict[str, float]:
        """Per key the mean over every process's values (one all-reduce; all processes hold the same keys)."""
        total = _all_reduce_sum(self._local(device)).tolist()
        n = len(self.sums)
        return {key: total[i] / total[n + i] for i, key in enumerate(self.sums)}

    def state(self, device: torch.device, elapsed_s: float) -> dict[str, Any]:
        """The window as a JSON object, with the sums and counts of every process (a collective)."""
        n = len(self.sums)
        rows = [row.tolist() for row in _all_gather(self._local(device))] if n else []
        return {"keys": list(self.sums), "steps": self.steps, "elapsed_s": elapsed_s,
                "sums": [row[:n] for row in rows], "counts": [[int(c) for c in row[n:]] for row in rows]}

    @classmethod
    def restore(cls, state: dict[str, Any], rank: int, world_size: int, where: str) -> LogWindow:
        """The window ``state`` describes ({}: an empty one). Under the world size that saved it each
        process takes its own sums; under another, process 0 takes them all (the same means up to
        rounding). A malformed state is a one-line ValueError naming ``where``."""
        if not state:
            return cls()
        try:
            keys, sums, counts = list(state["keys"]), state["sums"], state["counts"]
            window = cls(int(state["steps"]), float(state["elapsed_s"]))
            if not all(len(row) == len(keys) for row in [*sums, *counts]) or len(sums) != len(counts):
                raise ValueError("rows of unequal length")
            window.sums = {str(k): float(v) for k, v in zip(keys, _share(sums, rank, world_size))}
            window.counts = {str(k): int(c) for k, c in zip(keys, _share(counts, rank, world_size))}
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{where}: not a metrics window saved by this loop ({err})".splitlines()[0]) from None
        return window


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
    """
    run_dir = Path(run_dir)
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
        _truncate_metrics(metrics_path, start)
    run_dir.mkdir(parents=True, exist_ok=True)
    net = model
    if dist_info.world_size > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    peak = cfg.optim.peak_lr(cfg.global_batch)
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
                        with _autocast(device, cfg.precision):
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
                        elapsed_s=elapsed(),
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
