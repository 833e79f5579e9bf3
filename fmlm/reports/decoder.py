"""How far each model's decoder alone takes real text: the reconstruction table.

Records with ``sweep == "decode"`` put held-out latents (spread over the split
like the reference's rows) through one model's decoder head (no sampling).
Their token accuracy is the fraction of tokens decoded back to the held-out
ids; their gen PPL and entropy are what any sampler of that model would reach
if it produced the held-out latents exactly, shown next to the held-out text.
"""

from __future__ import annotations

import pandas as pd

from fmlm.experiment.run_folder import DECODE_SWEEP, MODEL_LABELS, NOISED_DECODE_TIMES
from fmlm.reports.formatting import NOT_MEASURED, fmt_num, markdown_table


def _accuracy(record: pd.Series, key: str) -> str:
    """A record's accuracy to 3 places; "-" where it has none (the reference, older folders)."""
    value = record.get(key)
    return "-" if value is None or pd.isna(value) else fmt_num(value, 3)


def _row(decoder: str, record: pd.Series) -> dict[str, str]:
    noised = {f"token acc t = {t:g}": _accuracy(record, f"token_accuracy_t{t:g}") for t in NOISED_DECODE_TIMES}
    return {"decoder": decoder, "token accuracy": _accuracy(record, "token_accuracy"), **noised,
            "gen PPL": fmt_num(record["gen_ppl"]), "entropy": fmt_num(record["entropy"]),
            "n": str(record["n_samples"])}


def decoder_table(results: pd.DataFrame) -> str:
    """Markdown body: the held-out text, then each decoder's reconstruction of it (raw records, one seed)."""
    head = ("Held-out latents decoded by each model's decoder head at t = 1, argmax per token, through the same "
            "detokenise -> retokenise -> score path as the samples. Token accuracy: fraction of tokens decoded "
            "back to the held-out ids; at t = 0.9 and 0.7, the same for the noised latents z_t = t x0 + (1 - t) "
            "lam eps. A sampler that produced these latents exactly would score the gen PPL and entropy of its "
            "model's row.")
    if results.empty or "sweep" not in results:
        return head + f"\n\nNo records: {NOT_MEASURED}.\n"
    decoded = results[results["sweep"] == DECODE_SWEEP]
    if decoded.empty:
        return head + f"\n\nNo records with `sweep == \"{DECODE_SWEEP}\"`: {NOT_MEASURED}.\n"
    reference = results[(results["model"] == "reference") & results["sweep"].isna()]
    rows = [_row(MODEL_LABELS["reference"] + " (no decoder)", r) for _, r in reference.iterrows()]
    rows += [_row(MODEL_LABELS.get(r["model"], r["model"]), r) for _, r in decoded.iterrows()]
    return head + "\n\n" + markdown_table(rows) + "\n"


__all__ = ["decoder_table"]
