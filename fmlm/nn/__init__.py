"""The denoiser network (ELF architecture), its configuration and presets.

``Denoiser(config)(z, t, s=, sc=, w=, tau=, decode=)`` returns the x-prediction or,
in decoder mode, token logits; ``denoiser_config(preset, ...)`` builds a config
from a named size; ``warm_start`` loads a teacher into a student with extra banks.
"""

from fmlm.nn.config import PRESETS, DenoiserConfig, denoiser_config
from fmlm.nn.denoiser import Denoiser
from fmlm.nn.warm_start import count_parameters, parameter_breakdown, warm_start

__all__ = [
    "PRESETS",
    "Denoiser",
    "DenoiserConfig",
    "count_parameters",
    "denoiser_config",
    "parameter_breakdown",
    "warm_start",
]
