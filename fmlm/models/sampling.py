"""Named sampler settings stored with a model, and ``stored_setting``: the one for a number of steps
(``fmlm.samplers.sampler_for`` turns it into a ``SamplerConfig`` with the model's flow).

Two tables, keyed by stage then by a setting name (the number of steps):
- ``PAPER_SAMPLERS``: how the paper evaluates its released checkpoints (the reference's evaluation
  commands): the teacher's SDE at 32 steps (w = 3, churn 1.5, warm self-conditioning), ELF* at 32 Euler
  steps (w = 3, one forward per step at tau_0, no churn), FMLM* CTM gamma-sampling at 1, 2, 4 steps
  (w = 5; gamma 1.0, 0.75, 1.0). Flow samplers use sorted logit-normal draws, flow maps the quantile
  grid, and the decoder pass is guided by the sampler's w, as in the reference.
- ``PROJECT_SAMPLERS``: this project's evaluation plan for models it trains (ELF* with the teacher's
  churn, quantile grids, an unguided decoder pass as its decoder branch is trained).
The flow constants (lam, p_mean, p_std, t_eps) always come from the model, never from a table.
"""

from __future__ import annotations

from typing import Any


_TEACHER = {"kind": "sde", "steps": 32, "w": 3.0, "churn": 1.5, "sc_mode": "warm"}
_TEACHER_NOSC = {"kind": "sde", "steps": 32, "churn": 1.5, "sc_mode": "none"}
_FLOW_MAP = {str(n): {"kind": "ctm", "steps": n, "w": 5.0, "gamma": g} for n, g in ((1, 1.0), (2, 0.75), (4, 1.0))}


def _table(fixed_point: dict[str, Any], grid: str, guided: bool, flow_grid: str) -> dict[str, dict[str, dict]]:
    def setting(base: dict[str, Any], grid_name: str) -> dict[str, Any]:
        return {**base, "grid": grid_name, "decode_guided": guided}

    return {
        "teacher": {"32": setting(_TEACHER, grid)},
        "teacher-nosc": {"32": setting(_TEACHER_NOSC, grid)},
        "fixed-point": {"32": setting(fixed_point, grid)},
        "flow-map": {k: setting(v, flow_grid) for k, v in _FLOW_MAP.items()},
        "flow-map-nosc": {k: setting({**v, "w": 1.0}, flow_grid) for k, v in _FLOW_MAP.items()},
    }


PAPER_SAMPLERS = _table({"kind": "euler", "steps": 32, "w": 3.0, "sc_mode": "none"}, "sorted", True, "quantile")
PROJECT_SAMPLERS = _table({"kind": "sde", "steps": 32, "w": 3.0, "churn": 1.5, "sc_mode": "none"},
                          "quantile", False, "quantile")


def stored_setting(settings: dict[str, dict[str, Any]], steps: int | None = None) -> dict[str, Any]:
    """The named setting for ``steps`` (None: the first); without one, the first setting at ``steps``."""
    if not settings:
        raise ValueError("this model stores no sampler settings; pass kind=... steps=... overrides")
    name = next(iter(settings)) if steps is None else str(steps)
    return dict(settings.get(name) or {**next(iter(settings.values())), "steps": steps})
