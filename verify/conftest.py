"""verify/: float64 on the CPU, one thread, and a derandomised hypothesis profile with no deadline.

The profile (``fmlm-verify``, registered in ``strategies.py``) is applied per test with
``@VERIFY``, and dtype and thread count are set per test and restored, so running verify/
together with tests/ changes nothing for the tests/ suite.
"""

import pytest
import torch

from verify.strategies import VERIFY  # noqa: F401  (registers the hypothesis profile)


@pytest.fixture(autouse=True)
def _float64_single_thread():
    # The problems here are tiny; one thread avoids OpenMP wake-up and contention costs (on a
    # loaded 2-core machine a batched 3x3 LAPACK solve took 12 ms with two threads, 15 us with one).
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
