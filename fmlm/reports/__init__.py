"""Reports: turn a run folder (written by ``python -m fmlm run``) into markdown tables and PNG plots.

This package reads files only and imports no torch: from ``fmlm`` it uses nothing but the run-folder
contract (``fmlm.experiment.run_folder``), the sweeps' choice rule (``fmlm.experiment.sweep_choice``)
and the file helpers (``fmlm.files``); tests/test_layering.py
checks it. Entry points: ``python -m fmlm report <run-folder> [--out DIR]`` (or
``python -m fmlm.reports <run-folder> [--out DIR]``, the same command), ``build_report(run_dir,
out_dir=None) -> Path`` and ``load_results(run_dir) -> DataFrame``.

    loading.py      run folder -> records (DataFrame) and the optional JSON files, validated
    aggregate.py    repeated records (seeds) -> one row per setting: mean, std, n
    formatting.py   numbers and settings as table cells
    tables.py, flows.py, decoder.py, guidance.py, released.py, comparisons.py   the markdown tables
    sweeps.py       the w / gamma / churn sweeps: the chosen value, the seeds it came from, the headline's
    gallery.py      samples.md: samples beside held-out text, to read
    paper.py        numbers quoted from the paper (never mixed with measured ones)
    plots.py        the PNG plots
    build.py        all of it -> <run>/report/report.md
"""

from fmlm.reports.aggregate import summarize
from fmlm.reports.build import build_report
from fmlm.reports.loading import RunFolderError, load_results

__all__ = ["build_report", "load_results", "summarize", "RunFolderError"]
