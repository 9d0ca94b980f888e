"""The `classify` stage: reverse label flow (default / tuned protocols) and the supervised baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_support import (
    _mlflow_store,  # noqa: F401  (fixture)
    digits_subset,
    make_model,
    make_shards,
    mlflow_run,
    mlflow_uri,  # noqa: F401  (fixture)
    run_metrics,
    run_stage_inprocess,
    tiny_raw,
    write_params,
)
from torch import nn

from lzn.anchors import LabelAnchors
from pipeline.build import DataShape
from pipeline.evaluate.classify import classify_seed, label_flow_accuracy, label_flow_spec, train_supervised
from pipeline.evaluate.seeds import SeedModel
from pipeline.params import validate_params

C = 10


class LookupEncoder(nn.Module):
    """Fixed encoder for constant images: class k (pixel value -1 + 0.2 k) -> anchor ``table[(k + shift) % C]``.

    ``seen`` counts the images it encoded.
    """

    def __init__(self, table: torch.Tensor, shift: int = 0):
        super().__init__()
        self.register_buffer("table", table.clone())
        self.shift = shift
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        k = torch.round((x.mean(dim=(1, 2, 3)) + 1.0) / 0.2).long()
        return self.table[(k + self.shift) % C]


def constant_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % C  # every batch of a multiple of C images is class-balanced
    return (-1.0 + 0.2 * labels.float()).reshape(n, 1, 1, 1).expand(n, 1, 8, 8).clone(), labels


def toy_model(shift: int, **extra) -> SeedModel:
    raw = tiny_raw(**{"train.lzn_joint.latent_dim": 16, "train.lzn_joint.latent_flow.steps": 20, **extra})
    params = validate_params(raw)
    labels = LabelAnchors(C, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels.A.mul_(0.5)  # separated anchors (pairwise distances ~2.8) whose zones the solvers resolve
    encoder = LookupEncoder(labels.A.detach(), shift)
    return SeedModel(seed=0, path=Path("."), modules={"encoder": encoder, "labels": labels}, params=params,
                     exp=params.experiment("lzn_joint"), shape=DataShape(1, 8, C), run_id=None)


def test_reverse_label_flow_is_exact_on_separable_toy_anchors():
    """Anchors of class k equal label anchor k and every batch is class-balanced, so the image latent
    flow and the label flow have the same zones: alpha = 0 (zone centres) classifies exactly, alpha > 0
    up to ODE-solver error; every test image is used, including the final smaller batch."""
    model = toy_model(0, **{"classify.batch_size": 20, "classify.tuned_batch_size": 30, "classify.label_steps": 100})
    images, labels = constant_images(70)  # batches 20+20+20+10 and 30+30+10
    record = classify_seed(model, images, labels, model.params.classify)
    assert record["accuracy_grid_alpha_0"] == 1.0
    assert record["accuracy_tuned"] == 1.0
    assert record["accuracy_default"] >= 0.95  # alpha = 1
    for a in model.params.classify.tuned_alphas:
        assert record[f"accuracy_grid_alpha_{a:g}"] >= 0.95
    best = [a for a in model.params.classify.tuned_alphas if record[f"accuracy_grid_alpha_{a:g}"] == 1.0]
    assert record["tuned_alpha"] == best[0]  # ties resolve to the first listed alpha
    assert model.modules["encoder"].seen == 140  # 70 (default) + 70 (tuned): no sample dropped


def test_wrong_anchors_give_zero_accuracy():
    model = toy_model(1, **{"classify.label_steps": 100})
    images, labels = constant_images(30)
    acc = label_flow_accuracy(model.modules["encoder"], model.modules["labels"], images, labels, batch_size=20,
                              alphas=[0.0, 1.0], flow=model.exp.latent_flow.spec(),
                              label_flow=label_flow_spec(model.exp.latent_flow.spec(), model.params.classify),
                              generator=torch.Generator().manual_seed(0))
    assert acc[0.0] == 0.0 and acc[1.0] <= 0.05


def test_supervised_baseline_learns_and_is_deterministic():
    src = digits_subset(60, 10)
    images = torch.from_numpy(src.images("train")).float().unsqueeze(1) / 127.5 - 1.0
    labels = torch.from_numpy(src.labels("train"))
    shape = DataShape(1, 8, C)
    quick = validate_params(tiny_raw(**{"classify.supervised.iterations": 2, "classify.supervised.batch_size": 20}))
    a = train_supervised(quick, shape, (images, labels), seed=0)
    b = train_supervised(quick, shape, (images, labels), seed=0)
    with torch.no_grad():
        assert torch.equal(a(images), b(images))
    params = validate_params(tiny_raw(**{"classify.supervised.iterations": 30, "classify.supervised.lr": 1e-2,
                                         "classify.supervised.batch_size": 30}))
    model = train_supervised(params, shape, (images, labels), seed=0)
    with torch.no_grad():
        assert (model(images).argmax(1) == labels).float().mean() > 0.5  # chance is 0.1


def test_classify_stage(tmp_path, mlflow_uri, capsys):  # noqa: F811
    make_shards(tmp_path)
    raw = tiny_raw()
    write_params(tmp_path, raw)
    with pytest.raises(SystemExit) as exc:
        run_stage_inprocess("classify", tmp_path)
    assert exc.value.code == 2 and "dvc repro train@lzn_joint" in capsys.readouterr().err
    run_id = mlflow_run(mlflow_uri, "lzn_joint")
    make_model(tmp_path, "lzn_joint", raw, run_id=run_id)
    run_stage_inprocess("classify", tmp_path)
    lzn = json.loads((tmp_path / "reports" / "classify" / "lzn_joint.json").read_text())
    sup = json.loads((tmp_path / "reports" / "classify" / "supervised.json").read_text())
    assert lzn["tuned_selects_on_test_set"] is True and "TEST SET" in lzn["protocol"]
    assert lzn["test_count"] == 60 and lzn["seed_count"] == 1
    grid = [lzn[f"accuracy_grid_alpha_{a:g}"] for a in raw["classify"]["tuned_alphas"]]
    assert lzn["accuracy_tuned"] == max(grid)
    assert lzn["tuned_alpha"] == raw["classify"]["tuned_alphas"][int(np.argmax(grid))]
    for key in ("accuracy_default", "accuracy_tuned"):
        assert 0.0 <= lzn[key] <= 1.0 and lzn[f"{key}_std"] == 0.0
    assert 0.0 <= sup["accuracy"] <= 1.0 and sup["accuracy_std"] == 0.0 and sup["seed_count"] == 1
    metrics = run_metrics(mlflow_uri, run_id)
    assert metrics["eval/accuracy_default"] == lzn["accuracy_default"]
    assert metrics["eval/accuracy_tuned"] == lzn["accuracy_tuned"]
