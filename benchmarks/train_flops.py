"""Model FLOPs of the training benchmark (``training.py``): per network call, and counted per step by forward hooks.

Model FLOPs of one network call (w width, h SwiGLU hidden, d latent dim, b bottleneck,
V vocabulary, D depth, L text tokens, P prefix tokens, n = L + P; a multiply-add is 2 FLOPs):

    per token per block:  attention projections 4 * 2 w^2  (q, k, v and the output)
                          SwiGLU                 3 * 2 w h  (gate, up, down)
                          attention scores       2 * 2 n w  (q k^T and the weighted sum of v)
    blocks                n * D * (8 w^2 + 6 w h + 4 n w)
    input (L tokens)      2 (2d) d  [self-conditioned only]  + 2 d b + 2 b w
    prefix banks (per row) per scalar embedded (t, s, w, tau): 2 * 256 w + 2 w^2
    head                  x-prediction: L * 2 w d; decoder: T * (2 w d + 2 d V) for the T decoded tokens

A call with gradients counts 3x its forward FLOPs (forward + backward), one without 1x; a
step's FLOPs are the sum over the calls it made. On CUDA the model FLOPs utilisation is
step FLOPs / step time / the device's dense bf16 peak (``--peak-tflops``, or the known value
of the device); on CPU no peak is claimed, the achieved GFLOP/s is reported instead.
"""

from __future__ import annotations


import torch
from torch import nn

from fmlm.nn.embedding import SCALAR_FEATURES


PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
"""Dense bf16 peak (TFLOP/s, no sparsity) by a name found in ``torch.cuda.get_device_name``."""


def forward_flops(cfg, length: int, decoded_tokens: int | None = None) -> float:
    """Forward FLOPs of one row through a network of ``cfg`` (module docstring); decoder head when
    ``decoded_tokens`` is given (tokens decoded in that row), else the x-prediction head."""
    w, h, d, b, n = cfg.width, cfg.mlp_hidden, cfg.latent_dim, cfg.bottleneck, length + cfg.prefix_len
    blocks = n * cfg.depth * (8 * w * w + 6 * w * h + 4 * n * w)
    inputs = length * ((4 * d * d if cfg.self_conditioning else 0) + 2 * d * b + 2 * b * w)
    scalars = 2 + (cfg.guidance_tokens > 0) + (cfg.phase_tokens > 0)
    banks = scalars * (2 * SCALAR_FEATURES * w + 2 * w * w)
    head = length * 2 * w * d if decoded_tokens is None else decoded_tokens * (2 * w * d + 2 * d * cfg.vocab_size)
    return float(blocks + inputs + banks + head)


class PassLog:
    """Forward hooks recording every call of the watched networks: (name, rows, length, decoded tokens, grad)."""

    def __init__(self, watched: dict[str, nn.Module]):
        self.calls: list[tuple[str, int, int, int | None, bool]] = []
        self.configs = {name: m.config for name, m in watched.items()}
        self.handles = [m.register_forward_hook(self._hook(name), with_kwargs=True) for name, m in watched.items()]

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            z = args[0]
            decoded = None
            if kwargs.get("decode"):
                positions = kwargs.get("positions")
                decoded = int(positions.sum()) if positions is not None else z.shape[0] * z.shape[1]
            self.calls.append((name, z.shape[0], z.shape[1], decoded, torch.is_grad_enabled()))

        return hook

    def flops(self) -> float:
        """Model FLOPs of the recorded calls (3x for calls with gradients)."""
        total = 0.0
        for name, rows, length, decoded, grad in self.calls:
            per_row = forward_flops(self.configs[name], length, None if decoded is None else decoded / rows)
            total += rows * per_row * (3 if grad else 1)
        return total

    def passes(self, batch: int) -> str:
        """The calls as text, e.g. 'teacher 10 x no-grad (32 rows); student grad (64 rows)'."""
        parts: list[list] = []
        for name, rows, _, decoded, grad in self.calls:
            key = (name, rows, grad, decoded is not None)
            if parts and parts[-1][0] == key:
                parts[-1][1] += 1
            else:
                parts.append([key, 1])
        text = []
        for (name, rows, grad, dec), count in parts:
            kind = ("grad" if grad else "no-grad") + (" decoder" if dec else "")
            text.append(f"{name} {count} x {kind} ({rows} rows)" if count > 1 else f"{name} {kind} ({rows} rows)")
        return "; ".join(text)

    def forward_equivalents(self, batch: int) -> float:
        """Rows processed over ``batch``, 3x for grad calls: the FPE the passes alone predict."""
        return sum(rows / batch * (3 if grad else 1) for _, rows, _, _, grad in self.calls)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def count_passes(fn, watched: dict[str, nn.Module]) -> PassLog:
    """Run ``fn`` once with forward hooks on ``watched``; the log of its network calls."""
    log = PassLog(watched)
    try:
        fn()
    finally:
        log.close()
    return log


def peak_tflops(args, device) -> float | None:
    """The bf16 peak for the MFU: ``--peak-tflops``, else the known value of the CUDA device, else None."""
    if args.peak_tflops:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
