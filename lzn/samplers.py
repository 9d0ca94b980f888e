"""Rectified-flow sampling, inversion, reconstruction error and training pairs for the image decoder.

Implements LZN_SPEC §2.1: the RF training pair (``t ~ U[1e-3, 1]``, ``x_t = t·x + (1 − t)·x0``, target
``x − x0``), the Euler sampler (NFE ablation) and the main RK45 sampler
(``scipy.integrate.solve_ivp(method="RK45")`` on flattened float64 CPU arrays, rtol = atol = 1e-5,
t from 1e-3 to 1), the inversion data → noise, and the reconstruction-error protocol (steps 2-4:
invert the ODE with the caller's z, re-integrate forward with the same z, per-image L2 error).

RF time convention (LZN_SPEC §1.1): t = 0 is noise, t = 1 is data. A velocity model is called as
``model(x [B, ...], t [B], **cond) -> v [B, ...]``; ``cond`` (e.g. ``z=[B,q]``, ``y_onehot=[B,c]``) is
passed through, with entries that are None dropped. Callers put the model in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import integrate

__all__ = [
    "invert_rk45",
    "reconstruction_error",
    "sample_euler",
    "sample_rk45",
]

VelocityModel = Callable[..., torch.Tensor]


def _cond(cond: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cond.items() if v is not None}


@torch.no_grad()
def sample_euler(
    model: VelocityModel, noise: torch.Tensor, *, steps: int, t0: float = 1e-3, t1: float = 1.0, **cond: Any
) -> torch.Tensor:
    """Explicit Euler from ``t0`` (noise ``[B, ...]``) to ``t1`` (data) in ``steps`` equal steps -> ``[B, ...]``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    cond = _cond(cond)
    x = noise
    dt = (t1 - t0) / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), t0 + i * dt, dtype=x.dtype, device=x.device)
        x = x + dt * model(x, t, **cond)
    return x


def _solve_rk45(
    model: VelocityModel,
    x: torch.Tensor,
    t_start: float,
    t_end: float,
    rtol: float,
    atol: float,
    cond: dict[str, Any],
) -> tuple[torch.Tensor, int]:
    shape, dtype, device = x.shape, x.dtype, x.device
    cond = _cond(cond)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
        tt = torch.full((shape[0],), float(t), dtype=dtype, device=device)
        v = model(xt, tt, **cond)
        return v.detach().reshape(-1).to("cpu", torch.float64).numpy()

    y0 = x.detach().reshape(-1).to("cpu", torch.float64).numpy()
    sol = integrate.solve_ivp(rhs, (t_start, t_end), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"RK45 integration from t={t_start} to t={t_end} failed: {sol.message}")
    out = torch.from_numpy(sol.y[:, -1].copy()).reshape(shape).to(device=device, dtype=dtype)
    return out, int(sol.nfev)


@torch.no_grad()
def sample_rk45(
    model: VelocityModel,
    noise: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    t0: float = 1e-3,
    t1: float = 1.0,
    **cond: Any,
) -> tuple[torch.Tensor, int]:
    """Adaptive RK45 (scipy, float64 state) from noise ``[B, ...]`` at ``t0`` to data at ``t1``.

    Returns ``(x [B, ...], nfe)``; the model sees ``noise``'s dtype and device.
    """
    return _solve_rk45(model, noise, t0, t1, rtol, atol, cond)


@torch.no_grad()
def invert_rk45(
    model: VelocityModel,
    x_data: torch.Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    t0: float = 1e-3,
    t1: float = 1.0,
    **cond: Any,
) -> tuple[torch.Tensor, int]:
    """Integrate the RF ODE backwards from data ``[B, ...]`` at ``t1`` to noise at ``t0``: ``(noise, nfe)``."""
    return _solve_rk45(model, x_data, t1, t0, rtol, atol, cond)


@torch.no_grad()
def reconstruction_error(
    model: VelocityModel,
    x: torch.Tensor,
    z: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    t0: float = 1e-3,
    t1: float = 1.0,
) -> torch.Tensor:
    """Per-image ``||x_hat − x||_2`` over all pixels ``[B]`` (LZN_SPEC §2.1, reconstruction steps 2-4).

    ``x [B, C, H, W]`` in [-1, 1]; ``z [B, q]`` is the latent the caller computed (None for the RF
    baseline); ``y [B, c]`` is an optional one-hot label passed as ``y_onehot``. The data are inverted
    to noise with RK45 and re-integrated forward with the same conditioning.
    """
    cond = {"z": z, "y_onehot": y}
    noise, _ = invert_rk45(model, x, rtol=rtol, atol=atol, t0=t0, t1=t1, **cond)
    x_hat, _ = sample_rk45(model, noise, rtol=rtol, atol=atol, t0=t0, t1=t1, **cond)
    return (x_hat - x).flatten(1).norm(dim=1)
