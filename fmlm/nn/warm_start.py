"""Loading a teacher's weights into a student, and counting parameters.

A student may differ from its teacher only by banks that are zero-initialised
(the phase bank of stages 2 and 3), so a warm start changes the teacher's
function only through the extra all-zero prefix tokens taking part in attention.
Anything else (a shape mismatch, a key the student lacks, a teacher weight the
student needs but the state dict lacks) is a different architecture and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

NEW_BANK_PREFIXES: tuple[str, ...] = ("phase_bank.",)  # banks a warm start may add (zero-initialised)

PARAMETER_GROUPS: dict[str, str] = {
    "sc_mix": "input",
    "bottleneck_down": "input",
    "bottleneck_up": "input",
    "time_bank": "banks",
    "guidance_bank": "banks",
    "phase_bank": "banks",
    "mode_tokens": "banks",
    "blocks": "blocks",
    "out_norm": "xpred_head",
    "out_proj": "xpred_head",
    "decode_proj": "decoder_head",
    "unembed": "decoder_head",
}


def warm_start(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    new_prefixes: tuple[str, ...] = NEW_BANK_PREFIXES,
) -> list[str]:
    """Load ``state_dict`` into ``model``; return the names of the entries it did not provide.

    Only entries under ``new_prefixes`` (default: the zero-initialised phase bank)
    may be absent; they keep the model's own initialisation. Unexpected keys, shape
    mismatches and any other absent entry raise a one-line ``ValueError``.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict: expected a mapping of tensors, got {type(state_dict).__name__}")
    own = model.state_dict()
    unexpected = sorted(set(state_dict) - set(own))
    if unexpected:
        raise ValueError(
            f"state_dict: unexpected key {unexpected[0]!r} ({len(unexpected)} in all); "
            "the checkpoint is from another architecture"
        )
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state_dict: entry {key!r} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"state_dict: shape of {key!r} is {tuple(value.shape)}, the model needs {tuple(own[key].shape)}; "
                "the checkpoint is from another architecture"
            )
    missing = sorted(set(own) - set(state_dict))
    refused = [key for key in missing if not key.startswith(new_prefixes)]
    if refused:
        raise ValueError(
            f"state_dict: lacks {refused[0]!r} ({len(refused)} in all); only new banks "
            f"{list(new_prefixes)} may be absent"
        )
    model.load_state_dict(dict(state_dict), strict=False)
    return missing


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameter entries of ``model`` (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameter counts of a ``Denoiser`` by part: input, banks, blocks, xpred_head, decoder_head."""
    counts = {group: 0 for group in dict.fromkeys(PARAMETER_GROUPS.values())}
    for name, param in model.named_parameters():
        top = name.split(".", 1)[0]
        if top not in PARAMETER_GROUPS:
            raise ValueError(f"model: parameter {name!r} belongs to no known part of the denoiser")
        counts[PARAMETER_GROUPS[top]] += param.numel()
    return counts
