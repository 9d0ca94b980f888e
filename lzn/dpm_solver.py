"""Multistep DPM-Solver++ (data prediction) for the latent flow's schedule alpha = 1 - tau, sigma = tau.

LZN_SPEC §1.8: the solver of case studies 1 and 3 (``dpm_solver_pytorch``, ``algorithm_type="dpmsolver++"``,
``solver_type="dpmsolver"``, order 3, ``lower_order_final``), run on the closed-form denoiser
``abar(x, tau)`` of :mod:`lzn.flow`; lambda = log((1 - tau) / tau).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DPM_ORDER", "dpm_coefficients", "dpm_order", "dpm_update", "lam", "run_dpm"]

DPM_ORDER = 3


def lam(tau: float) -> float:
    return math.log((1.0 - tau) / tau)


def dpm_coefficients(taus: list[float], tau: float, order: int) -> tuple[float, list[float]]:
    """Coefficients of one multistep DPM-Solver++ update from ``taus[-1]`` to ``tau``.

    The update of ``dpm_solver_pytorch`` (``dpmsolver++``, ``solver_type="dpmsolver"``) is
    ``x_t = (sigma_t / sigma_s0) x - alpha_t phi1 m0 [- 0.5 alpha_t phi1 D1_0]`` (orders 1, 2) or
    ``x_t = (sigma_t / sigma_s0) x - alpha_t phi1 m0 + alpha_t phi2 D1 - alpha_t phi3 D2`` (order 3)
    with ``h = lambda_t - lambda_s0``, ``r0 = h0 / h``, ``r1 = h1 / h``, ``D1_0 = (m0 - m1) / r0``,
    ``D1_1 = (m1 - m2) / r1``, ``D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1)``,
    ``D2 = (D1_0 - D1_1) / (r0 + r1)``, ``phi1 = expm1(-h)``, ``phi2 = phi1 / h + 1``,
    ``phi3 = phi2 / h - 1/2``. It is linear in ``(x, m0, m1, m2)`` (``m0`` the newest data
    prediction); this returns ``(c_x, [c_m0, c_m1, ...])`` so the update is one linear combination.
    """
    s0 = taus[-1]
    alpha_t = 1.0 - tau
    if tau == 0.0:  # sigma_t = 0: the first-order update returns the data prediction
        return 0.0, [1.0]
    h = lam(tau) - lam(s0)
    phi1 = math.expm1(-h)
    c_x = tau / s0
    if order == 1:
        return c_x, [-alpha_t * phi1]
    r0 = (lam(s0) - lam(taus[-2])) / h
    if order == 2:
        c = -0.5 * alpha_t * phi1 / r0  # coefficient of (m0 - m1)
        return c_x, [-alpha_t * phi1 + c, -c]
    r1 = (lam(taus[-2]) - lam(taus[-3])) / h
    phi2 = phi1 / h + 1.0
    phi3 = phi2 / h - 0.5
    k, inv = r0 / (r0 + r1), 1.0 / (r0 + r1)
    u = alpha_t * phi2 * (1.0 + k) - alpha_t * phi3 * inv  # coefficient of D1_0
    w = -alpha_t * phi2 * k + alpha_t * phi3 * inv  # coefficient of D1_1
    return c_x, [-alpha_t * phi1 + u / r0, -u / r0 + w / r1, -w / r1]


def dpm_update(x: Tensor, preds: list[Tensor], taus: list[float], tau: float, order: int) -> Tensor:
    """One multistep DPM-Solver++ update from ``taus[-1]`` to ``tau`` using the last ``order`` predictions."""
    c_x, coefs = dpm_coefficients(taus, tau, order)
    out = x * c_x if c_x != 0.0 else None
    for c, m in zip(coefs, reversed(preds)):
        out = m * c if out is None else torch.add(out, m, alpha=c)
    return out


def dpm_order(step: int, steps: int) -> int:
    """Order of update ``step`` (1-based): warm-up 1, 2, then 3; ``lower_order_final`` when steps < 10."""
    order = min(DPM_ORDER, step)
    if steps < 10:
        order = min(order, steps + 1 - step)
    return max(order, 1)


def run_dpm(
    x: Tensor,
    grid: list[float],
    denoise: Callable[[Tensor, float], Tensor],
    *,
    final_first_order: bool = False,
) -> Tensor:
    steps = len(grid) - 1
    preds = [denoise(x, grid[0])]
    taus = [grid[0]]
    for step in range(1, steps + 1):
        order = dpm_order(step, steps)
        if final_first_order and step == steps:
            order = 1
        x = dpm_update(x, preds, taus, grid[step], order)
        if step < steps:
            preds = (preds + [denoise(x, grid[step])])[-DPM_ORDER:]
            taus = (taus + [grid[step]])[-DPM_ORDER:]
    return x
