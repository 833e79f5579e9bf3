"""``samples.md``: the first samples of every headline setting beside the first held-out texts, to read.

For each model and step count with a headline setting (records with ``sweep`` null), the record on
seed ``GALLERY_SEED`` (else its lowest seed, said in the heading): its first ``N_SHOWN`` samples, in
the order of ``eval/<id>.jsonl``, side by side with the first ``N_SHOWN`` held-out texts (the record of
model "reference"). Each text comes with its per-sample PPL (``exp(NLL / n)`` under the evaluator) and
unigram entropy (nats), as the per-sample file records them. Texts are shown in full, escaped for a
markdown table cell (``escape_cell``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS
from fmlm.reports.aggregate import summarize
from fmlm.reports.formatting import NOT_MEASURED, fmt_num, fmt_setting, markdown_table, missing, steps_text

N_SHOWN = 3
"""Samples shown per setting, and held-out texts beside them."""
GALLERY_SEED = 0
"""The seed whose samples are shown."""

_MARKDOWN_PUNCTUATION = "\\`*_[]|~"
"""Characters that act inside a table cell: escapes, code spans, emphasis, links, the cell bar, strikethrough
(``#``, ``-``, ``+``, ``.`` act only at the start of a block, which a cell never is)."""
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape_cell(text: str) -> str:
    """``text`` for one markdown table cell, every character kept: ``& < >`` as HTML entities, the markdown
    characters of ``_MARKDOWN_PUNCTUATION`` backslash-escaped (so ``|`` cannot end the cell), line breaks as
    ``<br>``."""
    out = []
    for ch in str(text).replace("\r\n", "\n").replace("\r", "\n"):
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN_PUNCTUATION:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("<br>")
        else:
            out.append(ch)
    return "".join(out)


def read_samples(path: Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` per-sample records of ``path`` (fewer if it holds fewer); ``ValueError`` naming the
    file and line when a line is not a JSON object with a ``text``."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if len(rows) == n:
                    break
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ValueError(f"{path}:{number}: not a per-sample record with a text")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({type(err).__name__})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
    return rows


def _pick(results: pd.DataFrame, ids: tuple[str, ...]) -> pd.Series:
    """The record among ``ids`` on ``GALLERY_SEED``, else the one on the lowest seed."""
    records = results[results["id"].isin(ids)].sort_values("seed", kind="stable")
    on_seed = records[records["seed"] == GALLERY_SEED]
    return (on_seed if not on_seed.empty else records).iloc[0]


def _samples_of(run: Path, record: pd.Series | None, notes: list[str]) -> list[dict[str, Any]] | None:
    if record is None or missing(record["samples_file"]):
        return None
    try:
        return read_samples(run / record["samples_file"], N_SHOWN)
    except ValueError as err:
        notes.append(f"samples.md: {err}")
        return None


def _cells(rows: list[dict[str, Any]] | None, i: int) -> tuple[str, str, str]:
    if rows is None:
        return NOT_MEASURED, "-", "-"
    if i >= len(rows):
        return "(no sample)", "-", "-"
    row = rows[i]
    return escape_cell(row["text"]) or "(empty text)", fmt_num(row.get("ppl")), fmt_num(row.get("entropy"))


def _section(title: str, samples: list[dict[str, Any]] | None, held_out: list[dict[str, Any]] | None) -> str:
    rows = []
    for i in range(N_SHOWN):
        text, ppl, ent = _cells(samples, i)
        ref_text, ref_ppl, ref_ent = _cells(held_out, i)
        rows.append({"#": str(i), "sample": text, "PPL": ppl, "entropy": ent, "held-out text": ref_text,
                     "held-out PPL": ref_ppl, "held-out entropy": ref_ent})
    return f"{title}\n\n{markdown_table(rows)}"


def gallery_markdown(run: Path, results: pd.DataFrame, notes: list[str]) -> str | None:
    """The body of ``samples.md``, or None when no headline record has a readable samples file (then a note)."""
    if results.empty:
        notes.append("samples.md: not written (no results)")
        return None
    summary = summarize(results)
    refs = results[(results["model"] == "reference") & results["sweep"].isna()]
    reference = refs.iloc[0] if not refs.empty else None
    held_out = _samples_of(run, reference, notes)
    heads = summary[summary["sweep"].isna() & (summary["model"] != "reference")]
    sections = []
    for _, setting in heads.iterrows():
        record = _pick(results, setting["ids"])
        samples = _samples_of(run, record, notes)
        if samples is None:
            continue
        seed = int(record["seed"])
        seed_text = f"seed {seed}" + ("" if seed == GALLERY_SEED else f" (no record on seed {GALLERY_SEED})")
        label = MODEL_LABELS.get(setting["model"], setting["label"])
        knobs = fmt_setting(setting)
        title = (f"### {label} ({setting['model']}), {setting['sampler']}, {steps_text(int(setting['steps']))}"
                 f"{'' if knobs == '-' else ', ' + knobs}: {seed_text}, `{record['samples_file']}`")
        sections.append(_section(title, samples, held_out))
    if not sections:
        notes.append("samples.md: not written (no headline record has a readable samples file)")
        return None
    source = (f"`{reference['samples_file']}`" if held_out is not None else
              f"{NOT_MEASURED} (no readable held-out reference record)")
    head = (f"The first {N_SHOWN} samples of every headline setting (records with `sweep == null`; seed "
            f"{GALLERY_SEED} where recorded) beside the first {N_SHOWN} held-out texts ({source}). PPL is the "
            "per-sample perplexity exp(NLL / n) under the evaluator, entropy the unigram entropy in nats, both as "
            "recorded in the per-sample files. Texts are complete; markdown characters are escaped.")
    return "\n\n".join([head, *sections]) + "\n"
