"""Shared fixtures: tiny digits shards, tiny params, and environment hygiene for Ray/MLflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pipeline.cluster import prepare_environment

REPO = Path(__file__).resolve().parents[1]
prepare_environment()  # Ray's env switches (auth off, no print patching) before any test starts Ray
torch.set_num_threads(1)  # 2 threads on a busy 2-core machine were 5-35x slower than 1


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits_shards(tmp_path_factory) -> Path:
    """The default digits source written to shards once per session (128 samples per shard)."""
    from pipeline.data.shards import write_shards
    from pipeline.params import ShardConfig

    out = tmp_path_factory.mktemp("shards") / "shards"
    write_shards(ShardConfig(shard_size=128), out, progress=False)
    return out


@pytest.fixture(scope="module")
def ray_local():
    """A local 2-CPU Ray for the tests of one module (any earlier instance shut down first)."""
    import ray

    from pipeline.cluster import ensure_ray

    if ray.is_initialized():
        ray.shutdown()
    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def project(tmp_path, digits_shards, monkeypatch) -> Path:
    """A project root with data/shards (a copy of the session shards) and its own MLflow store."""
    (tmp_path / "data").mkdir()
    shutil.copytree(digits_shards, tmp_path / "data" / "shards")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


TINY_OVERRIDES = {
    "model.decoder": {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
    "model.encoder": {
        "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
        "head_channels": 4, "head_hidden": 16,
    },
    "model.resnet": {"width": 8, "layers": [1], "proj_hidden": 16, "bottleneck": False, "imagenet_stem": False},
    "train.workers": 2,
    "train.cpus_per_worker": 0.5,
    "train.log_every": 2,
    "train.checkpoint_every": 2,
    "train.max_failures": 0,
}


def tiny_params_raw(iterations: int = 4, batch_size: int = 16, **extra) -> dict:
    """Default params shrunk to seconds-long training runs (raw dict, validated by the caller)."""
    from pipeline.params import EXPERIMENTS, MODULES, apply_overrides, read_params_dict

    over = dict(TINY_OVERRIDES)
    for name in EXPERIMENTS:
        over[f"train.{name}.batch_size"] = batch_size
        over[f"train.{name}.iterations"] = {m: iterations for m in MODULES[name]}
        over[f"train.{name}.warmup"] = 1
    for name in ("rf_lzn", "simclr", "lzn_repr", "lzn_joint"):
        over[f"train.{name}.latent_dim"] = 4
    over["train.lzn_joint.align"] = {"steps": 10, "cutoff": 0.2, "log": False}
    over["train.lzn_repr.latent_flow"] = {"solver": "euler", "steps": 5, "eps": 1e-4, "alpha": 0.45, "checkpoint": True,
                                         "precision": "float32"}
    over["train.lzn_repr.align"] = {"steps": 5, "cutoff": 0.2, "log": True}
    over.update(extra)
    return apply_overrides(read_params_dict(REPO / "params.yaml"), over)
