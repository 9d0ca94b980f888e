"""Per-experiment objectives: agreement with the reference losses and gradient paths."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_params_raw

from lzn.losses import nt_xent
from lzn.objectives import compute_objective, rf_pair
from pipeline.build import DataShape, build_models, objective_spec
from pipeline.params import EXPERIMENTS, MODULES, validate_params


def test_nt_xent_of_local_rows_averages_to_the_full_batch_loss():
    # each rank takes the loss of its own rows against the gathered batch; the mean over ranks is the full loss
    g = torch.Generator().manual_seed(0)
    h1, h2 = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64)
    parts = [nt_xent(h1, h2, 0.3, rows=torch.arange(r * 4, (r + 1) * 4)) for r in range(3)]
    torch.testing.assert_close(sum(parts) / 3, nt_xent(h1, h2, 0.3))


def test_rf_pair_interpolates_data_and_noise():
    x = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x_t, t, x0 = rf_pair(x, torch.Generator().manual_seed(1))
    assert t.shape == (64,) and ((t >= 1e-3) & (t <= 1)).all()
    torch.testing.assert_close(x_t, t[:, None, None, None] * x + (1 - t[:, None, None, None]) * x0)
    assert abs(x0.mean().item()) < 0.2 and abs(x0.std().item() - 1) < 0.1  # x0 ~ N(0, I)
    x_t2, t2, x02 = rf_pair(x, torch.Generator().manual_seed(1))
    assert torch.equal(x_t, x_t2) and torch.equal(t, t2) and torch.equal(x0, x02)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_trainable_module_receives_gradient(name):
    params = validate_params(tiny_params_raw())
    exp = params.experiment(name)
    shape = DataShape(1, 8, 10)
    torch.manual_seed(0)
    modules = build_models(params, exp, shape)
    spec = objective_spec(params, exp, shape)
    images, labels = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 10
    loss, diag = compute_objective(spec, modules, images, labels, torch.Generator().manual_seed(0), diagnose=True)
    assert torch.isfinite(loss)
    loss.backward()
    for module_name in MODULES[name]:
        grads = [p.grad for p in modules[module_name].parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0, module_name
    if name in ("rf_lzn", "lzn_repr", "lzn_joint"):
        assert 0.0 <= diag["assignment_acc"] <= 1.0
    if name == "lzn_joint":
        assert diag["label_loss"] < 0  # probability form: -mean(max_k P)
        assert 0.0 <= diag["train_accuracy"] <= 1.0
