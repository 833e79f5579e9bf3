"""Samplers: one algorithm per module, one driver (``generate``) for all of them."""

from fmlm.samplers.common import NoiseStreams, SampleSet, SamplerConfig, decode, generate, sampler_for, time_grid
from fmlm.samplers.flow import flow_sampler
from fmlm.samplers.flow_map import flow_map_sampler


def batch_sampler(cfg: SamplerConfig):
    """The batch sampler that runs ``cfg.kind``."""
    return flow_sampler(cfg) if cfg.kind in ("euler", "sde") else flow_map_sampler(cfg)


__all__ = [
    "NoiseStreams", "SampleSet", "SamplerConfig", "batch_sampler", "decode", "flow_map_sampler",
    "flow_sampler", "generate", "sampler_for", "time_grid",
]
