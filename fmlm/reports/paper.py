"""Numbers QUOTED from the paper (docs/method.md section 11), kept apart from anything measured.

Setting of the quoted numbers: OpenWebText, 1024 samples of 1024 tokens,
generative perplexity under GPT-2 Large, unigram entropy in nats.
"""

from __future__ import annotations

PAPER_SOURCE = (
    "quoted from the paper (Yoo et al. 2026, arXiv 2607.00714), OpenWebText, "
    "1024 samples x 1024 tokens, GPT-2 Large evaluator; not measured here"
)

PAPER_GEN_PPL_ENTROPY: dict[str, dict[int, tuple[float, float]]] = {
    "flow-map-nosc": {1: (168.30, 5.17), 2: (133.29, 5.25), 4: (111.31, 5.26)},
    "flow-map": {1: (112.52, 5.37), 2: (94.74, 5.45), 4: (75.22, 5.41)},
}
"""model -> steps -> (gen PPL, entropy), as printed in the paper's few-step table."""


def quoted_cell(model: str, steps: int) -> str:
    """``'gen PPL / entropy'`` as the paper prints it, or '-' where the paper has no entry."""
    entry = PAPER_GEN_PPL_ENTROPY.get(model, {}).get(steps)
    return "-" if entry is None else f"{entry[0]:.2f} / {entry[1]:.2f}"
