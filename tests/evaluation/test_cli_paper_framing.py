"""``python -m fmlm evaluate --framing paper``: the reference's scoring, with blank samples dropped and
kept, printed beside the project's framing; numbers equal the library functions'."""

import json

from fmlm.cli import main
from fmlm.evaluation.evaluator import load_evaluator
from fmlm.evaluation.paper_scoring import score_like_paper
from tests.data.conftest import TINY_TEXTS, tiny_gpt2  # noqa: F401  (fixture)


def test_paper_framing_reports_dropped_and_kept_blank_samples(tmp_path, tiny_gpt2, capsys):
    texts = [TINY_TEXTS[0], "", TINY_TEXTS[3][:30], "   "]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"index": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    code = main(["evaluate", "--run", str(tmp_path / "run"), str(samples), "--evaluator", str(tiny_gpt2),
                 "--framing", "paper", "--max-length", "40"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "paper (blank samples dropped)" in printed and "project framing" in printed
    saved = json.loads(samples.with_suffix(".paper.json").read_text())
    assert saved["paper"]["n_scored"] == 2 and saved["paper_keep_empty"]["n_scored"] == 4
    evaluator = load_evaluator(str(tiny_gpt2), cache_dir=tmp_path / "c")
    direct = score_like_paper(evaluator, texts, max_length=40, batch_size=16, progress=False)
    assert abs(saved["paper"]["gen_ppl"] - direct.gen_ppl) < 1e-9 * direct.gen_ppl
    assert saved["paper_keep_empty"]["entropy"] < saved["paper"]["entropy"]  # blanks add 0-entropy samples
