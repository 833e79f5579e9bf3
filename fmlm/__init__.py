"""fmlm: self-conditioned flow map language models via fixed-point flows.

Layers, each importing only the ones above it:
``fmlm.math`` (pure formulas) <- ``fmlm.synthetic`` (denoisers with known answers)
<- ``fmlm.nn`` (the denoiser network) <- ``fmlm.losses`` / ``fmlm.samplers``
<- ``fmlm.train`` (stage-agnostic loop) <- ``fmlm.models`` (model folders, released checkpoints)
<- ``experiments/``. ``fmlm.load_model`` / ``fmlm.save_model`` read and write model folders.
"""

__version__ = "0.1.0"

_LAZY = {"load_model", "save_model"}  # fmlm.models, imported on first use (keeps `import fmlm` torch-free)


def __getattr__(name: str):
    if name in _LAZY:
        from fmlm import models

        return getattr(models, name)
    raise AttributeError(f"module 'fmlm' has no attribute {name!r}")
