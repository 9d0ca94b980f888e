"""Helpers of the evaluation-stage tests: tiny digits shards, tiny exported models, an MLflow store.

Everything lives under a test's ``tmp_path`` laid out like the project root (``data/shards``,
``models/<experiment>/seed_<s>``, ``params.yaml``, ``mlflow.db``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from pipeline.artifacts import save_exported
from pipeline.build import DataShape, build_models
from pipeline.data.shards import write_source
from pipeline.data.sources import ArraySource, read_digits
from pipeline.params import apply_overrides, read_params_dict, validate_params

REPO = Path(__file__).resolve().parents[3]

TINY: dict[str, Any] = {
    "model.decoder": {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
    "model.encoder": {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
                      "head_channels": 4, "head_hidden": 16},
    "model.resnet": {"width": 8, "layers": [1, 1], "proj_hidden": 16, "bottleneck": False, "imagenet_stem": False},
    "train.rf_lzn.latent_dim": 4,
    "train.simclr.latent_dim": 8,
    "train.lzn_repr.latent_dim": 8,
    "train.lzn_joint.latent_dim": 4,
    "train.rf_lzn.latent_flow.steps": 4,
    "train.lzn_joint.latent_flow.steps": 4,
    "train.lzn_repr.latent_flow.steps": 4,
    "refnet.epochs": 2,
    "refnet.width": 8,
    "extract.batch_size": 32,
    "probe.epochs": 3,
    "classify.batch_size": 25,
    "classify.tuned_batch_size": 60,
    "classify.label_steps": 10,
    "classify.supervised.iterations": 3,
    "classify.supervised.batch_size": 16,
    "generate.num_samples": 20,
    "generate.batch_size": 10,
    "generate.euler_steps": 2,
    "fid.is_splits": 2,
    "fid.recon_images": 4,
    "fid.recon_repeats": 2,
}


def tiny_raw(**extra: Any) -> dict[str, Any]:
    """The project's ``params.yaml`` with tiny models and evaluation sizes (plus ``extra`` overrides)."""
    return apply_overrides(read_params_dict(REPO / "params.yaml"), {**TINY, **extra})


def write_params(root: Path, raw: dict[str, Any]) -> Path:
    path = Path(root) / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def digits_subset(n_train: int = 120, n_test: int = 60) -> ArraySource:
    """The first ``n_train`` / ``n_test`` digits of the standard split (all ten classes)."""
    src = read_digits()
    return ArraySource(
        name="digits",
        description="digits subset for tests",
        class_names=[str(i) for i in range(10)],
        splits={
            "train": (src.images("train")[:n_train], src.labels("train")[:n_train]),
            "test": (src.images("test")[:n_test], src.labels("test")[:n_test]),
        },
    )


def make_shards(root: Path, n_train: int = 120, n_test: int = 60, shard_size: int = 50) -> dict[str, Any]:
    """Tiny digits shards in ``root/data/shards`` (several shards, a partial last one); the manifest."""
    return write_source(digits_subset(n_train, n_test), Path(root) / "data" / "shards", shard_size=shard_size,
                        progress=False)


def make_model(root: Path, experiment: str, raw: dict[str, Any], *, seed: int = 0,
               modules: dict[str, torch.nn.Module] | None = None, run_id: str | None = None) -> Path:
    """Export ``experiment`` (random weights of the tiny params, or ``modules``) as models/<exp>/seed_<s>."""
    params = validate_params(raw)
    exp = params.experiment(experiment)
    shape = DataShape(channels=1, image_size=8, num_classes=10)
    if modules is None:
        torch.manual_seed(1234 + seed)
        modules = build_models(params, exp, shape)
    state = {k: m.state_dict() for k, m in modules.items()}
    out = Path(root) / "models" / experiment / f"seed_{seed}"
    save_exported(
        out,
        {"model": state, "ema": state},
        {"experiment": experiment, "seed": seed, "params": raw, "data_shape": shape.__dict__},
        {"run_id": run_id} if run_id else {},
    )
    return out


def mlflow_run(uri: str, name: str) -> str:
    from pipeline import tracking

    run_id = tracking.start_run(uri, name, {"p": 1}, {"stage": "train"})
    tracking.end_run(uri, run_id)
    return run_id


def run_metrics(uri: str, run_id: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    return dict(MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics)


def run_stage(name: str, root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python stages/<name>.py --root <root> ...`` as a subprocess."""
    full_env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), "--root", str(root), *args],
        capture_output=True, text=True, env=full_env, timeout=300, cwd=root,
    )


def run_stage_inprocess(name: str, root: Path, *args: str) -> None:
    """Run ``stages/<name>.py --root <root> ...`` as ``__main__`` in this process (SystemExit propagates)."""
    import runpy

    script = REPO / "stages" / f"{name}.py"
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(script), "--root", str(root), *args]
    sys.path.insert(0, str(REPO / "stages"))
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = old_argv, old_path


@pytest.fixture(scope="session")
def _mlflow_store(tmp_path_factory) -> str:
    """One SQLite MLflow store for the session (creating a store runs its migrations, ~seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow_uri(_mlflow_store, monkeypatch) -> str:
    """``MLFLOW_TRACKING_URI`` pointing at the session's temporary store (never the project's)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _mlflow_store)
    return _mlflow_store


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def u8_images(x: torch.Tensor) -> np.ndarray:
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
