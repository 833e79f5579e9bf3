"""Sampling text from a loaded model folder: the stored sampler settings, the model's decoder head,
the folder's tokenizer.

A sampler must fit the model's stage: flow maps (``flow-map*``) sample with ``flow_map`` or ``ctm``;
the teachers and the fixed-point student with ``euler`` or ``sde``; warm or cold self-conditioning
needs the self-conditioned teacher. Anything else is refused before sampling.
"""

from __future__ import annotations

import json
from pathlib import Path

FLOW_MAP_KINDS = ("flow_map", "ctm")


def check_sampler_fits(stage: str, sampler) -> None:
    """One-line ``ValueError`` when ``sampler`` cannot sample a model of ``stage``."""
    flow_map = stage.startswith("flow-map")
    if flow_map and sampler.kind not in FLOW_MAP_KINDS:
        raise ValueError(f"kind={sampler.kind!r} samples a flow (teacher, fixed-point); a {stage} model needs "
                         f"one of {list(FLOW_MAP_KINDS)}")
    if not flow_map and sampler.kind in FLOW_MAP_KINDS:
        raise ValueError(f"kind={sampler.kind!r} needs a two-time flow map; this is a {stage} model")
    if sampler.kind in ("euler", "sde") and sampler.sc_mode != "none" and stage != "teacher":
        raise ValueError(f"sc_mode={sampler.sc_mode!r} needs the self-conditioned teacher; a {stage} model "
                         "samples with sc_mode=none")


def sample_texts(pretrained, sampler, n: int, *, length: int | None = None, first_index: int = 0,
                 device="cpu", progress: bool = True):
    """``(SampleSet, texts)``: ``n`` samples (indices from ``first_index``) decoded to text."""
    from fmlm.samplers import batch_sampler, generate

    check_sampler_fits(pretrained.info.stage, sampler)
    length = pretrained.info.architecture.max_len if length is None else length
    samples = generate(pretrained.model, batch_sampler(sampler), sampler, n, length, device=device,
                       first_index=first_index, progress=progress)
    tokenizer = pretrained.tokenizer()
    texts = [tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in samples.ids]
    return samples, texts


def check_output_file(path: Path) -> None:
    """Refuse an output path that is a folder or lies below a file, before any work."""
    if path.is_dir():
        raise ValueError(f"--out {path}: is a folder; give a file name")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {path}: {parent} is a file, not a folder")


def write_samples(path: Path, indices: list[int], texts: list[str], nfe: int) -> None:
    """One JSON line per sample ``{"index", "text", "nfe"}``, written through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for i, text in zip(indices, texts):
            f.write(json.dumps({"index": i, "text": text, "nfe": nfe}) + "\n")
    tmp.replace(path)
