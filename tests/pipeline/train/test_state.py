"""The training state: one optimisation step (non-finite skips, per-module budgets) and its
checkpoints (round trip through a folder, refusal of another experiment's or config's)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_params_raw

from pipeline.build import DataShape, build_models, objective_spec
from pipeline.errors import CheckpointMismatchError, UserError
from pipeline.params import validate_params
from pipeline.train.state import STATE_FILE, TrainingState, read_checkpoint

SHAPE = DataShape(1, 8, 10)


def _state(params, name: str) -> TrainingState:
    exp = params.experiment(name)
    return TrainingState(build_models(params, exp, SHAPE), exp, objective_spec(params, exp, SHAPE), seed=0)


def test_checkpoint_of_other_config_or_experiment_is_refused():
    params = validate_params(tiny_params_raw())
    config = {"experiment": "rf_lzn", "experiment_config": {"latent_dim": 4, "lr": {"encoder": 1e-3}}}
    saved = _state(params, "rf_lzn").state_dict(config)
    other = dict(config, experiment_config={"latent_dim": 8, "lr": {"encoder": 1e-3}})
    with pytest.raises(CheckpointMismatchError, match=r"experiment_config\.latent_dim: checkpoint 4 != current 8"):
        _state(params, "rf_lzn").load_state_dict(saved, other)
    with pytest.raises(CheckpointMismatchError, match="experiment 'rf_lzn', not 'rf'"):
        _state(params, "rf").load_state_dict(saved, config)
    fresh = _state(params, "rf_lzn")
    fresh.load_state_dict(saved, config)  # same config: accepted
    assert fresh.resumed_from == [0]
    assert issubclass(CheckpointMismatchError, UserError)  # a one-line message from the stage


def test_checkpoint_folder_round_trip(tmp_path):
    params = validate_params(tiny_params_raw())
    state = _state(params, "rf_lzn")
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        state.train_step(torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, torch.arange(16) % 10)
    state.history.append({"step": 2.0})
    config = {"experiment": "rf_lzn", "seed": 0}
    state.save(tmp_path, config)
    assert (tmp_path / STATE_FILE).is_file() and read_checkpoint(tmp_path)["step"] == 2
    restored = _state(params, "rf_lzn")
    restored.restore(tmp_path, config)
    assert (restored.step, restored.history, restored.resumed_from) == (2, [{"step": 2.0}], [2])
    for name, module in state.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(restored.modules[name].state_dict()[key], value), (name, key)
    with pytest.raises(CheckpointMismatchError):
        _state(params, "rf_lzn").restore(tmp_path, dict(config, seed=1))


def test_non_finite_loss_skips_the_step():
    params = validate_params(tiny_params_raw())
    state = _state(params, "rf")
    before = {k: v.clone() for k, v in state.modules["decoder"].state_dict().items()}
    images = torch.full((4, 1, 8, 8), float("nan"))
    metrics = state.train_step(images, torch.zeros(4, dtype=torch.long))
    assert metrics["skipped_steps"] == 1 and state.skipped == 1 and state.step == 1
    for k, v in state.modules["decoder"].state_dict().items():
        assert torch.equal(v, before[k]), k
    assert state.emas["decoder"].num_updates == 0


def test_modules_freeze_after_their_budget():
    raw = tiny_params_raw(**{"train.lzn_joint.iterations": {"decoder": 1, "encoder": 3, "labels": 3}})
    state = _state(validate_params(raw), "lzn_joint")
    images, labels = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 10
    state.train_step(images, labels)
    frozen = {k: v.clone() for k, v in state.modules["decoder"].state_dict().items()}
    enc = {k: v.clone() for k, v in state.modules["encoder"].state_dict().items()}
    state.train_step(images, labels)
    assert state.active_modules() == ["encoder", "labels"]
    assert all(torch.equal(v, frozen[k]) for k, v in state.modules["decoder"].state_dict().items())
    assert any(not torch.equal(v, enc[k]) for k, v in state.modules["encoder"].state_dict().items())
    assert state.emas["decoder"].num_updates == 1 and state.emas["encoder"].num_updates == 2
