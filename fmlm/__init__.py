"""fmlm: self-conditioned flow map language models via fixed-point flows.

Layers, bottom to top; a module imports only its own layer and those below it (checked by
``tests/test_layering.py``; the README's Layout says what each package holds):
``fmlm.config``, ``fmlm.files`` <- ``fmlm.math``, ``fmlm.data``, ``fmlm.evaluation`` (and the
run-folder contract) <- ``fmlm.synthetic`` <- ``fmlm.nn`` (its CPU kernels in ``fmlm.nn.cpu``)
<- ``fmlm.losses``, ``fmlm.samplers`` <- ``fmlm.train`` <- ``fmlm.models`` <- ``fmlm.experiment``
(the main job) <- ``fmlm.reproduce``, ``fmlm.study`` <- ``fmlm.reports`` <- ``fmlm.cli``.
``fmlm.load_model`` / ``fmlm.save_model`` read and write model folders.
"""

__version__ = "0.1.0"

_LAZY = {"load_model", "save_model"}  # fmlm.models, imported on first use (keeps `import fmlm` torch-free)


def __getattr__(name: str):
    if name in _LAZY:
        from fmlm import models

        return getattr(models, name)
    raise AttributeError(f"module 'fmlm' has no attribute {name!r}")
