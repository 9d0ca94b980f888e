"""Training losses of the LZN case studies.

- ``alignment_loss``: latent alignment, LZN_SPEC §1.4 (paper §2.3, eq. 2 and eq. 5).
- ``label_loss``: the probability form (eq. 2) used by the label flow of case study 3
  (LZN_SPEC §2.3).
- ``rf_loss``: the rectified-flow decoder loss of case studies 1 and 3 (LZN_SPEC §2.1).
- ``nt_xent``: the SimCLR NT-Xent loss of the representation-learning baseline (LZN_SPEC §2.2).

Shapes: ``probs`` ``[r, n, N]`` (one slice per reverse-flow evaluation, as returned by
``lzn.flow.assign``), ``target``/``labels`` ``[n]`` int64 column indices in ``[0, N)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["alignment_loss", "rf_loss", "nt_xent"]


def _check_probs(probs: object, target: object, target_name: str) -> tuple[Tensor, Tensor]:
    if not isinstance(probs, Tensor) or probs.dim() != 3:
        shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
        raise ValueError(f"probs must be a tensor of shape [r, n, N], got {shape}")
    if not probs.dtype.is_floating_point:
        raise ValueError(f"probs must be floating point, got dtype {probs.dtype}")
    r, n, n_anchors = probs.shape
    if r == 0 or n == 0 or n_anchors == 0:
        raise ValueError(f"probs must be non-empty, got shape {tuple(probs.shape)}")
    if not isinstance(target, Tensor) or target.shape != (n,):
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"{target_name} must be a tensor of shape [n] = [{n}], got {shape}")
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"{target_name} must be an integer tensor, got dtype {target.dtype}")
    if target.device != probs.device:
        raise ValueError(f"{target_name} is on {target.device} but probs are on {probs.device}")
    if bool(((target < 0) | (target >= n_anchors)).any()):
        raise ValueError(f"{target_name} entries must be in [0, {n_anchors}) (columns of probs)")
    return probs, target.long()


def _max_target_prob(probs: Tensor, target: Tensor, cutoff: object) -> Tensor:
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not (0.0 <= cutoff < 1.0):
        raise ValueError(f"cutoff must be a float in [0, 1), got {cutoff!r}")
    r, n, _ = probs.shape
    cut = int(r * cutoff)
    late = probs[cut:]
    index = target.view(1, n, 1).expand(late.shape[0], n, 1)
    picked = late.gather(2, index).squeeze(2)  # [r - cut, n]
    total = late.sum(dim=2).clamp_min(torch.finfo(probs.dtype).tiny)
    return (picked / total).amax(dim=0)  # [n]


def alignment_loss(probs: Tensor, target: Tensor, *, cutoff: float = 0.2, log: bool = True) -> Tensor:
    """Latent alignment loss (LZN_SPEC §1.4, paper eq. 5 / eq. 2).

    Each row of every ``probs[k]`` is normalised over the anchors (as the official code does),
    the target column is picked, the first ``cut = int(r * cutoff)`` evaluations (near the
    Gaussian end) are dropped, and ``m_i = max_{k >= cut} P_k[i, target_i]``.

    Args:
        probs: ``[r, n, N]`` assignment probabilities along the reverse flow.
        target: ``[n]`` column of each row's partner anchor.
        cutoff: fraction of the first evaluations ignored, in [0, 1).
        log: ``True`` for ``-mean(log m)`` (eq. 5), ``False`` for ``-mean(m)`` (eq. 2).

    Returns:
        Scalar loss. The log is taken of ``max(m, tiny)``, so it is always finite (at most about
        87 in float32, 708 in float64).
    """
    probs, target = _check_probs(probs, target, "target")
    m = _max_target_prob(probs, target, cutoff)
    if log:
        return -torch.log(m.clamp_min(torch.finfo(m.dtype).tiny)).mean()
    return -m.mean()


def rf_loss(pred: Tensor, x_data: Tensor, x_noise: Tensor) -> Tensor:
    """Rectified-flow loss (LZN_SPEC §2.1): ``mean_b mean_{C,H,W} ((x_data - x_noise) - pred)^2``.

    Args:
        pred: ``[B, ...]`` predicted velocity.
        x_data: ``[B, ...]`` data (t = 1 end of the image flow).
        x_noise: ``[B, ...]`` noise (t = 0 end).
    """
    for name, t in (("pred", pred), ("x_data", x_data), ("x_noise", x_noise)):
        if not isinstance(t, Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a tensor of shape [B, ...] with at least 2 dims")
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} must be floating point, got dtype {t.dtype}")
    if x_data.shape != pred.shape or x_noise.shape != pred.shape:
        raise ValueError(
            f"pred, x_data and x_noise must have the same shape; got pred {tuple(pred.shape)}, "
            f"x_data {tuple(x_data.shape)}, x_noise {tuple(x_noise.shape)}"
        )
    per_sample = ((x_data - x_noise) - pred).pow(2).flatten(1).mean(dim=1)
    return per_sample.mean()


def nt_xent(h1: Tensor, h2: Tensor, temperature: float, *, rows: Tensor | None = None) -> Tensor:
    """SimCLR NT-Xent loss (LZN_SPEC §2.2 baseline) of the rows ``rows`` against the whole batch.

    The ``2N`` projections are L2-normalised; each one's positive is its other view and its
    negatives are the other ``2N - 2``; the loss is the mean cross-entropy over the selected rows
    of both views. With gathered projections (``lzn.distributed.gather_with_grad``) and ``rows``
    the local rows of each rank, the mean of the ranks' losses is the single-process loss.

    Args:
        h1: ``[N, d]`` first-view projections.
        h2: ``[N, d]`` second-view projections.
        temperature: softmax temperature > 0.
        rows: ``[n]`` int64 row indices in ``[0, N)`` whose loss is taken (default: all rows).
    """
    for name, t in (("h1", h1), ("h2", h2)):
        if not isinstance(t, Tensor) or t.dim() != 2 or not t.dtype.is_floating_point:
            raise ValueError(f"{name} must be a floating-point tensor of shape [N, d]")
    if h1.shape != h2.shape:
        raise ValueError(f"h1 and h2 must have the same shape, got {tuple(h1.shape)} and {tuple(h2.shape)}")
    if h1.shape[0] < 2:
        raise ValueError(f"h1 must hold at least 2 rows (negatives are needed), got {h1.shape[0]}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    h = F.normalize(torch.cat([h1, h2]), dim=1)
    n = h1.shape[0]
    if rows is None:
        rows = torch.arange(n, device=h.device)
    rows = torch.cat([rows, rows + n])
    logits = h[rows] @ h.t() / temperature
    logits[torch.arange(rows.numel(), device=h.device), rows] = float("-inf")  # drop self-similarity
    positives = torch.cat([rows[: rows.numel() // 2] + n, rows[: rows.numel() // 2]])
    return F.cross_entropy(logits, positives)
