"""Generative perplexity under a frozen causal LM, and unigram entropy.

Each text is retokenised with the evaluator's tokenizer (no special tokens) and
scored as the sequence ``x = [start] + tokens(text) + [end]`` (``Evaluator.start_id``
and ``end_id``: ``<|endoftext|>`` for GPT-2 and for SmolLM2, see ``evaluator.py``).
With ``m_i`` the scored-token mask (``scored_token_mask``):

    NLL(sample)  = sum_{i>=1} m_i * (-log p(x_i | x_<i))
    n(sample)    = sum_{i>=1} m_i
    PPL(sample)  = exp(NLL / n)
    gen PPL      = exp(sum_samples NLL / sum_samples n)

The paper's mask: position 0 is never scored; a token equal to ``end_id`` is
scored only if it is the first one among positions >= 1, so the end of a text
is scored exactly once (a literal ``<|endoftext|>`` inside a text is that first
one, and the appended end token is then not scored). An empty text is scored:
it contributes ``-log p(end | start)`` and n = 1.

Truncation: the model sees at most ``max_tokens`` positions. A longer text keeps
its first ``max_tokens - 1`` tokens and gets NO end token (the text did not end
there); the count is reported in ``n_truncated``.

Unigram entropy of one sample, in nats, over its retokenised (and truncated)
text ids, boundary tokens excluded: ``H = -sum_v p_v log p_v`` with ``p_v`` the
frequency of token v; an empty sample has H = 0. The reported entropy is the
mean over samples.

Samples are batched longest first and right-padded with an attention mask; a
causal model never attends to the padding, so results do not depend on the
batch size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fmlm.evaluation.evaluator import Evaluator


def token_nll(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``-log softmax(logits[:, i-1])[x_i]`` for i = 1..L-1, in float32: (B, L, V), (B, L) -> (B, L-1)."""
    pred = logits[:, :-1].float()
    return F.cross_entropy(pred.transpose(1, 2), input_ids[:, 1:], reduction="none")


def scored_token_mask(input_ids: torch.Tensor, lengths: torch.Tensor, end_id: int) -> torch.Tensor:
    """Mask over targets i = 1..L-1: ``i < length and (x_i != end or x_i is the first end among i >= 1)``.

    (B, L) ids, (B,) true lengths -> (B, L-1) bool. Position 0 and right padding are never scored.
    """
    targets = input_ids[:, 1:]
    positions = torch.arange(1, input_ids.shape[1], device=input_ids.device)
    real = positions.unsqueeze(0) < lengths.unsqueeze(1)
    is_end = (targets == end_id) & real
    first_end = is_end & (torch.cumsum(is_end.long(), dim=1) == 1)
    return real & (~is_end | first_end)


def unigram_entropy(token_ids: Sequence[int] | torch.Tensor | np.ndarray) -> float:
    """``H = -sum_v p_v ln p_v`` (nats) of the token frequencies of one sample; empty -> 0.0."""
    ids = np.asarray(token_ids.tolist() if isinstance(token_ids, torch.Tensor) else token_ids)
    if ids.ndim != 1:
        raise ValueError(f"token_ids: expected a 1-D sequence of ids, got shape {ids.shape}")
    if ids.size == 0:
        return 0.0
    counts = np.array(list(Counter(ids.tolist()).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mean_unigram_entropy(samples: Sequence[Sequence[int]]) -> float:
    """Mean over samples of ``unigram_entropy``; an empty list of samples is an error."""
    if len(samples) == 0:
        raise ValueError("samples: need at least one sample to average the entropy")
    return float(np.mean([unigram_entropy(s) for s in samples]))


@dataclass(frozen=True)
class GenPPLResult:
    """Per-sample NLL sums, scored-token counts and PPLs, and the aggregate gen PPL."""

    gen_ppl: float
    total_nll: float
    total_tokens: int
    nll_sums: tuple[float, ...]
    n_tokens: tuple[int, ...]
    ppls: tuple[float, ...]
    text_token_ids: tuple[tuple[int, ...], ...]  # retokenised text, after truncation, no boundary tokens
    truncated: tuple[bool, ...]
    features: np.ndarray | None = None  # (N, d) pooled last hidden states of the same forward (``features=True``)

    @property
    def n_truncated(self) -> int:
        return sum(self.truncated)


@dataclass(frozen=True)
class SampleRecord:
    """One scored sample, one JSONL row."""

    text: str
    n_tokens: int
    nll_sum: float
    ppl: float
    entropy: float
    truncated: bool


@dataclass(frozen=True)
class EvalResult:
    """Gen PPL, mean unigram entropy and the per-sample records."""

    gen_ppl: float
    entropy: float
    n_samples: int
    total_tokens: int
    n_truncated: int
    records: tuple[SampleRecord, ...]
    features: np.ndarray | None = None  # (N, d), see ``score_and_features`` (``features=True``)

    def rows(self) -> list[dict]:
        """The records as plain dictionaries, ready for ``json.dumps`` line by line."""
        return [asdict(r) for r in self.records]

    def summary(self) -> dict:
        """Everything but the records and the features."""
        return {k: v for k, v in asdict(self).items() if k not in ("records", "features")}


def _check_args(evaluator: Evaluator, texts, batch_size, max_tokens) -> None:
    check_texts(texts, batch_size)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2:
        raise ValueError(
            f"max_tokens: expected an integer >= 2 (start token + one scored token), got {max_tokens!r}"
        )
    if max_tokens > evaluator.context_length:
        raise ValueError(
            f"max_tokens: {max_tokens} exceeds the evaluator's context of {evaluator.context_length} positions"
        )


def check_texts(texts, batch_size) -> None:
    """One-line ``ValueError`` unless ``texts`` is a non-empty list of strings and ``batch_size`` an int >= 1."""
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"texts: expected a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts: empty list, nothing to score")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts: item {i} is {type(t).__name__}, not str")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")


def build_sequences(
    text_ids: Sequence[Sequence[int]], start_id: int, end_id: int, max_tokens: int
) -> tuple[list[list[int]], list[list[int]], list[bool]]:
    """``[start] + ids + [end]``, or ``[start] + ids[:max_tokens-1]`` when that would exceed ``max_tokens``.

    Returns (model sequences, kept text ids, truncated flags).
    """
    seqs, kept, truncated = [], [], []
    for ids in text_ids:
        ids = list(ids)
        cut = len(ids) + 2 > max_tokens
        if cut:
            ids = ids[: max_tokens - 1]
        seqs.append([start_id] + ids + ([] if cut else [end_id]))
        kept.append(ids)
        truncated.append(cut)
    return seqs, kept, truncated


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_i m_i h_i / sum_i m_i`` over positions: (B, L, D), (B, L) -> (B, D), in float64."""
    weights = mask.to(torch.float64).unsqueeze(-1)
    return (hidden.to(torch.float64) * weights).sum(dim=1) / weights.sum(dim=1)


def score_sequences(
    evaluator: Evaluator, seqs: Sequence[Sequence[int]], *, batch_size: int, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Masked NLL sums (float64) and scored-token counts of each sequence, batched longest first."""
    nll_sums, counts, _ = _forward(evaluator, seqs, None, batch_size, progress)
    return nll_sums, counts


def score_and_features(
    evaluator: Evaluator, seqs: Sequence[Sequence[int]], text_lengths: Sequence[int], *, batch_size: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``score_sequences`` plus, from the same forward, each sequence's last hidden states mean-pooled
    over its text positions ``1 .. text_lengths[i]`` (the start token's ``h_0`` for an empty text):
    (N, d) float32. A causal model's states there do not see the end token after them."""
    return _forward(evaluator, seqs, text_lengths, batch_size, progress)


@torch.inference_mode()
def _forward(evaluator: Evaluator, seqs, text_lengths, batch_size: int, progress: bool):
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    nll_sums = np.zeros(len(seqs), dtype=np.float64)
    counts = np.zeros(len(seqs), dtype=np.int64)
    features: np.ndarray | None = None
    device = evaluator.device
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="gen PPL", unit="batch", disable=not progress):
        lengths = torch.tensor([len(seqs[i]) for i in idx], device=device)
        width = int(lengths.max())
        ids = torch.full((len(idx), width), evaluator.end_id, dtype=torch.long, device=device)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
        positions = torch.arange(width, device=device).unsqueeze(0)
        attention = (positions < lengths.unsqueeze(1)).long()
        out = evaluator.model(input_ids=ids, attention_mask=attention, output_hidden_states=text_lengths is not None)
        mask = scored_token_mask(ids, lengths, evaluator.end_id)
        nll = torch.where(mask, token_nll(out.logits, ids), 0.0).double().sum(dim=1)
        nll_sums[idx] = nll.cpu().numpy()
        counts[idx] = mask.sum(dim=1).cpu().numpy()
        if text_lengths is not None:
            n = torch.tensor([text_lengths[i] for i in idx], device=device).unsqueeze(1)
            text = ((positions >= 1) & (positions <= n)) | ((positions == 0) & (n == 0))
            pooled = mean_pool(out.hidden_states[-1], text).cpu().numpy().astype(np.float32)
            if features is None:
                features = np.zeros((len(seqs), pooled.shape[1]), dtype=np.float32)
            features[idx] = pooled
    return nll_sums, counts, features


def generative_perplexity(
    evaluator: Evaluator, texts: list[str], *, batch_size: int, max_tokens: int, progress: bool = True,
    features: bool = False,
) -> GenPPLResult:
    """Gen PPL ``exp(sum NLL / sum n)`` of ``texts`` under ``evaluator`` (mask and framing: module docstring);
    ``features``: also the texts' pooled hidden states from the same forward (``score_and_features``)."""
    _check_args(evaluator, texts, batch_size, max_tokens)
    text_ids = evaluator.encode(texts)
    seqs, kept, truncated = build_sequences(text_ids, evaluator.start_id, evaluator.end_id, max_tokens)
    nll_sums, counts, pooled = _forward(evaluator, seqs, [len(k) for k in kept] if features else None,
                                        batch_size, progress)
    total_nll, total_tokens = float(nll_sums.sum()), int(counts.sum())
    return GenPPLResult(
        gen_ppl=float(np.exp(total_nll / total_tokens)),
        total_nll=total_nll,
        total_tokens=total_tokens,
        nll_sums=tuple(float(v) for v in nll_sums),
        n_tokens=tuple(int(c) for c in counts),
        ppls=tuple(float(v) for v in np.exp(nll_sums / counts)),
        text_token_ids=tuple(tuple(k) for k in kept),
        truncated=tuple(truncated),
        features=pooled,
    )


def evaluate_texts(
    evaluator: Evaluator, texts: list[str], *, batch_size: int, max_tokens: int, progress: bool = True,
    features: bool = False,
) -> EvalResult:
    """Gen PPL and mean unigram entropy of ``texts``, with one record per text (same order); ``features``:
    also their pooled hidden states (the MAUVE features), from the same forward pass."""
    ppl = generative_perplexity(evaluator, texts, batch_size=batch_size, max_tokens=max_tokens, progress=progress,
                                features=features)
    entropies = [unigram_entropy(ids) for ids in ppl.text_token_ids]
    records = tuple(
        SampleRecord(text=t, n_tokens=n, nll_sum=s, ppl=p, entropy=h, truncated=c)
        for t, n, s, p, h, c in zip(texts, ppl.n_tokens, ppl.nll_sums, ppl.ppls, entropies, ppl.truncated)
    )
    return EvalResult(
        gen_ppl=ppl.gen_ppl,
        entropy=float(np.mean(entropies)),
        n_samples=len(texts),
        total_tokens=ppl.total_tokens,
        n_truncated=ppl.n_truncated,
        records=records,
        features=ppl.features,
    )
