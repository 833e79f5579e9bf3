"""Part 4, the released-checkpoint path at full size: a random-weight FMLM* checkpoint in the reference's
Lightning layout with the released shapes (ELF-B: latent 1280 from GPT-2 Large, width 768, 12 heads,
depth 12, bottleneck 128, SwiGLU hidden 2048, the 50,257-token GPT-2 head; ``--tiny``: the test
layout's tiny sizes), written with ``torch.save``, imported with ``python -m fmlm import`` and
sampled at one step with ``python -m fmlm sample --model`` on the run's device.

Both commands run in this process through ``fmlm.cli.main`` (what ``python -m fmlm`` calls: the same
parsing, output and exit codes), so the device is not initialised a second time. The layout is the
test suite's (``tests/models/reference_layout.py``, written from ``fmlm.models.reference``'s
documentation; no reference code).
"""

from __future__ import annotations

import contextlib
import io
import json
import time

import torch

from fmlm import cli
from tests.models.reference_layout import lightning_checkpoint, reference_state

from gpucheck.common import ROOT

RELEASED_SHAPES = {"d": 1280, "width": 768, "heads": 12, "depth": 12, "bottleneck": 128, "mlp_hidden": 2048}
"""ELF-B as released (fmlm_star.ckpt): ``reference_state``'s keywords; the vocabulary is its GPT-2 default."""


def run(check, rec: dict) -> None:
    s = check.sizes
    shapes = {} if check.tiny else RELEASED_SHAPES
    path, folder = check.work / "fmlm_star.ckpt", check.work / "fmlm-star"
    start = time.perf_counter()
    state = reference_state(**shapes, phase=True)
    torch.save(lightning_checkpoint(state), path)
    rec["checkpoint"] = {"parameters": sum(v.numel() for v in state.values()), "bytes": path.stat().st_size,
                         "write_s": time.perf_counter() - start, "shapes": shapes or "tiny test layout"}
    del state
    check.write()
    rec["import"] = _command(["import", str(path), "--out", str(folder), "--cache-dir", str(ROOT / "cache"),
                              "--overwrite"])
    check.write()
    if rec["import"]["exit"] != 0:
        raise RuntimeError(f"python -m fmlm import exited {rec['import']['exit']}: {rec['import']['stderr']}")
    out = check.work / "samples.jsonl"
    argv = ["sample", "--model", str(folder), "--steps", "1", "--n", str(s.released_samples), "--show", "0",
            "--device", str(check.device), "--out", str(out)]
    rec["sample"] = _command(argv + ([] if not check.tiny else ["--length", str(s.length)]))
    if rec["sample"]["exit"] != 0:
        raise RuntimeError(f"python -m fmlm sample exited {rec['sample']['exit']}: {rec['sample']['stderr']}")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    rec["samples"] = {"count": len(records), "nfe": sorted({r.get("nfe") for r in records}),
                      "length": s.length if check.tiny else 1024}


def _command(argv: list[str]) -> dict:
    """``python -m fmlm ARGV`` in this process: exit code, seconds, the last line of stdout, stderr's first."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    stdout = out.getvalue().strip().splitlines()
    stderr = err.getvalue().strip().splitlines()
    return {"command": "python -m fmlm " + " ".join(argv), "exit": code, "seconds": time.perf_counter() - start,
            "stdout": stdout[-1] if stdout else "", "stderr": stderr[0] if stderr else ""}


def lines(rec: dict) -> list[str]:
    """The part's markdown: the checkpoint, the two commands, the samples."""
    out = []
    if "checkpoint" in rec:
        c = rec["checkpoint"]
        out.append(f"- checkpoint: {c['parameters']:,} EMA parameters, {c['bytes'] / 2**30:.2f} GiB on disk "
                   f"(EMA and raw weights), written in {c['write_s']:.1f} s")
    for key in ("import", "sample"):
        if key in rec:
            r = rec[key]
            out.append(f"- `{r['command']}`: exit {r['exit']}, {r['seconds']:.1f} s; {r['stdout'] or r['stderr']}")
    if "samples" in rec:
        out.append(f"- samples written: {rec['samples']['count']}, network evaluations each: {rec['samples']['nfe']}")
    return out + [""] if out else []
