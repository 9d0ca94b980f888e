"""The latent flow written naively, as the official code does: the ``[n, N, q]`` broadcast (LZN_SPEC §1.2).

The references of the flow tests: every quantity is computed from ``eps_hat_j = (x - (1 - tau) a_j) / tau``
directly, in uncentred coordinates, and differentiated by plain autograd.
"""

from __future__ import annotations

import torch

from lzn.dpm_solver import run_dpm
from lzn.flow import DPM_TAU_MARGIN


def naive_velocity(x, anchors, tau, weights=None):
    """LZN_SPEC §1.2 verbatim: ``(v [n, q], probs [n, N])``."""
    eps_hat = (x[:, None, :] - (1 - tau) * anchors[None]) / tau
    logits = -0.5 * eps_hat.pow(2).sum(-1)
    if weights is not None:
        logits = logits + torch.log(weights)
    probs = torch.softmax(logits, dim=1)
    v = (probs[:, :, None] * (eps_hat - anchors[None])).sum(1)
    return v, probs


def naive_mean_anchor(x, anchors, tau, weights=None):
    """Posterior-mean anchor ``abar = x - tau * v`` (the denoiser of the DPM-Solver++ flow)."""
    v, _ = naive_velocity(x, anchors, tau, weights)
    return x - tau * v


def naive_euler_latents(anchors, own, noise, steps, eps, alpha, weights=None):
    x = (1 - eps) * own + eps * alpha * noise
    grid = [eps + (1 - eps) * k / steps for k in range(steps + 1)]
    for k in range(steps):
        v, _ = naive_velocity(x, anchors, grid[k], weights)
        x = x + (grid[k + 1] - grid[k]) * v
    return x


def naive_latents(anchors, own, noise, *, steps, solver, eps, alpha, weights=None):
    """``compute_latents`` in the naive form; DPM-Solver++ uses the project's update coefficients
    (tested on their own against the reference formulas) on the naive denoiser."""
    if solver == "euler":
        return naive_euler_latents(anchors, own, noise, steps, eps, alpha, weights)
    x = (1 - eps) * own + eps * alpha * noise
    end = 1.0 - DPM_TAU_MARGIN
    grid = [eps + (end - eps) * k / steps for k in range(steps + 1)]
    return run_dpm(x, grid, lambda u, tau: naive_mean_anchor(u, anchors, tau, weights))


def naive_euler_assign(z, anchors, steps, weights=None):
    x, recorded = z, []
    for k in range(steps):
        tau = (steps - k) / steps
        v, p = naive_velocity(x, anchors, tau, weights)
        x = x - v / steps
        recorded.append(p)
    return x, torch.stack(recorded)
