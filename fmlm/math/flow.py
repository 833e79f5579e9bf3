"""The flow's constants as one configuration (docs/method.md sections 2 and 5).

``FlowConfig`` holds what every stage, sampler and probe of one run must agree on: the noise scale
``lam`` of ``z_t = t x0 + (1 - t) lam eps``, the logit-normal training-time distribution
``t = sigmoid(N(p_mean, p_std))`` (which also places the samplers' time grids), the velocity floor
``t_eps`` of ``v = (xhat - z) / max(1 - t, t_eps)``, and the range ``[w_min, w_max]`` of the
log-uniform guidance scale drawn in training. A run has exactly one; a checkpoint or model folder
stores the one it was trained with, and sampling reads it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmlm.config import require
from fmlm.math.interpolant import LAM, T_EPS
from fmlm.math.times import P_MEAN, P_STD

W_MIN = 0.5  # smallest guidance scale drawn in training (paper)
W_MAX = 5.0  # largest guidance scale drawn in training (paper)


@dataclass(frozen=True)
class FlowConfig:
    """Interpolant, training-time distribution, velocity floor and guidance range of one run."""

    lam: float = LAM
    p_mean: float = P_MEAN
    p_std: float = P_STD
    t_eps: float = T_EPS
    w_min: float = W_MIN
    w_max: float = W_MAX

    def __post_init__(self) -> None:
        require(self.lam > 0, "flow.lam", f"must be > 0, got {self.lam}")
        require(self.p_std > 0, "flow.p_std", f"must be > 0, got {self.p_std}")
        require(0 < self.t_eps < 1, "flow.t_eps", f"must lie in (0, 1), got {self.t_eps}")
        require(self.w_min > 0, "flow.w_min", f"must be > 0, got {self.w_min}")
        require(self.w_max >= self.w_min, "flow.w_max", f"must be >= w_min ({self.w_min}), got {self.w_max}")
