"""Reports: turn a run folder (written by experiments/) into markdown tables and PNG plots.

This package reads files only: it imports neither torch nor anything from
``fmlm``. Entry points: ``python -m reports <run-folder> [--out DIR]``,
``build_report(run_dir, out_dir=None) -> Path`` and ``load_results(run_dir) -> DataFrame``.
"""

from reports.build import build_report
from reports.loading import RunFolderError, load_results
from reports.summary import summarize

__all__ = ["build_report", "load_results", "summarize", "RunFolderError"]
