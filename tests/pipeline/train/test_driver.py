"""The driver on Ray Train (local CPU cluster, gloo): every experiment trains and exports, failure
recovery, restart-resume, MLflow, the run identity, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_params_raw

from pipeline.artifacts import load_exported
from pipeline.params import EXPERIMENTS, validate_params
from pipeline.train import faults


def _train(project: Path, raw: dict, experiment: str, *, fail_at_step: int | None = None, **kw) -> Path:
    from pipeline.train.driver import train_experiment

    if fail_at_step is None:
        return train_experiment(validate_params(raw), raw, experiment, project, **kw)
    with faults.fail_at_step(fail_at_step):
        return train_experiment(validate_params(raw), raw, experiment, project, **kw)


# ----------------------------------------------------------------------------- every experiment
@pytest.mark.ray
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_and_exports(ray_local, project, experiment):
    raw = tiny_params_raw(iterations=4)
    out = _train(project, raw, experiment)
    seed_dir = out / "seed_0"
    modules, config, run = load_exported(seed_dir)
    assert config["steps"] == 4 and config["experiment"] == experiment
    history = json.loads((seed_dir / "history.json").read_text())
    assert [h["step"] for h in history] == [2.0, 4.0]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    # MLflow: the run holds flattened params, per-step metrics and the exported config artifact
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    r = client.get_run(run["run_id"])
    assert r.info.status == "FINISHED"
    assert r.data.params["experiment"] == experiment
    assert r.data.params["train.batch_size"] == "16"
    assert [m.step for m in client.get_metric_history(run["run_id"], "loss")] == [2, 4]
    assert "model/config.json" in [a.path for a in client.list_artifacts(run["run_id"], "model")]
    assert r.data.tags["stage"] == "train" and "git_sha" in r.data.tags


# ---------------------------------------------------------------------- failures and resume
@pytest.mark.ray
def test_failure_is_recovered_from_the_latest_checkpoint(ray_local, project):
    raw = tiny_params_raw(iterations=6, **{"train.max_failures": 1})
    out = _train(project, raw, "rf", fail_at_step=3)
    config = json.loads((out / "seed_0" / "config.json").read_text())
    assert config["resumed_from"] == [2]  # the checkpoint of step 2, after the injected failure at step 3
    assert config["steps"] == 6


@pytest.mark.ray
def test_killed_run_restarted_resumes(ray_local, project):
    raw = tiny_params_raw(iterations=6)  # max_failures = 0: the injected failure ends the run
    with pytest.raises(Exception, match="injected failure"):
        _train(project, raw, "rf_lzn", fail_at_step=5)
    assert not (project / "models" / "rf_lzn").exists()  # no half-written export
    out = _train(project, raw, "rf_lzn")
    config = json.loads((out / "seed_0" / "config.json").read_text())
    assert config["resumed_from"] == [4]
    assert config["steps"] == 6
    history = json.loads((out / "seed_0" / "history.json").read_text())
    assert [h["step"] for h in history] == [2.0, 4.0, 6.0]


# ----------------------------------------------------------------------------- run identity
def test_run_name_is_a_function_of_the_config_data_and_code(project):
    from pipeline.params import config_hash
    from pipeline.train.driver import code_hash, plan_training

    raw = tiny_params_raw()
    params = validate_params(raw)
    plan = plan_training(params, raw, "rf_lzn", 0, project)
    assert plan.run_name == f"rf_lzn-s0-{config_hash(plan.run_config)}"
    assert plan.run_config["code"] == code_hash() and len(code_hash()) == 12
    assert plan_training(params, raw, "rf_lzn", 0, project).run_name == plan.run_name  # deterministic
    assert plan_training(params, raw, "rf_lzn", 1, project).run_name != plan.run_name
    other = tiny_params_raw(**{"train.rf_lzn.latent_dim": 8})
    assert plan_training(validate_params(other), other, "rf_lzn", 0, project).run_name != plan.run_name


def test_code_hash_covers_every_module_of_the_packages(tmp_path):
    from pipeline.train.driver import CODE_PACKAGES, code_hash

    assert CODE_PACKAGES == ("lzn", "pipeline")
    for rel in ("lzn/flow.py", "pipeline/train/worker.py", "pipeline/evaluate/classify.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"# {rel}\n")
    before = code_hash(tmp_path)
    assert len(before) == 12 and code_hash(tmp_path) == before
    (tmp_path / "pipeline" / "evaluate" / "classify.py").write_text("# changed\n")  # no list names it
    changed = code_hash(tmp_path)
    assert changed != before
    (tmp_path / "pipeline" / "train" / "state.py").write_text("# a new module\n")
    assert code_hash(tmp_path) != changed
    added = code_hash(tmp_path)
    (tmp_path / "pipeline" / "notes.md").write_text("not code")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("# outside the packages")
    assert code_hash(tmp_path) == added
    assert code_hash() == code_hash(REPO)  # the default: this project


# ----------------------------------------------------------------------------- bad input
def _stage(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_stage_bad_input_fails_before_ray(project):
    (project / "params.yaml").write_text(json.dumps(tiny_params_raw()))
    r = _stage(["--experiment", "nope", "--root", str(project)], project)
    assert r.returncode == 2 and "unknown experiment 'nope'" in r.stderr and "Traceback" not in r.stderr
    bad = tiny_params_raw(**{"train.rf.batch_size": 15})
    (project / "params.yaml").write_text(json.dumps(bad))
    r = _stage(["--experiment", "rf", "--root", str(project)], project)
    assert r.returncode == 2 and "train.rf.batch_size" in r.stderr
    bad = tiny_params_raw(**{"train.rf_lzn.latent_dim": 0})
    (project / "params.yaml").write_text(json.dumps(bad))
    r = _stage(["--experiment", "rf_lzn", "--root", str(project)], project)
    assert r.returncode == 2 and "train.rf_lzn.latent_dim" in r.stderr
    (project / "params.yaml").write_text(json.dumps(tiny_params_raw()))
    import shutil

    shutil.rmtree(project / "data")
    r = _stage(["--experiment", "rf", "--root", str(project)], project)
    assert r.returncode == 2 and "dvc repro shard" in r.stderr


def test_more_workers_than_cpus_is_a_clear_error():
    from pipeline.cluster import ClusterError, check_resources

    with pytest.raises(ClusterError, match=r"train\.workers=4 x train\.cpus_per_worker=1 needs 4 CPUs, the Ray cluster has 2"):
        check_resources({"CPU": 2.0}, 4, 1.0, False)
    check_resources({"CPU": 2.0}, 4, 0.5, False)
    with pytest.raises(ClusterError, match="GPUs"):
        check_resources({"CPU": 8.0}, 2, 1.0, True)
