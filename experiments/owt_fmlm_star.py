"""The main experiment, as a script: the same as ``python -m fmlm run`` (see ``fmlm.cli``).

    python experiments/owt_fmlm_star.py                     # embedded offline preset, CPU
    python experiments/owt_fmlm_star.py --quick             # the same pipeline on a tiny budget
    torchrun --nproc_per_node 8 experiments/owt_fmlm_star.py --preset paper --run-dir runs/paper
"""

import sys

from fmlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
