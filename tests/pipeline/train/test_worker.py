"""The worker side: the typed worker config (built once by the driver, pickled to every rank) and
gradient equivalence across worker counts (2 workers x 8 samples == 1 worker x 16 samples)."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
from conftest import REPO, tiny_params_raw

from pipeline.build import DataShape, build_models, objective_spec
from pipeline.params import validate_params
from pipeline.train import faults
from pipeline.train.driver import plan_training, worker_config
from pipeline.train.worker import WorkerConfig


# ----------------------------------------------------------------------------- the worker config
def test_worker_config_is_typed_validated_once_and_pickles(project):
    raw = tiny_params_raw(**{"train.rf_lzn.latent_flow.steps": 7})
    params = validate_params(raw)
    plan = plan_training(params, raw, "rf_lzn", 0, project)
    config = worker_config(plan, tracking_uri="sqlite:///x.db", run_id="abc")
    assert isinstance(config, WorkerConfig) and config.params is params  # not re-validated from a dict
    assert config.fault is None and config.label == "rf_lzn s0"
    assert (config.run_name, config.run_config, config.storage) == (plan.run_name, plan.run_config, plan.storage)
    back = pickle.loads(pickle.dumps(config))  # what Ray does to train_loop_config
    assert back == config and back.params.experiment("rf_lzn").latent_flow.steps == 7
    spec = objective_spec(back.params, back.params.experiment("rf_lzn"), back.data_shape)
    assert spec.latent_flow.steps == 7
    with faults.fail_at_step(3):
        armed = worker_config(plan, tracking_uri=None, run_id=None)
    assert armed.fault == faults.FailAt(3, plan.storage / f"{plan.run_name}.failed-once")


# ------------------------------------------------- 2 workers x 8 samples == 1 worker x 16 samples
def _grad_loop(config):
    """Ray worker: objective + gradients of a fixed global batch split over the ranks."""
    import ray.train

    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    import pipeline

    results = {"pipeline": pipeline.__file__}  # which copy of the project the worker imported
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
    # Ray puts the driver's working directory on the workers' sys.path: run from the repository root,
    # they import this tree (not another install of the project)
    assert two["pipeline"] == str(REPO / "pipeline" / "__init__.py")
    for name in EQUIV_EXPERIMENTS:
        loss, grads = _objective_and_grads(raw, name, 0, 1)
        assert two[name]["loss"] == pytest.approx(loss, rel=1e-9, abs=1e-12), name
        assert grads.keys() == two[name]["grads"].keys()
        norm = sum(g.norm() ** 2 for g in grads.values()) ** 0.5
        assert norm > 0
        for key, g in grads.items():
            torch.testing.assert_close(two[name]["grads"][key], g, rtol=1e-7, atol=1e-10, msg=f"{name} {key}")
