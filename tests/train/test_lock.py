"""One process per stage folder: a second training is refused in one line naming the holder, a lock left
by a dead process never blocks, and a resumed metrics.jsonl never holds a step twice."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from fmlm.train.lock import FolderInUse, FolderLock, lock_path
from fmlm.train.log_window import truncate_metrics
from fmlm.train.loop import train
from tests.train.test_loop import CPU, _setup

HOLD = textwrap.dedent("""
    import sys, time
    from fmlm.train.lock import FolderLock
    with FolderLock(sys.argv[1]):
        print("locked", flush=True)
        if sys.argv[2] == "hold":
            time.sleep(60)
""")


def _holder(folder, mode):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_training_in_a_held_folder_is_refused_naming_the_holder(tmp_path):
    model, loss, rows, cfg, run = _setup(tmp_path, "run", 2)
    proc = _holder(run, "hold")
    try:
        with pytest.raises(FolderInUse) as err:
            train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    finally:
        proc.kill()
        proc.wait()
    message = str(err.value)
    assert "\n" not in message and f"process {proc.pid} on {socket.gethostname()}" in message and str(run) in message
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing was written


def test_a_lock_left_by_a_dead_process_does_not_block(tmp_path):
    model, loss, rows, cfg, run = _setup(tmp_path, "run", 2)
    proc = _holder(run, "exit")
    proc.wait()
    assert f"pid {proc.pid}" in lock_path(run).read_text()  # its file is still there
    train(model, loss, rows, cfg, run, CPU, stage="teacher", stage_config={}, data_info={}, progress=False)
    assert (run / "checkpoint" / "meta.json").is_file()
    assert f"pid {os.getpid()}" in lock_path(run).read_text()


def test_the_lock_is_released_and_ranks_lock_their_own_files(tmp_path):
    with FolderLock(tmp_path, rank=0), FolderLock(tmp_path, rank=1):  # ranks of one job never wait on each other
        with pytest.raises(FolderInUse):
            with FolderLock(tmp_path, rank=1):
                pass
    with FolderLock(tmp_path):  # released on exit
        pass


def test_resumed_metrics_hold_each_step_once(tmp_path):
    path = tmp_path / "metrics.jsonl"
    steps = [1, 2, 3, 1, 2, 3, 4, 5]  # two processes' lines, then lines past the checkpoint at step 3
    path.write_text("".join(json.dumps({"step": s, "loss": i}) + "\n" for i, s in enumerate(steps)) + '{"step": 6')
    truncate_metrics(path, 3)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and [r["loss"] for r in records] == [3, 4, 5]
