"""fmlm: self-conditioned flow map language models via fixed-point flows.

Layers, each importing only the ones above it:
``fmlm.math`` (pure formulas) <- ``fmlm.synthetic`` (denoisers with known answers)
<- ``fmlm.nn`` (the denoiser network) <- ``fmlm.losses`` / ``fmlm.samplers``
<- ``fmlm.train`` (stage-agnostic loop) <- ``experiments/``.
"""

__version__ = "0.1.0"
