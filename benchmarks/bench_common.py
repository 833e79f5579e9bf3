"""What the benchmarks share: the machine description, the precision context, interleaved timing,
peak memory, the same-shaped random networks of a preset, and writing JSON + markdown results.

Timing: every case is run once to warm up, then ``repeats`` rounds run every case once
each, the order rotated by one case per round (A, B, C / B, C, A / ...), so that a change
in machine load (other processes on shared cores) falls on every case alike; a case's
time is the median of its rounds. On CUDA each run is bracketed by synchronisations.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``;
on CPU the highest ``total_allocated`` of the CPU tensor allocator seen by ``torch.profiler``
(``profile_memory=True``) during one run. Both count the tensor memory allocated during the
run on top of what was live before it (the weights, optimiser states): the run's own
working set. The process's peak resident set size (``resource.getrusage``, ``ru_maxrss``)
is reported beside it for the whole process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fmlm.experiment import preset
from fmlm.nn import Denoiser

DIMS = {"embedded": (384, 30522), "quick": (384, 30522), "paper": (1280, 50257)}
"""(encoder width = latent dim, vocabulary) of each preset's data: MiniLM / BERT, GPT-2 Large / GPT-2."""

MIB = 2**20


def machine(device: torch.device) -> dict:
    """CPU model, cores, torch version, threads (and the GPU when there is one) of this run."""
    info = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    flags = _cpu_flags()
    info["cpu_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo (or platform.processor() without it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it is absent)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_text(info: dict) -> str:
    """One markdown line describing ``machine`` output."""
    text = (f"CPU: {info['cpu']}, {info['logical_cores']} logical cores (bf16 instructions: "
            f"{'yes' if info['cpu_bf16'] else 'no'}); torch {info['torch']}, {info['threads']} threads; "
            f"device {info['device']}")
    if "gpu" in info:
        text += f" ({info['gpu']})"
    return text + f"; load average at start {info['load_average_at_start']}."


def header(title: str, payload: dict) -> list[str]:
    """A results file's first lines: its title, the command that produced it, the machine."""
    return [f"# {title}", "", f"Produced by `{payload['command']}`.", "", machine_text(payload["machine"]), ""]


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on CUDA under ``auto`` or ``bf16`` (as the trainer), else nothing."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each case over ``repeats`` rounds after one warm-up run each (module docstring)."""
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    names = list(cases)
    for name in names:
        cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            cases[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def round_ratios(rounds: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    """Per round of ``interleaved``, ``numerator``'s time over ``denominator``'s (both ran in that round, minutes
    apart at most, so a slower phase of a shared machine falls on both): their median and range."""
    ratios = [a / b for a, b in zip(rounds[numerator], rounds[denominator], strict=True)]
    return {"median": median(ratios), "min": min(ratios), "max": max(ratios)}


def peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak tensor bytes allocated during one run of ``fn`` above what was live before (module docstring)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _cpu_peak(fn)


def _cpu_peak(fn: Callable[[], object]) -> int | None:
    """Highest ``total_allocated`` of the profiler's CPU allocation events during ``fn`` (None if unavailable)."""
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    peak = None
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            total = int(node.extra_fields.total_allocated)
            peak = total if peak is None else max(peak, total)
    return peak


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mib(value: int | float | None) -> float | None:
    """Bytes in MiB, None kept."""
    return None if value is None else value / MIB


def random_weights(model: nn.Module, seed: int) -> nn.Module:
    """Give the zero-initialised parts (x-prediction head, phase bank) small random weights, in place.

    A fresh network predicts exactly zero; small weights make every output non-trivial without
    changing any shape or cost."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("out_proj.", "phase_bank.")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model


def networks(preset_name: str, length: int, device: torch.device, names: tuple[str, ...] | None = None,
             dims: tuple[int, int] | None = None) -> dict[str, Denoiser]:
    """Random networks of the preset's shapes, one per role (``names`` selects; None = all); ``dims``: (latent dim,
    vocabulary) instead of the preset's data's (``DIMS``).

    teacher: self-conditioned with a guidance bank; teacher-nosc: without a slot or guidance;
    elf-star: the teacher plus the phase bank (stage 2); fmlm-star: ELF*'s architecture (stage 3
    from ELF*); fmlm: the no-SC teacher's architecture (stage 3 from it). As in
    ``fmlm.experiment.stages.build_stage``.
    """
    exp = preset(preset_name)
    dim, vocab = dims or DIMS[preset_name]
    meta = {"dim": dim, "vocab_size": vocab, "row_len": length}
    teacher = exp.network.denoiser(meta, self_conditioning=True)
    student = dataclasses.replace(teacher, phase_tokens=exp.network.phase_tokens or 4,
                                  phase_placement=exp.network.phase_placement)
    configs = {"teacher": teacher, "teacher-nosc": exp.network.denoiser(meta, self_conditioning=False),
               "elf-star": student, "fmlm-star": student}
    configs["fmlm"] = configs["teacher-nosc"]
    chosen = names or tuple(configs)
    torch.manual_seed(0)
    return {name: random_weights(_built_on(device, configs[name]), i).to(device).eval() for i, name in enumerate(chosen)}


def _built_on(device: torch.device, config) -> Denoiser:
    """A Denoiser initialised on ``device`` (on a GPU its initialisation takes a fraction of the CPU's time)."""
    with torch.device(device):
        return Denoiser(config)


ROLE_STAGES = {"teacher": "teacher", "teacher-nosc": "teacher-nosc", "elf-star": "fixed-point",
               "fmlm-star": "flow-map", "fmlm": "flow-map-nosc"}
"""The run-folder stage whose trained weights each role's network is."""


def trained_networks(run_dir: str | Path, device: torch.device) -> tuple[dict[str, Denoiser], dict[str, dict]]:
    """Each role's trained EMA network from the stage checkpoints of run folder ``run_dir``, and per role
    where it came from (checkpoint folder, step). A missing stage is refused naming its folder."""
    from fmlm.train import checkpoint as ckpt

    models, sources = {}, {}
    for role, stage in ROLE_STAGES.items():
        folder = Path(run_dir) / "stages" / stage / "checkpoint"
        if not folder.is_dir():
            raise SystemExit(f"--weights: {folder} does not exist (train the run's stages first)")
        models[role] = ckpt.load_denoiser(folder, "ema", device).eval()
        sources[role] = {"checkpoint": str(folder), "step": ckpt.read_meta(folder).step}
    return models, sources


def command_line() -> str:
    """The command that ran this script, as typed from the repository root."""
    return " ".join(["python", *sys.argv])


def write_results(payload: dict, markdown: str, json_path: str | None, md_path: str | None) -> None:
    """Write the JSON payload and the markdown (to ``md_path``, or stdout when it is None)."""
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")
    if md_path:
        Path(md_path).parent.mkdir(parents=True, exist_ok=True)
        Path(md_path).write_text(markdown)
    else:
        print(markdown)


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table cell; None -> 'not measured'."""
    from fmlm.reports.formatting import NOT_MEASURED, fmt_num

    return NOT_MEASURED if value is None else fmt_num(value, digits)
