"""Read a run folder (the files ``python -m fmlm run`` writes) into plain Python and pandas.

The files, their names and the record schema are the run-folder contract,
``fmlm.experiment.run_folder``::

    experiment.json                 free-form config dict ("preset", "name", ...)
    results.jsonl                   one record per evaluated sample set (RECORD_SCHEMA)
    eval/<id>.jsonl                 per-sample records
    timing.json                     {"stages": {stage: seconds}, "total_s": seconds}
    fixed_point.json                (optional) {"teacher_first_iterate_dist", "student_dist", "n_rows", ...}
    guidance.json                   (optional) {"w", "n_rows", "by_t": [{"t", "response", "target", "ratio"}]}
    stages/<stage>/metrics.jsonl    training curves {"step", "loss", ...}

A folder is a run folder when it holds ``experiment.json`` or ``results.jsonl``;
every other piece may be missing (the report says so).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from fmlm.experiment.run_folder import (EXPERIMENT_FILE, FIXED_POINT_FILE, GUIDANCE_FILE, MODEL_LABELS, RECORD_SCHEMA,
                                        RESULTS_FILE, STAGES, STAGES_DIR, TIMING_FILE, is_run_folder)
from fmlm.files import read_json_dict, read_jsonl

# the kinds of RECORD_SCHEMA (key -> (kind, required, nullable))
_STR = "str"
_INT = "int"
_NUM = "num"

RESULT_COLUMNS = tuple(RECORD_SCHEMA)


class RunFolderError(ValueError):
    """The path given is not a run folder."""


def require_run_folder(run_dir: Path | str) -> Path:
    """Return ``run_dir`` as a ``Path`` or raise ``RunFolderError`` (one line) if it is not a run folder."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunFolderError(f"run_dir: {path} is not a directory")
    if not is_run_folder(path):
        raise RunFolderError(f"run_dir: {path} is not a run folder "
                             f"(it has neither {EXPERIMENT_FILE} nor {RESULTS_FILE})")
    return path


_NON_FINITE = ("inf", "-inf", "nan")
"""How the experiment writes a non-finite number (JSON has no literal for it)."""


def _check_value(value: Any, kind: str, nullable: bool, where: str) -> Any:
    """Validate one field; numbers given as null become NaN so they print as 'nan'."""
    if kind == _NUM and isinstance(value, str) and value.lower() in _NON_FINITE:
        return float(value)
    if value is None:
        if not nullable:
            raise ValueError(f"{where}: must not be null")
        return math.nan if kind == _NUM else None
    if kind == _STR and isinstance(value, str):
        return value
    if kind == _INT and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == _NUM and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    expected = {"str": "a string", "int": "an integer", "num": "a number"}[kind]
    raise ValueError(f"{where}: expected {expected}, got {value!r}")


def _record_row(record: dict[str, Any], where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, (kind, required, nullable) in RECORD_SCHEMA.items():
        if key not in record:
            if required:
                raise ValueError(f"{where}: missing key {key!r}")
            row[key] = math.nan if kind == _NUM else None
            continue
        row[key] = _check_value(record[key], kind, nullable, f"{where}: {key}")
    if row["steps"] < 0:
        raise ValueError(f"{where}: steps must be >= 0, got {row['steps']}")
    if row["label"] is None:
        row["label"] = MODEL_LABELS.get(row["model"], row["model"])
    for key, value in record.items():
        if key not in RECORD_SCHEMA:
            row[key] = value
    return row


def load_results(run_dir: Path | str, notes: list[str] | None = None) -> pd.DataFrame:
    """All records of ``<run_dir>/results.jsonl``, one row each, columns ``RESULT_COLUMNS`` first.

    Optional keys that a record lacks are NaN (numbers) or None; null numbers are
    NaN; extra keys become extra columns. A folder without ``results.jsonl`` gives
    an empty frame with the standard columns. A malformed line raises
    ``ValueError`` naming ``file:line``, except a last line cut short by an interrupted write, which
    is left out with a note (in ``notes`` when given).
    """
    path = require_run_folder(run_dir) / RESULTS_FILE
    if not path.is_file():
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    records, cut = read_jsonl(path, strict=True, drop_cut_last=True)
    if cut and notes is not None:
        notes.append(f"{RESULTS_FILE}: line {cut[0]} was cut short by an interrupted write and is left out "
                     "(the next run measures it again)")
    rows = [_record_row(record, f"{path}:{number}") for number, record in records]
    frame = pd.DataFrame(rows, columns=None if rows else list(RESULT_COLUMNS))
    if rows:
        extra = [c for c in frame.columns if c not in RESULT_COLUMNS]
        frame = frame[list(RESULT_COLUMNS) + extra]
        for key in ("fp_iterations", "n_samples", "mauve_n", "mauve_n_reference", "mauve_num_buckets"):
            frame[key] = frame[key].astype("Int64")  # optional integers: None -> <NA>, not a float NaN
    return frame


def load_experiment(run_dir: Path | str) -> dict[str, Any] | None:
    """``experiment.json`` as a dict, or None if the file is absent."""
    path = Path(run_dir) / EXPERIMENT_FILE
    return read_json_dict(path) if path.is_file() else None


def load_timing(run_dir: Path | str) -> dict[str, Any] | None:
    """``timing.json`` checked to hold ``{"stages": {name: seconds}, "total_s": seconds}``; None if absent."""
    path = Path(run_dir) / TIMING_FILE
    if not path.is_file():
        return None
    data = read_json_dict(path)
    stages = data.get("stages")
    if not isinstance(stages, dict):
        raise ValueError(f"{path}: 'stages' must be an object of stage -> seconds")
    for name, seconds in stages.items():
        stages[name] = _check_value(seconds, _NUM, True, f"{path}: stages.{name}")
    if "total_s" in data:
        data["total_s"] = _check_value(data["total_s"], _NUM, True, f"{path}: total_s")
    return data


def load_fixed_point(run_dir: Path | str) -> dict[str, Any] | None:
    """``fixed_point.json`` with its two distances checked to be numbers; None if absent."""
    path = Path(run_dir) / FIXED_POINT_FILE
    if not path.is_file():
        return None
    data = read_json_dict(path)
    for key in ("teacher_first_iterate_dist", "student_dist"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
        data[key] = _check_value(data[key], _NUM, True, f"{path}: {key}")
    return data


def load_guidance(run_dir: Path | str) -> dict[str, Any] | None:
    """``guidance.json`` with every per-time entry checked to hold numbers; None if absent."""
    path = Path(run_dir) / GUIDANCE_FILE
    if not path.is_file():
        return None
    data = read_json_dict(path)
    by_t = data.get("by_t")
    if not isinstance(by_t, list) or not all(isinstance(e, dict) for e in by_t):
        raise ValueError(f"{path}: 'by_t' must be a list of objects")
    for i, entry in enumerate(by_t):
        for key in ("t", "response", "target", "ratio"):
            if key not in entry:
                raise ValueError(f"{path}: by_t[{i}] misses key {key!r}")
            entry[key] = _check_value(entry[key], _NUM, True, f"{path}: by_t[{i}].{key}")
    data["w"] = _check_value(data.get("w"), _NUM, True, f"{path}: w")
    return data


def load_stage_metrics(run_dir: Path | str, notes: list[str] | None = None) -> dict[str, tuple[pd.DataFrame, list[int]]]:
    """``stage -> (metrics frame, unparseable line numbers)`` for every ``stages/<stage>/metrics.jsonl``.

    Stages come in training order (``run_folder.STAGES``), then alphabetically.
    Training may still be writing a file, so a bad line does not raise: its
    number is returned for the report to list. A file that cannot be read at
    all is left out and named in ``notes`` (raises if ``notes`` is None).
    """
    out: dict[str, tuple[pd.DataFrame, list[int]]] = {}
    stages_dir = Path(run_dir) / STAGES_DIR
    if not stages_dir.is_dir():
        return out
    order = {name: i for i, name in enumerate(STAGES)}
    paths = sorted(stages_dir.glob("*/metrics.jsonl"),
                   key=lambda p: (order.get(p.parent.name, len(order)), p.parent.name))
    for path in paths:
        try:
            records, bad = read_jsonl(path, strict=False)
        except ValueError as err:
            if notes is None:
                raise
            notes.append(f"training curve left out: {err}")
            continue
        out[path.parent.name] = (pd.DataFrame([r for _, r in records]), bad)
    return out
