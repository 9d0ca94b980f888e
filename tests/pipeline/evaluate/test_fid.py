"""The `fid` stage: FID / IS / precision / recall against the training set, reconstruction error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from eval_support import (
    _mlflow_store,  # noqa: F401  (fixture)
    make_model,
    make_shards,
    mlflow_run,
    mlflow_uri,  # noqa: F401  (fixture)
    run_metrics,
    run_stage,
    run_stage_inprocess,
    tiny_raw,
    write_params,
)

from lzn.flow import compute_latents
from lzn.samplers import reconstruction_error
from pipeline.evaluate.feature_nets import FeatureNetworkFileError
from pipeline.evaluate.fid import feature_metrics, load_feature_network, recon_error, reference_subset
from pipeline.evaluate.refnet import train_refnet
from pipeline.evaluate.seeds import load_seed_models
from pipeline.params import validate_params

LEARNS = {"refnet.epochs": 10, "refnet.batch_size": 16, "refnet.lr": 3e-3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Shards and a (briefly) trained reference network, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("fid")
    make_shards(root)
    raw = tiny_raw(**LEARNS)
    train_refnet(validate_params(raw).refnet, root / "data" / "shards", root / "models" / "refnet")
    return root, raw


def test_fid_of_training_set_with_itself_and_with_noise(trained):
    root, raw = trained
    params = validate_params(raw)
    net = load_feature_network(root, params.fid, (1, 8, 8))
    assert net.name == "digits-reference-cnn"
    real_images, _ = reference_subset(root / "data" / "shards", 100, 0)
    real = net.compute(real_images)
    same = feature_metrics(net, real, real_images, params.fid)
    assert same["fid"] < 1e-6
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    noise = torch.rand(real_images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = feature_metrics(net, real, noise, params.fid)
    assert far["fid"] > 1000 * max(same["fid"], 1e-6) and far["fid"] > 0.1
    # another half of the training set: close to the real distribution, far from noise
    other, _ = reference_subset(root / "data" / "shards", 100, 1)
    near = feature_metrics(net, real, other, params.fid)
    assert near["fid"] < far["fid"] / 3


def test_recon_error_matches_the_protocol(trained):
    root, raw = trained
    for exp in ("rf", "rf_lzn"):
        if not (root / "models" / exp).exists():
            make_model(root, exp, raw)
    params = validate_params(raw)
    x, y = reference_subset(root / "data" / "shards", 4, 0)
    (rf,) = load_seed_models(root, "rf", [0])
    value = recon_error(rf, x, y, params.fid, generator=torch.Generator().manual_seed(0))
    assert value == pytest.approx(float(reconstruction_error(rf.modules["decoder"], x).mean()), rel=1e-6)
    (lzn,) = load_seed_models(root, "rf_lzn", [0])
    assert lzn.exp.latent_flow.precision == "float32"
    value = recon_error(lzn, x, y, params.fid, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    flow, errors = lzn.exp.latent_flow, []
    with torch.no_grad():
        for _ in range(params.fid.recon_repeats):  # fresh noise per repeat, latents over the batch's anchors
            a = lzn.modules["encoder"](x)  # latent_flow.precision: float32
            z = compute_latents(a, a, torch.randn(a.shape, generator=gen, dtype=a.dtype), solver=flow.solver,
                                steps=flow.steps, eps=flow.eps, alpha=flow.alpha).float()
            errors.append(float(reconstruction_error(lzn.modules["decoder"], x, z).mean()))
    assert value == pytest.approx(sum(errors) / len(errors), rel=1e-6)


def test_fid_stage_report_and_mlflow(trained, mlflow_uri):  # noqa: F811
    root, raw = trained
    write_params(root, raw)
    run_id = mlflow_run(mlflow_uri, "rf_cond")
    make_model(root, "rf_cond", raw, run_id=run_id)
    run_stage_inprocess("generate", root, "--experiment", "rf_cond")
    run_stage_inprocess("fid", root, "--experiment", "rf_cond")
    report = json.loads((root / "reports" / "fid" / "rf_cond.json").read_text())
    assert report["feature_network"] == "digits-reference-cnn"
    assert report["num_samples"] == raw["generate"]["num_samples"] == report["num_real"]
    assert report["dataset"] == "digits 8x8"
    for key in ("fid", "fid_euler", "fid_conditional", "inception_score", "inception_score_split_std", "precision",
                "recall", "recon_error"):
        assert report[key] >= 0.0 and report[f"{key}_std"] == 0.0, key
    assert report["fid_conditional"] == report["fid"]
    assert report["seed_count"] == 1 and set(report["per_seed"]) == {"0"}
    metrics = run_metrics(mlflow_uri, run_id)
    assert metrics["eval/fid"] == report["fid"] and metrics["eval/recon_error"] == report["recon_error"]


def test_missing_refnet_and_inception_weights(tmp_path):
    make_shards(tmp_path)
    raw = tiny_raw()
    write_params(tmp_path, raw)
    make_model(tmp_path, "rf", raw)
    proc = run_stage("fid", tmp_path, "--experiment", "rf")  # the real command line
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "dvc repro refnet" in proc.stderr
    params = validate_params(tiny_raw(**{"fid.feature_network": "inception", "fid.inception_weights": "nets/inc.pt"}))
    with pytest.raises(FeatureNetworkFileError, match=str(Path(tmp_path) / "nets" / "inc.pt")):
        load_feature_network(tmp_path, params.fid, (1, 8, 8))


def test_missing_model_names_training_stage(tmp_path, capsys):
    make_shards(tmp_path)
    write_params(tmp_path, tiny_raw())
    with pytest.raises(SystemExit) as exc:
        run_stage_inprocess("fid", tmp_path, "--experiment", "lzn_joint")
    assert exc.value.code == 2 and "dvc repro train@lzn_joint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run_stage_inprocess("fid", tmp_path, "--experiment", "simclr")
    assert exc.value.code == 2 and "rf, rf_lzn, rf_cond, lzn_joint" in capsys.readouterr().err
