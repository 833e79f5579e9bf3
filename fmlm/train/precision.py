"""Which precision a training run uses on its device.

``precision`` of ``TrainConfig``: "fp32", "bf16" (autocast to bfloat16), or "auto": bf16 autocast on CUDA,
fp32 elsewhere. The embedded preset asks for bf16 on CPUs with bf16 matrix units (AMX tiles or
AVX512-BF16, ``cpu_bf16_units``), where its network step trains about 2.7x faster under autocast
(benchmarks/results/kernels_cpu.md, "Network step": 0.759 s fp32 against 0.283 s bf16 on an AMD EPYC
with AVX512-BF16), and fp32 on CPUs without them, which emulate bf16 arithmetic slowly.
"""

from __future__ import annotations

import contextlib

import torch

BF16_CPU_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
"""``torch.cpu`` probes of the instructions that take bf16 inputs and accumulate in fp32 (AMX, AVX512-BF16)."""


def cpu_bf16_units() -> bool:
    """True when this CPU has AMX tiles or AVX512-BF16 (the ``torch.cpu`` probes of ``BF16_CPU_PROBES``)."""
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in BF16_CPU_PROBES)


def cpu_training_precision() -> str:
    """"bf16" on a CPU with bf16 matrix units, "fp32" on one without (the embedded preset's choice)."""
    return "bf16" if cpu_bf16_units() else "fp32"


def uses_bf16(device: torch.device, precision: str) -> bool:
    """Whether training under ``precision`` on ``device`` runs in bf16 autocast ("auto": on CUDA only)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
