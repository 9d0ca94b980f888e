"""Running a sweep: Ray Tune over the plan's search space, ASHA early stopping, each trial a Ray Train run.

Each trial is a Ray Train run of the sweep's experiment (:func:`pipeline.train.driver.plan_training` +
:func:`pipeline.train.driver.fit`) driven by the small Tune function trainable :func:`run_trial`; Tune's
``TuneReportCallback`` on the trainer forwards every report of rank 0 — training metrics plus the online
evaluation of :mod:`pipeline.train.online_eval`, computed every ``sweep.eval_every`` steps — to Tune, so
ASHA (``time_attr="training_iteration"``: one iteration per evaluation) stops poor trials early.

Resuming: running the stage again restores the Tune experiment (``Tuner.restore``, unfinished and
errored trials resumed): finished trials are not rerun, and an unfinished trial's Train run resumes from
its latest checkpoint. When every trial has ended, :func:`pipeline.sweep.results.finalize` completes the
MLflow runs and writes the reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.params import Params, SweepConfig, apply_overrides, validate_params
from pipeline.paths import Layout
from pipeline.sweep.plan import SweepPlan, plain, tune_space

__all__ = ["TrialContext", "concurrency", "run_sweep", "run_trial"]


def concurrency(resources: Mapping[str, float], params: Params, config: SweepConfig) -> int:
    """Trials that run at once: ``sweep.max_concurrent_trials``, or as many as the CPUs (and GPUs) hold.

    Raises :class:`pipeline.cluster.ClusterError` when not even one trial fits.
    """
    import math

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


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """What every trial of one :func:`run_sweep` call shares (handed to :func:`run_trial` by Tune)."""

    plan: SweepPlan
    tracking_uri: str
    parent_run_id: str  # the sweep's MLflow parent run
    git_sha: str


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable: one Ray Train run of the trial's params, reports forwarded to Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipeline import tracking
    from pipeline.sweep.mlflow_runs import trial_run_name
    from pipeline.train.driver import fit, plan_training

    sweep = ctx.plan
    trial_id = tune.get_context().get_trial_id()
    overrides = {k: plain(config[k]) for k in sweep.keys}
    raw = apply_overrides(sweep.trial_raw, overrides)
    params = validate_params(raw, f"sweep trial {trial_id}")
    plan = plan_training(params, raw, sweep.experiment, sweep.config.seed, sweep.root)
    plan = dataclasses.replace(plan, run_name=f"{plan.run_name}-{trial_id}")
    uri = ctx.tracking_uri
    tags = {
        "git_sha": ctx.git_sha, "stage": "sweep", "experiment": sweep.experiment, "sweep": sweep.name,
        "trial_id": trial_id, "seed": str(sweep.config.seed),
    }
    logged = {**overrides, "experiment": sweep.experiment, "trial_id": trial_id}
    run_id = tracking.start_run(uri, trial_run_name(sweep.name, trial_id), logged, tags,
                                parent_run_id=ctx.parent_run_id)
    try:
        fit(plan, tracking_uri=uri, run_id=run_id, callbacks=[TuneReportCallback()])
    except BaseException:
        tracking.end_run(uri, run_id, status="FAILED")
        raise
    tracking.end_run(uri, run_id)


def _trial_hook_callback():
    """A Tune callback that passes each completed trial to :func:`pipeline.sweep.hooks.trial_completed`.

    Tune pickles its callbacks with the experiment (by value, for a class made here) and restores them
    on resume, so the hook is looked up in :mod:`pipeline.sweep.hooks` when a trial completes.
    """
    from ray import tune

    class TrialHook(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            from pipeline.sweep import hooks

            hooks.trial_completed(trial.trial_id)

    return TrialHook()


def run_sweep(plan: SweepPlan, *, reports_dir: Path | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep; when every trial has ended, track and write the reports.

    Returns the summary of :func:`pipeline.sweep.results.summarize`; ``complete`` is False when the run
    was interrupted (Ctrl+C: Tune saves the state, calling again resumes) and nothing is written then.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from pipeline import tracking
    from pipeline.cluster import ensure_ray
    from pipeline.sweep.mlflow_runs import parent_run
    from pipeline.sweep.results import finalize, summarize

    cfg = plan.config
    trial_params = validate_params(plan.trial_raw)
    resources = ensure_ray()
    limit = concurrency(resources, trial_params, cfg)
    uri = tracking.tracking_uri(plan.root)
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    restoring = tune.Tuner.can_restore(str(plan.path))
    parent_id = parent_run(uri, plan, limit, reuse_finished=restoring)
    ctx = TrialContext(plan, uri, parent_id, tracking.git_sha(plan.root))
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), {"cpu": cfg.driver_cpus})
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
                name=plan.name, storage_path=str(plan.storage), callbacks=[_trial_hook_callback()],
                failure_config=tune.FailureConfig(max_failures=0), verbose=1,
            ),
        )
    tuner.fit()
    summary = summarize(plan, limit, parent_id)
    if summary["complete"]:
        finalize(plan, summary, uri, reports_dir or Layout(plan.root).reports)
    else:
        tracking.end_run(uri, parent_id, status="KILLED")
    return summary
