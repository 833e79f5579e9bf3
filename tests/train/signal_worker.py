"""Run by test_stop_signals.py as a real training process: ``python -m tests.train.signal_worker RUN_DIR``.

Trains the tiny teacher of ``make_run`` into RUN_DIR, slowed down by ``SLEEP_S`` per micro-batch so
the test can signal it mid-run. Launched with RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set it
joins a gloo process group (each process then takes half of every step).
"""

import sys
import time
from pathlib import Path

import torch

from fmlm.math.flow import FlowConfig
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.nn import Denoiser, denoiser_config
from fmlm.train.distributed import init_distributed
from fmlm.train.loop import train
from fmlm.train.schedule import TrainConfig
from fmlm.train.optim import OptimConfig
from tests.train.rows import MemoryRows

STEPS = 40
SLEEP_S = 0.05


def make_run(max_steps: int = STEPS):
    """The model, loss, rows and config of the signalled run (and of its uninterrupted twin)."""
    torch.manual_seed(0)
    model = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=8))
    loss = TeacherLoss(TeacherConfig(), FlowConfig())
    loss.decoder_prob = 0.3
    cfg = TrainConfig(
        global_batch=8, micro_batch=4, max_steps=max_steps, log_every=2, checkpoint_every=10_000,
        optim=OptimConfig(lr=1e-3, warmup_epochs=0.25, ema_decay=0.9, ema_warmup=True),
    )
    return model, loss, MemoryRows(n=64, length=8, dim=8, vocab=20), cfg


class Slow:
    """``loss`` that sleeps ``SLEEP_S`` after each micro-batch (results unchanged)."""

    def __init__(self, loss):
        self.loss, self.decoder_prob = loss, loss.decoder_prob

    def __call__(self, *args):
        out = self.loss(*args)
        time.sleep(SLEEP_S)
        return out


def main(run_dir: Path) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    model, loss, rows, cfg = make_run()
    train(model, Slow(loss), rows, cfg, run_dir, info, stage="teacher", stage_config={}, data_info={}, progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
