"""Tests of lzn.losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lzn.losses import alignment_loss, nt_xent, rf_loss

F64 = torch.float64


def _random_probs(r, n, big_n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(r, n, big_n, generator=g, dtype=F64) * 2, dim=2)


def test_alignment_loss_hand_computed():
    # r = 5, cutoff 0.2 -> cut = 1: step 0 is ignored
    probs = torch.tensor(
        [
            [[0.9, 0.1], [0.9, 0.1]],  # ignored (would be the max for row 0)
            [[0.2, 0.8], [0.5, 0.5]],
            [[0.4, 0.6], [0.3, 0.7]],
            [[0.1, 0.9], [0.6, 0.4]],
            [[0.3, 0.7], [0.2, 0.8]],
        ],
        dtype=F64,
    )
    target = torch.tensor([0, 1])
    m0, m1 = 0.4, 0.8  # max over steps 1..4 of the target column
    assert math.isclose(
        float(alignment_loss(probs, target)), -(math.log(m0) + math.log(m1)) / 2, rel_tol=1e-12
    )
    assert math.isclose(float(alignment_loss(probs, target, log=False)), -(m0 + m1) / 2, rel_tol=1e-12)
    # cutoff 0 includes step 0 (row 0 max becomes 0.9)
    assert math.isclose(
        float(alignment_loss(probs, target, cutoff=0.0, log=False)), -(0.9 + 0.8) / 2, rel_tol=1e-12
    )
    # rows are normalised over the anchors, as in the official code
    assert math.isclose(
        float(alignment_loss(probs * 3.0, target)), float(alignment_loss(probs, target)), rel_tol=1e-12
    )


def test_alignment_loss_ignores_steps_before_cutoff():
    probs = _random_probs(10, 6, 6).requires_grad_(True)
    target = torch.tensor([0, 1, 2, 3, 4, 5])
    cut = int(10 * 0.2)
    for log in (True, False):
        loss = alignment_loss(probs, target, log=log)
        (grad,) = torch.autograd.grad(loss, probs)
        assert torch.all(grad[:cut] == 0)
        assert grad[cut:].abs().sum() > 0
        changed = probs.detach().clone()
        changed[:cut] = _random_probs(cut, 6, 6, seed=5)
        changed.requires_grad_(True)
        loss2 = alignment_loss(changed, target, log=log)
        (grad2,) = torch.autograd.grad(loss2, changed)
        assert float(loss2.detach()) == float(loss.detach())
        assert torch.equal(grad2, grad)
        # raising the target probability at a late step above the current max changes the loss
        later = probs.detach().clone()
        later[cut + 1, 2] = F.one_hot(torch.tensor(2), 6).to(F64)
        assert float(alignment_loss(later, target, log=log)) < float(loss.detach())


def test_alignment_loss_is_finite_when_target_probability_underflows():
    probs = torch.zeros(4, 3, 5, dtype=torch.float32)
    probs[..., 1] = 1.0
    target = torch.tensor([0, 0, 2])
    probs.requires_grad_(True)
    loss = alignment_loss(probs, target)
    assert torch.isfinite(loss) and float(loss.detach()) > 80
    loss.backward()
    assert torch.isfinite(probs.grad).all()


def test_rf_loss_hand_computed():
    x_data = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 0.0]]]])  # [2, 1, 1, 2]
    x_noise = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 1.0]]]])
    pred = torch.tensor([[[[1.0, 0.0]]], [[[0.0, -1.0]]]])
    # targets (x_data - x_noise): [1, 1], [-1, -1]; squared errors: [0, 1], [1, 0]
    assert math.isclose(float(rf_loss(pred, x_data, x_noise)), 0.5)
    with pytest.raises(ValueError, match="x_data"):
        rf_loss(pred, x_data[:1], x_noise)


def test_nt_xent_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 4, generator=g, dtype=F64), torch.randn(5, 4, generator=g, dtype=F64)
    t = 0.3
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(10):
        pos = (i + 5) % 10
        sims = [float(z[i] @ z[k]) / t for k in range(10) if k != i]
        total += -(float(z[i] @ z[pos]) / t - math.log(sum(math.exp(s) for s in sims)))
    assert math.isclose(float(nt_xent(z1, z2, t)), total / 10, rel_tol=1e-10)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)
    with pytest.raises(ValueError, match="h1 and h2"):
        nt_xent(z1, z2[:4], 0.5)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: alignment_loss(torch.rand(3, 4), torch.zeros(3, dtype=torch.long)), "probs"),
        (lambda: alignment_loss(torch.rand(2, 3, 4), torch.zeros(2, dtype=torch.long)), "target"),
        (lambda: alignment_loss(torch.rand(2, 3, 4), torch.full((3,), 4)), "target"),
        (lambda: alignment_loss(torch.rand(2, 3, 4), torch.zeros(3)), "target"),
        (lambda: alignment_loss(torch.rand(2, 3, 4), torch.zeros(3, dtype=torch.long), cutoff=1.0), "cutoff"),
        (lambda: alignment_loss(torch.rand(2, 3, 4), torch.full((3,), -1), log=False), "target"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
