"""A tiny offline stand-in for the paper's set-up: a folder of text files and the data tests'
randomly initialised 2-layer GPT-2 (``tiny_gpt2``: encoder and evaluator, byte-level BPE tokenizer)."""

from __future__ import annotations

import pytest

from fmlm.config import apply_overrides
from fmlm.experiment import preset
from tests.data.conftest import TINY_TEXTS, tiny_gpt2  # noqa: F401  (fixture, re-used)


@pytest.fixture()
def text_folder(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(4):
        for j, text in enumerate(TINY_TEXTS):
            (folder / f"doc{i}_{j:02d}.txt").write_text(f"{text} {TINY_TEXTS[(j + i) % len(TINY_TEXTS)]}\n")
    return folder


def tiny_paper_config(tmp_path, text_folder, gpt2_folder):
    """The ``paper`` preset with only sizes and budgets shrunk (and local files for the hub names)."""
    return apply_overrides(preset("paper"), [
        f"cache_dir={tmp_path / 'cache'}",
        f"data.source={text_folder}", f"data.encoder={gpt2_folder}", "data.row_len=16", "data.stats_rows=16",
        "data.val_fraction=0.1", "data.encoder_dtype=float32",
        "network.preset=tiny",
        "fixed_point.iterations=3", "fixed_point.snap_tail=1",
        *(f"{s}.{k}" for s in ("train_teacher", "train_fixed_point", "train_flow_map")
          for k in ("max_steps=2", "global_batch=4", "precision=fp32", "log_every=1")),
        f"evaluation.evaluator={gpt2_folder}", "evaluation.n_samples=2", "evaluation.sample_batch=2",
        "evaluation.score_batch=2", "evaluation.max_tokens=48", "evaluation.teacher_steps=3",
        "evaluation.fp_iterations=[1,2]", "evaluation.sc_sweep_steps=2", "evaluation.w_sweep=[1.0]",
        "evaluation.gamma_sweep=[0.0]", "evaluation.churn_sweep=[0.5]", "evaluation.fixed_point_rows=2", "evaluation.ode_steps=[1,3]",
    ])
