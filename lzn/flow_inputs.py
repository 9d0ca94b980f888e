"""Validation of the latent flow's public arguments (``lzn.flow``): one clear ``ValueError`` naming the argument.

Each check runs once per public call, before any work.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SOLVERS: tuple[str, ...] = ("euler", "dpm++")
#: The DPM-Solver++ grids stop ``DPM_TAU_MARGIN`` short of tau = 1 (lambda is -inf there).
DPM_TAU_MARGIN = 1e-3


def check_matrix(name: str, t: object, *, dim: int | None = None) -> Tensor:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [n, q], got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape [n, q] (2-d), got shape {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name} must have shape [n, {dim}] (same q as anchors), got {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
    return t


def check_same(name: str, t: Tensor, ref: Tensor) -> None:
    if t.dtype != ref.dtype:
        raise ValueError(f"{name} has dtype {t.dtype} but anchors have dtype {ref.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} is on device {t.device} but anchors are on {ref.device}")


def check_finite(name: str, t: Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")


def check_anchors(anchors: object, *, finite: bool = True) -> Tensor:
    anchors = check_matrix("anchors", anchors)
    if finite:  # the solvers check finiteness more cheaply in _AnchorSet
        check_finite("anchors", anchors)
    return anchors


def check_weights(weights: object, anchors: Tensor) -> Tensor | None:
    if weights is None:
        return None
    if not isinstance(weights, Tensor):
        raise ValueError(f"weights must be a torch.Tensor of shape [N] or None, got {type(weights).__name__}")
    n_anchors = anchors.shape[0]
    if weights.shape != (n_anchors,):
        raise ValueError(f"weights must have shape [N] = [{n_anchors}], got {tuple(weights.shape)}")
    check_same("weights", weights, anchors)
    check_finite("weights", weights)
    if bool((weights < 0).any()):
        raise ValueError("weights must be non-negative")
    if not bool((weights > 0).any()):
        raise ValueError("weights must have at least one positive entry (all are zero)")
    return weights


def check_tau(tau: object) -> float:
    if isinstance(tau, Tensor):
        if tau.numel() != 1:
            raise ValueError(f"tau must be a scalar in (0, 1], got a tensor of shape {tuple(tau.shape)}")
        tau = float(tau)
    if not isinstance(tau, (int, float)) or isinstance(tau, bool):
        raise ValueError(f"tau must be a float in (0, 1], got {type(tau).__name__}")
    tau = float(tau)
    if not (0.0 < tau <= 1.0):
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    return tau


def check_solver(solver: object, steps: object) -> tuple[str, int]:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {list(SOLVERS)}, got {solver!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return str(solver), int(steps)


def check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0.0 < float(eps) < 1.0 - DPM_TAU_MARGIN):
        raise ValueError(f"eps must be in (0, {1.0 - DPM_TAU_MARGIN}), got {eps!r}")
    return float(eps)


def check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)
