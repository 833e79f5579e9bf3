"""Part 5, distributed: ``torchrun --nproc_per_node 1`` (as ``python -m torch.distributed.run``) with NCCL
(gloo with ``--tiny``) trains the preset's teacher for a few steps (``dist_worker.py``); after
``SIGNAL_AFTER`` logged steps torchrun itself gets SIGTERM, as a cluster scheduler sends it, and passes
it to the worker, which saves a checkpoint at the step it is on and exits 143. The same command
again must resume there and finish: its checkpoint complete at the last step, one metrics line per
step 1..N. With one process the loop does not wrap the network in DDP (it does so from two).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fmlm.train import checkpoint as ckpt

from gpucheck.common import ROOT, subprocess_env

SIGNAL_AFTER = 3  # logged steps before the SIGTERM
WAIT_S = 120.0  # the longest wait for a launch to reach a point (start-up, CUDA and NCCL set-up included)
WORKER = Path(__file__).with_name("dist_worker.py")


def run(check, rec: dict) -> None:
    s = check.sizes
    run_dir = check.work / "torchrun"
    cuda = check.device.type == "cuda"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(WORKER),
           str(run_dir), "--preset", s.preset, "--device", str(check.device), "--dim", str(s.dims[0]),
           "--vocab", str(s.dims[1]), "--length", str(s.length), "--batch", str(s.small_batch),
           "--steps", str(s.dist_steps)]
    rec["command"] = " ".join(["torchrun", *cmd[3:]])
    rec["backend"] = "nccl" if cuda else "gloo"
    metrics = run_dir / "metrics.jsonl"
    first = _launch(cmd, check.work / "torchrun-1.log")
    try:
        start = time.perf_counter()
        _wait_for(lambda: _lines(metrics) >= SIGNAL_AFTER, first, f"{SIGNAL_AFTER} logged steps",
                  check.work / "torchrun-1.log")
        rec["first_steps_s"] = time.perf_counter() - start
        first.send_signal(signal.SIGTERM)
        code = first.wait(timeout=WAIT_S)
    finally:
        _end(first)
    log = (check.work / "torchrun-1.log").read_text(errors="replace")
    stopped = [line for line in log.splitlines() if line.startswith("stopped by SIGTERM")]
    meta = ckpt.read_meta(run_dir / "checkpoint")
    rec["signalled"] = {"torchrun_exit": code, "stop_line": stopped[0] if stopped else None,
                        "checkpoint_step": meta.step, "checkpoint_complete": meta.complete}
    check.write()
    if not stopped or meta.complete:
        raise RuntimeError(f"SIGTERM did not stop the run with a saved checkpoint (torchrun exit {code}; "
                           f"last log line: {_last(log)})")
    second = _launch(cmd, check.work / "torchrun-2.log")
    try:
        start = time.perf_counter()
        code = second.wait(timeout=WAIT_S)
        rec["resume_s"] = time.perf_counter() - start
    finally:
        _end(second)
    log = (check.work / "torchrun-2.log").read_text(errors="replace")
    meta = ckpt.read_meta(run_dir / "checkpoint")
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    rec["resumed"] = {"torchrun_exit": code, "checkpoint_step": meta.step, "checkpoint_complete": meta.complete,
                      "metrics_steps": steps, "worker_line": _last(log)}
    if code != 0 or not meta.complete or steps != list(range(1, s.dist_steps + 1)):
        raise RuntimeError(f"the resumed run did not finish cleanly (torchrun exit {code}, checkpoint step "
                           f"{meta.step}, logged steps {steps}): {_last(log)}")


def _launch(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own session with stdout and stderr into ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for(ready, proc: subprocess.Popen, what: str, log: Path) -> None:
    """Poll ``ready()`` until it holds; fail if ``proc`` ends first (naming the last line of its ``log``) or
    ``WAIT_S`` pass."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"torchrun exited {proc.returncode} before {what}: "
                               f"{_last(log.read_text(errors='replace'))}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {WAIT_S:.0f} s")
        time.sleep(0.05)


def _end(proc: subprocess.Popen) -> None:
    """Kill the launch's process group if it is still running (a part cut by its time limit)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _last(log: str) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def lines(rec: dict) -> list[str]:
    """The part's markdown: the command, the signalled run and the resumed one."""
    out = [f"- `{rec['command']}` ({rec['backend']})"] if "command" in rec else []
    if "signalled" in rec:
        r = rec["signalled"]
        out.append(f"- SIGTERM to torchrun after {SIGNAL_AFTER} logged steps ({rec['first_steps_s']:.1f} s from "
                   f"launch): torchrun exit {r['torchrun_exit']}; worker: {r['stop_line'] or 'no stop line'}")
    if "resumed" in rec:
        r = rec["resumed"]
        out.append(f"- the same command again: exit {r['torchrun_exit']} after {rec['resume_s']:.1f} s, checkpoint "
                   f"step {r['checkpoint_step']} (complete: {r['checkpoint_complete']}), logged steps "
                   f"{r['metrics_steps'][0]}..{r['metrics_steps'][-1]} ({len(r['metrics_steps'])} lines); worker: "
                   f"{r['worker_line']}")
    return out + [""] if out else []
