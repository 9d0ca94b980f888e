"""The `probe` stage: linear probes on frozen extracted features, Fig. 19 rows, seed aggregation."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from eval_support import (
    _mlflow_store,  # noqa: F401  (fixture)
    make_model,
    make_shards,
    mlflow_run,
    mlflow_uri,  # noqa: F401  (fixture)
    run_metrics,
    run_stage_inprocess,
    tiny_raw,
    write_params,
)

from pipeline.evaluate.extract import write_features
from pipeline.evaluate.probe import evaluate_probe
from pipeline.evaluate.seeds import aggregate_seeds
from pipeline.params import validate_params


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_seed(root, experiment, seed, make_column, n_train=200, n_test=100, classes=10):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % classes
        cols = {"key": [f"{split}-{i:07d}" for i in range(n)], "label": labels}
        for c in ("backbone", "anchor", "latent_a0", "latent_a1"):
            cols[c] = make_column(c, labels, rng).astype(np.float32)
        d = root / "features" / experiment / f"seed_{seed}"
        d.mkdir(parents=True, exist_ok=True)
        write_features(d / f"{split}.parquet", cols, {"split": split})


def test_probe_separable_vs_random_features(tmp_path, mlflow_uri):  # noqa: F811
    """One-hot backbone features are probed perfectly; pure-noise columns stay near chance."""
    raw = tiny_raw(**{"probe.epochs": 30, "probe.lr": 0.05, "probe.batch_size": 100, "seeds": [0, 1]})
    params = validate_params(raw)
    for seed in (0, 1):
        make_model(tmp_path, "lzn_repr", raw, seed=seed, run_id=mlflow_run(mlflow_uri, f"lzn_repr-{seed}"))

    def column(name, labels, rng):
        if name == "backbone":
            return np.eye(10)[labels] + 0.05 * rng.standard_normal((len(labels), 10))
        return rng.standard_normal((len(labels), 6))

    for seed in (0, 1):
        _write_seed(tmp_path, "lzn_repr", seed, column)
    files = sorted((tmp_path / "features").rglob("*.parquet"))
    before = {f: _sha(f) for f in files}
    report = evaluate_probe(tmp_path, "lzn_repr", params)
    assert {f: _sha(f) for f in files} == before  # the probe leaves its features unchanged
    assert report["probe_top1"] == 1.0 and report["probe_top1_std"] == 0.0
    assert report["probe_top5"] == 1.0
    for key in ("probe_top1_anchor", "probe_top1_latent_alpha0", "probe_top1_latent_alpha1"):
        assert report[key] < 0.35, key  # noise: chance level (0.1) up to sampling error
        assert f"{key}_std" in report
    assert report["seed_count"] == 2 and set(report["per_seed"]) == {"0", "1"}
    assert report["feature_dim_backbone"] == 10 and report["feature_dim_anchor"] == 6
    run_id = json.loads((tmp_path / "models" / "lzn_repr" / "seed_1" / "run.json").read_text())["run_id"]
    metrics = run_metrics(mlflow_uri, run_id)
    assert metrics["eval/probe_top1"] == 1.0
    assert metrics["eval/probe_top1_anchor"] == report["per_seed"]["1"]["probe_top1_anchor"]


def test_aggregate_seeds_population_std():
    agg = aggregate_seeds({0: {"a": 0.5, "b": "x"}, 1: {"a": 1.0, "b": "y"}})
    assert agg == {"a": 0.75, "a_std": 0.25, "seed_count": 2}
    assert aggregate_seeds({3: {"a": 2.0}}) == {"a": 2.0, "a_std": 0.0, "seed_count": 1}


def test_probe_stage_end_to_end(tmp_path, mlflow_uri, capsys):  # noqa: F811
    make_shards(tmp_path)
    raw = tiny_raw()
    write_params(tmp_path, raw)
    with pytest.raises(SystemExit) as exc:  # no model yet: names the training stage
        run_stage_inprocess("probe", tmp_path, "--experiment", "simclr")
    assert exc.value.code == 2 and "dvc repro train@simclr" in capsys.readouterr().err
    make_model(tmp_path, "simclr", raw, run_id=mlflow_run(mlflow_uri, "simclr"))
    with pytest.raises(SystemExit) as exc:  # model but no features: names the extract stage
        run_stage_inprocess("probe", tmp_path, "--experiment", "simclr")
    assert exc.value.code == 2 and "dvc repro extract@simclr" in capsys.readouterr().err
    run_stage_inprocess("extract", tmp_path, "--experiment", "simclr")
    files = sorted((tmp_path / "features").rglob("*.parquet"))
    before = {f: _sha(f) for f in files}
    run_stage_inprocess("probe", tmp_path, "--experiment", "simclr")
    assert {f: _sha(f) for f in files} == before
    report = json.loads((tmp_path / "reports" / "probe" / "simclr.json").read_text())
    for key in ("probe_top1", "probe_top5", "probe_top1_anchor", "probe_top1_latent_alpha0",
                "probe_top1_latent_alpha1"):
        assert 0.0 <= report[key] <= 1.0 and report[f"{key}_std"] == 0.0
    assert report["seed_count"] == 1 and report["train_count"] == 120 and report["test_count"] == 60
