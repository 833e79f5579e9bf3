"""The math layer: pure formulas of the method (tensors and plain scalars in, tensor out).

Time convention everywhere: ``t = 0`` pure noise, ``t = 1`` clean data; ``lam`` the noise scale.
Modules: ``guards`` (argument checks), ``interpolant`` (z_t, velocity), ``times`` (training
times and grids), ``flow_map`` (two-time maps, semigroup target), ``fixed_point`` (Picard,
Anderson), ``consistency`` (stage-2 student map), ``stochastic`` (CTM step, SDE churn).
"""

from fmlm.math.consistency import (
    DENOM_EPS,
    RHO,
    TAU_E,
    TAU_T,
    c_skip,
    consistency_time,
    student_map,
    two_point_combination,
)
from fmlm.math.fixed_point import FixedPointResult, anderson, anderson_weights, picard
from fmlm.math.flow_map import (
    compose_flow_maps,
    flow_map,
    flow_map_denoiser,
    semigroup_target,
    semigroup_weight,
)
from fmlm.math.guards import check_finite, check_ordered, check_times, expand_like, row_dot, row_norms
from fmlm.math.interpolant import LAM, T_EPS, euler_step, interpolate, velocity_to_x, x_to_velocity
from fmlm.math.stochastic import ctm_step, ctm_target_time, sde_churn
from fmlm.math.times import (
    P_MEAN,
    P_STD,
    TwoTimeSample,
    logit_normal_quantile,
    quantile_grid,
    sample_logit_normal,
    sample_two_time,
    sorted_draw_grid,
)

__all__ = [
    "DENOM_EPS",
    "LAM",
    "P_MEAN",
    "P_STD",
    "RHO",
    "TAU_E",
    "TAU_T",
    "T_EPS",
    "FixedPointResult",
    "TwoTimeSample",
    "anderson",
    "anderson_weights",
    "c_skip",
    "check_finite",
    "check_ordered",
    "check_times",
    "compose_flow_maps",
    "consistency_time",
    "ctm_step",
    "ctm_target_time",
    "euler_step",
    "expand_like",
    "flow_map",
    "flow_map_denoiser",
    "interpolate",
    "logit_normal_quantile",
    "picard",
    "quantile_grid",
    "row_dot",
    "row_norms",
    "sample_logit_normal",
    "sample_two_time",
    "sde_churn",
    "semigroup_target",
    "semigroup_weight",
    "sorted_draw_grid",
    "student_map",
    "two_point_combination",
    "velocity_to_x",
    "x_to_velocity",
]
