"""Running sweeps (pipeline.sweep.run): trials at once sized to the cluster, the test hook, and one
interrupted, resumed 4-trial sweep on tiny shards checked for early stopping, resumption, best params
(pipeline.sweep.results) and MLflow (pipeline.sweep.mlflow_runs)."""

from __future__ import annotations

import json
import os
import signal

import pytest
import yaml
from sweep_support import sweep_raw

from pipeline.params import validate_params
from pipeline.sweep import hooks
from pipeline.sweep.plan import plan_sweep
from pipeline.sweep.run import concurrency, run_sweep


def test_concurrency_is_sized_to_the_cluster():
    params = validate_params(sweep_raw(**{"sweep.max_concurrent_trials": 0, "sweep.driver_cpus": 0.2}))
    assert concurrency({"CPU": 2.0}, params, params.sweep) == 1  # 2 x 0.5 + 0.2
    assert concurrency({"CPU": 8.0}, params, params.sweep) == 6
    from pipeline.cluster import ClusterError

    with pytest.raises(ClusterError, match="needs"):
        concurrency({"CPU": 1.0}, params, params.sweep)


def test_trial_hook_is_called_only_inside_its_block():
    seen: list[str] = []
    hooks.trial_completed("before")  # no hook installed: nothing happens
    with hooks.on_trial_complete(seen.append):
        hooks.trial_completed("a")
        with hooks.on_trial_complete(lambda trial_id: seen.append(f"inner {trial_id}")):
            hooks.trial_completed("b")
        hooks.trial_completed("c")
    hooks.trial_completed("after")
    assert seen == ["a", "inner b", "c"]


def _interrupt_after(trials: int) -> hooks.TrialHook:
    """A hook that interrupts the Tune run (as Ctrl+C does) once ``trials`` trials have completed."""
    completed: list[str] = []

    def hook(trial_id: str) -> None:
        completed.append(trial_id)
        if len(completed) >= trials:
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own "stop, save the state" signal

    return hook


# ------------------------------------------------------------------------------ a real sweep (Ray)
def _children(uri: str, parent_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


@pytest.mark.ray
def test_sweep_interrupted_resumes_stops_early_and_tracks(ray_local, project):
    from mlflow.tracking import MlflowClient

    raw = sweep_raw()
    params = validate_params(raw)
    plan = plan_sweep(params, raw, project)
    reports = project / "reports"

    # 1. interrupted (as by Ctrl+C) once the first trial has completed: state saved, nothing written
    with hooks.on_trial_complete(_interrupt_after(1)):
        first = run_sweep(plan, reports_dir=reports)
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
