"""The `refnet` stage: the reference classifier trained on the real training split."""

from __future__ import annotations

import json

import pytest
import torch
from eval_support import make_shards, run_stage_inprocess, tiny_raw, write_params

from pipeline.errors import ModelNotTrainedError
from pipeline.evaluate.refnet import load_refnet, train_refnet
from pipeline.params import validate_params

LEARNS = {"refnet.epochs": 10, "refnet.batch_size": 16, "refnet.lr": 3e-3}


def test_refnet_stage_writes_model_and_accuracy(tmp_path):
    make_shards(tmp_path)
    write_params(tmp_path, tiny_raw(**LEARNS))
    run_stage_inprocess("refnet", tmp_path)
    info = json.loads((tmp_path / "models" / "refnet" / "refnet.json").read_text())
    report = json.loads((tmp_path / "reports" / "refnet.json").read_text())
    assert report["test_accuracy"] == info["test_accuracy"]
    assert info["train_count"] == 120 and info["test_count"] == 60
    assert info["dataset"] == "digits 8x8"
    # 10 classes: chance is 0.1; 80 Adam steps on 120 digits already separate most of them
    assert info["train_accuracy"] > 0.5
    net = load_refnet(tmp_path, (1, 8, 8))
    x = torch.zeros(3, 1, 8, 8)
    assert net.features(x).shape == (3, info["feature_dim"])
    assert net.logits(x).shape == (3, 10)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["refnet"]  # no temp folders left


def test_refnet_is_deterministic(tmp_path):
    make_shards(tmp_path)
    cfg = validate_params(tiny_raw(**{"refnet.epochs": 2})).refnet
    a = train_refnet(cfg, tmp_path / "data" / "shards", tmp_path / "a")
    b = train_refnet(cfg, tmp_path / "data" / "shards", tmp_path / "b")
    assert a["test_accuracy"] == b["test_accuracy"]
    sa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_missing_refnet_names_the_stage(tmp_path):
    with pytest.raises(ModelNotTrainedError, match=r"dvc repro refnet"):
        load_refnet(tmp_path)


def test_refnet_wrong_image_shape(tmp_path):
    make_shards(tmp_path)
    train_refnet(validate_params(tiny_raw(**{"refnet.epochs": 1})).refnet, tmp_path / "data" / "shards",
                 tmp_path / "models" / "refnet")
    with pytest.raises(ValueError, match="dvc repro refnet"):
        load_refnet(tmp_path, (3, 32, 32))
