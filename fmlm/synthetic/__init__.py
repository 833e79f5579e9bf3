"""Synthetic data with known answers: exact denoisers, flow maps and self-conditioned fixed points.

Latents are ``(B, L, d)`` sequences (plain ``(B, d)`` vectors where positions do not matter);
``t = 0`` noise, ``t = 1`` data, ``z_t = t x0 + (1 - t) lam eps``. Shared by ``verify/``,
the tests and the experiments; float64-friendly.
"""

from fmlm.synthetic.codebook import CodebookData, token_log_likelihood
from fmlm.synthetic.gaussian import GaussianData, GaussianMixtureData
from fmlm.synthetic.markov import (
    MarkovChainData,
    MeanFieldSelfConditioned,
    cyclic_preference,
    simplex_codebook,
    stationary_distribution,
)
from fmlm.synthetic.ode import ode_flow_map, pf_velocity
from fmlm.synthetic.self_conditioned import FixedPointDenoiser, LinearSelfConditioned, TanhSelfConditioned

__all__ = [
    "CodebookData",
    "FixedPointDenoiser",
    "GaussianData",
    "GaussianMixtureData",
    "LinearSelfConditioned",
    "MarkovChainData",
    "MeanFieldSelfConditioned",
    "TanhSelfConditioned",
    "cyclic_preference",
    "ode_flow_map",
    "pf_velocity",
    "simplex_codebook",
    "stationary_distribution",
    "token_log_likelihood",
]
