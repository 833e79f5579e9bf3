"""What a command works on: the preset, the run folder and its configuration with the overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmlm.config import ConfigError, apply_overrides
from fmlm.experiment.run_folder import STAGES

PRESET_NAMES = ("embedded", "paper", "quick")


def experiment_config(args: argparse.Namespace):
    """The run folder's stored configuration if it has one, else the preset; then the overrides."""
    from fmlm.experiment.presets import load_run_config, preset
    from fmlm.experiment.run_folder import EXPERIMENT_FILE, check_writable_run_dir

    for item in args.overrides:
        if item.split("=", 1)[0].strip() == "device":
            raise ConfigError(f"{item}: the device is an option of the command, not a setting; pass --device")
    run_dir = run_root(args)
    check_writable_run_dir(run_dir)
    base = load_run_config(run_dir) if (run_dir / EXPERIMENT_FILE).is_file() else preset(preset_name(args))
    return apply_overrides(base, args.overrides)


def preset_name(args: argparse.Namespace) -> str:
    """The preset asked for; ``--quick`` with another ``--preset`` is refused."""
    quick = getattr(args, "quick", False)
    if quick and args.preset not in (None, "quick"):
        raise ValueError(f"--quick means --preset quick and conflicts with --preset {args.preset}; pass one of them")
    return "quick" if quick else args.preset or "embedded"


def run_root(args: argparse.Namespace) -> Path:
    return args.run_dir or Path("runs") / preset_name(args)


def parse_stages(text: str) -> tuple[str, ...]:
    """``--stages`` as a tuple of names; an empty name (``a,,b``, a trailing comma, ``,``) is refused."""
    names = tuple(s.strip() for s in text.split(","))
    if "" in names:
        raise ValueError(f"--stages {text!r} holds an empty stage name; give comma-separated names from {list(STAGES)}")
    return names
