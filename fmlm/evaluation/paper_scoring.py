"""Gen PPL and entropy scored exactly as the paper's reference code does, beside this project's framing.

``score_like_paper`` (the reference's metric code, re-implemented):

1. Texts: with ``drop_empty`` the samples whose text is empty or whitespace only (``not s.strip()``)
   are removed first (the reference does this); without it every text is kept.
2. All kept texts are retokenised AT ONCE: ``tokenizer(texts, truncation=True, padding=True,
   max_length=max_length)``, with the tokenizer's own special tokens (GPT-2 adds none, so there is
   no start token) and pad token = EOS when the tokenizer has none. Rows are padded (on the
   tokenizer's ``padding_side``, right for GPT-2) to the longest retokenised text of the whole set:
   ``ids`` (N, W) and ``attention`` (N, W).
3. Rows in input order, ``batch_size`` at a time, each cut into chunks of ``context_size`` =
   ``evaluator.context_length`` positions (one chunk when ``max_length <= context_size``); per chunk
   ``logits = model(ids, attention_mask=attention).logits`` in float32 and, for targets i >= 1,

       nll_i      = -log softmax(logits_{i-1})[ids_i]
       first_eos  = cumsum_j(ids_j == eos) == 1
       valid_i    = first_eos_i or ids_i != eos            (on the PADDED ids, not the attention)

   Position 0 of a chunk is never a target. The first EOS of a row is scored, later ones are not:
   a text shorter than the widest row gets its first padding token scored as its end, while a text
   as long as the widest row (or truncated to ``max_length``) gets no end scored. A literal
   ``<|endoftext|>`` in a text is that first EOS; the text tokens after it are still scored.

       NLL(sample) = sum_i valid_i nll_i,  n(sample) = sum_i valid_i,  PPL(sample) = exp(NLL / n)
       gen PPL     = exp(sum NLL / sum n)

4. Entropy of one sample (nats): over ``ids[:sum(attention)]`` (the text's tokens under right
   padding), ``H = -sum_v p_v log(p_v + 1e-10)`` with ``p_v`` the token frequencies; 0.0 for a
   sample of no token. The reported entropy is the mean over the scored samples.

Sums are accumulated in float64 (the reference accumulates in its metric objects); the entropy is
computed in float64.

``compare_framings`` returns three summaries of the same texts, which differ as follows:

- ``"paper"`` (``drop_empty=True``, the reference's number): blank texts are removed, so they count
  in neither the gen PPL nor the entropy mean; ``n_scored`` < ``n_samples`` when any were blank.
- ``"paper_keep_empty"`` (``drop_empty=False``): an empty text becomes a row of padding only; its
  first EOS is at position 0, which is never scored, so it adds NO token to the gen PPL but a 0.0
  to the entropy mean (lowering it). Whitespace-only texts have tokens and are scored like any
  text. The gen PPL therefore equals the ``"paper"`` one unless a whitespace-only text is present
  (or widens the padding).
- ``"project"`` (``metrics.evaluate_texts``, ``max_tokens = min(max_length + 1, context_length)``,
  the same number of text tokens): each text is scored on its own as
  ``[start] + tokens + [end]``, so its FIRST token is scored too (conditioned on ``<|endoftext|>``)
  and its end is scored exactly once whenever it was not truncated, independent of the other
  texts; an empty text is kept and scores ``-log p(end | start)`` with n = 1; the entropy is over
  the text tokens with ``-sum p log p`` and averaged over all texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fmlm.evaluation.evaluator import Evaluator
from fmlm.evaluation.metrics import check_texts, evaluate_texts

ENTROPY_EPS = 1e-10


@dataclass(frozen=True)
class PaperScore:
    """The reference's gen PPL and mean entropy, with per-sample values for the scored samples."""

    gen_ppl: float
    entropy: float
    n_samples: int  # texts given
    n_scored: int  # texts scored (after dropping blank ones when drop_empty)
    total_nll: float
    total_tokens: int
    drop_empty: bool
    indices: tuple[int, ...]  # position in the input of each scored sample
    nll_sums: tuple[float, ...]
    n_tokens: tuple[int, ...]
    ppls: tuple[float, ...]  # nan for a sample with no scored token
    entropies: tuple[float, ...]

    def summary(self) -> dict:
        """Everything but the per-sample tuples."""
        per_sample = {"indices", "nll_sums", "n_tokens", "ppls", "entropies"}
        return {k: v for k, v in asdict(self).items() if k not in per_sample}


def kept_indices(texts: Sequence[str], drop_empty: bool) -> list[int]:
    """Indices of the texts scored: all of them, or (``drop_empty``) those with ``text.strip()`` non-empty."""
    return [i for i, t in enumerate(texts) if not drop_empty or t.strip()]


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Pad ``rows`` to the longest with ``pad_id`` on ``side``: (ids int64 (N, W), attention int64 (N, W))."""
    if side not in ("right", "left"):
        raise ValueError(f"side: expected 'right' or 'left', got {side!r}")
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span] = row
        attention[i, span] = 1
    return ids, attention


def retokenize(tokenizer, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's ``tokenizer(texts, truncation=True, padding=True, max_length=...)`` with pad = EOS
    when the tokenizer has no pad token, without changing the tokenizer: (ids, attention), both (N, W)."""
    rows = tokenizer(list(texts), truncation=True, max_length=max_length, return_token_type_ids=False,
                     return_attention_mask=False)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return pad_rows(rows, int(pad_id), getattr(tokenizer, "padding_side", "right"))


def paper_token_mask(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``(first_eos | ids != eos)[:, 1:]`` with ``first_eos = cumsum(ids == eos) == 1``: (B, L) -> (B, L-1) bool."""
    is_eos = ids == eos_id
    first_eos = torch.cumsum(is_eos.long(), dim=1) == 1
    return (first_eos | ~is_eos)[:, 1:]


def paper_entropy(ids: Sequence[int] | np.ndarray, length: int) -> float:
    """``-sum_v p_v log(p_v + 1e-10)`` (nats) over ``ids[:length]``; 0.0 when ``length`` is 0."""
    tokens = np.asarray(ids)[: int(length)]
    if tokens.size == 0:
        return 0.0
    _, counts = np.unique(tokens, return_counts=True)
    p = counts.astype(np.float64) / counts.sum()
    return float(-(p * np.log(p + ENTROPY_EPS)).sum())


@torch.inference_mode()
def score_rows(
    evaluator: Evaluator, ids: np.ndarray, attention: np.ndarray, *, batch_size: int, context_size: int,
    eos_id: int, progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row masked NLL sums (float64) and scored-token counts, in row order (module docstring, step 3)."""
    nll_sums = np.zeros(len(ids), dtype=np.float64)
    counts = np.zeros(len(ids), dtype=np.int64)
    device = evaluator.device
    starts = range(0, len(ids), batch_size)
    for start in tqdm(starts, desc="gen PPL (paper)", unit="batch", disable=not progress):
        rows = slice(start, start + batch_size)
        batch_ids = torch.as_tensor(ids[rows], device=device)
        batch_att = torch.as_tensor(attention[rows], device=device)
        for chunk_ids, chunk_att in zip(batch_ids.split(context_size, dim=1), batch_att.split(context_size, dim=1)):
            if chunk_ids.shape[1] < 2:  # no target in a one-position chunk
                continue
            logits = evaluator.model(input_ids=chunk_ids, attention_mask=chunk_att).logits.float()
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), chunk_ids[:, 1:], reduction="none")
            mask = paper_token_mask(chunk_ids, eos_id)
            nll_sums[rows] += torch.where(mask, nll, 0.0).double().sum(dim=1).cpu().numpy()
            counts[rows] += mask.sum(dim=1).cpu().numpy()
    return nll_sums, counts


def _check_args(evaluator: Evaluator, texts, batch_size, max_length) -> None:
    check_texts(texts, batch_size)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length: expected an integer >= 2 (one context token + one scored), got {max_length!r}")
    if evaluator.tokenizer.eos_token_id is None:
        raise ValueError(f"evaluator {evaluator.name!r}: its tokenizer has no EOS token, the paper's mask needs one")


def score_like_paper(
    evaluator: Evaluator, texts: list[str], *, batch_size: int = 64, max_length: int = 1024,
    drop_empty: bool = True, progress: bool = True,
) -> PaperScore:
    """Gen PPL and mean unigram entropy of ``texts`` as the paper's reference code computes them."""
    _check_args(evaluator, texts, batch_size, max_length)
    keep = kept_indices(texts, drop_empty)
    if not keep:
        raise ValueError(f"texts: all {len(texts)} samples are empty or whitespace, none left to score")
    eos_id = int(evaluator.tokenizer.eos_token_id)
    ids, attention = retokenize(evaluator.tokenizer, [texts[i] for i in keep], max_length)
    nll_sums, counts = score_rows(evaluator, ids, attention, batch_size=batch_size,
                                  context_size=evaluator.context_length, eos_id=eos_id, progress=progress)
    total_nll, total_tokens = float(nll_sums.sum()), int(counts.sum())
    if total_tokens == 0:
        raise ValueError("texts: no token to score (every retokenised sample is shorter than 2 positions)")
    with np.errstate(divide="ignore", invalid="ignore"):
        ppls = np.where(counts > 0, np.exp(nll_sums / np.maximum(counts, 1)), np.nan)
    entropies = [paper_entropy(row, n) for row, n in zip(ids, attention.sum(axis=1))]
    return PaperScore(
        gen_ppl=float(np.exp(total_nll / total_tokens)),
        entropy=float(np.mean(entropies)),
        n_samples=len(texts),
        n_scored=len(keep),
        total_nll=total_nll,
        total_tokens=total_tokens,
        drop_empty=bool(drop_empty),
        indices=tuple(keep),
        nll_sums=tuple(float(v) for v in nll_sums),
        n_tokens=tuple(int(c) for c in counts),
        ppls=tuple(float(v) for v in ppls),
        entropies=tuple(entropies),
    )


def compare_framings(
    evaluator: Evaluator, texts: list[str], *, batch_size: int = 64, max_length: int = 1024, progress: bool = True
) -> dict:
    """Summaries of ``texts`` under the paper's scoring (blank texts dropped, and kept) and this
    project's ``evaluate_texts``: ``{"paper": ..., "paper_keep_empty": ..., "project": ...}`` (module docstring)."""
    common = dict(batch_size=batch_size, max_length=max_length, progress=progress)
    paper = score_like_paper(evaluator, texts, drop_empty=True, **common)
    kept = score_like_paper(evaluator, texts, drop_empty=False, **common)
    max_tokens = min(max_length + 1, evaluator.context_length)
    project = evaluate_texts(evaluator, texts, batch_size=batch_size, max_tokens=max_tokens, progress=progress)
    return {"paper": paper.summary(), "paper_keep_empty": kept.summary(), "project": project.summary()}
