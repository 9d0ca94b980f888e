"""Evaluation mathematics on feature tensors: FID, Inception Score, k-NN precision/recall.

Implements the metric definitions behind the evaluation protocol of LZN_SPEC §2.1 (evaluation
protocol) and §4 (the consistency-models / guided-diffusion evaluator):

- FID: the Fréchet distance between Gaussians fitted to two feature sets (Heusel et al., 2017),
  ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})``, computed in float64. The trace of the matrix
  square root comes from ``torchmetrics.image.fid._compute_fid`` (sum of the square roots of the
  eigenvalues of ``S1 S2``), with an identical local fallback should that private helper move.
- Inception Score (Salimans et al., 2016): ``exp(E_x KL(p(y|x) || p(y)))`` per split, mean and
  (population) standard deviation over the splits, as in the original code and the CM evaluator.
- Precision / recall (Kynkäänniemi et al., 2019): k-NN hyperspheres around each sample of one set
  (radius = distance to its k-th nearest neighbour in that set, itself excluded); a sample of the
  other set is "in the manifold" when it lies inside (``<=``) at least one sphere. Precision: the
  fraction of fake samples inside the real manifold; recall: real samples inside the fake manifold.
  Distances are computed block-wise (``row_batch x col_batch``), so memory stays bounded.

Everything here is pure tensor math on precomputed features; no network, file or device logic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

try:  # well-kept implementation of the trace term (torchmetrics' FID, float64-safe)
    from torchmetrics.image.fid import _compute_fid as _torchmetrics_compute_fid
except ImportError:  # pragma: no cover - only when torchmetrics changes its private helper
    _torchmetrics_compute_fid = None

__all__ = [
    "feature_statistics",
    "frechet_distance",
    "fid_from_features",
    "inception_score",
    "precision_recall",
]


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _as_float64(name: str, value) -> Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: expected a tensor or array, got {type(value).__name__}") from err
    if not (
        t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
    ):
        raise ValueError(f"{name}: expected a real-valued tensor, got dtype {t.dtype}")
    return t.to(torch.float64)


def _check_finite(name: str, t: Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} non-finite value(s) (NaN or Inf)")


def _check_features(name: str, feats, min_rows: int) -> Tensor:
    t = torch.as_tensor(feats) if not isinstance(feats, Tensor) else feats
    if t.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D feature matrix [n, d], got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} samples, got {t.shape[0]}")
    if t.shape[1] < 1:
        raise ValueError(f"{name}: feature dimension is 0")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    _check_finite(name, t)
    return t


# --------------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------------


def feature_statistics(feats) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of a feature set, in float64.

    Args:
        feats: ``[n, d]`` features (n >= 2), any float dtype / device.

    Returns:
        ``(mu[d], sigma[d, d])`` as float64 tensors on the input's device; ``sigma`` uses the
        ``n - 1`` normalisation (``numpy.cov(feats, rowvar=False)``).
    """
    x = _check_features("feats", feats, min_rows=2).to(torch.float64)
    mu = x.mean(dim=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, sigma


def _trace_sqrt_product_fid(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """Local twin of torchmetrics' ``_compute_fid`` (used only when that helper is unavailable)."""
    a = (mu1 - mu2).square().sum(dim=-1)
    b = sigma1.trace() + sigma2.trace()
    c = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum(dim=-1)
    return a + b - 2 * c


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``, computed in float64.

    ``d^2 = ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``; the trace of the
    square root is the sum of the square roots of the eigenvalues of ``sigma1 @ sigma2`` (these are
    real and >= 0 for PSD inputs; round-off imaginary parts are dropped).

    Args:
        mu1, mu2: ``[d]`` means.
        sigma1, sigma2: ``[d, d]`` covariance matrices.

    Returns:
        The distance as a Python float (clamped at 0 against round-off).

    Raises:
        ValueError: wrong shapes, mismatched dimensions or non-finite values (the message names
            the offending argument).
    """
    m1, s1 = _as_float64("mu1", mu1), _as_float64("sigma1", sigma1)
    m2, s2 = _as_float64("mu2", mu2), _as_float64("sigma2", sigma2)
    for name, m in (("mu1", m1), ("mu2", m2)):
        if m.ndim != 1 or m.shape[0] < 1:
            raise ValueError(f"{name}: expected a 1-D mean vector [d], got shape {tuple(m.shape)}")
    d = m1.shape[0]
    if m2.shape[0] != d:
        raise ValueError(f"mu2: dimension {m2.shape[0]} does not match mu1's dimension {d}")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(f"{name}: expected a [{d}, {d}] covariance matrix, got shape {tuple(s.shape)}")
    for name, t in (("mu1", m1), ("sigma1", s1), ("mu2", m2), ("sigma2", s2)):
        _check_finite(name, t)
    s2 = s2.to(s1.device)
    m2 = m2.to(m1.device)
    fn = _torchmetrics_compute_fid if _torchmetrics_compute_fid is not None else _trace_sqrt_product_fid
    value = float(fn(m1, s1, m2, s2))
    if not math.isfinite(value):
        raise ValueError("sigma1/sigma2: the matrix square root produced a non-finite value")
    return max(value, 0.0)


def fid_from_features(real_feats, fake_feats) -> float:
    """FID between two feature sets ``[n, d]`` and ``[m, d]`` (``feature_statistics`` + ``frechet_distance``)."""
    r = _check_features("real_feats", real_feats, min_rows=2)
    f = _check_features("fake_feats", fake_feats, min_rows=2)
    if r.shape[1] != f.shape[1]:
        raise ValueError(
            f"fake_feats: feature dimension {f.shape[1]} does not match real_feats' {r.shape[1]}"
        )
    mu1, s1 = feature_statistics(r)
    mu2, s2 = feature_statistics(f)
    return frechet_distance(mu1, s1, mu2, s2)


# --------------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------------


def _looks_like_probs(x: Tensor) -> bool:
    if bool((x < 0).any()) or bool((x > 1).any()):
        return False
    return bool(
        torch.allclose(x.sum(dim=1), torch.ones(x.shape[0], dtype=x.dtype, device=x.device), atol=1e-4)
    )


def inception_score(
    logits_or_probs, splits: int = 10, *, from_logits: bool | None = None
) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al., 2016), split-wise.

    The ``n`` rows are cut into ``splits`` contiguous chunks (``[i*n//splits, (i+1)*n//splits)``);
    in each chunk ``p(y)`` is the chunk's mean prediction. Computed in float64 with ``0 log 0 = 0``.

    Args:
        logits_or_probs: ``[n, C]`` classifier logits or class probabilities.
        splits: number of chunks (1 <= splits <= n).
        from_logits: ``True`` = rows are logits (softmax applied), ``False`` = rows are
            probabilities; ``None`` (default) = probabilities when every row is in [0, 1] and sums
            to 1 (within 1e-4), logits otherwise.

    Returns:
        ``(mean, std)`` over the splits (population std, as in the reference code).
    """
    x = _check_features("logits_or_probs", logits_or_probs, min_rows=1).to(torch.float64)
    n = x.shape[0]
    if not isinstance(splits, int) or isinstance(splits, bool) or splits < 1:
        raise ValueError(f"splits: expected a positive integer, got {splits!r}")
    if splits > n:
        raise ValueError(f"splits: {splits} splits need at least {splits} samples, got {n}")
    if from_logits is None:
        from_logits = not _looks_like_probs(x)
    if from_logits:
        log_p = torch.log_softmax(x, dim=1)
        p = log_p.exp()
    else:
        if bool((x < 0).any()):
            raise ValueError("logits_or_probs: probabilities must be non-negative")
        if bool((x.sum(dim=1) <= 0).any()):
            raise ValueError("logits_or_probs: every probability row needs a positive sum")
        p = x / x.sum(dim=1, keepdim=True)
        log_p = None
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        part = p[lo:hi]
        py = part.mean(dim=0, keepdim=True)
        if log_p is not None:
            # p * (log p - log py); where p underflows to 0 the xlogy term vanishes.
            kl = torch.where(part > 0, part * (log_p[lo:hi] - torch.log(py)), torch.zeros_like(part))
        else:
            kl = torch.special.xlogy(part, part) - torch.special.xlogy(part, py.expand_as(part))
        scores.append(torch.exp(kl.sum(dim=1).mean()))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


# --------------------------------------------------------------------------------------------------
# Precision / recall (k-NN manifolds)
# --------------------------------------------------------------------------------------------------


def _sq_dists(a: Tensor, b: Tensor, a_sq: Tensor, b_sq: Tensor) -> Tensor:
    """Squared Euclidean distances ``[len(a), len(b)]`` (clamped at 0)."""
    return (a_sq[:, None] - 2.0 * (a @ b.T) + b_sq[None, :]).clamp_min_(0.0)


def _knn_radii(x: Tensor, k: int, row_batch: int, col_batch: int) -> Tensor:
    """Squared distance of each row of ``x[n, d]`` to its k-th nearest other row, ``[n]``.

    The self-distance (0) is one of the ``k + 1`` smallest, so the ``(k+1)``-th smallest value is
    the k-th neighbour excluding the sample itself (duplicates of a sample count as neighbours).
    """
    n = x.shape[0]
    sq = x.square().sum(dim=1)
    radii = torch.empty(n, dtype=x.dtype, device=x.device)
    for r0 in range(0, n, row_batch):
        rows = x[r0 : r0 + row_batch]
        best = None  # running k+1 smallest per row
        for c0 in range(0, n, col_batch):
            d = _sq_dists(rows, x[c0 : c0 + col_batch], sq[r0 : r0 + row_batch], sq[c0 : c0 + col_batch])
            # exact zero for the self-pair, whatever round-off the expansion produced
            idx = torch.arange(rows.shape[0], device=x.device) + r0
            in_block = (idx >= c0) & (idx < c0 + d.shape[1])
            if bool(in_block.any()):
                rr = torch.nonzero(in_block).squeeze(1)
                d[rr, idx[rr] - c0] = 0.0
            cand = d if best is None else torch.cat([best, d], dim=1)
            kk = min(k + 1, cand.shape[1])
            best = torch.topk(cand, kk, dim=1, largest=False).values
        radii[r0 : r0 + row_batch] = best[:, k]
    return radii


def _inside_manifold(
    queries: Tensor, support: Tensor, support_radii: Tensor, row_batch: int, col_batch: int
) -> Tensor:
    """Bool ``[len(queries)]``: query within (<=) the radius of at least one support sample."""
    q_sq = queries.square().sum(dim=1)
    s_sq = support.square().sum(dim=1)
    out = torch.zeros(queries.shape[0], dtype=torch.bool, device=queries.device)
    for r0 in range(0, queries.shape[0], row_batch):
        rows = queries[r0 : r0 + row_batch]
        hit = torch.zeros(rows.shape[0], dtype=torch.bool, device=queries.device)
        for c0 in range(0, support.shape[0], col_batch):
            d = _sq_dists(
                rows, support[c0 : c0 + col_batch], q_sq[r0 : r0 + row_batch], s_sq[c0 : c0 + col_batch]
            )
            hit |= (d <= support_radii[None, c0 : c0 + col_batch]).any(dim=1)
        out[r0 : r0 + row_batch] = hit
    return out


def precision_recall(
    real,
    fake,
    k: int = 3,
    *,
    row_batch: int = 1024,
    col_batch: int = 8192,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds.

    Args:
        real: ``[n, d]`` features of real samples (n > k).
        fake: ``[m, d]`` features of generated samples (m > k).
        k: neighbourhood size (the CM evaluator uses 3).
        row_batch, col_batch: block sizes of the distance computation; peak extra memory is about
            ``row_batch * col_batch`` elements of ``dtype``.
        dtype: compute dtype (float64 by default; float32 halves the cost on large sets).

    Returns:
        ``(precision, recall)``: the fraction of fake samples inside the real manifold and of real
        samples inside the fake manifold (in [0, 1]).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    if row_batch < 1 or col_batch < 1:
        raise ValueError(f"row_batch/col_batch: must be positive, got {row_batch}/{col_batch}")
    r = _check_features("real", real, min_rows=k + 1)
    f = _check_features("fake", fake, min_rows=k + 1)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"fake: feature dimension {f.shape[1]} does not match real's {r.shape[1]}")
    r = r.to(dtype)
    f = f.to(device=r.device, dtype=dtype)
    real_radii = _knn_radii(r, k, row_batch, col_batch)
    fake_radii = _knn_radii(f, k, row_batch, col_batch)
    precision = _inside_manifold(f, r, real_radii, row_batch, col_batch).to(torch.float64).mean()
    recall = _inside_manifold(r, f, fake_radii, row_batch, col_batch).to(torch.float64).mean()
    return float(precision), float(recall)
