"""The `extract` stage: one exact ordered pass over train and test, written as Parquet."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from eval_support import make_model, make_shards, run_stage_inprocess, tiny_raw, write_params

from lzn.flow import compute_latents
from pipeline.data.loaders import read_split
from pipeline.errors import DataError, ModelNotTrainedError
from pipeline.evaluate.extract import extract_experiment, read_features, state_digest
from pipeline.evaluate.seeds import load_seed_models
from pipeline.params import validate_params


@pytest.fixture
def root(tmp_path):
    make_shards(tmp_path)
    raw = tiny_raw()
    write_params(tmp_path, raw)
    make_model(tmp_path, "lzn_joint", raw)
    make_model(tmp_path, "simclr", raw)
    return tmp_path


def test_extract_rows_columns_and_values(root):
    model_file = root / "models" / "lzn_joint" / "seed_0" / "model.pt"
    before = model_file.read_bytes()
    run_stage_inprocess("extract", root, "--experiment", "lzn_joint")
    assert model_file.read_bytes() == before
    manifest = json.loads((root / "data" / "shards" / "manifest.json").read_text())
    (model,) = load_seed_models(root, "lzn_joint", [0])
    enc = model.modules["encoder"]
    flow = model.exp.latent_flow.spec().replace(alpha=0.0)
    for split in ("train", "test"):
        path = root / "features" / "lzn_joint" / "seed_0" / f"{split}.parquet"
        table = pq.read_table(path)
        assert table.num_rows == manifest["counts"][split]
        assert table.schema.field("backbone").type == pa.list_(pa.float32())
        assert table.schema.field("latent_a1").type == pa.list_(pa.float32())
        feats = read_features(path)
        images, labels, keys = read_split(root / "data" / "shards", split)
        assert feats["key"] == keys  # exact ordered pass
        assert torch.equal(feats["label"], labels)
        x = images.float() / 127.5 - 1.0
        with torch.no_grad():
            torch.testing.assert_close(feats["backbone"], enc.features(x), rtol=1e-5, atol=1e-5)
            anchors = enc(x)
            torch.testing.assert_close(feats["anchor"], anchors, rtol=1e-5, atol=1e-5)
            anchors = anchors.to(flow.dtype)
            # alpha = 0 latents are deterministic; they are computed over the anchors of the
            # eval batch (extract.batch_size = 32), not over the whole split
            batch = anchors[:32]
            z0 = compute_latents(batch, batch, torch.zeros_like(batch), solver=flow.solver, steps=flow.steps,
                                 eps=flow.eps, alpha=0.0)
            torch.testing.assert_close(flow.latents(batch, batch, torch.randn_like(batch)), z0, rtol=0, atol=0)
            torch.testing.assert_close(feats["latent_a0"][:32], z0.float(), rtol=1e-5, atol=1e-5)
            whole = flow.latents(anchors, anchors[:32], torch.zeros_like(batch))
            assert not torch.allclose(feats["latent_a0"][:32], whole.float(), atol=1e-3)
        assert not torch.allclose(feats["latent_a0"], feats["latent_a1"])
        meta = json.loads(table.schema.metadata[b"lzn"])
        assert meta["rows"] == manifest["counts"][split] and meta["batch_size"] == 32


def test_simclr_uses_the_lzn_repr_flow(root):
    (model,) = load_seed_models(root, "simclr", [0])
    extract_experiment([model], root / "data" / "shards", root / "features" / "simclr", batch_size=50)
    meta = json.loads(pq.read_schema(root / "features" / "simclr" / "seed_0" / "test.parquet").metadata[b"lzn"])
    params = validate_params(tiny_raw())
    assert meta["latent_flow"] == params.experiment("lzn_repr").latent_flow.model_dump(mode="json")


def test_count_mismatch_fails_and_keeps_previous_output(root):
    (model,) = load_seed_models(root, "lzn_joint", [0])
    out = root / "features" / "lzn_joint"
    extract_experiment([model], root / "data" / "shards", out, batch_size=64)
    before = (out / "seed_0" / "test.parquet").read_bytes()
    manifest_path = root / "data" / "shards" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["counts"]["test"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest"):
        extract_experiment([model], root / "data" / "shards", out, batch_size=64)
    assert (out / "seed_0" / "test.parquet").read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["lzn_joint"]  # no temp folder left


def test_weight_change_is_detected(root):
    (model,) = load_seed_models(root, "lzn_joint", [0])
    enc = model.modules["encoder"]
    original = enc.features

    def tampering_features(x):
        with torch.no_grad():
            next(enc.parameters()).add_(1.0)
        return original(x)

    digest = state_digest(enc)
    enc.features = tampering_features
    with pytest.raises(RuntimeError, match="changed the encoder"):
        extract_experiment([model], root / "data" / "shards", root / "features" / "lzn_joint", batch_size=64)
    assert state_digest(enc) != digest
    assert not (root / "features" / "lzn_joint").exists()


def test_missing_model_and_wrong_experiment_exit_2(root, capsys):
    with pytest.raises(ModelNotTrainedError, match=r"dvc repro train@rf_lzn"):
        load_seed_models(root, "rf_lzn", [0])
    with pytest.raises(SystemExit) as exc:
        run_stage_inprocess("extract", root, "--experiment", "rf_lzn")
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "dvc repro train@rf_lzn" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        run_stage_inprocess("extract", root, "--experiment", "rf")
    assert exc.value.code == 2
    assert "rf_lzn, simclr, lzn_repr, lzn_joint" in capsys.readouterr().err
