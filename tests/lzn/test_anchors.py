"""Tests of lzn.anchors (label encoder / decoder of case study 3)."""

from __future__ import annotations

import pytest
import torch

from lzn.anchors import LABEL_FLOW, LabelAnchors, class_weights
from lzn.losses import alignment_loss


def _anchors(num_classes=10, q=32, seed=0):
    return LabelAnchors(num_classes, q, generator=torch.Generator().manual_seed(seed))


def test_encode_returns_rows_of_a():
    la = _anchors()
    labels = torch.tensor([3, 0, 3, 9])
    assert torch.equal(la.encode(labels), la.A.detach()[labels])
    assert la.A.shape == (10, 32) and la.A.requires_grad


def test_class_weights_are_batch_frequencies():
    w = class_weights(torch.tensor([0, 2, 2, 2]), 4)
    assert torch.allclose(w, torch.tensor([0.25, 0.0, 0.75, 0.0]))
    assert w.dtype == torch.float32 and not w.requires_grad


def test_latents_for_then_classify_recovers_the_label():
    la = _anchors()
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (200,), generator=g)
    noise = torch.randn(200, 32, generator=g)
    with torch.no_grad():
        z = la.latents_for(labels, noise, LABEL_FLOW)
        pred, probs = la.classify(z, LABEL_FLOW)
    assert probs.shape == (100, 200, 10)
    # Euler solver error only: measured 0.99 (q = 32) and 0.98 (q = 200) on 1000 samples at 100
    # steps; 0.89 / 0.79 at 20 steps; 0.998 / 0.996 at 300 steps
    assert float((pred == labels).float().mean()) >= 0.97
    # the latents of the zones are standard normal overall
    assert float(z.mean().abs()) < 0.05 and abs(float(z.std()) - 1.0) < 0.05


def test_classify_with_weights_and_gradients_reach_a_and_z():
    la = _anchors(num_classes=4, q=8)
    g = torch.Generator().manual_seed(2)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3])
    z = torch.randn(8, 8, generator=g, requires_grad=True)
    w = class_weights(labels, 4)
    pred, probs = la.classify(z, LABEL_FLOW.replace(steps=10, checkpoint=True), weights=w)
    assert pred.shape == (8,)
    loss = alignment_loss(probs, labels, log=False)  # the label-flow loss of case study 3
    loss.backward()
    assert la.A.grad is not None and la.A.grad.abs().sum() > 0
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_zero_weight_class_is_never_predicted():
    la = _anchors(num_classes=5, q=8)
    z = torch.randn(100, 8, generator=torch.Generator().manual_seed(3))
    w = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0])
    pred, _ = la.classify(z, LABEL_FLOW.replace(steps=20), weights=w)
    assert not (pred == 2).any()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: _anchors().encode(torch.tensor([10])), "labels"),
        (lambda: _anchors().encode(torch.tensor([0.5])), "labels"),
        (lambda: class_weights(torch.tensor([0, 5]), 3), "labels"),
        (lambda: class_weights(torch.tensor([0, 1]), 0), "num_classes"),
        (lambda: LabelAnchors(1, 8), "num_classes"),
        (lambda: LabelAnchors(3, 0), "latent_dim"),
        (lambda: _anchors().classify(torch.randn(3, 5)), "z"),
        (lambda: _anchors().classify(torch.randn(3, 32), LABEL_FLOW.replace(solver="rk")), "solver"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
