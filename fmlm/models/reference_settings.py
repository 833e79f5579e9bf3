"""What a reference checkpoint's weights cannot tell: its stage and settings, from the reference's
training YAML when given, else from the file name and the paper's values."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fmlm.files import first_line

# Released file names -> stage (the reference's README names them so).
STAGE_OF_FILE = {"elf": "teacher", "elf_star": "fixed-point", "fmlm_star": "flow-map"}

# The paper's values for what the weights cannot tell (docs/method.md sections 1, 2, 7).
PAPER_DEFAULTS: dict[str, Any] = {
    "max_length": 1024,
    "encoder_model_name": "gpt2-large",
    "feature_layer": "last",
    "latent_mean": -0.009133760006666183,
    "latent_std": 0.9250109602467304,
    "denoiser_noise_scale": 2.0,
    "denoiser_p_mean": -1.5,
    "denoiser_p_std": 0.8,
    "t_eps": 0.05,
    "cdeq_inference_phase": 0.002,
    "self_cond_cfg_min": 0.5,
    "self_cond_cfg_max": 5.0,
}


def stage_from(settings: Mapping[str, Any] | None, name: str) -> str:
    """The stage of a reference model: from its YAML when given, else from the checkpoint's file stem."""
    if settings:
        sc = float(settings.get("self_cond_prob", 0.5)) > 0
        if settings.get("cdeq_enabled"):
            return "fixed-point"
        if settings.get("elfmap_enabled"):
            return "flow-map" if sc else "flow-map-nosc"
        return "teacher" if sc else "teacher-nosc"
    stem = Path(name).stem.lower().replace("-", "_")
    if stem in STAGE_OF_FILE:
        return STAGE_OF_FILE[stem]
    raise ValueError(f"{name}: cannot tell the stage from the file name (known: "
                     f"{', '.join(f'{k}.ckpt' for k in STAGE_OF_FILE)}); pass --config REFERENCE.yml or --stage")


def read_settings(path: str | Path | None) -> dict[str, Any]:
    """The reference's training YAML as a dict (``{}`` without one)."""
    if path is None:
        return {}
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such reference config file")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable YAML file ({first_line(err)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, found a {type(data).__name__}")
    return data


def merged_settings(settings: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The paper's defaults overlaid with ``settings``; each value read here is type-checked."""
    merged = dict(PAPER_DEFAULTS)
    merged.update({k: v for k, v in settings.items() if k in PAPER_DEFAULTS and v is not None})
    for key, value in merged.items():
        if key in ("encoder_model_name",):
            ok = isinstance(value, str) and value
        elif key == "feature_layer":
            ok = value == "last" or (isinstance(value, int) and not isinstance(value, bool))
        elif key == "max_length":
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ValueError(f"{source}: setting {key}: {value!r} is not valid")
    return merged
