"""Sweeps (Ray Tune + ASHA over Ray Train trials): validation before any trial, and one interrupted,
resumed 4-trial sweep on tiny shards checked for early stopping, resumption, best params and MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, tiny_params_raw

from pipeline.params import ParamsError, validate_params
from pipeline.sweep.run import candidate_values, concurrency, plan_sweep, validate_sweep
from pipeline.train.online_eval import ONLINE_METRICS, TRAINING_METRICS

SPACE = {"train.lzn_repr.lr.encoder": {"loguniform": [1.0e-6, 1.0e-2]}}


def sweep_raw(**extra) -> dict:
    """Tiny lzn_repr trials: 8 steps, an evaluation (= a Tune iteration) every 2 steps, one trial at a time.

    The metric is the reported learning rate, so that which trials ASHA stops is decided by the sampled
    values alone (trials with a smaller rate than the running median at a rung are "clearly worse")."""
    over = {
        "sweep.experiment": "lzn_repr",
        "sweep.num_samples": 4,
        "sweep.eval_every": 2,
        "sweep.metric": "lr_encoder",
        "sweep.mode": "max",
        "sweep.max_concurrent_trials": 1,
        "sweep.grace_period": 1,
        "sweep.reduction_factor": 2,
        "sweep.cpus_per_worker": 0.5,
        "sweep.seed": 0,
        "sweep.space": SPACE,
    }
    over.update(extra)
    return tiny_params_raw(iterations=8, **over)


def _validate(raw: dict, root: Path, experiment: str | None = None):
    return validate_sweep(validate_params(raw), raw, root, experiment)


# ------------------------------------------------------------------------------ validation (no Ray)
def test_unknown_parameter_is_refused(tmp_path):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.latent_dimm": {"choice": [4, 8]}}})
    with pytest.raises(ParamsError, match=r"^sweep\.space\.train\.lzn_repr\.latent_dimm: unknown parameter"):
        _validate(raw, tmp_path)


def test_out_of_range_value_is_refused(tmp_path):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.align.cutoff": {"uniform": [0.0, 1.5]}}})
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.lzn_repr\.align\.cutoff=.*train\.lzn_repr\.align\.cutoff"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.batch_size": {"choice": [16, 15]}}})
    with pytest.raises(ParamsError, match=r"batch_size=15.*not divisible by train.workers=2"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.latent_flow.solver": {"choice": ["euler", "rk4"]}}})
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.lzn_repr\.latent_flow\.solver='rk4'"):
        _validate(raw, tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"choice": []}, "empty choice"),
        ({"uniform": [0.5, 0.5]}, r"empty range \[0.5, 0.5\]"),
        ({"loguniform": [1.0e-2, 1.0e-3]}, "empty range"),
        ({"randint": [4, 2]}, "empty range"),
        ({"normal": [0.0, 1.0]}, "unknown distribution 'normal'"),
        ({"uniform": ["1e-3", 1.0]}, "two numbers"),
        ({"choice": [1], "uniform": [0, 1]}, "exactly one distribution"),
    ],
)
def test_bad_distribution_is_refused(spec, message):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.align.cutoff": spec}})
    with pytest.raises(ParamsError, match=rf"sweep\.space\.train\.lzn_repr\.align\.cutoff: .*{message}"):
        validate_params(raw)


def test_unknown_or_unavailable_metric_is_refused(tmp_path):
    raw = sweep_raw(**{"sweep.metric": "fid_score"})
    with pytest.raises(ParamsError, match=r"^sweep\.metric: 'fid_score' is not reported by experiment 'lzn_repr'"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.metric": "rf_loss"})  # another experiment's metric
    with pytest.raises(ParamsError, match="not reported"):
        _validate(raw, tmp_path)
    raw = sweep_raw(**{"sweep.metric": "fid", "sweep.space": {"train.rf.lr.decoder": {"loguniform": [1.0e-4, 1.0e-3]}}})
    with pytest.raises(ParamsError, match=r"sweep\.metric: 'fid' needs the reference classifier .*models/refnet/model\.pt"):
        _validate(raw, tmp_path, experiment="rf")


def test_other_checks(tmp_path):
    with pytest.raises(ParamsError, match=r"^sweep\.space: empty"):
        _validate(sweep_raw(**{"sweep.space": {}}), tmp_path)
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.eval_every: cannot be searched"):
        _validate(sweep_raw(**{"sweep.space": {"train.eval_every": {"choice": [1, 2]}}}), tmp_path)
    with pytest.raises(ParamsError, match=r"sweep\.space\.train\.rf\.lr\.decoder: belongs to experiment 'rf'"):
        _validate(sweep_raw(**{"sweep.space": {"train.rf.lr.decoder": {"choice": [1.0e-3]}}}), tmp_path)
    with pytest.raises(ParamsError, match=r"sweep\.grace_period: 5 exceeds the 4 evaluations"):
        _validate(sweep_raw(**{"sweep.grace_period": 5}), tmp_path)
    with pytest.raises(ParamsError, match="unknown experiment 'nope'"):
        _validate(sweep_raw(), tmp_path, experiment="nope")
    cfg, trial_raw, max_t = _validate(sweep_raw(), tmp_path)
    assert max_t == 4 and trial_raw["train"]["eval_every"] == trial_raw["train"]["log_every"] == 2
    assert candidate_values({"randint": [2, 5]}) == [2, 4]
    assert candidate_values({"uniform": [0.0, 1.0]})[1] < 1.0
    assert set(ONLINE_METRICS["lzn_joint"]) == {"probe_top1", "accuracy", "fid"}
    assert "align_loss" in TRAINING_METRICS["lzn_repr"] and "align_loss" not in TRAINING_METRICS["simclr"]


def test_concurrency_is_sized_to_the_cluster():
    params = validate_params(sweep_raw(**{"sweep.max_concurrent_trials": 0, "sweep.driver_cpus": 0.2}))
    assert concurrency({"CPU": 2.0}, params, params.sweep) == 1  # 2 x 0.5 + 0.2
    assert concurrency({"CPU": 8.0}, params, params.sweep) == 6
    from pipeline.cluster import ClusterError

    with pytest.raises(ClusterError, match="needs"):
        concurrency({"CPU": 1.0}, params, params.sweep)


def test_stage_bad_sweep_fails_before_ray(project):
    raw = sweep_raw(**{"sweep.space": {"train.lzn_repr.nope": {"choice": [1]}}})
    (project / "params.yaml").write_text(json.dumps(raw))
    r = subprocess.run([sys.executable, str(REPO / "stages" / "sweep.py"), "--root", str(project)],
                       cwd=project, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "sweep.space.train.lzn_repr.nope: unknown parameter" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ a real sweep (Ray)
def _children(uri: str, parent_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


@pytest.mark.ray
def test_sweep_interrupted_resumes_stops_early_and_tracks(ray_local, project):
    from mlflow.tracking import MlflowClient

    from pipeline.sweep.run import run_sweep

    raw = sweep_raw()
    params = validate_params(raw)
    plan = plan_sweep(params, raw, project)
    reports = project / "reports"

    # 1. interrupted (as by Ctrl+C) once the first trial has completed: state saved, nothing written
    first = run_sweep(plan, reports_dir=reports, stop_after_trials=1)
    assert not first["complete"]
    done = [t for t in first["trials"] if t["status"] == "TERMINATED"]
    assert len(done) == 1, first["trials"]
    kept = done[0]
    assert not (reports / "sweep.json").exists()

    # 2. the stage's next run restores the Tune experiment: the finished trial is reused, the rest run
    summary = run_sweep(plan_sweep(params, raw, project), reports_dir=reports)
    assert summary["complete"] and len(summary["trials"]) == 4
    assert {t["status"] for t in summary["trials"]} == {"TERMINATED"}
    again = next(t for t in summary["trials"] if t["trial_id"] == kept["trial_id"])
    assert again == kept  # same id, same results (the history was not recomputed)

    # ASHA stopped at least one trial early, and only trials below an earlier trial's value
    stopped = [t for t in summary["trials"] if t["stopped_early"]]
    assert stopped and summary["stopped_early"] == len(stopped)
    for t in stopped:
        assert t["steps"] < t["planned_steps"] and t["evaluations"] < 4
    best_seen = max(t["final"] for t in summary["trials"])
    assert all(t["final"] < best_seen for t in stopped)
    completed = [t for t in summary["trials"] if not t["stopped_early"]]
    assert all(t["steps"] == 8 and t["evaluations"] == 4 for t in completed)
    best = max(completed, key=lambda t: t["final"])
    assert summary["best"]["trial_id"] == best["trial_id"]

    # reports/sweep.json holds the same record
    history = json.loads((reports / "sweep.json").read_text())
    assert history["trials"] == json.loads(json.dumps(summary["trials"]))

    # best params: the full params with the best overrides, accepted by the validator
    best_raw = yaml.safe_load((reports / "sweep_best.yaml").read_text())
    best_params = validate_params(best_raw, "sweep_best.yaml")
    assert best_params.train.lzn_repr.lr["encoder"] == pytest.approx(best["overrides"]["train.lzn_repr.lr.encoder"])
    assert best_params.train.lzn_repr.batch_size == params.train.lzn_repr.batch_size
    assert (reports / "sweep_train.lzn_repr.lr.encoder.png").stat().st_size > 1000

    # MLflow: one parent, one child per trial (the reused trial was not logged twice)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    parents = [r for r in client.search_runs([client.get_experiment_by_name("lzn").experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_name for p in parents] == [plan.name]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_id == summary["mlflow_run_id"]
    assert parent.data.tags["best_trial_id"] == best["trial_id"]
    children = _children(uri, parent.info.run_id)
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(t["trial_id"] for t in summary["trials"])
    for child in children:
        trial = next(t for t in summary["trials"] if t["trial_id"] == child.data.tags["trial_id"])
        assert child.info.status == "FINISHED"
        assert float(child.data.params["train.lzn_repr.lr.encoder"]) == pytest.approx(
            trial["overrides"]["train.lzn_repr.lr.encoder"])
        assert child.data.tags["stopped_early"] == str(trial["stopped_early"]).lower()
        assert child.data.metrics[f"final_{plan.config.metric}"] == pytest.approx(trial["final"])
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "probe_top1")]
        assert steps[: trial["evaluations"]] == [2 * (i + 1) for i in range(trial["evaluations"])]
    kept_child = next(c for c in children if c.data.tags["trial_id"] == kept["trial_id"])
    assert len(client.get_metric_history(kept_child.info.run_id, "loss")) == kept["evaluations"]
