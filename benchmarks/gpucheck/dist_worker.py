"""The training process of part 5, launched as
``torchrun --nproc_per_node 1 benchmarks/gpucheck/dist_worker.py RUN_DIR``.

It joins a process group itself (NCCL on CUDA, gloo on a CPU): ``fmlm.train.distributed.init_distributed``
joins one only for two or more processes, and with one the loop's collectives (the agreed stop
signal, the metrics window, the barriers) would then not run. It trains the preset's teacher
(``fmlm.train.loop.train``, random rows from the test suite's ``MemoryRows``) for ``--steps`` steps,
one logged line per step, each micro-batch slowed as the stop-signal test's worker does, so that a
SIGTERM arrives mid-run. The same command again resumes from the checkpoint the signal saved.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from fmlm.experiment import preset
from fmlm.losses.teacher import TeacherLoss
from fmlm.nn import Denoiser
from fmlm.train.distributed import init_distributed, shutdown
from fmlm.train.loop import train
from fmlm.train.schedule import TrainConfig
from tests.train.rows import MemoryRows
from tests.train.signal_worker import Slow


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dim", type=int, default=1280, help="latent dim (GPT-2 Large's)")
    parser.add_argument("--vocab", type=int, default=50257, help="vocabulary (GPT-2's)")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if not cuda:
        torch.set_num_threads(1)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        info = init_distributed(args.device)
        exp = preset(args.preset)
        rows = MemoryRows(n=4 * args.batch, length=args.length, dim=args.dim, vocab=args.vocab)
        torch.manual_seed(0)
        model = Denoiser(exp.network.denoiser(rows.meta, self_conditioning=True))
        cfg = TrainConfig(global_batch=args.batch, max_steps=args.steps, log_every=1, checkpoint_every=10_000,
                          optim=dataclasses.replace(exp.train_teacher.optim, warmup_epochs=0.0))
        train(model, Slow(TeacherLoss(exp.teacher, exp.flow)), rows, cfg, args.run_dir, info, stage="teacher",
              stage_config={}, data_info={}, progress=False)
        print(f"backend {dist.get_backend()}, world size {dist.get_world_size()}", file=sys.stderr, flush=True)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
