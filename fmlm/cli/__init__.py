"""Command line (one package, no import cycle): ``python -m fmlm {run,prepare,train,sample,import,export,evaluate,report} ...``.

Every command works with no arguments on the embedded offline preset:

    python -m fmlm run                             # the main job: all stages, measurements, report
    python -m fmlm run --quick                     # the same on a tiny budget (a smoke run)
    python -m fmlm prepare                         # text -> rows -> cached latents
    python -m fmlm train teacher                   # stage 1 into runs/embedded/stages/teacher
    python -m fmlm sample --stage flow-map --steps 2 --n 8
    python -m fmlm evaluate runs/embedded/samples/teacher.jsonl
    python -m fmlm report runs/embedded

Model folders (the paper's released checkpoints, or a finished stage of a run):

    python -m fmlm import fmlm_star.ckpt --out models/fmlm-star [--config REFERENCE.yml] [--weights ema|raw]
    python -m fmlm export runs/embedded/stages/flow-map --out models/embedded-flow-map
    python -m fmlm sample --model models/fmlm-star --steps 1 --n 8

Settings are dotted ``key=value`` overrides of the preset's configuration
(``fmlm.experiment.ExperimentConfig``; for ``sample``, of ``SamplerConfig``), before or after the
options. Unknown keys and wrong types are refused with a one-line error. The device (``--device``)
and progress bars (``--no-progress``) are options of a command, not settings. Under ``torchrun``
give the run folder as ``--run-dir`` (torchrun's own parser captures ``--run``).
"""

# Modules: ``options`` (the preset, run folder and settings a command works on), ``run_commands``
# (``run``, ``prepare``, ``train``, ``report``), ``model_commands`` (``import``, ``export``,
# ``evaluate``), ``sample`` (the one ``sample`` command: a run's stage or a model folder), ``parser``
# (the argument parser and ``main``). Each imports only ``options`` and the library below it.

from fmlm.cli.parser import main, parse_args

__all__ = ["main", "parse_args"]
