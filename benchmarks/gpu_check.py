"""The paper preset on one GPU in under 8 minutes: numerics, training steps, sampling, the released-checkpoint
path, torchrun with a SIGTERM and resume, torch.compile (the parts: ``benchmarks/gpucheck/``).

    make gpu-check                                  # on a CUDA machine
    python benchmarks/gpu_check.py [--out DIR] [--skip compile,distributed]
    python benchmarks/gpu_check.py --tiny           # every part at tiny sizes on the CPU (the test suite)

Writes ``benchmarks/results/gpu_check_<device>.md`` and ``.json`` (rewritten after every part, so a
cut-off run keeps the parts it finished) and prints both paths. Without CUDA and without ``--tiny``
it refuses in one line.
"""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests.models / tests.train

from gpucheck.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
