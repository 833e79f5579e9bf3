"""Self-conditioned denoisers with known fixed points, wrapping any exact denoiser ``D*(z, t)``.

A self-conditioned denoiser is called as ``model(z, t, sc)``; for fixed ``(z, t)`` the map
``F(sc) = model(z, t, sc)`` is the fixed-point iteration of docs/method.md section 6.

- linear:    ``F(s) = D* + L (s - D*)``: Lipschitz constant exactly ``L``, fixed point ``D*``
- nonlinear: ``F(s) = D* + L Q^T tanh(Q (s - D*))`` with ``Q`` orthogonal (acting on the last
  dim): tanh is 1-Lipschitz per coordinate, so the Lipschitz constant is ``<= L`` (equal to
  ``L`` near the fixed point), and ``tanh(0) = 0`` makes ``D*`` the fixed point.
For ``L < 1`` both are contractions with the unique fixed point ``D*`` (the exact denoiser).

``FixedPointDenoiser`` turns any self-conditioned model into the one-time denoiser
``D*(z, t) = lim_k s_k`` by Anderson iteration from a zero slot (the fixed-point flow's limit).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fmlm.math.fixed_point import anderson
from fmlm.math.guards import TimeLike, check_finite, check_same_shape

Denoiser = Callable[[Tensor, TimeLike], Tensor]


def _check_lipschitz(lipschitz: float) -> float:
    if not lipschitz >= 0 or lipschitz == float("inf"):
        raise ValueError(f"lipschitz must be finite and >= 0, got {lipschitz}")
    return float(lipschitz)


class LinearSelfConditioned:
    """``F(s) = D*(z, t) + L (s - D*(z, t))``: a linear contraction for ``L < 1`` with fixed point ``D*``."""

    def __init__(self, base: Denoiser, lipschitz: float) -> None:
        self.base, self.lipschitz = base, _check_lipschitz(lipschitz)

    def __call__(self, z: Tensor, t: TimeLike, sc: Tensor) -> Tensor:
        check_same_shape("z", z, "sc", sc)
        exact = self.base(z, t)
        return exact + self.lipschitz * (sc - exact)

    def fixed_point(self, z: Tensor, t: TimeLike) -> Tensor:
        """The fixed point ``s* = D*(z, t)`` (unique when ``L < 1``)."""
        return self.base(z, t)


class TanhSelfConditioned:
    """``F(s) = D* + L Q^T tanh(Q (s - D*))``: nonlinear, Lipschitz ``<= L``, fixed point ``D*``.

    ``mixing`` is an orthogonal ``(d, d)`` matrix acting on the last dim (identity if omitted).
    """

    def __init__(self, base: Denoiser, lipschitz: float, mixing: Tensor | None = None) -> None:
        self.base, self.lipschitz = base, _check_lipschitz(lipschitz)
        if mixing is not None:
            mixing = torch.as_tensor(mixing)
            check_finite("mixing", mixing)
            eye = torch.eye(mixing.shape[0], dtype=mixing.dtype)
            if mixing.dim() != 2 or mixing.shape[0] != mixing.shape[1] or not torch.allclose(
                mixing @ mixing.T, eye, atol=1e-6
            ):
                raise ValueError("mixing must be a square orthogonal matrix")
        self.mixing = mixing

    def __call__(self, z: Tensor, t: TimeLike, sc: Tensor) -> Tensor:
        check_same_shape("z", z, "sc", sc)
        exact = self.base(z, t)
        r = sc - exact
        if self.mixing is None:
            return exact + self.lipschitz * torch.tanh(r)
        q = self.mixing.to(r)
        return exact + self.lipschitz * (torch.tanh(r @ q.T) @ q)

    def fixed_point(self, z: Tensor, t: TimeLike) -> Tensor:
        """The fixed point ``s* = D*(z, t)`` (unique when ``L < 1``)."""
        return self.base(z, t)


class FixedPointDenoiser:
    """``D*(z, t)``: the self-conditioning fixed point, by up to ``n_iter`` Anderson steps from ``sc = 0``.

    ``model(z, t, sc)`` is any self-conditioned denoiser. With ``tol`` set, the iteration stops
    once every row's residual ``||F(s) - s||`` is ``<= tol`` and ``__call__`` raises ``ValueError``
    when that does not happen within ``n_iter`` evaluations (the iteration did not converge).
    """

    def __init__(
        self,
        model: Callable[[Tensor, TimeLike, Tensor], Tensor],
        n_iter: int = 30,
        *,
        m: int = 3,
        beta: float = 1.0,
        lam_reg: float = 1e-4,
        tol: float | None = None,
    ) -> None:
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
        self.model, self.n_iter, self.m, self.beta, self.lam_reg, self.tol = model, n_iter, m, beta, lam_reg, tol

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        result = anderson(
            lambda sc: self.model(z, t, sc),
            torch.zeros_like(z),
            self.n_iter,
            m=self.m,
            beta=self.beta,
            lam_reg=self.lam_reg,
            tol=self.tol,
        )
        if self.tol is not None:
            worst = float(result.residual_norms[-1].max())
            if not worst <= self.tol:
                raise ValueError(f"fixed-point iteration did not converge: residual {worst:.3g} > tol {self.tol:.3g}")
        return result.iterates[-1]
