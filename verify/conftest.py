"""verify/: float64 on the CPU and a derandomised hypothesis profile with no deadline.

The profile (``fmlm-verify``, registered in ``strategies.py``) is applied per test with
``@VERIFY`` rather than loaded globally, so the tests/ suite keeps its own settings.
"""

import pytest
import torch

from verify.strategies import VERIFY  # noqa: F401  (registers the hypothesis profile)

# The problems here are tiny: one thread avoids OpenMP start-up and contention costs (on a loaded
# 2-core machine a 3x3 batched LAPACK solve took 12 ms with two threads and 15 us with one).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
