"""The GPU check's run: refuse without CUDA (unless ``--tiny``), run the six parts in order, rewrite the
markdown report and the JSON after every part, print where they are."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from gpucheck import common

TITLES = {
    "numerics": "1. Numerics: bf16 autocast against fp32",
    "training": "2. Training steps",
    "sampling": "3. Sampling speed",
    "released": "4. Released-checkpoint path",
    "distributed": "5. Distributed: torchrun, SIGTERM and resume",
    "compile": "6. torch.compile on the teacher step",
}
"""Each part's heading in the report (the test checks every one is there)."""

MODULES = {"numerics": "numerics", "training": "train_steps", "sampling": "sampling_speed", "released": "released",
           "distributed": "distributed", "compile": "compiled"}
"""The module of each part: its function ``run(check, rec)`` runs it, ``lines(rec)`` writes its results, the first
paragraph of its docstring says what it measures."""


def part(name: str):
    """The module of part ``name`` (imported on first use: the refusal without CUDA needs none of them)."""
    return importlib.import_module(f"gpucheck.{MODULES[name]}")


def note(name: str) -> str:
    """The first paragraph of the part's module docstring, without its "Part N, name:" lead."""
    text = part(name).__doc__.split("\n\n")[0].split(": ", 1)[-1].replace("\n", " ")
    return text[:1].upper() + text[1:]


REFUSAL = "gpu-check: CUDA is not available here (torch {}, CUDA build: {}); use --tiny for the CPU smoke run"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The paper preset on one GPU in under 8 minutes (README: "
                                                 "On a GPU). Writes a markdown report and a JSON file.")
    parser.add_argument("--tiny", action="store_true", help="every part at tiny sizes on the CPU (the test suite)")
    parser.add_argument("--out", type=Path, default=common.ROOT / "benchmarks" / "results",
                        help="folder of gpu_check_<device>.md and .json")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to leave out ({', '.join(common.PARTS)})")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device bf16 peak for the MFU (default: known)")
    args = parser.parse_args(argv)
    args.skip = [p for p in args.skip.split(",") if p]
    unknown = [p for p in args.skip if p not in common.PARTS]
    if unknown:
        parser.error(f"--skip: unknown part {unknown[0]!r}; the parts are {', '.join(common.PARTS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print(REFUSAL.format(torch.__version__, torch.version.cuda or "no"), file=sys.stderr, flush=True)
        return 2
    started = time.monotonic()
    device = torch.device("cuda" if not args.tiny else "cpu")
    if args.tiny:
        torch.set_num_threads(1)  # tiny ops: a second thread only waits at barriers on a shared CPU
    slug = common.device_slug(device, args.tiny)
    md_path, json_path = args.out / f"gpu_check_{slug}.md", args.out / f"gpu_check_{slug}.json"
    sizes = common.TINY if args.tiny else common.PAPER
    from bench_common import command_line

    payload = {"command": command_line(), "machine": common.machine_info(device), "tiny": args.tiny,
               "sizes": sizes.__dict__, "sdpa": None, "parts": {}}

    def write() -> None:
        payload["elapsed_s"] = round(time.monotonic() - started, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        md_path.write_text(report(payload))

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        check = common.Check(device, sizes, args.tiny, Path(work), payload, started + common.TOTAL_S, write,
                             args.peak_tflops)
        for name in common.PARTS:
            common.run_part(check, name, part(name).run, skip=name in args.skip)
            print(f"{TITLES[name]}: {_status(payload['parts'][name])}", flush=True)
    write()
    print(f"report: {md_path}\njson:   {json_path}")
    return 0


def _status(rec: dict) -> str:
    text = rec["status"] + (f" ({rec['seconds']} s)" if "seconds" in rec else "")
    return text + (f": {rec['error']}" if rec.get("error") else "")


def report(payload: dict) -> str:
    """The markdown report: machine, SDPA backend, then one section per part (status, notes, results)."""
    from bench_common import machine_text
    from fmlm.reports.formatting import NOT_MEASURED

    m = payload["machine"]
    versions = f"torch {m['torch']}, CUDA {m['cuda'] or 'none'}, cuDNN {m['cudnn'] or 'none'}"
    if "gpu_memory_bytes" in m:
        versions += (f"; {m['gpu']} ({m['gpu_memory_bytes'] / 2**30:.1f} GiB, compute capability {m['capability']}, "
                     f"driver {m['driver'] or 'unknown'})")
    sdpa = payload.get("sdpa")
    lines = [
        "# GPU check" + (" (--tiny, CPU)" if payload["tiny"] else ""), "",
        f"Produced by `{payload['command']}` in {payload.get('elapsed_s', 0):.0f} s "
        "(`make gpu-check`; README: On a GPU).", "",
        machine_text(m), "", versions + ".", "",
        "SDPA backend: " + (NOT_MEASURED if not sdpa else
                            f"{sdpa['no-grad forward']['backend']} (no grad), {sdpa['forward + backward']['backend']} "
                            "(training)") + ".", "",
    ]
    for name in common.PARTS:
        rec = payload["parts"].get(name, {"status": "not run yet"})
        lines += [f"## {TITLES[name]}", "", f"Status: {_status(rec)}.", "", note(name), ""]
        if rec.get("status") not in ("running", "not run yet"):
            lines += part(name).lines(rec)
    return "\n".join(lines).rstrip() + "\n"
