"""Hyperparameter sweeps: Ray Tune over a params search space, ASHA early stopping, MLflow parent/child runs.

``params.yaml``'s ``sweep`` section names the experiment, the metric, the search ``space`` (dotted params
keys -> ``choice`` / ``uniform`` / ``loguniform`` / ``randint``) and the ASHA settings. Each trial is a
Ray Train run of that experiment (:func:`pipeline.train.driver.plan_training` + :func:`pipeline.train.driver.fit`)
driven by a small Tune function trainable; Tune's ``TuneReportCallback`` on the trainer forwards every
report of rank 0 — training metrics plus the online evaluation of :mod:`pipeline.train.online_eval`, computed
every ``sweep.eval_every`` steps — to Tune, so ASHA (``time_attr="training_iteration"``: one iteration
per evaluation) stops poor trials early.

Checks before any trial starts (:func:`validate_sweep`, one-line :class:`ParamsError` naming the key):
every key of the space exists in the params and every value it can take validates (all ``choice``
values, both ends of a range); no key belongs to another experiment or to what the sweep itself
controls; the metric is reported by the experiment; ``fid`` needs ``models/refnet``.

Layout: the Tune experiment is ``<root>/<train.storage>/sweeps/<name>`` with a deterministic ``name``
(``sweep-<experiment>-<hash of the sweep config, the other params, the data and the code>``); each
trial's Train run lives under ``<that>/train_runs``. Running the stage again restores the Tune
experiment (``Tuner.restore``, unfinished and errored trials resumed): finished trials are not rerun,
and an unfinished trial's Train run resumes from its latest checkpoint.

Tracking: one MLflow parent run per sweep (its name is the sweep name) and one child run per trial
(tag ``mlflow.parentRunId``; params = the trial's overrides; the worker logs the curves; the driver
adds the final/best metric, the status and whether ASHA stopped it). Outputs, written atomically once
every trial has ended: ``reports/sweep.json``, ``reports/sweep_best.yaml`` (the full params with the best
overrides, loadable by :func:`pipeline.params.validate_params`) and ``reports/sweep_<key>.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import SweepFailedError
from pipeline.params import (
    EXPERIMENTS,
    Params,
    ParamsError,
    SweepConfig,
    apply_overrides,
    config_hash,
    validate_params,
)

__all__ = [
    "RESERVED_KEYS",
    "SweepFailedError",
    "SweepPlan",
    "candidate_values",
    "concurrency",
    "plan_sweep",
    "run_sweep",
    "tune_space",
    "validate_sweep",
    "write_reports",
]

RESERVED_KEYS: tuple[str, ...] = (
    "sweep",
    "seeds",
    "train.eval_every",
    "train.log_every",
    "train.checkpoint_every",
    "train.storage",
    "train.workers",
    "train.cpus_per_worker",
    "train.use_gpu",
)
"""Keys a sweep may not search over: it sets them itself, or they size the trials' resources."""

_HASH_EXCLUDED = ("max_concurrent_trials", "driver_cpus", "cpus_per_worker")  # resources, not results


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A validated sweep, resolved before Ray starts."""

    root: Path
    config: SweepConfig  # ``sweep`` with the experiment override applied
    params_raw: dict[str, Any]  # the params as given (base of ``sweep_best.yaml``)
    trial_raw: dict[str, Any]  # the params every trial starts from (evaluation cadence, storage set)
    name: str
    storage: Path  # <root>/<train.storage>/sweeps
    max_t: int  # evaluations (Tune iterations) of the longest trial

    @property
    def experiment(self) -> str:
        return self.config.experiment

    @property
    def path(self) -> Path:
        """The Tune experiment directory."""
        return self.storage / self.name

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.config.space)


# ------------------------------------------------------------------------------------ validation
def candidate_values(spec: Mapping[str, list[Any]]) -> list[Any]:
    """Values of a distribution that must all be valid: every choice, or both ends of a range."""
    dist, values = next(iter(spec.items()))
    if dist == "choice":
        return list(values)
    lo, hi = values
    if dist == "randint":
        return [lo, hi - 1]  # hi is exclusive
    return [lo, math.nextafter(hi, lo)]  # uniform/loguniform sample [lo, hi)


def _set_leaf(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _evaluations(params: Params, experiment: str, eval_every: int) -> int:
    return math.ceil(params.experiment(experiment).total_iterations / eval_every)


def validate_sweep(
    params: Params, raw: Mapping[str, Any], root: Path, experiment: str | None = None
) -> tuple[SweepConfig, dict[str, Any], int]:
    """Check the sweep before any work; return ``(config, trial params, max evaluations per trial)``.

    Raises :class:`ParamsError` (one line, naming the key) for an empty space, a key that is unknown,
    reserved or another experiment's, a value that does not validate (``train.<e>.batch_size`` must
    also divide by ``train.workers``), a metric the experiment does not report, ``fid`` without the
    reference classifier, or a ``grace_period`` beyond the number of evaluations.
    """
    from pipeline.evaluate.refnet import refnet_path
    from pipeline.train.online_eval import REFNET_METRICS, reported_metrics

    cfg = params.sweep
    if experiment is not None:
        params.experiment(experiment)  # unknown name: ParamsError
        cfg = cfg.model_copy(update={"experiment": experiment})
    exp = cfg.experiment
    if not cfg.space:
        raise ParamsError("sweep.space: empty; list at least one parameter to search over")
    reported = reported_metrics(exp)
    if cfg.metric not in reported:
        raise ParamsError(
            f"sweep.metric: {cfg.metric!r} is not reported by experiment {exp!r}; it reports {', '.join(reported)}"
        )
    if cfg.metric in REFNET_METRICS and not refnet_path(root).is_file():
        raise ParamsError(
            f"sweep.metric: {cfg.metric!r} needs the reference classifier {refnet_path(root)}; "
            "run `dvc repro refnet` (or `python stages/refnet.py`) first"
        )

    trial_raw = json.loads(json.dumps(dict(raw)))  # deep copy of plain data
    for key in ("eval_every", "log_every", "checkpoint_every"):  # every report carries the online metrics
        _set_leaf(trial_raw, f"train.{key}", cfg.eval_every)
    if cfg.cpus_per_worker is not None:
        _set_leaf(trial_raw, "train.cpus_per_worker", cfg.cpus_per_worker)
    base = validate_params(trial_raw, "params (sweep trial settings)")
    workers = base.train.workers
    max_t = _evaluations(base, exp, cfg.eval_every)
    for key, spec in cfg.space.items():
        where = f"sweep.space.{key}"
        if any(key == r or key.startswith(r + ".") for r in RESERVED_KEYS):
            raise ParamsError(f"{where}: cannot be searched (the sweep sets it or it sizes the trials' resources)")
        parts = key.split(".")
        if len(parts) > 1 and parts[0] == "train" and parts[1] in EXPERIMENTS and parts[1] != exp:
            raise ParamsError(f"{where}: belongs to experiment {parts[1]!r}, but the sweep trains {exp!r}")
        for value in candidate_values(spec):
            try:
                trial = apply_overrides(trial_raw, {key: value})
            except ParamsError as err:
                raise ParamsError(f"{where}: {str(err).split(': ', 1)[-1]}") from None
            candidate = validate_params(trial, f"{where}={value!r}")
            batch = candidate.experiment(exp).batch_size
            if batch % workers:
                raise ParamsError(
                    f"{where}={value!r}: train.{exp}.batch_size {batch} is not divisible by train.workers={workers}"
                )
            max_t = max(max_t, _evaluations(candidate, exp, cfg.eval_every))
    if cfg.grace_period > max_t:
        raise ParamsError(
            f"sweep.grace_period: {cfg.grace_period} exceeds the {max_t} evaluations of a trial "
            f"(train.{exp}.iterations / sweep.eval_every)"
        )
    return cfg, trial_raw, max_t


def plan_sweep(params: Params, raw: Mapping[str, Any], root: Path, experiment: str | None = None) -> SweepPlan:
    """Validate the sweep and the data (shards) and name it; no Ray yet."""
    from pipeline.train.driver import plan_training

    root = Path(root).resolve()
    cfg, trial_raw, max_t = validate_sweep(params, raw, root, experiment)
    base = plan_training(validate_params(trial_raw), trial_raw, cfg.experiment, cfg.seed, root)
    identity = {
        "sweep": cfg.model_dump(mode="json", exclude=set(_HASH_EXCLUDED)),
        "params": {k: v for k, v in raw.items() if k != "sweep"},
        "data": base.run_config["data"],
        "code": base.run_config["code"],
    }
    name = f"sweep-{cfg.experiment}-{config_hash(identity)}"
    storage = base.storage / "sweeps"
    _set_leaf(trial_raw, "train.storage", str(storage / name / "train_runs"))
    return SweepPlan(root, cfg, json.loads(json.dumps(dict(raw))), trial_raw, name, storage, max_t)


# ------------------------------------------------------------------------------------ Tune
def tune_space(config: SweepConfig) -> dict[str, Any]:
    """The Tune ``param_space``: one distribution per dotted key."""
    from ray import tune

    make = {"choice": tune.choice, "uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
    out = {}
    for key, spec in config.space.items():
        dist, values = next(iter(spec.items()))
        out[key] = make[dist](values) if dist == "choice" else make[dist](*values)
    return out


def concurrency(resources: Mapping[str, float], params: Params, config: SweepConfig) -> int:
    """Trials that run at once: ``sweep.max_concurrent_trials``, or as many as the CPUs (and GPUs) hold.

    Raises :class:`pipeline.cluster.ClusterError` when not even one trial fits.
    """
    from pipeline.cluster import ClusterError, check_resources

    t = params.train
    cpw = config.cpus_per_worker if config.cpus_per_worker is not None else t.cpus_per_worker
    check_resources(resources, t.workers, cpw, t.use_gpu)
    per_trial = t.workers * cpw + config.driver_cpus
    have = resources.get("CPU", 0.0)
    fit = math.floor(have / per_trial + 1e-9)
    if fit < 1:
        raise ClusterError(
            f"a sweep trial needs train.workers={t.workers} x cpus_per_worker={cpw:g} + sweep.driver_cpus="
            f"{config.driver_cpus:g} = {per_trial:g} CPUs, the Ray cluster has {have:g}; lower sweep.cpus_per_worker"
        )
    if t.use_gpu:
        fit = min(fit, math.floor(resources.get("GPU", 0.0) / t.workers + 1e-9))
    if config.max_concurrent_trials:
        return config.max_concurrent_trials
    return max(fit, 1)


def _plain(value: Any) -> Any:
    """numpy scalars (Tune's samples) -> Python values, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _trial_run_name(sweep_name: str, trial_id: str) -> str:
    return f"{sweep_name}-{trial_id}"


def run_trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Tune function trainable: one Ray Train run of the trial's params, reports forwarded to Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipeline import tracking
    from pipeline.train.driver import fit, plan_training

    trial_id = tune.get_context().get_trial_id()
    overrides = {k: _plain(config[k]) for k in ctx["keys"]}
    raw = apply_overrides(ctx["trial_raw"], overrides)
    params = validate_params(raw, f"sweep trial {trial_id}")
    plan = plan_training(params, raw, ctx["experiment"], ctx["seed"], Path(ctx["root"]))
    plan = dataclasses.replace(plan, run_name=f"{plan.run_name}-{trial_id}")
    uri = ctx["tracking_uri"]
    tags = {
        "git_sha": ctx["git_sha"], "stage": "sweep", "experiment": ctx["experiment"], "sweep": ctx["name"],
        "trial_id": trial_id, "seed": str(ctx["seed"]),
    }
    logged = {**overrides, "experiment": ctx["experiment"], "trial_id": trial_id}
    run_id = tracking.start_run(
        uri, _trial_run_name(ctx["name"], trial_id), logged, tags, parent_run_id=ctx["parent_run_id"]
    )
    try:
        fit(plan, tracking_uri=uri, run_id=run_id, callbacks=[TuneReportCallback()])
    except BaseException:
        tracking.end_run(uri, run_id, status="FAILED")
        raise
    tracking.end_run(uri, run_id)


_INTERRUPT_AFTER: dict[str, int] = {}  # test/CLI hook: trials to complete in the current run_sweep call


def interrupt_limit() -> int | None:
    return _INTERRUPT_AFTER.get("limit")


def _interrupt_callback():
    """A Tune callback that interrupts the run (as Ctrl+C does) once ``stop_after_trials`` trials have
    completed in this call. Tune pickles its callbacks with the experiment (by value, for a class made
    here) and restores them on resume, so the limit is looked up in this module at call time."""
    from ray import tune

    class InterruptAfterTrials(tune.Callback):
        def __init__(self) -> None:
            self.completed = 0

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            import os as _os
            import signal as _signal

            from pipeline.sweep.run import interrupt_limit

            self.completed += 1
            limit = interrupt_limit()
            if limit is not None and self.completed >= limit:
                _os.kill(_os.getpid(), _signal.SIGUSR1)  # Tune's own "stop, save the state" signal

    return InterruptAfterTrials()


def run_sweep(
    plan: SweepPlan, *, reports_dir: Path | None = None, stop_after_trials: int | None = None
) -> dict[str, Any]:
    """Run (or resume) the sweep; when every trial has ended, track and write the reports.

    ``stop_after_trials``: interrupt the Tune run once that many trials have completed in this call
    (the state is saved as on Ctrl+C; calling again resumes). Returns the summary (``complete`` False
    when interrupted; nothing is written then).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from pipeline import tracking
    from pipeline.cluster import ensure_ray

    cfg = plan.config
    trial_params = validate_params(plan.trial_raw)
    resources = ensure_ray()
    limit = concurrency(resources, trial_params, cfg)
    uri = tracking.tracking_uri(plan.root)
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    restoring = tune.Tuner.can_restore(str(plan.path))
    parent_id = _parent_run(uri, plan, limit, reuse_finished=restoring)
    ctx = {
        "keys": plan.keys, "trial_raw": plan.trial_raw, "experiment": plan.experiment, "seed": cfg.seed,
        "root": str(plan.root), "tracking_uri": uri, "parent_run_id": parent_id, "name": plan.name,
        "git_sha": tracking.git_sha(plan.root),
    }
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), {"cpu": cfg.driver_cpus})
    _INTERRUPT_AFTER.clear()
    if stop_after_trials is not None:
        _INTERRUPT_AFTER["limit"] = stop_after_trials
    try:
        if restoring:
            print(f"[sweep] resuming {plan.path}", flush=True)
            tuner = tune.Tuner.restore(str(plan.path), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            scheduler = ASHAScheduler(
                time_attr="training_iteration", max_t=plan.max_t, grace_period=cfg.grace_period,
                reduction_factor=cfg.reduction_factor, stop_last_trials=False,
            )
            tuner = tune.Tuner(
                trainable,
                param_space=tune_space(cfg),
                tune_config=tune.TuneConfig(
                    metric=cfg.metric, mode=cfg.mode, scheduler=scheduler, num_samples=cfg.num_samples,
                    search_alg=BasicVariantGenerator(random_state=cfg.seed, max_concurrent=limit),
                ),
                run_config=tune.RunConfig(
                    name=plan.name, storage_path=str(plan.storage), callbacks=[_interrupt_callback()],
                    failure_config=tune.FailureConfig(max_failures=0), verbose=1,
                ),
            )
        tuner.fit()
    finally:
        _INTERRUPT_AFTER.clear()
    summary = summarize(plan, limit, parent_id)
    if summary["complete"]:
        finalize(plan, summary, uri, reports_dir or plan.root / "reports")
    else:
        tracking.end_run(uri, parent_id, status="KILLED")
    return summary


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
            "overrides": {k: _plain(trial.config.get(k)) for k in plan.keys},
            "history": [{k: _plain(v) for k, v in row.items()} for row in history],
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
    """The params as given with the best trial's overrides applied (validated)."""
    if summary["best"] is None:
        raise ParamsError(f"sweep {plan.name}: no trial reported {plan.config.metric!r}; no best params")
    raw = apply_overrides(plan.params_raw, summary["best"]["overrides"])
    validate_params(raw, "reports/sweep_best.yaml")
    return raw


# ------------------------------------------------------------------------------------ outputs
def _atomic_write(path: Path, write: Any, suffix: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    _atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100), suffix=".png")
    plt.close(fig)


def write_reports(plan: SweepPlan, summary: Mapping[str, Any], reports_dir: Path) -> list[Path]:
    """``sweep.json``, ``sweep_best.yaml`` (when a trial reported the metric) and one ``sweep_<key>.png`` per
    searched key (plots of keys no longer searched are removed)."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = [reports_dir / "sweep.json"]
    _atomic_write(out[0], lambda p: p.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n"))
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
        _atomic_write(best_file, lambda p: p.write_text(header + yaml.safe_dump(best, sort_keys=False)))
        out.append(best_file)
    plots = {plot_name(k): k for k in plan.keys}
    for stale in reports_dir.glob("sweep_*.png"):
        if stale.name not in plots:
            stale.unlink()
    for name, key in plots.items():
        _plot(reports_dir / name, key, plan.config.space[key], summary)
        out.append(reports_dir / name)
    return out


# ------------------------------------------------------------------------------------ MLflow
def _client(uri: str):
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs_named(uri: str, name: str) -> list[Any]:
    from pipeline.tracking import MLFLOW_EXPERIMENT

    client = _client(uri)
    exp = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.runName` = '{name}'",
                              order_by=["attributes.start_time DESC"])


def _parent_run(uri: str, plan: SweepPlan, limit: int, *, reuse_finished: bool) -> str:
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


def finalize(plan: SweepPlan, summary: dict[str, Any], uri: str, reports_dir: Path) -> list[Path]:
    """Complete the child runs (final/best metric, status tags), write the reports, close the parent.

    Raises :class:`SweepFailedError` (after writing ``sweep.json``) when no trial reported the metric.
    """
    from mlflow.entities import Metric, RunTag

    from pipeline import tracking

    client = _client(uri)
    parent = summary["mlflow_run_id"]
    metric = plan.config.metric
    exp = client.get_run(parent).info.experiment_id
    children = {}
    for run in client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"):
        children.setdefault(run.data.tags.get("trial_id"), run)
    for trial in summary["trials"]:
        run = children.get(trial["trial_id"])
        if run is None:  # the trial ended before its driver created the run: rebuild it from Tune's results
            logged = {**trial["overrides"], "experiment": plan.experiment, "trial_id": trial["trial_id"]}
            tags = {"stage": "sweep", "experiment": plan.experiment, "sweep": plan.name, "trial_id": trial["trial_id"]}
            run_id = tracking.start_run(uri, _trial_run_name(plan.name, trial["trial_id"]), logged, tags,
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
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        status = "FAILED" if trial["status"] == "ERROR" else "FINISHED"
        if run is None or run.info.status != status:
            tracking.end_run(uri, run_id, status=status)
    paths = write_reports(plan, summary, reports_dir)
    for path in paths:
        tracking.log_artifact(uri, parent, path, "sweep")
    best = summary["best"]
    if best is None:
        tracking.end_run(uri, parent, status="FAILED")
        raise SweepFailedError(
            f"sweep {plan.name}: no trial reported {metric!r} ({summary['errors']} errored); "
            f"see {reports_dir / 'sweep.json'} and the trial logs under {plan.path}"
        )
    import time

    now = int(time.time() * 1000)
    client.log_batch(parent, metrics=[Metric(f"best_{metric}", float(best[metric]), now, 0)],
                     tags=[RunTag("best_trial_id", best["trial_id"]),
                           RunTag("best_overrides", json.dumps(best["overrides"])[:5000]),
                           RunTag("stopped_early", str(summary["stopped_early"]))])
    tracking.end_run(uri, parent)
    return paths
