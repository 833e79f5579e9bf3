"""Reproducing the paper's table from its released models (``experiments/reproduce_released.py``).

    released.py   which stored settings are sampled, the scoring framings, the run-folder records
    shards.py     splitting a sample set over torchrun processes so the set does not depend on their number
"""
