"""Latent flow of a Latent Zoning Network: closed-form velocity, latent computation, assignment.

Implements LZN_SPEC §1.1-1.3 and §1.8 (paper: Lin et al., "Latent Zoning Network", §2.2-2.3,
eq. 1 and 4, App. A.3). Time convention (the official code's): tau = 0 at the anchors, tau = 1 at
the Gaussian prior, x_tau = (1 - tau) * a + tau * eps.

Shapes: ``x``, ``own``, ``noise``, ``z``, ``endpoint`` are ``[n, q]``; ``anchors`` is ``[N, q]``;
``weights`` is ``[N]``; ``probs`` is ``[n, N]`` (``velocity``) or ``[r, n, N]`` (``assign``, one
slice per solver evaluation).

Velocity as attention (LZN_SPEC §1.2b)
--------------------------------------
The naive formula builds eps_hat_j = (x - (1 - tau) a_j) / tau for every pair, an ``[n, N, q]``
tensor. Expanding the square, the logits are::

    logit_j = ((1 - tau) / tau^2) <x, a_j> - ((1 - tau)^2 / (2 tau^2)) ||a_j||^2 + log w_j

(the ``||x||^2`` term is constant per row and cancels in the softmax), ``abar = softmax @ anchors``
and ``v = (x - abar) / tau``. ``velocity`` (and ``assign``) evaluate this with one matrix product
and a max-shifted softmax (``[n, N]`` memory, probabilities returned). Without autograd,
``compute_latents`` does not need the probabilities and calls
``torch.nn.functional.scaled_dot_product_attention`` with the per-key bias folded into extra key
dimensions, so no ``[n, N]`` mask is built::

    key = value = [a_j, ||a_j||^2, log w_j, 0 ...]      (width padded to a multiple of 8)
    query       = [x, -(1 - tau) / 2, tau^2 / (1 - tau), 0 ...],   scale = (1 - tau) / tau^2

(the first q output columns are ``abar``). On CPU this dispatches to the fused flash-attention
kernel (``_scaled_dot_product_flash_attention_for_cpu``; it needs 4-d inputs and equal key and value
widths), whose memory is O(n q) plus O(N q) for the keys. Its values are exact; its backward is not
(next section), so it is used only for evaluations that autograd does not record.

Gradients
---------
Every evaluation that autograd records (an input requires grad and grad mode is on) runs the
matmul + softmax of ``_AnchorSet.posterior`` and is differentiated by autograd. The fused kernel's
backward loses about ``eps_mach * ||a||^2 / tau^2`` at small tau, and the own-anchor and anchor-set
terms of dL/dA (each of size ~1/tau) cancel, which amplifies it: with ``own`` the same tensor as
``anchors`` its dL/dA was off by 2e-3 (N = 128, q = 32, Euler, eps = 1e-4, float64), 5e-2 (N = 512,
q = 64), ~1 (N = 512, q = 256, alpha = 0.45) and NaN in float32. The matmul form's backward is exact.
Measured relative error of dL/dA against the naive ``[n, N, q]`` form differentiated in float64
(N = n = 256, q = 64, 20 steps, own = anchors; ``bench/bench_flow.py`` part [4b];
``tests/lzn/test_flow_gradients.py`` asserts <= 1e-8 in float64 and <= 2x the naive form in float32):

    ===============================  ========  ========  =========  ===================
    solver, eps, alpha, anchor std   float64   float32   naive f32  ratio f32 / naive
    ===============================  ========  ========  =========  ===================
    euler, 1e-4, 0.45, std 1         4e-12     2.2e-3    1.6e-3     1.3
    euler, 1e-4, 0.45, std 10        1e-9      0.55      0.46       1.2
    dpm++, 1e-3, 1, std 1            3e-13     1.5e-4    1.4e-4     1.1
    dpm++, 1e-3, 1, std 3            2e-12     6.6e-4    1.1e-3     0.6
    dpm++, 1e-3, 1, std 10           3e-12     1.2e-3    2.5e-3     0.5
    ===============================  ========  ========  =========  ===================

So float32 is as good as the naive (official) form in float32, and :class:`FlowSpec` defaults to
it; at eps = 1e-4 with widely spread anchors (std 10) float32 loses the gradient in *every*
formulation, and float64 is the choice there.

Memory of the backward: without ``checkpoint`` autograd keeps the ``[n, N]`` probabilities of
every evaluation, O(steps * n * N) (n = N = 512, 20 steps, float32: 23 MiB saved); with
``checkpoint=True`` each evaluation is recomputed in backward and only the ``[n, q]`` trajectory
points and the ``[N, q]`` anchors are kept, O(steps * n * q + N * q) (2.8 MiB), plus one
evaluation's ``[n, N]`` at a time during backward. Forward + backward of that call takes 0.06 s
against 2.8 s for the naive form under autograd (1.3 GiB saved) on 2 CPU cores.

Translation: the logits are unchanged when every anchor moves by ``-c`` and ``x`` by
``-(1 - tau) c``, because ``x - (1 - tau) a_j`` is unchanged; then ``abar`` moves by ``-c``, and
``y = x - (1 - tau) c`` obeys the same ODE toward the moved anchors. Every evaluation therefore
works on anchors centred on their mean (the solvers integrate ``y``), which removes the float32
cancellation caused by a common offset of the anchors (the expanded square loses about
``eps_mach * ||a - c||^2 / tau^2`` in the logits rather than ``eps_mach * ||a||^2 / tau^2``).

Float32 accuracy of the values (measured against float64; randn anchors, N = 256, q = 64):

- Typical points (x on reverse-flow trajectories): max relative velocity error 6e-8 (tau = 1),
  1.3e-7 (0.5), 6.5e-7 (0.1), 1.4e-6 (0.05), 8e-6 (0.01), 7e-5 (1e-3); the naive broadcast form
  gives about half of these. The growth like 1/tau comes from ``v = (x - abar) / tau`` and is
  shared by every formulation. The probabilities there agree exactly (they are one-hot).
- Worst case, near-ties (x on the path of the midpoint of two anchors): error of the logit gap
  between the two best anchors 3e-5 (tau = 0.5), 1.5e-3 (0.1), 8e-3 (0.05), 0.23 (0.01),
  19 (1e-3), 2.5e3 (1e-4); naive broadcast 1.2e-5, 4e-4, 1.7e-3, 0.04, 3.6, 430. Both grow like
  ``eps_mach * q / tau^2`` (each logit is of that size); the expanded square is 2-6x worse.
  Without the centring above, a common offset of 5 in every coordinate makes it 35x worse
  (6.8 at tau = 0.01); with it, the offset costs nothing.

So below tau ~ 0.01 the float32 split between two almost equidistant anchors is decided by
rounding, in this form as in the official one; use float64 where those splits matter.

Solvers (LZN_SPEC §1.8)
-----------------------
``"euler"``: forward on the uniform grid ``tau = eps -> 1`` (``steps`` evaluations, the latent is
x at tau = 1); reverse on ``tau = 1, 1 - 1/r, ..., 1/r`` (evaluations) ending at tau = 0, where the
last Euler step returns exactly the posterior-mean anchor ``abar`` at tau = 1/r.

``"dpm++"``: third-order multistep DPM-Solver++ (data prediction, ``dpm_solver_pytorch``
``algorithm_type="dpmsolver++"``, ``solver_type="dpmsolver"``) on the closed-form denoiser
``abar(x, tau)``, noise schedule alpha_tau = 1 - tau, sigma_tau = tau,
lambda = log((1 - tau) / tau). NFE = ``steps``: the first two updates are first and second order
(warm-up) and with ``steps < 10`` the last ones are lowered (``lower_order_final``).
Forward: time-uniform grid ``tau = eps -> 1 - 1e-3`` (the official code uses 1e-3 -> 0.999); the
latent is x at tau = 1 - 1e-3 (tau = 1 is singular for lambda), not at tau = 1.
Reverse: ``z`` is taken as x at tau = 1 - 1e-3; time-uniform grid ``1 - 1e-3 -> 0``; evaluations
(and recorded probabilities) at the first ``steps`` grid points; the last update, to tau = 0, is
first order, and the first-order DPM-Solver++ step to tau = 0 (sigma = 0) returns the data
prediction, so the endpoint is the final data prediction ``abar(x, tau_{r-1})`` (no extra NFE,
matching the Euler endpoint).
Note: the third-order update is the standard one of ``dpm_solver_pytorch`` (also used by the
official code). Its ``D2`` term is half the second-order Taylor coefficient (the update is not
exact for a data prediction quadratic in lambda), and the first-order warm-up step limits the
global order anyway: measured error ratio 4.8 when the steps double (Euler: 2.0).

Measured round-trip accuracy (fraction of ``assign(compute_latents(A))`` endpoints nearest to
their own anchor; randn anchors, alpha = 1, eps = 1e-4):

    ======  ================  =================  ================================
    steps   euler N=200,q=20  dpm++ N=200,q=20   euler / dpm++ N=2000,q=200 (f32)
    ======  ================  =================  ================================
    10      0.52              0.92               0.14 / 0.39
    20      0.79              0.975              0.50 / 0.56
    50      0.90              1.0                0.88 / 0.98
    100     0.945             1.0                0.96 / 0.999
    500     0.985             1.0
    ======  ================  =================  ================================

Plain Euler needs several hundred steps; at q = 200 the error is almost all in the forward pass
(N = 500, q = 200: from an accurate latent, 20 reverse Euler steps alone are 0.97 correct).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from lzn.dpm_solver import run_dpm
from lzn.flow_inputs import (
    DPM_TAU_MARGIN,
    SOLVERS,
    check_alpha,
    check_anchors,
    check_eps,
    check_matrix,
    check_same,
    check_solver,
    check_tau,
    check_weights,
)

__all__ = ["SOLVERS", "DPM_TAU_MARGIN", "FLOW_DTYPES", "FlowSpec", "velocity", "compute_latents", "assign",
           "nearest_anchor"]

_KEY_ALIGN = 8


# --------------------------------------------------------------------------------------------
# the closed-form posterior over anchors


class _AnchorSet:
    """Anchors prepared once per public call, in centred coordinates.

    ``centre`` [q] = mean anchor (detached: the flow does not depend on it); ``centred`` [N, q];
    ``sq_norm`` [N] = ||a_j - centre||^2; ``log_w`` [N] or None (a zero weight becomes a large
    negative finite number, so its probability is exactly 0 and no NaN reaches any gradient).
    The solvers integrate ``y = x - (1 - tau) * centre``, which follows the same ODE toward the
    centred anchors (the flow is translation-equivariant), so every evaluation sees centred
    queries without an extra shift.
    """

    def __init__(self, anchors: Tensor, weights: Tensor | None) -> None:
        self.centre = anchors.detach().mean(dim=0)
        self.centred = anchors - self.centre
        self.sq_norm = self.centred.pow(2).sum(dim=1)
        if not bool(torch.isfinite(self.sq_norm.sum())):
            raise ValueError(
                "anchors contains non-finite values (NaN or inf) or values whose squares overflow"
            )
        self.q = anchors.shape[1]
        self._positive: Tensor | None = None
        if weights is None:
            self.log_w = None
        else:
            positive = weights > 0
            safe = torch.where(positive, weights, torch.ones_like(weights))
            floor = torch.finfo(weights.dtype).min / 4
            self.log_w = torch.where(positive, torch.log(safe), torch.full_like(weights, floor))
            if not bool(positive.all()):
                self._positive = positive
        self._key: Tensor | None = None

    def fused_key(self) -> Tensor:
        """Key (and value) ``[1, 1, N', K]`` = [a_c, ||a_c||^2, (log w), 0 ...], K a multiple of 8.

        Anchors of weight 0 are left out (their probability is exactly 0), so every key entry is
        finite: the attention kernel multiplies the log-weight column by up to 1 / (1 - tau).
        """
        if self._key is None:
            cols = [self.centred, self.sq_norm[:, None]]
            if self.log_w is not None:
                cols.append(self.log_w[:, None])
            width = self.q + len(cols) - 1
            pad = -(-width // _KEY_ALIGN) * _KEY_ALIGN - width
            if pad:
                cols.append(self.centred.new_zeros(self.centred.shape[0], pad))
            key = torch.cat(cols, dim=1)
            if self._positive is not None:
                key = key[self._positive]
            self._key = key[None, None]
        return self._key

    def posterior(self, y: Tensor, tau: float) -> tuple[Tensor, Tensor]:
        """Centred posterior-mean anchor ``abar - centre`` [n, q] and probabilities [n, N] at ``(y, tau)``."""
        scale = (1.0 - tau) / tau**2
        bias = self.sq_norm * (-0.5 * (1.0 - tau) ** 2 / tau**2)
        if self.log_w is not None:
            bias = bias + self.log_w
        logits = torch.addmm(bias[None, :], y, self.centred.T, alpha=scale)
        probs = torch.softmax(logits, dim=1)
        return probs @ self.centred, probs

    def needs_grad(self, y: Tensor) -> bool:
        """Whether an evaluation at ``y`` is recorded by autograd (then it must be differentiated exactly)."""
        if not torch.is_grad_enabled():
            return False
        return y.requires_grad or self.centred.requires_grad or (self.log_w is not None and self.log_w.requires_grad)

    def mean_anchor(self, y: Tensor, tau: float) -> Tensor:
        """Centred posterior-mean anchor [n, q]: fused attention without autograd, ``posterior`` with it.

        Without a graph to record, ``softmax(scale * query @ key.T) @ key`` with query
        ``[y, -(1 - tau) / 2, tau^2 / (1 - tau), 0 ...]`` and ``scale = (1 - tau) / tau^2`` gives exactly
        the logits of ``posterior`` (the value is the key itself, only its first q output columns are
        used) and needs no ``[n, N]`` memory. Its values are exact, but the fused kernel's backward is
        not (see "Gradients" in the module docstring), so any evaluation that autograd records goes
        through the matmul + softmax of ``posterior``, whose backward is exact.
        """
        if tau == 1.0 or self.needs_grad(y):  # tau = 1: scale = 0, the probabilities are the weights
            return self.posterior(y, tau)[0]
        key = self.fused_key()
        n = y.shape[0]
        extra = [-0.5 * (1.0 - tau)] + ([tau**2 / (1.0 - tau)] if self.log_w is not None else [])
        extra += [0.0] * (key.shape[-1] - self.q - len(extra))
        query = torch.cat([y, y.new_tensor(extra).expand(n, len(extra))], dim=1)[None, None]
        out = F.scaled_dot_product_attention(query, key, key, scale=(1.0 - tau) / tau**2)
        return out[0, 0, :, : self.q]


def _maybe_checkpoint(fn: Callable[..., Tensor | tuple[Tensor, ...]], use: bool, *args: Tensor):
    if use and torch.is_grad_enabled():
        return _checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def velocity(x: Tensor, anchors: Tensor, tau: float, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Exact closed-form flow-matching velocity toward a weighted set of anchors (LZN_SPEC §1.2).

    Args:
        x: ``[n, q]`` points at time ``tau``.
        anchors: ``[N, q]`` anchors (tau = 0 end).
        tau: time in (0, 1]; tau = 1 is the Gaussian end (probabilities = weights there).
        weights: ``[N]`` non-negative anchor weights (any positive scale; only ratios matter) or
            None for uniform. A zero weight gives probability exactly 0 and gradient 0.

    Returns:
        ``(v [n, q], probs [n, N])`` with ``probs`` the posterior assignment probabilities
        ``p_j`` (rows sum to 1) and ``v = (x - probs @ anchors) / tau``.
    """
    anchors = check_anchors(anchors, finite=False)
    x = check_matrix("x", x, dim=anchors.shape[1])
    check_same("x", x, anchors)
    tau = check_tau(tau)
    weights = check_weights(weights, anchors)
    aset = _AnchorSet(anchors, weights)
    y = x - (1.0 - tau) * aset.centre
    abar_c, probs = aset.posterior(y, tau)
    # x - abar = y - abar_c - tau * centre
    return (y - abar_c) / tau - aset.centre, probs


# --------------------------------------------------------------------------------------------
# public solvers


def compute_latents(
    anchors: Tensor,
    own: Tensor,
    noise: Tensor,
    *,
    steps: int = 20,
    solver: str = "euler",
    eps: float = 1e-4,
    alpha: float = 1.0,
    weights: Tensor | None = None,
    checkpoint: bool = False,
) -> Tensor:
    """Latent computation C(X): integrate each sample from its own anchor to the Gaussian end.

    LZN_SPEC §1.2 (paper eq. 1 and 4). Starts at ``x = (1 - eps) * own + eps * alpha * noise`` at
    ``tau = eps`` and integrates ``dx/dtau = v(x, tau)`` to ``tau = 1`` (``"euler"``, uniform grid,
    ``steps`` evaluations) or to ``tau = 1 - 1e-3`` (``"dpm++"``, time-uniform grid, NFE = steps).
    Without autograd the velocity uses the fused attention kernel (memory O(n q) per evaluation);
    under autograd the matmul form, whose backward is exact (module docstring, "Gradients").

    Args:
        anchors: ``[N, q]`` anchor set (e.g. the gathered global batch).
        own: ``[n, q]`` the anchors of the samples whose latents are wanted.
        noise: ``[n, q]`` standard normal noise.
        steps: number of velocity / denoiser evaluations (>= 1).
        solver: ``"euler"`` or ``"dpm++"``.
        eps: start time in (0, 0.999).
        alpha: noise concentration factor, finite and >= 0 (0 gives the zone centre).
        weights: ``[N]`` anchor weights or None.
        checkpoint: recompute each evaluation in backward (``torch.utils.checkpoint``) so that only
            the ``[n, q]`` trajectory points are stored (O(steps n q) instead of O(steps n N)).

    Returns:
        ``z [n, q]``.
    """
    anchors = check_anchors(anchors, finite=False)
    own = check_matrix("own", own, dim=anchors.shape[1])
    noise = check_matrix("noise", noise, dim=anchors.shape[1])
    if noise.shape != own.shape:
        raise ValueError(
            f"noise must have the same shape as own {tuple(own.shape)}, got {tuple(noise.shape)}"
        )
    check_same("own", own, anchors)
    check_same("noise", noise, anchors)
    solver, steps = check_solver(solver, steps)
    eps, alpha = check_eps(eps), check_alpha(alpha)
    weights = check_weights(weights, anchors)

    # integrate y = x - (1 - tau) * centre toward the centred anchors (see _AnchorSet)
    aset = _AnchorSet(anchors, weights)
    aset.fused_key()  # built once, outside any checkpointed region
    start = own - aset.centre
    y = torch.lerp(start, noise if alpha == 1.0 else alpha * noise, eps)  # (1-eps)(own-c) + eps*alpha*noise

    def denoise(u: Tensor, tau: float) -> Tensor:
        return _maybe_checkpoint(lambda v: aset.mean_anchor(v, tau), checkpoint, u)

    if solver == "euler":
        grid = [eps + (1.0 - eps) * k / steps for k in range(steps + 1)]
        for k in range(steps):
            tau = grid[k]
            # Euler step y + dt * (y - abar) / tau, as one lerp toward abar
            y = torch.lerp(y, denoise(y, tau), -(grid[k + 1] - tau) / tau)
        return y  # at tau = 1, x = y

    end = 1.0 - DPM_TAU_MARGIN
    grid = [eps + (end - eps) * k / steps for k in range(steps + 1)]
    return run_dpm(y, grid, denoise) + DPM_TAU_MARGIN * aset.centre


def assign(
    z: Tensor,
    anchors: Tensor,
    *,
    steps: int = 20,
    solver: str = "euler",
    weights: Tensor | None = None,
    checkpoint: bool = False,
) -> tuple[Tensor, Tensor]:
    """Reverse flow (latent -> anchor) recording the assignment probabilities (LZN_SPEC §1.3).

    ``"euler"``: evaluations at tau = 1, 1 - 1/r, ..., 1/r (r = ``steps``), the step from 1/r to 0
    lands on the posterior-mean anchor; ``probs[0]`` equals the normalised weights (uniform for
    None). ``"dpm++"``: evaluations on the time-uniform grid from 1 - 1e-3 toward 0 (the first
    ``steps`` of ``steps + 1`` points ending at 0); the endpoint is the final data prediction.

    Args:
        z: ``[n, q]`` latents.
        anchors: ``[N, q]`` anchors.
        steps: number of evaluations r (>= 1).
        solver: ``"euler"`` or ``"dpm++"``.
        weights: ``[N]`` anchor weights or None.
        checkpoint: recompute each evaluation in backward.

    Returns:
        ``(endpoint [n, q], probs [r, n, N])``; rows of every ``probs[k]`` sum to 1.
    """
    anchors = check_anchors(anchors, finite=False)
    z = check_matrix("z", z, dim=anchors.shape[1])
    check_same("z", z, anchors)
    solver, steps = check_solver(solver, steps)
    weights = check_weights(weights, anchors)

    aset = _AnchorSet(anchors, weights)
    recorded: list[Tensor] = []

    def posterior(u: Tensor, tau: float) -> Tensor:
        abar_c, probs = _maybe_checkpoint(lambda v: aset.posterior(v, tau), checkpoint, u)
        recorded.append(probs)
        return abar_c

    # integrate y = x - (1 - tau) * centre toward the centred anchors (see _AnchorSet)
    if solver == "euler":
        y = z  # tau = 1
        for k in range(steps):
            tau = (steps - k) / steps
            # Euler step y - (1/r) * (y - abar) / tau, as one lerp toward abar (weight 1 at the end)
            y = torch.lerp(y, posterior(y, tau), (1.0 / steps) / tau)
        return y + aset.centre, torch.stack(recorded)

    start = 1.0 - DPM_TAU_MARGIN
    grid = [start * (steps - k) / steps for k in range(steps + 1)]
    y = run_dpm(z - DPM_TAU_MARGIN * aset.centre, grid, posterior, final_first_order=True)
    return y + aset.centre, torch.stack(recorded)


# --------------------------------------------------------------------------------------------
# one typed flow configuration

#: Precisions a flow may run in, by their params name.
FLOW_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FlowSpec:
    """One latent-flow configuration: the one place a config becomes a ``compute_latents``/``assign`` call.

    ``solver``/``steps``: the ODE solver and its number of evaluations; ``eps``/``alpha``: start time
    and noise concentration of the forward flow (unused by :meth:`assign`); ``checkpoint``: recompute
    each evaluation in backward; ``dtype``: the precision the flow runs in (inputs are cast to it,
    differentiably, and results come back in it). float32 is the default: with the exact backward
    its gradients are as accurate as the naive broadcast form's in float32 (module docstring,
    "Gradients").
    """

    solver: str = "euler"
    steps: int = 20
    eps: float = 1e-4
    alpha: float = 1.0
    checkpoint: bool = False
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        check_solver(self.solver, self.steps)
        check_eps(self.eps)
        check_alpha(self.alpha)
        if not isinstance(self.checkpoint, bool):
            raise ValueError(f"checkpoint must be a bool, got {self.checkpoint!r}")
        if self.dtype not in FLOW_DTYPES.values():
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype!r}")

    def replace(self, **changes: object) -> FlowSpec:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def latents(
        self, anchors: Tensor, own: Tensor, noise: Tensor, *, weights: Tensor | None = None
    ) -> Tensor:
        """:func:`compute_latents` at this spec, in ``dtype``: ``z [n, q]``."""
        anchors, own, noise, weights = self._cast(anchors, own, noise, weights)
        return compute_latents(
            anchors, own, noise, steps=self.steps, solver=self.solver, eps=self.eps, alpha=self.alpha,
            weights=weights, checkpoint=self.checkpoint,
        )

    def assign(self, z: Tensor, anchors: Tensor, *, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:func:`assign` (reverse flow) at this spec, in ``dtype``: ``(endpoint [n, q], probs [r, n, N])``."""
        z, anchors, weights = self._cast(z, anchors, weights)
        return assign(z, anchors, steps=self.steps, solver=self.solver, weights=weights, checkpoint=self.checkpoint)

    def _cast(self, *tensors: Tensor | None) -> list[Tensor | None]:
        """``tensors`` in ``dtype`` (differentiably; ``.to`` is the identity when they already are); None stays."""
        return [t.to(self.dtype) if isinstance(t, Tensor) else t for t in tensors]


def nearest_anchor(endpoint: Tensor, anchors: Tensor) -> Tensor:
    """Index ``[n]`` (int64) of the anchor nearest in L2 to each endpoint row (``[n, q]`` vs ``[N, q]``)."""
    anchors = check_anchors(anchors)
    endpoint = check_matrix("endpoint", endpoint, dim=anchors.shape[1])
    check_same("endpoint", endpoint, anchors)
    dist = torch.cdist(endpoint.detach(), anchors.detach(), compute_mode="donot_use_mm_for_euclid_dist")
    return dist.argmin(dim=1)
