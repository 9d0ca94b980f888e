"""Paper-scale configs: they validate, reproduce the official hyperparameters and model sizes."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import REPO

from pipeline.build import DataShape, build_models
from pipeline.configs import apply_config
from pipeline.params import ParamsError, validate_params


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cifar10_config_matches_the_paper(tmp_path):
    params_path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_path)
    merged = apply_config(REPO / "configs" / "cifar10.yaml", params_path)
    params = validate_params(merged)
    assert validate_params(__import__("yaml").safe_load(params_path.read_text())) == params
    rf_lzn = params.experiment("rf_lzn")
    assert (rf_lzn.batch_size, rf_lzn.latent_dim, rf_lzn.lr) == (2000, 200, {"decoder": 1e-3, "encoder": 2.5e-5})
    joint = params.experiment("lzn_joint")
    assert joint.iterations == {"decoder": 60000, "encoder": 200000, "labels": 200000}
    assert (joint.align.steps, joint.align.cutoff, joint.align.log) == (100, 0.2, False)
    shape = DataShape(channels=3, image_size=32, num_classes=10)
    with torch.device("meta"):
        rf = build_models(params, params.experiment("rf"), shape)
        lzn = build_models(params, rf_lzn, shape)
    # parameter counts of the paper (LZN_SPEC §2.1 table: recount of the released architecture)
    assert _count(rf["decoder"]) == 61_804_419
    assert _count(lzn["decoder"]) == 61_906_819
    assert _count(lzn["encoder"]) == 49_790_260


def test_imagenet_config_matches_the_paper(tmp_path):
    params_path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_path)
    params = validate_params(apply_config(REPO / "configs" / "imagenet.yaml", params_path))
    exp = params.experiment("lzn_repr")
    assert (exp.batch_size, exp.latent_dim, exp.lr["encoder"]) == (8192, 256, 8e-4)
    assert (exp.latent_flow.alpha, exp.latent_flow.steps, exp.align.cutoff) == (0.45, 20, 0.2)
    with torch.device("meta"):
        enc = build_models(params, exp, DataShape(channels=3, image_size=224, num_classes=1000))["encoder"]
    assert enc.feature_dim == 2048
    assert enc.backbone_parameters() == 23_508_032  # ResNet-50 with GroupNorm (LZN_SPEC §5.1)


def test_unknown_key_in_config_is_refused(tmp_path):
    params_path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  rf_lzn:\n    latnet_dim: 3\n")
    before = params_path.read_text()
    with pytest.raises(ParamsError, match=r"train\.rf_lzn\.latnet_dim: unknown parameter"):
        apply_config(bad, params_path)
    assert params_path.read_text() == before
