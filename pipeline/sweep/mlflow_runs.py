"""The sweep's MLflow runs: one parent run per sweep, one child run per trial.

The parent's name is the sweep name; it logs the sweep settings (and the resolved concurrency) and,
once every trial has ended, ``best_<metric>``, ``best_trial_id`` and the reports as artifacts. Each
trial's child run (tag ``mlflow.parentRunId``; params = the trial's overrides) is created by the trial's
driver (:func:`pipeline.sweep.run.run_trial`) and its worker logs the curves; :func:`complete_trial_runs`
adds the final/best metric, the status and whether ASHA stopped it (rebuilding a run from Tune's
results for a trial that ended before its driver created one).
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.sweep.plan import SweepPlan
from pipeline.tracking import client

__all__ = ["close_parent", "complete_trial_runs", "parent_run", "trial_run_name"]


def trial_run_name(sweep_name: str, trial_id: str) -> str:
    return f"{sweep_name}-{trial_id}"


def _runs_named(uri: str, name: str) -> list[Any]:
    from pipeline.tracking import MLFLOW_EXPERIMENT

    mlflow_client = client(uri)
    exp = mlflow_client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    if exp is None:
        return []
    return mlflow_client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.runName` = '{name}'",
                              order_by=["attributes.start_time DESC"])


def parent_run(uri: str, plan: SweepPlan, limit: int, *, reuse_finished: bool) -> str:
    """The sweep's parent run: reused when resuming (whatever its status), else a fresh one."""
    from pipeline import tracking

    existing = _runs_named(uri, plan.name)
    if existing and reuse_finished:
        return existing[0].info.run_id
    for run in existing:  # an old run of a sweep whose Tune state is gone
        if run.info.status != "FINISHED":
            tracking.end_run(uri, run.info.run_id, status="KILLED")
    from pipeline.params import flatten

    cfg = plan.config
    logged = flatten({"sweep": {k: v for k, v in cfg.model_dump(mode="json").items() if k != "space"}})
    logged.update({f"sweep.space.{k}": json.dumps(v) for k, v in cfg.space.items()})
    logged["sweep.max_concurrent_trials_resolved"] = limit
    tags = {"git_sha": tracking.git_sha(plan.root), "stage": "sweep", "experiment": plan.experiment,
            "sweep": plan.name}
    return tracking.start_run(uri, plan.name, logged, tags)


def complete_trial_runs(plan: SweepPlan, summary: dict[str, Any], uri: str) -> None:
    """Give every trial's child run its final/best metric and status tags, and end it with its status."""
    from mlflow.entities import RunTag

    from pipeline import tracking

    mlflow_client = client(uri)
    parent = summary["mlflow_run_id"]
    metric = plan.config.metric
    exp = mlflow_client.get_run(parent).info.experiment_id
    children = {}
    for run in mlflow_client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"):
        children.setdefault(run.data.tags.get("trial_id"), run)
    for trial in summary["trials"]:
        run = children.get(trial["trial_id"])
        if run is None:  # the trial ended before its driver created the run: rebuild it from Tune's results
            logged = {**trial["overrides"], "experiment": plan.experiment, "trial_id": trial["trial_id"]}
            tags = {"stage": "sweep", "experiment": plan.experiment, "sweep": plan.name, "trial_id": trial["trial_id"]}
            run_id = tracking.start_run(uri, trial_run_name(plan.name, trial["trial_id"]), logged, tags,
                                        parent_run_id=parent)
            for point in trial["curve"]:
                tracking.log_metrics(uri, run_id, {metric: point[metric]}, step=int(point["step"]))
        else:
            run_id = run.info.run_id
        if trial["final"] is not None:
            final = {f"final_{metric}": trial["final"], f"best_{metric}": trial["best"]}
            tracking.log_metrics(uri, run_id, final, step=trial["steps"])
        tags = {"trial_status": trial["status"], "stopped_early": str(trial["stopped_early"]).lower(),
                "steps_reached": str(trial["steps"])}
        mlflow_client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        status = "FAILED" if trial["status"] == "ERROR" else "FINISHED"
        if run is None or run.info.status != status:
            tracking.end_run(uri, run_id, status=status)


def close_parent(uri: str, summary: dict[str, Any]) -> None:
    """Log the best trial (``best_<metric>``, ``best_trial_id``, its overrides) on the parent run and end it."""
    import time

    from mlflow.entities import Metric, RunTag

    from pipeline import tracking

    parent = summary["mlflow_run_id"]
    metric = summary["metric"]
    best = summary["best"]
    now = int(time.time() * 1000)
    client(uri).log_batch(parent, metrics=[Metric(f"best_{metric}", float(best[metric]), now, 0)],
                          tags=[RunTag("best_trial_id", best["trial_id"]),
                                RunTag("best_overrides", json.dumps(best["overrides"])[:5000]),
                                RunTag("stopped_early", str(summary["stopped_early"]))])
    tracking.end_run(uri, parent)
