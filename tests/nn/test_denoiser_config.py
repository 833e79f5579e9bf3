"""DenoiserConfig checks and the size presets."""

from __future__ import annotations

import pytest

from fmlm.config import ConfigError, apply_overrides, from_dict, to_dict
from fmlm.nn import PRESETS, DenoiserConfig, denoiser_config

SIZES = {"latent_dim": 16, "vocab_size": 100, "max_len": 32}


def test_paper_presets_have_the_paper_sizes():
    expected = {"elf-b": (12, 768, 12), "elf-m": (24, 1056, 16), "elf-l": (32, 1280, 16)}
    for name, (depth, width, heads) in expected.items():
        cfg = denoiser_config(name, **SIZES)
        assert (cfg.depth, cfg.width, cfg.heads, cfg.bottleneck) == (depth, width, heads, 128)
        assert cfg.head_dim % 2 == 0


def test_every_preset_builds_and_defaults_match_method():
    for name in PRESETS:
        cfg = denoiser_config(name, **SIZES)
        assert cfg.time_tokens == 4 and cfg.guidance_tokens == 4 and cfg.mode_tokens == 4
        assert cfg.phase_tokens == 0 and cfg.self_conditioning
        assert cfg.prefix_len == 12
    assert denoiser_config("elf-b", **SIZES).mlp_hidden == 2048  # int(int(4 * 768) * 2/3)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="elf-b.*tiny"):
        denoiser_config("elf-xl", **SIZES)


def test_overrides_apply_and_unknown_override_is_refused():
    cfg = denoiser_config("tiny", **SIZES, phase_tokens=4, depth="3")
    assert cfg.phase_tokens == 4 and cfg.depth == 3
    with pytest.raises(ConfigError, match="unknown config key dpth"):
        denoiser_config("tiny", **SIZES, dpth=3)


def test_presets_dict_is_not_mutated_by_overrides():
    before = dict(PRESETS["tiny"])
    denoiser_config("tiny", **SIZES, depth=5)
    assert PRESETS["tiny"] == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"max_len": 0}, "max_len"),
        ({"depth": 0}, "depth"),
        ({"width": 65}, "heads"),  # 65 % 2 != 0
        ({"width": 6, "heads": 2}, "heads"),  # head dim 3 is odd: no rotary
        ({"time_tokens": 3}, "time_tokens"),
        ({"time_tokens": 0}, "time_tokens"),
        ({"guidance_tokens": -1}, "guidance_tokens"),
        ({"phase_tokens": -2}, "phase_tokens"),
        ({"mode_tokens": -1}, "mode_tokens"),
        ({"self_conditioning": False}, "guidance_tokens"),  # guidance needs self-conditioning
        ({"mlp_ratio": 0.0}, "mlp_ratio"),
        ({"mlp_ratio": 0.01}, "mlp_ratio"),  # SwiGLU hidden rounds to 0
        ({"default_phase": float("nan")}, "default_phase"),
        ({"bottleneck": 0}, "bottleneck"),
    ],
)
def test_bad_fields_raise_config_error_naming_the_field(overrides, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        denoiser_config("tiny", **{**SIZES, **overrides})


def test_direct_construction_checks_types():
    with pytest.raises(ConfigError, match="^depth:"):
        DenoiserConfig(**SIZES, depth=2.5)
    with pytest.raises(ConfigError, match="^self_conditioning:"):
        DenoiserConfig(**SIZES, self_conditioning="no", guidance_tokens=0)


def test_no_self_conditioning_model_config():
    cfg = denoiser_config("tiny", **SIZES, self_conditioning=False, guidance_tokens=0)
    assert cfg.prefix_len == 8


def test_config_round_trips_through_dict_and_overrides():
    cfg = denoiser_config("cpu-small", **SIZES)
    assert from_dict(DenoiserConfig, to_dict(cfg)) == cfg
    assert apply_overrides(cfg, ["phase_tokens=4"]).phase_tokens == 4
