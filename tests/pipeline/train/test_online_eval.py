"""Online evaluation (rank 0 inside the training loop): metrics per experiment, EMA copies, no side effects."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_params_raw

from pipeline.build import DataShape, build_models, objective_spec
from pipeline.params import validate_params
from pipeline.train.online_eval import ONLINE_METRICS, ema_modules, online_metrics
from pipeline.train.state import TrainingState

SHAPE = DataShape(1, 8, 10)


def _state(name: str, steps: int = 2) -> tuple[TrainingState, object]:
    params = validate_params(tiny_params_raw(**{"classify.label_steps": 10}))  # short label flows
    exp = params.experiment(name)
    torch.manual_seed(0)
    state = TrainingState(build_models(params, exp, SHAPE), exp, objective_spec(params, exp, SHAPE), seed=0)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        state.train_step(torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, torch.arange(16) % 10)
    return state, params


@pytest.fixture
def refnet_root(tmp_path) -> Path:
    from lzn.models.reference import ReferenceClassifier
    from pipeline.evaluate.feature_nets import save_reference_classifier

    torch.manual_seed(0)
    save_reference_classifier(ReferenceClassifier(1, 8, 10, width=8), tmp_path / "models" / "refnet" / "model.pt")
    return tmp_path


def test_ema_copies_leave_the_training_modules_alone():
    state, _ = _state("rf_lzn")
    scratch = ema_modules(state)
    for name, module in scratch.items():
        assert module is not state.modules[name] and not module.training
        for p_name, p in module.named_parameters():
            assert torch.equal(p, state.emas[name].shadow[p_name]) and not p.requires_grad
    trained = dict(state.modules["encoder"].named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in scratch["encoder"].named_parameters())


def test_lzn_joint_reports_probe_accuracy_and_fid(digits_shards, refnet_root):
    state, params = _state("lzn_joint")
    before = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in state.modules.items()}
    rng = torch.get_rng_state()
    out = online_metrics("lzn_joint", state, params, digits_shards, refnet_root)
    assert set(out) == set(ONLINE_METRICS["lzn_joint"]) == {"probe_top1", "accuracy", "fid"}
    assert 0.0 <= out["probe_top1"] <= 1.0 and 0.0 <= out["accuracy"] <= 1.0
    assert math.isfinite(out["fid"]) and out["fid"] >= 0.0
    assert torch.equal(rng, torch.get_rng_state())
    for n, m in state.modules.items():
        assert all(torch.equal(v, before[n][k]) for k, v in m.state_dict().items()), n


@pytest.mark.parametrize("name", ["rf", "simclr"])
def test_metrics_follow_the_experiment_and_fid_needs_the_refnet(name, digits_shards, tmp_path):
    state, params = _state(name, steps=1)
    out = online_metrics(name, state, params, digits_shards, tmp_path)  # no models/refnet here
    assert set(out) == set(ONLINE_METRICS[name]) - {"fid"}
    assert online_metrics(name, state, params, digits_shards, tmp_path) == out  # seeded: repeatable


def test_a_rewritten_refnet_is_used_not_a_cached_one(digits_shards, tmp_path):
    """The reference network (and its features of the real images) is cached by the file's content:
    another network written to the same path gives that network's FID, as a fresh process would."""
    from lzn.models.reference import ReferenceClassifier
    from pipeline.evaluate.feature_nets import save_reference_classifier
    from pipeline.train import online_eval

    state, params = _state("rf", steps=1)
    path = tmp_path / "models" / "refnet" / "model.pt"
    fids = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        save_reference_classifier(ReferenceClassifier(1, 8, 10, width=8), path)
        fids.append(online_metrics("rf", state, params, digits_shards, tmp_path)["fid"])
    assert fids[0] != fids[1] and fids[2] == fids[0]
    online_eval._NETS.clear()
    online_eval._REAL_FEATURES.clear()
    torch.manual_seed(1)
    save_reference_classifier(ReferenceClassifier(1, 8, 10, width=8), path)
    assert online_metrics("rf", state, params, digits_shards, tmp_path)["fid"] == fids[1]
