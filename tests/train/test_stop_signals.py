"""SIGTERM / SIGINT stop training cleanly: the step finishes, a checkpoint is saved there, one line is
printed, the process exits with 128 + the signal number, and a resumed run equals an uninterrupted one."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo
from fmlm.train.loop import train
from fmlm.train.signals import StopSignals, TrainingInterrupted
from tests.train.signal_worker import STEPS, make_run

ROOT = Path(__file__).resolve().parents[2]
CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
STOPPED = re.compile(r"^stopped by (SIG\w+) at step (\d+) of (\d+); checkpoint saved to (\S+); "
                     r"run the same command again to continue$", re.M)


@pytest.fixture
def one_thread():
    """The worker's thread count, so in-process runs compute bit for bit what the worker does."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(run_dir, loss_wrap=lambda loss: loss, steps=STEPS):
    model, loss, rows, cfg = make_run(steps)
    train(model, loss_wrap(loss), rows, cfg, run_dir, CPU, stage="teacher", stage_config={}, data_info={},
          progress=False)


def _metrics(run_dir):
    """metrics.jsonl without its wall-time fields."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in ("tokens_per_s", "elapsed_s")} for x in lines]


def _assert_same_run(a, b):
    for which in ("model", "ema"):
        x, y = ckpt.load_denoiser(a / "checkpoint", which), ckpt.load_denoiser(b / "checkpoint", which)
        for (name, p), q in zip(x.state_dict().items(), y.state_dict().values()):
            assert torch.equal(p, q), f"{which} {name}"
    assert _metrics(a) == _metrics(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("full") / "run"
    _train(run_dir)
    torch.set_num_threads(before)
    return run_dir


@pytest.fixture
def launch():
    """Start ``signal_worker`` processes; any still running when the test ends is killed."""
    procs = []

    def start(run_dir, env=None):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.train.signal_worker", str(run_dir)], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_for_lines(proc, path, n, timeout=60.0):
    """Wait until ``path`` holds ``n`` lines (the run is mid-way), failing if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"worker ended before logging {n} lines: {proc.communicate()[1][-2000:]}")
        time.sleep(0.01)
    pytest.fail(f"worker logged fewer than {n} lines in {timeout} s")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_saves_a_checkpoint_and_resuming_equals_an_uninterrupted_run(
        tmp_path, sig, code, uninterrupted, one_thread, launch):
    run_dir = tmp_path / "run"
    proc = launch(run_dir)
    _wait_for_lines(proc, run_dir / "metrics.jsonl", 2)  # step 4 logged (log_every=2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    found = STOPPED.search(err)
    assert found, err[-3000:]
    name, step, total, folder = found.groups()
    step = int(step)
    assert (name, int(total), Path(folder)) == (sig.name, STEPS, run_dir / "checkpoint")
    assert 4 <= step < STEPS
    meta = ckpt.read_meta(run_dir / "checkpoint")
    assert (meta.step, meta.complete) == (step, False)  # checkpoint_every is 10000: only the signal saved
    assert [r["step"] for r in _metrics(run_dir)] == list(range(2, step + 1, 2))
    assert not (run_dir / "checkpoint.tmp").exists()

    _train(run_dir)  # the same command again: continues to the end
    _assert_same_run(run_dir, uninterrupted)


def test_a_second_signal_while_saving_is_ignored_until_the_save_is_done(tmp_path, monkeypatch, one_thread):
    """In-process: SIGTERM during step 5, SIGINT in the middle of the save it causes."""
    def refuse(signum, frame):
        raise AssertionError(f"signal {signum} reached the handler in place before train()")

    previous = {s: signal.signal(s, refuse) for s in (signal.SIGTERM, signal.SIGINT)}
    calls = {"n": 0}

    def terminate_at_step_5(loss):
        def wrapped(*args):
            calls["n"] += 1
            if calls["n"] == 9:  # step 5, first micro-batch (2 micro-batches a step)
                os.kill(os.getpid(), signal.SIGTERM)
            return loss(*args)
        wrapped.decoder_prob = loss.decoder_prob
        return wrapped

    real_save_file = ckpt.save_file

    def save_file_then_sigint(*args, **kwargs):  # model.safetensors written, the rest of the save to come
        real_save_file(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ckpt, "save_file", save_file_then_sigint)
    try:
        with pytest.raises(TrainingInterrupted) as stopped:
            _train(tmp_path / "run", terminate_at_step_5)
        handlers = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    assert stopped.value.code == 143 and "stopped by SIGTERM at step 5 of 40" in str(stopped.value)
    assert handlers == [refuse, refuse]  # train() put back the handlers it found
    folder = tmp_path / "run" / "checkpoint"
    assert ckpt.read_meta(folder).step == 5 and not folder.with_name("checkpoint.tmp").exists()
    assert sorted(p.name for p in folder.iterdir()) == [
        "denoiser.json", "ema.safetensors", "log_window.json", "meta.json", "model.safetensors", "optim.pt"]


def test_stop_signals_outside_the_main_thread_change_nothing():
    import threading

    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body():
        with StopSignals() as stops:
            seen.append((stops.received, signal.getsignal(signal.SIGTERM)))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [(None, before)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_under_two_processes_a_signal_to_one_stops_both_at_the_same_step(tmp_path, launch):
    run_dir = tmp_path / "run"
    common = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    procs = [launch(run_dir, {**common, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    _wait_for_lines(procs[0], run_dir / "metrics.jsonl", 2)
    procs[1].send_signal(signal.SIGTERM)  # only rank 1 is told
    errs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [143, 143], errs[0][-2000:] + errs[1][-2000:]
    found = STOPPED.search(errs[0])  # rank 0 saves and says so
    assert found and found.group(1) == "SIGTERM", errs[0][-2000:]
    assert not STOPPED.search(errs[1])
    step = int(found.group(2))
    assert ckpt.read_meta(run_dir / "checkpoint").step == step
    assert [r["step"] for r in _metrics(run_dir)] == list(range(2, step + 1, 2))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_prepare_removes_its_temporary_folder_and_says_so(tmp_path, monkeypatch, capsys, signum):
    import fmlm.data.cache
    from fmlm.cli import main

    def build(cfg, folder, encoder, device):
        (folder / "ids_train.npy").write_bytes(b"\0" * 1024)  # half-written work
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises here, at once
        raise AssertionError("not stopped")

    monkeypatch.setattr(fmlm.data.cache, "_build", build)
    cache = tmp_path / "cache"
    assert main(["prepare", "--run", str(tmp_path / "run"), f"cache_dir={cache}"]) == 128 + signum
    err = capsys.readouterr().err
    assert err == (f"error: stopped by {signal.Signals(signum).name} during prepare; its temporary files were "
                   "removed; run the same command again\n")
    assert list(cache.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
