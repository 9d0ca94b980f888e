"""The `generate` stage: samples of the main (RK45) and Euler samplers, class-balanced labels, grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from eval_support import (
    _mlflow_store,  # noqa: F401  (fixture)
    make_model,
    mlflow_run,
    mlflow_uri,  # noqa: F401  (fixture)
    run_metrics,
    run_stage_inprocess,
    tiny_raw,
    write_params,
)
from PIL import Image
from torch import nn

from pipeline.build import DataShape
from pipeline.evaluate.generate import balanced_labels, generate_samples, load_samples
from pipeline.evaluate.seeds import SeedModel, load_seed_models
from pipeline.params import validate_params

C = 10


class PullToTemplate(nn.Module):
    """Velocity ``k (T[y] - x)``: the ODE solution converges to the class template ``T[y]``
    (one template when unconditional), exact to uint8 for k = 20 over t in [1e-3, 1]."""

    def __init__(self, templates: torch.Tensor, k: float = 20.0):
        super().__init__()
        self.register_buffer("templates", templates)
        self.k = k
        self.w = nn.Parameter(torch.zeros(()))  # generate() reads the device of the parameters

    def forward(self, x, t, z=None, y_onehot=None):
        target = self.templates[0] if y_onehot is None else torch.einsum("bc,chw->bhw", y_onehot, self.templates)
        return self.k * (target.reshape(x.shape) - x)


def test_samplers_reach_the_class_templates():
    raw = tiny_raw(**{"generate.num_samples": 23, "generate.batch_size": 10, "generate.euler_steps": 60})
    params = validate_params(raw)
    templates = (torch.arange(C).float()[:, None, None] / 4.5 - 1.0).expand(C, 8, 8).clone()
    model = SeedModel(seed=0, path=Path("."), modules={"decoder": PullToTemplate(templates)}, params=params,
                      exp=params.experiment("rf_cond"), shape=DataShape(1, 8, C), run_id=None)
    expected = np.rint((templates.numpy() + 1.0) * 127.5).astype(np.uint8)
    for sampler in ("rk45", "euler"):
        out = generate_samples(model, params.generate, sampler=sampler, label_steps=10)
        assert out["images"].shape == (23, 8, 8, 1) and out["images"].dtype == np.uint8
        np.testing.assert_array_equal(out["labels"], np.arange(23) % C)
        np.testing.assert_array_equal(out["images"][..., 0], expected[out["labels"]])
        assert out["nfe"] == (60 if sampler == "euler" else out["nfe"]) and out["nfe"] > 0


def test_balanced_labels():
    counts = np.bincount(balanced_labels(1000, C).numpy(), minlength=C)
    assert (counts == 100).all()
    counts = np.bincount(balanced_labels(23, C).numpy(), minlength=C)
    assert counts.max() - counts.min() <= 1


def test_unconditional_labels_and_shared_noise(tmp_path):
    raw = tiny_raw()
    make_model(tmp_path, "rf_lzn", raw)
    (model,) = load_seed_models(tmp_path, "rf_lzn", [0])
    cfg = validate_params(raw).generate
    a = generate_samples(model, cfg, sampler="euler", label_steps=10)
    b = generate_samples(model, cfg, sampler="euler", label_steps=10)
    assert (a["labels"] == -1).all()
    np.testing.assert_array_equal(a["images"], b["images"])  # seeded by (generate.seed, model seed)


def test_generate_stage(tmp_path, mlflow_uri):  # noqa: F811
    experiment = "lzn_joint"
    raw = tiny_raw()
    write_params(tmp_path, raw)
    run_id = mlflow_run(mlflow_uri, experiment)
    make_model(tmp_path, experiment, raw, run_id=run_id)
    run_stage_inprocess("generate", tmp_path, "--experiment", experiment)
    seed_dir = tmp_path / "samples" / experiment / "seed_0"
    main, euler = load_samples(seed_dir / "samples.npz"), load_samples(seed_dir / "samples_euler.npz")
    n = raw["generate"]["num_samples"]
    for s in (main, euler):
        assert s["images"].shape == (n, 8, 8, 1) and s["images"].dtype == np.uint8
    assert str(main["sampler"]) == "rk45" and str(euler["sampler"]) == "euler"
    assert float(euler["nfe"]) == raw["generate"]["euler_steps"] and float(main["nfe"]) > 0
    np.testing.assert_array_equal(main["labels"], np.arange(n) % C)  # class-balanced
    np.testing.assert_array_equal(euler["labels"], main["labels"])
    with Image.open(seed_dir / "grid.png") as grid:
        assert grid.mode == "L" and grid.size == (8 * 33 + 1, 8 * 33 + 1)
    summary = json.loads((tmp_path / "samples" / experiment / "generate.json").read_text())
    assert summary["seed_count"] == 1 and summary["num_samples"] == n
    assert run_metrics(mlflow_uri, run_id)["eval/generate_nfe_euler"] == raw["generate"]["euler_steps"]
    from mlflow.tracking import MlflowClient

    artifacts = [a.path for a in MlflowClient(tracking_uri=mlflow_uri).list_artifacts(run_id, "eval/generate")]
    assert artifacts == ["eval/generate/grid.png"]
    # seeded: a second run writes identical samples
    before = (seed_dir / "samples.npz").read_bytes()
    run_stage_inprocess("generate", tmp_path, "--experiment", experiment)
    assert (seed_dir / "samples.npz").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [experiment]
