"""The model card (README.md) of a model folder: provenance, stage, size, how to sample, licence."""

from __future__ import annotations

from typing import Any

STAGE_NAMES = {
    "teacher": "ELF, the self-conditioned flow teacher (stage 1)",
    "teacher-nosc": "the flow teacher without self-conditioning (stage 1 baseline)",
    "fixed-point": "ELF*, the fixed-point student (stage 2)",
    "flow-map": "FMLM*, the few-step flow map (stage 3)",
    "flow-map-nosc": "FMLM, the flow map distilled without self-conditioning (stage 3 baseline)",
}


def _source_lines(source: dict[str, Any]) -> list[str]:
    lines = [f"- {key}: `{value}`" for key, value in sorted(source.items()) if key != "licence"]
    return lines or ["- (not recorded)"]


def model_card(info: Any, n_params: int) -> str:
    """Markdown text of the card for ``info`` (a ``ModelInfo``) and a network of ``n_params`` parameters."""
    arch = info.architecture
    settings = ", ".join(info.samplers) or "none"
    first = next(iter(info.samplers), None)
    steps = f" --steps {first}" if first else ""
    licence = info.source.get("licence", "not recorded")
    return "\n".join([
        "---",
        "library_name: fmlm",
        "tags: [flow-map, language-model, self-conditioning]",
        "---",
        "",
        f"# {STAGE_NAMES[info.stage]}",
        "",
        "An `fmlm` model folder: a continuous flow language model over the whitened latents of a frozen",
        "encoder, with its own decoder head from latents to tokens.",
        "",
        "## Model",
        f"- stage: `{info.stage}`",
        f"- parameters: {n_params:,} ({arch.depth} blocks, width {arch.width}, {arch.heads} heads, "
        f"latent dim {arch.latent_dim}, vocabulary {arch.vocab_size}, rows of up to {arch.max_len} tokens)",
        f"- encoder: `{info.encoder}` (hidden-state layer {info.encoder_layer}), whitening "
        f"mu = {info.whitening_mu:.6g}, sigma = {info.whitening_sigma:.6g}; tokenizer `{info.tokenizer}`",
        f"- flow: lam = {info.flow.lam:g}, P_mean = {info.flow.p_mean:g}, P_std = {info.flow.p_std:g}, "
        f"t_eps = {info.flow.t_eps:g}",
        f"- stored sampler settings (by steps): {settings}",
        "",
        "## Source",
        *_source_lines(info.source),
        "",
        "## How to sample",
        "```bash",
        f"python -m fmlm sample --model PATH/TO/THIS/FOLDER{steps} --n 8",
        "```",
        "```python",
        "import fmlm",
        "m = fmlm.load_model('PATH/TO/THIS/FOLDER')",
        "```",
        "",
        "## Licence",
        f"{licence}",
        "",
    ])
