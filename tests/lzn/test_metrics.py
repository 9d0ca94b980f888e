"""Tests for lzn/metrics.py: FID, Inception Score, k-NN precision/recall."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import lzn.metrics
from lzn.metrics import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score,
    precision_recall,
)


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * covmean))


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 0.05 * np.eye(d)


# ------------------------------------------------------------------------------------------ FID


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_scipy_reference(seed):
    rng = np.random.default_rng(seed)
    d = 24
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    expected = _scipy_fid(mu1, s1, mu2, s2)
    got = frechet_distance(torch.tensor(mu1), torch.tensor(s1), torch.tensor(mu2), torch.tensor(s2))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-6)
    # float32 inputs are promoted to float64 before the computation
    got32 = frechet_distance(*(torch.tensor(v, dtype=torch.float32) for v in (mu1, s1, mu2, s2)))
    expected32 = _scipy_fid(*(np.asarray(v, np.float32).astype(np.float64) for v in (mu1, s1, mu2, s2)))
    assert got32 == pytest.approx(expected32, rel=1e-6)
    # the local fallback (used only if torchmetrics' private helper disappears) agrees too
    fallback = lzn.metrics._trace_sqrt_product_fid(*(torch.tensor(v) for v in (mu1, s1, mu2, s2)))
    assert float(fallback) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_diagonal_closed_form():
    a = torch.tensor([0.5, 1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0, 0.25, 1.0, 4.0], dtype=torch.float64)
    mu1 = torch.tensor([0.0, 1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    expected = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    got = frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)
    # same means: only the covariance term remains
    assert frechet_distance(mu1, torch.diag(a), mu1, torch.diag(b)) == pytest.approx(
        float(((a.sqrt() - b.sqrt()) ** 2).sum()), rel=1e-10
    )


def test_identical_sets_give_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert fid_from_features(x, x.clone()) == pytest.approx(0.0, abs=1e-8)
    mu, s = feature_statistics(x)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)


def test_fid_from_features_detects_shift():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 8, generator=g)
    y = torch.randn(400, 8, generator=g) + 3.0
    # mean term alone is 8 * 9 = 72
    assert 60 < fid_from_features(x, y) < 85


def test_feature_statistics_matches_numpy():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float32)
    mu, s = feature_statistics(x)
    assert mu.dtype == torch.float64 and s.dtype == torch.float64
    assert mu.shape == (6,) and s.shape == (6, 6)
    np.testing.assert_allclose(mu.numpy(), x.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-10, atol=1e-14)


def test_fid_validation_names_arguments():
    mu = torch.zeros(3)
    s = torch.eye(3)
    with pytest.raises(ValueError, match="mu2"):
        frechet_distance(mu, s, torch.zeros(4), torch.eye(4))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(mu, s, mu, torch.eye(4))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(mu, torch.zeros(3), mu, s)
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(torch.zeros(3, 1), s, mu, s)
    with pytest.raises(ValueError, match="sigma1"):
        bad = torch.eye(3)
        bad[0, 1] = float("nan")
        frechet_distance(mu, bad, mu, s)
    with pytest.raises(ValueError, match="mu2"):
        frechet_distance(mu, s, torch.tensor([0.0, float("inf"), 0.0]), s)
    with pytest.raises(ValueError, match="feats"):
        feature_statistics(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="feats"):
        feature_statistics(torch.zeros(5))
    with pytest.raises(ValueError, match="fake_feats"):
        fid_from_features(torch.zeros(5, 3), torch.zeros(5, 4))


# ------------------------------------------------------------------------------ Inception Score


@pytest.mark.parametrize("splits", [1, 5])
def test_inception_score_confident_uniform_equals_num_classes(splits):
    c = 7
    labels = torch.arange(c).repeat(10)  # every split of 14 holds each class twice
    probs = torch.nn.functional.one_hot(labels, c).double()
    mean, std = inception_score(probs, splits=splits)
    assert mean == pytest.approx(c, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    # the same through (finite) logits: near one-hot softmax
    mean_l, _ = inception_score(probs * 60.0, splits=splits, from_logits=True)
    assert mean_l == pytest.approx(c, rel=1e-6)


def test_inception_score_identical_predictions_is_one():
    row = torch.tensor([0.1, 0.2, 0.3, 0.4])
    mean, std = inception_score(row.repeat(40, 1), splits=4)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    mean_l, _ = inception_score(torch.tensor([2.0, -1.0, 0.5]).repeat(9, 1), splits=3)
    assert mean_l == pytest.approx(1.0, abs=1e-12)


def test_inception_score_hand_computed():
    # p(y) = [0.75, 0.25]; KL1 = 0.5 ln(4/3), KL2 = ln(4/3)  ->  IS = (4/3)^0.75
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    mean, std = inception_score(probs, splits=1)
    assert mean == pytest.approx((4.0 / 3.0) ** 0.75, rel=1e-12)
    assert std == 0.0
    # split-wise: split 1 = identical rows (IS 1), split 2 = two confident classes (IS 2)
    probs2 = torch.tensor([[0.3, 0.7], [0.3, 0.7], [1.0, 0.0], [0.0, 1.0]])
    mean2, std2 = inception_score(probs2, splits=2)
    assert mean2 == pytest.approx(1.5, rel=1e-12)
    assert std2 == pytest.approx(0.5, rel=1e-12)  # population std, as in the reference code


def test_inception_score_logits_equal_probs():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(60, 10, generator=g) * 3
    probs = torch.softmax(logits.double(), dim=1)
    a = inception_score(logits, splits=3)
    b = inception_score(probs, splits=3)
    assert a[0] == pytest.approx(b[0], rel=1e-9)
    assert a[1] == pytest.approx(b[1], rel=1e-6, abs=1e-12)
    # hand-rolled reference of the definition
    ref = []
    for part in probs.chunk(3):
        py = part.mean(0, keepdim=True)
        ref.append(math.exp(float((part * (part.log() - py.log())).sum(1).mean())))
    assert a[0] == pytest.approx(float(np.mean(ref)), rel=1e-9)


def test_inception_score_validation():
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.rand(3, 4), splits=4)
    with pytest.raises(ValueError, match="logits_or_probs"):
        inception_score(torch.tensor([[float("nan"), 0.0]]), splits=1)
    with pytest.raises(ValueError, match="logits_or_probs"):
        inception_score(torch.rand(5), splits=1)


# ------------------------------------------------------------------------------- precision/recall


def _naive_pr(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    real, fake = real.double(), fake.double()

    def radii(x):
        d = torch.cdist(x, x)
        return torch.stack([d[i][torch.arange(len(x)) != i].sort().values[k - 1] for i in range(len(x))])

    rr, fr = radii(real), radii(fake)
    prec = np.mean([bool((torch.cdist(f[None], real)[0] <= rr).any()) for f in fake])
    rec = np.mean([bool((torch.cdist(r[None], fake)[0] <= fr).any()) for r in real])
    return float(prec), float(rec)


def test_precision_recall_hand_checked_1d():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # k=1: every real radius is 1.  fake radii (k=1): 0.5->3.5, 4->3.5, 9->5
    fake = torch.tensor([[0.5], [4.0], [9.0]])
    # precision: 0.5 (|0.5-0|<=1) yes; 4 (|4-3| = 1 <= 1, boundary counts) yes; 9 no -> 2/3
    # recall: 0,1,2,3 are within 3.5 of 0.5 (|3-0.5| = 2.5) -> 4/4
    p, r = precision_recall(real, fake, k=1)
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(1.0)
    # k=2: real radii = [2, 1, 1, 2]; fake radii: 0.5->8.5, 4->5, 9->8.5
    # precision: 0.5 yes, 4 (|4-3| = 1 <= 2) yes, 9 no -> 2/3; recall: all 4 real within 8.5 of 0.5
    assert precision_recall(real, fake, k=2) == pytest.approx((2 / 3, 1.0))
    # swap roles with k=1: real=fake set above -> precision/recall swap meanings
    p2, r2 = precision_recall(fake, real, k=1)
    assert (p2, r2) == pytest.approx((1.0, 2 / 3))


def test_precision_recall_matches_naive_definition_with_tiny_blocks():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(37, 3, generator=g)
    fake = torch.randn(29, 3, generator=g) * 1.5 + 0.5
    expected = _naive_pr(real, fake, k=3)
    assert precision_recall(real, fake, k=3, row_batch=5, col_batch=7) == pytest.approx(expected)
    assert precision_recall(real, fake, k=3) == pytest.approx(expected)
    assert precision_recall(real, fake, k=3, dtype=torch.float32, row_batch=8, col_batch=3) == pytest.approx(
        expected
    )


def test_precision_recall_gaussians():
    g = torch.Generator().manual_seed(0)
    d, n = 4, 1000
    real = torch.randn(n, d, generator=g)
    same = torch.randn(n, d, generator=g)
    p, r = precision_recall(real, same, k=3)
    assert p > 0.8 and r > 0.8
    # far away: nothing overlaps
    p, r = precision_recall(real, same + 50.0, k=3)
    assert p == 0.0 and r == 0.0
    # mode collapse: fakes huddle in a small region of the real support
    collapsed = 0.1 * same
    p, r = precision_recall(real, collapsed, k=3)
    assert p > 0.95 and r < 0.1
    # mode collapse onto a few real samples
    few = real[:20].repeat(50, 1) + 0.01 * same
    p, r = precision_recall(real, few, k=3)
    assert p > 0.95 and r < 0.1


def test_precision_recall_validation():
    x = torch.zeros(10, 3)
    with pytest.raises(ValueError, match="fake"):
        precision_recall(x, torch.zeros(10, 4))
    with pytest.raises(ValueError, match="real"):
        precision_recall(torch.zeros(3, 3), x, k=3)
    with pytest.raises(ValueError, match="fake"):
        precision_recall(x, torch.zeros(2, 3), k=3)
    bad = torch.zeros(10, 3)
    bad[4, 1] = float("inf")
    with pytest.raises(ValueError, match="real"):
        precision_recall(bad, x)
    with pytest.raises(ValueError, match="k"):
        precision_recall(x, x, k=0)
