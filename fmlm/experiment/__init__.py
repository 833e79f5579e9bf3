"""The main job: configuration, presets, the evaluation plan, the stages, the run and its
measurements, and the run-folder contract. (The released-checkpoint reproduction is ``fmlm.reproduce``,
the preset study ``fmlm.study``.)

    config.py      ExperimentConfig, StageConfig, EvalConfig, NetworkConfig (and older-layout upgrades)
    presets.py     embedded, quick, paper
    plan.py        what is measured: the sweeps, then the headline at their chosen values
    sweep_choice.py  the sweeps and the rule choosing their values (torch-free; the reports use it too)
    run_folder.py  the files of a run folder, their schema and helpers (torch-free; the reports read it)
    stages.py      building, checking and training one stage
    run.py         run_experiment: data -> stages -> measurements
    measure.py     sampling, scoring and recording one setting
    probes.py      one-forward probes of trained denoisers

Names below are imported on first use, so ``fmlm.experiment.run_folder`` stays importable without torch.
"""

_EXPORTS = {
    "ExperimentConfig": "config", "EvalConfig": "config", "NetworkConfig": "config", "StageConfig": "config",
    "PRESETS": "presets", "preset": "presets", "load_run_config": "presets",
    "evaluation_plan": "plan", "run_experiment": "run", "STAGES": "run_folder", "TEACHER_OF": "run_folder",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"fmlm.experiment.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'fmlm.experiment' has no attribute {name!r}")
