"""verify/: float64 on the CPU and a derandomised hypothesis profile with no deadline.

The profile (``fmlm-verify``, registered in ``strategies.py``) is applied per test with
``@VERIFY`` rather than loaded globally, so the tests/ suite keeps its own settings.
"""

import pytest
import torch

from verify.strategies import VERIFY  # noqa: F401  (registers the hypothesis profile)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
