"""Training on Ray Train (local CPU cluster, gloo): every experiment, gradient equivalence across
worker counts, failure recovery, restart-resume, MLflow, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_params_raw

from pipeline.artifacts import load_exported
from pipeline.build import DataShape, build_models, objective_spec
from pipeline.params import EXPERIMENTS, validate_params
from pipeline.train.worker import CheckpointMismatchError, TrainingState


def _train(project: Path, raw: dict, experiment: str, **kw) -> Path:
    from pipeline.train.driver import train_experiment

    return train_experiment(validate_params(raw), raw, experiment, project, **kw)


# ----------------------------------------------------------------------------- every experiment
@pytest.mark.ray
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_and_exports(ray_local, project, experiment):
    raw = tiny_params_raw(iterations=4)
    out = _train(project, raw, experiment)
    seed_dir = out / "seed_0"
    modules, config, run = load_exported(seed_dir)
    assert config["steps"] == 4 and config["experiment"] == experiment
    history = json.loads((seed_dir / "history.json").read_text())
    assert [h["step"] for h in history] == [2.0, 4.0]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    # MLflow: the run holds flattened params, per-step metrics and the exported config artifact
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    r = client.get_run(run["run_id"])
    assert r.info.status == "FINISHED"
    assert r.data.params["experiment"] == experiment
    assert r.data.params["train.batch_size"] == "16"
    assert [m.step for m in client.get_metric_history(run["run_id"], "loss")] == [2, 4]
    assert "model/config.json" in [a.path for a in client.list_artifacts(run["run_id"], "model")]
    assert r.data.tags["stage"] == "train" and "git_sha" in r.data.tags


# ------------------------------------------------- 2 workers x 8 samples == 1 worker x 16 samples
def _grad_loop(config):
    """Ray worker: objective + gradients of a fixed global batch split over the ranks."""
    import ray.train

    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    results = {}
    for name in config["experiments"]:
        loss, grads = _objective_and_grads(config["raw"], name, rank, world)
        results[name] = {"loss": loss, "grads": grads}
    if rank == 0:
        torch.save(results, config["out"])


def _objective_and_grads(raw: dict, name: str, rank: int, world: int) -> tuple[float, dict]:
    import torch.distributed as dist

    from lzn.objectives import compute_objective

    torch.set_default_dtype(torch.float64)
    try:
        params = validate_params(raw)
        exp = params.experiment(name)
        shape = DataShape(1, 8, 10)
        torch.manual_seed(0)
        modules = build_models(params, exp, shape)
        spec = objective_spec(params, exp, shape)
        g = torch.Generator().manual_seed(0)
        images = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
        labels = torch.arange(16) % 10
        n = 16 // world
        gen = torch.Generator().manual_seed(123)
        loss, _ = compute_objective(spec, modules, images[rank * n : (rank + 1) * n], labels[rank * n : (rank + 1) * n], gen)
        loss.backward()
        grads = {}
        for mod_name, module in modules.items():
            for p_name, p in module.named_parameters():
                grad = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                if world > 1:
                    dist.all_reduce(grad)
                    grad /= world
                grads[f"{mod_name}.{p_name}"] = grad
        total = loss.detach().clone()
        if world > 1:
            dist.all_reduce(total)
            total /= world
        return float(total), grads
    finally:
        torch.set_default_dtype(torch.float32)


EQUIV_EXPERIMENTS = ("rf_lzn", "simclr", "lzn_repr", "lzn_joint")


@pytest.mark.ray
def test_two_workers_equal_one_worker(ray_local, tmp_path):
    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # identity views (no augmentation randomness) so both runs see the same inputs
    identity_views = {
        "crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0], "flip_p": 0.0, "jitter_p": 0.0,
        "grayscale_p": 0.0, "blur_p": 0.0,
    }
    # the latent flows in float64 (at eps = 1e-4 / 1e-3): float32 reductions in another order differ by ~1e-7
    flows64 = {f"train.{e}.latent_flow.precision": "float64" for e in ("rf_lzn", "lzn_repr", "lzn_joint")}
    raw = tiny_params_raw(**{f"augment.simclr.{k}": v for k, v in identity_views.items()}, **flows64)
    out = tmp_path / "grads.pt"
    TorchTrainer(
        _grad_loop,
        train_loop_config={"raw": raw, "experiments": EQUIV_EXPERIMENTS, "out": str(out)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="equivalence", storage_path=str(tmp_path / "ray")),
    ).fit()
    two = torch.load(out, weights_only=True)
    for name in EQUIV_EXPERIMENTS:
        loss, grads = _objective_and_grads(raw, name, 0, 1)
        assert two[name]["loss"] == pytest.approx(loss, rel=1e-9, abs=1e-12), name
        assert grads.keys() == two[name]["grads"].keys()
        norm = sum(g.norm() ** 2 for g in grads.values()) ** 0.5
        assert norm > 0
        for key, g in grads.items():
            torch.testing.assert_close(two[name]["grads"][key], g, rtol=1e-7, atol=1e-10, msg=f"{name} {key}")


# ---------------------------------------------------------------------- failures and resume
@pytest.mark.ray
def test_failure_is_recovered_from_the_latest_checkpoint(ray_local, project):
    raw = tiny_params_raw(iterations=6, **{"train.max_failures": 1})
    out = _train(project, raw, "rf", fail_at_step=3)
    config = json.loads((out / "seed_0" / "config.json").read_text())
    assert config["resumed_from"] == [2]  # the checkpoint of step 2, after the injected failure at step 3
    assert config["steps"] == 6


@pytest.mark.ray
def test_killed_run_restarted_resumes(ray_local, project):
    raw = tiny_params_raw(iterations=6)  # max_failures = 0: the injected failure ends the run
    with pytest.raises(Exception, match="injected failure"):
        _train(project, raw, "rf_lzn", fail_at_step=5)
    assert not (project / "models" / "rf_lzn").exists()  # no half-written export
    out = _train(project, raw, "rf_lzn")
    config = json.loads((out / "seed_0" / "config.json").read_text())
    assert config["resumed_from"] == [4]
    assert config["steps"] == 6
    history = json.loads((out / "seed_0" / "history.json").read_text())
    assert [h["step"] for h in history] == [2.0, 4.0, 6.0]


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_other_config_or_experiment_is_refused():
    raw = tiny_params_raw()
    params = validate_params(raw)
    shape = DataShape(1, 8, 10)

    def state_for(name: str) -> TrainingState:
        exp = params.experiment(name)
        return TrainingState(build_models(params, exp, shape), exp, objective_spec(params, exp, shape), seed=0)

    config = {"experiment": "rf_lzn", "experiment_config": {"latent_dim": 4, "lr": {"encoder": 1e-3}}}
    saved = state_for("rf_lzn").state_dict(config)
    other = dict(config, experiment_config={"latent_dim": 8, "lr": {"encoder": 1e-3}})
    with pytest.raises(CheckpointMismatchError, match=r"experiment_config\.latent_dim: checkpoint 4 != current 8"):
        state_for("rf_lzn").load_state_dict(saved, other)
    with pytest.raises(CheckpointMismatchError, match="experiment 'rf_lzn', not 'rf'"):
        state_for("rf").load_state_dict(saved, config)
    fresh = state_for("rf_lzn")
    fresh.load_state_dict(saved, config)  # same config: accepted
    assert fresh.resumed_from == [0]


def test_non_finite_loss_skips_the_step():
    raw = tiny_params_raw()
    params = validate_params(raw)
    exp = params.experiment("rf")
    shape = DataShape(1, 8, 10)
    state = TrainingState(build_models(params, exp, shape), exp, objective_spec(params, exp, shape), seed=0)
    before = {k: v.clone() for k, v in state.modules["decoder"].state_dict().items()}
    images = torch.full((4, 1, 8, 8), float("nan"))
    metrics = state.train_step(images, torch.zeros(4, dtype=torch.long))
    assert metrics["skipped_steps"] == 1 and state.skipped == 1 and state.step == 1
    for k, v in state.modules["decoder"].state_dict().items():
        assert torch.equal(v, before[k]), k
    assert state.emas["decoder"].num_updates == 0


def test_modules_freeze_after_their_budget():
    raw = tiny_params_raw(**{"train.lzn_joint.iterations": {"decoder": 1, "encoder": 3, "labels": 3}})
    params = validate_params(raw)
    exp = params.experiment("lzn_joint")
    shape = DataShape(1, 8, 10)
    state = TrainingState(build_models(params, exp, shape), exp, objective_spec(params, exp, shape), seed=0)
    images, labels = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 10
    state.train_step(images, labels)
    frozen = {k: v.clone() for k, v in state.modules["decoder"].state_dict().items()}
    enc = {k: v.clone() for k, v in state.modules["encoder"].state_dict().items()}
    state.train_step(images, labels)
    assert state.active_modules() == ["encoder", "labels"]
    assert all(torch.equal(v, frozen[k]) for k, v in state.modules["decoder"].state_dict().items())
    assert any(not torch.equal(v, enc[k]) for k, v in state.modules["encoder"].state_dict().items())
    assert state.emas["decoder"].num_updates == 1 and state.emas["encoder"].num_updates == 2


# ----------------------------------------------------------------------------- bad input
def _stage(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_stage_bad_input_fails_before_ray(project):
    (project / "params.yaml").write_text(json.dumps(tiny_params_raw()))
    r = _stage(["--experiment", "nope", "--root", str(project)], project)
    assert r.returncode == 2 and "unknown experiment 'nope'" in r.stderr and "Traceback" not in r.stderr
    bad = tiny_params_raw(**{"train.rf.batch_size": 15})
    (project / "params.yaml").write_text(json.dumps(bad))
    r = _stage(["--experiment", "rf", "--root", str(project)], project)
    assert r.returncode == 2 and "train.rf.batch_size" in r.stderr
    bad = tiny_params_raw(**{"train.rf_lzn.latent_dim": 0})
    (project / "params.yaml").write_text(json.dumps(bad))
    r = _stage(["--experiment", "rf_lzn", "--root", str(project)], project)
    assert r.returncode == 2 and "train.rf_lzn.latent_dim" in r.stderr
    (project / "params.yaml").write_text(json.dumps(tiny_params_raw()))
    import shutil

    shutil.rmtree(project / "data")
    r = _stage(["--experiment", "rf", "--root", str(project)], project)
    assert r.returncode == 2 and "dvc repro shard" in r.stderr


def test_more_workers_than_cpus_is_a_clear_error():
    from pipeline.cluster import ClusterError, check_resources

    with pytest.raises(ClusterError, match=r"train\.workers=4 x train\.cpus_per_worker=1 needs 4 CPUs, the Ray cluster has 2"):
        check_resources({"CPU": 2.0}, 4, 1.0, False)
    check_resources({"CPU": 2.0}, 4, 0.5, False)
    with pytest.raises(ClusterError, match="GPUs"):
        check_resources({"CPU": 8.0}, 2, 1.0, True)
