"""Tests for lzn/probe.py: top-k accuracy and the linear probe on frozen features."""

from __future__ import annotations

import pytest
import torch

from lzn.probe import topk_accuracy, train_linear_probe


def _blobs(n_per_class: int, num_classes: int, dim: int, seed: int, spread: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(1234)) * 4.0
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centers[labels] + spread * torch.randn(labels.shape[0], dim, generator=g)
    perm = torch.randperm(labels.shape[0], generator=g)
    return feats[perm], labels[perm]


def test_topk_accuracy_hand_example():
    logits = torch.tensor(
        [
            [0.9, 0.05, 0.03, 0.02],  # label 0: top1 hit
            [0.1, 0.2, 0.6, 0.1],  # label 1: rank 2 -> top2 hit
            [0.4, 0.3, 0.2, 0.1],  # label 3: rank 4 -> only top4
            [0.1, 0.05, 0.3, 0.7],  # label 2: rank 2 -> top3 hit
        ]
    )
    labels = torch.tensor([0, 1, 3, 2])
    acc = topk_accuracy(logits, labels, ks=(1, 3, 4, 5))
    assert acc[1] == pytest.approx(0.25)
    assert acc[3] == pytest.approx(0.75)
    assert acc[4] == pytest.approx(1.0)
    assert acc[5] == pytest.approx(1.0)  # k > C is clipped to C


def test_topk_accuracy_validation():
    with pytest.raises(ValueError, match="labels"):
        topk_accuracy(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        topk_accuracy(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_probe_recovers_linearly_separable_problem():
    x_tr, y_tr = _blobs(40, 8, 16, seed=0)
    x_te, y_te = _blobs(20, 8, 16, seed=1)
    out = train_linear_probe(x_tr, y_tr, x_te, y_te, epochs=30, lr=1e-2, batch_size=64, seed=0)
    assert out["top1"] == 1.0
    assert out["top5"] >= out["top1"]
    assert out["train_top1"] == 1.0
    assert out["num_classes"] == 8
    assert len(out["history"]) == 30
    assert out["history"][-1]["loss"] < out["history"][0]["loss"]


def test_probe_is_deterministic_and_leaves_global_rng_alone():
    x_tr, y_tr = _blobs(30, 5, 12, seed=2, spread=2.0)
    x_te, y_te = _blobs(10, 5, 12, seed=3, spread=2.0)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = train_linear_probe(x_tr, y_tr, x_te, y_te, epochs=3, batch_size=16, seed=7, standardize=False)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = train_linear_probe(x_tr, y_tr, x_te, y_te, epochs=3, batch_size=16, seed=7, standardize=False)
    assert a["history"] == b["history"]
    c = train_linear_probe(x_tr, y_tr, x_te, y_te, epochs=3, batch_size=16, seed=8, standardize=False)
    assert c["history"] != a["history"]


def test_probe_trains_only_on_frozen_inputs():
    x_tr, y_tr = _blobs(10, 3, 4, seed=4)
    x_tr.requires_grad_(True)
    out = train_linear_probe(x_tr, y_tr, x_tr.detach(), y_tr, epochs=2, batch_size=8, seed=0)
    assert x_tr.grad is None
    assert 0.0 <= out["top1"] <= 1.0


def test_probe_callback_and_validation():
    x, y = _blobs(5, 3, 4, seed=5)
    seen = []
    train_linear_probe(
        x, y, x, y, epochs=2, batch_size=4, seed=0, on_epoch=lambda e, r: seen.append((e, r["top1"]))
    )
    assert [e for e, _ in seen] == [1, 2]
    with pytest.raises(ValueError, match="test_feats"):
        train_linear_probe(x, y, x[:, :3], y, epochs=1, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="train_labels"):
        train_linear_probe(x, y[:-1], x, y, epochs=1, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        train_linear_probe(x, y, x, y, epochs=0, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="num_classes"):
        train_linear_probe(x, y, x, y, epochs=1, batch_size=4, seed=0, num_classes=2)
