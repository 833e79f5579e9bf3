"""Has the teacher learned its guidance scale? The table of ``guidance.json``.

Per flow time t: how far the teacher's output moves when w goes from 1 to the
flow maps' w ("response"), against the move the guided training target asks
for ("target", docs/method.md section 5). A ratio near 1 means the guidance tokens
do what they were trained for; near 0, the teacher ignores w, and so do ELF*
and FMLM* sampled with it.
"""

from __future__ import annotations

from typing import Any

from fmlm.reports.formatting import NOT_MEASURED, fmt_num, markdown_table


def guidance_table(guidance: dict[str, Any] | None) -> str:
    """Markdown body for ``guidance.json`` (or a line saying it is not measured)."""
    if guidance is None:
        return f"guidance.json: {NOT_MEASURED}.\n"
    w = guidance["w"]
    rows = [{"t": fmt_num(e["t"], 2), "response: rms(D(w) - D(1))": fmt_num(e["response"], 4),
             "target: rms((1 - 1/w)(D(s1) - D(0)))": fmt_num(e["target"], 4), "ratio": fmt_num(e["ratio"], 3)}
            for e in guidance["by_t"]]
    head = (f"Teacher (ELF) on {guidance.get('n_rows', '?')} held-out rows noised to each flow time t, slot filled "
            f"with its own first estimate s1, w = {fmt_num(w, 3)} against w = 1 (distances: RMS over tokens and "
            "channels, mean over rows). Ratio 1: the teacher learned the guided target; ratio 0: it ignores w.")
    if not rows:
        return head + f"\n\nNo flow times recorded: {NOT_MEASURED}.\n"
    return head + "\n\n" + markdown_table(rows) + "\n"


__all__ = ["guidance_table"]
