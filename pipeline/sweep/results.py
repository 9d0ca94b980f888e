"""A sweep's results: the trials on disk, the best one, and the reports written once every trial has ended.

:func:`summarize` reads the Tune experiment (``ExperimentAnalysis``) into the ``reports/sweep.json``
record (per trial: overrides, final/best metric, steps, evaluations, whether ASHA stopped it, status,
curve; the best trial is the best final value among the trials that ran to the end). :func:`finalize`
completes the MLflow runs and writes, each atomically (:mod:`pipeline.io`): ``reports/sweep.json``,
``reports/sweep_best.yaml`` (the full params with the best overrides, loadable by
:func:`pipeline.params.validate_params`) and ``reports/sweep_<key>.png``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import SweepFailedError
from pipeline.io import atomic_path, write_json, write_text
from pipeline.params import apply_overrides, validate_params
from pipeline.sweep.plan import SweepPlan, plain

__all__ = ["best_params", "finalize", "plot_name", "summarize", "write_reports"]


# ------------------------------------------------------------------------------------ results
def _trial_records(plan: SweepPlan) -> list[dict[str, Any]]:
    """Every trial of the Tune experiment on disk: id, status, overrides and reported history."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(plan.path))
    frames = analysis.trial_dataframes
    records = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        frame = frames.get(trial.trial_id)
        history = [] if frame is None or frame.empty else frame.to_dict("records")
        records.append({
            "trial_id": trial.trial_id,
            "status": str(trial.status),
            "overrides": {k: plain(trial.config.get(k)) for k in plan.keys},
            "history": [{k: plain(v) for k, v in row.items()} for row in history],
        })
    return records


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summarize(plan: SweepPlan, limit: int, parent_run_id: str) -> dict[str, Any]:
    """The ``reports/sweep.json`` record of the sweep as it stands on disk."""
    cfg = plan.config
    sign = 1.0 if cfg.mode == "max" else -1.0
    trials = []
    for rec in _trial_records(plan):
        raw = apply_overrides(plan.trial_raw, rec["overrides"])
        total = validate_params(raw).experiment(plan.experiment).total_iterations
        by_step: dict[int, float] = {}  # a trial resumed after an interruption reports some steps twice
        for row in rec["history"]:
            if _finite(row.get(cfg.metric)) and _finite(row.get("step")):
                by_step[int(row["step"])] = float(row[cfg.metric])
        values = sorted(by_step.items())
        steps = max((int(row["step"]) for row in rec["history"] if _finite(row.get("step"))), default=0)
        final = values[-1][1] if values else None
        best = max((v for _, v in values), key=lambda v: sign * v) if values else None
        trials.append({
            "trial_id": rec["trial_id"],
            "status": rec["status"],
            "overrides": rec["overrides"],
            "final": final,
            "best": best,
            "steps": steps,
            "planned_steps": total,
            "evaluations": len(values),
            "stopped_early": rec["status"] == "TERMINATED" and steps < total,
            "curve": [{"step": s, cfg.metric: v} for s, v in values],
        })
    ended = {"TERMINATED", "ERROR"}
    complete = len(trials) == cfg.num_samples and all(t["status"] in ended for t in trials)
    scored = [t for t in trials if t["final"] is not None and t["status"] == "TERMINATED"]
    finished = [t for t in scored if not t["stopped_early"]] or scored
    best = max(finished, key=lambda t: sign * t["final"]) if finished else None
    return {
        "sweep": plan.name,
        "experiment": plan.experiment,
        "metric": cfg.metric,
        "mode": cfg.mode,
        "num_samples": cfg.num_samples,
        "max_concurrent_trials": limit,
        "scheduler": {"name": "ASHA", "time_attr": "training_iteration", "max_t": plan.max_t,
                      "grace_period": cfg.grace_period, "reduction_factor": cfg.reduction_factor},
        "eval_every": cfg.eval_every,
        "space": cfg.space,
        "path": str(plan.path),
        "mlflow_run_id": parent_run_id,
        "complete": complete,
        "stopped_early": sum(t["stopped_early"] for t in trials),
        "errors": sum(t["status"] == "ERROR" for t in trials),
        "best": None if best is None else {
            "trial_id": best["trial_id"], "overrides": best["overrides"], cfg.metric: best["final"],
        },
        "trials": trials,
    }


def best_params(plan: SweepPlan, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The params as given with the best trial's overrides applied (validated).

    Raises :class:`SweepFailedError` when no trial reported the metric (there is no best trial).
    """
    if summary["best"] is None:
        raise SweepFailedError(f"sweep {plan.name}: no trial reported {plan.config.metric!r}; no best params")
    raw = apply_overrides(plan.params_raw, summary["best"]["overrides"])
    validate_params(raw, "reports/sweep_best.yaml")
    return raw


# ------------------------------------------------------------------------------------ outputs
def plot_name(key: str) -> str:
    return "sweep_" + re.sub(r"[^A-Za-z0-9_.+-]", "_", key) + ".png"


def _plot(path: Path, key: str, spec: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary["metric"]
    rows = [t for t in summary["trials"] if t["final"] is not None]
    xs = [t["overrides"][key] for t in rows]
    numeric = all(_finite(x) for x in xs)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if numeric:
        positions = xs
    else:
        labels = sorted({json.dumps(x) for x in xs})
        positions = [labels.index(json.dumps(x)) for x in xs]
        ax.set_xticks(range(len(labels)), [label.strip('"') for label in labels])
    for stopped, marker, label in ((False, "o", "completed"), (True, "x", "stopped by ASHA")):
        pts = [(p, t["final"]) for p, t in zip(positions, rows) if t["stopped_early"] == stopped]
        if pts:
            ax.scatter([p for p, _ in pts], [v for _, v in pts], marker=marker, label=label)
    if not rows:
        ax.text(0.5, 0.5, f"no trial reported {metric}", ha="center", va="center", transform=ax.transAxes)
    if rows and numeric and next(iter(spec)) == "loguniform":
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"{metric} (last evaluation)")
    ax.set_title(f"{summary['sweep']} ({summary['mode']} {metric})", fontsize=8)
    if rows:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:  # savefig picks the format from the name, too
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_reports(plan: SweepPlan, summary: Mapping[str, Any], reports_dir: Path) -> list[Path]:
    """``sweep.json``, ``sweep_best.yaml`` (when a trial reported the metric) and one ``sweep_<key>.png`` per
    searched key (plots of keys no longer searched are removed)."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = [write_json(reports_dir / "sweep.json", summary)]
    best_file = reports_dir / "sweep_best.yaml"
    if summary["best"] is None:
        best_file.unlink(missing_ok=True)  # no stale best params of an older sweep
    else:
        best = best_params(plan, summary)
        header = (
            f"# Best params of {summary['sweep']}: trial {summary['best']['trial_id']}, "
            f"{summary['metric']} = {summary['best'][summary['metric']]:.6g} ({summary['mode']}).\n"
            f"# The full params with these overrides: {json.dumps(summary['best']['overrides'])}\n"
        )
        out.append(write_text(best_file, header + yaml.safe_dump(best, sort_keys=False)))
    plots = {plot_name(k): k for k in plan.keys}
    for stale in reports_dir.glob("sweep_*.png"):
        if stale.name not in plots:
            stale.unlink()
    for name, key in plots.items():
        _plot(reports_dir / name, key, plan.config.space[key], summary)
        out.append(reports_dir / name)
    return out


def finalize(plan: SweepPlan, summary: dict[str, Any], uri: str, reports_dir: Path) -> list[Path]:
    """Complete the child runs (final/best metric, status tags), write the reports, close the parent.

    Raises :class:`SweepFailedError` (after writing ``sweep.json``) when no trial reported the metric.
    """
    from pipeline import tracking
    from pipeline.sweep.mlflow_runs import close_parent, complete_trial_runs

    complete_trial_runs(plan, summary, uri)
    paths = write_reports(plan, summary, reports_dir)
    parent = summary["mlflow_run_id"]
    for path in paths:
        tracking.log_artifact(uri, parent, path, "sweep")
    if summary["best"] is None:
        tracking.end_run(uri, parent, status="FAILED")
        raise SweepFailedError(
            f"sweep {plan.name}: no trial reported {plan.config.metric!r} ({summary['errors']} errored); "
            f"see {reports_dir / 'sweep.json'} and the trial logs under {plan.path}"
        )
    close_parent(uri, summary)
    return paths
