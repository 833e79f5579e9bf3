"""The interval mechanism as the reports import it: ``fmlm.intervals`` (it sits at the bottom of the package so
that the sweeps' choice rule, ``fmlm.experiment.sweep_choice``, which the run uses too, shares it)."""

from fmlm.intervals import (FAIL, LEVEL, N_BOOT, PASS, UNRESOLVED, Contrast, Interval, Statistic, bootstrap_interval,
                            compare, log_ppl, mean, mean_difference, t_interval, verdict)

__all__ = ["FAIL", "LEVEL", "N_BOOT", "PASS", "UNRESOLVED", "Contrast", "Interval", "Statistic",
           "bootstrap_interval", "compare", "log_ppl", "mean", "mean_difference", "t_interval", "verdict"]
