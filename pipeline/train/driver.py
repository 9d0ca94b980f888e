"""The Ray Train V2 driver: validate, start or join Ray, fit a ``TorchTrainer``, export the model.

Everything that can be checked is checked before Ray starts (params, shards, batch divisibility);
the worker-group size is checked against the cluster's resources before the trainer is built, so
asking for more workers than CPUs is an error rather than a hang. Run names are deterministic
(experiment, seed and a hash of the config that defines the model, the data and the code), so
re-running an interrupted stage resumes from its latest checkpoint in
``<root>/<train.storage>/<run name>``. The workers get one typed
:class:`pipeline.train.worker.WorkerConfig` holding the params validated here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.artifacts import save_exported
from pipeline.build import DataShape
from pipeline.data.manifest import load_manifest, manifest_path
from pipeline.errors import ParamsError, ShardsMissingError, UsageError, UserError
from pipeline.io import atomic_dir
from pipeline.params import EXPERIMENTS, Params, config_hash, flatten
from pipeline.paths import Layout

if TYPE_CHECKING:
    from pipeline.train.worker import WorkerConfig


@dataclass(frozen=True)
class TrainPlan:
    """Everything a training run needs, resolved and validated before Ray starts."""

    root: Path
    experiment: str
    seed: int
    params: Params
    params_raw: dict[str, Any]  # as read (exported in config.json, which rebuilds the models)
    shard_dir: Path
    data_shape: DataShape
    train_count: int
    run_config: dict[str, Any]
    run_name: str

    @property
    def storage(self) -> Path:
        return (self.root / self.params.train.storage).resolve()


def read_manifest(shard_dir: Path) -> dict[str, Any]:
    path = manifest_path(shard_dir)
    if not path.is_file():
        raise ShardsMissingError(
            f"{path}: shards not found; run the data stage first: `dvc repro shard` (or `python stages/shard.py`)"
        )
    return load_manifest(shard_dir)


CODE_PACKAGES = ("lzn", "pipeline")
"""Packages whose code is hashed into the run identity (every ``*.py`` under them)."""

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding :data:`CODE_PACKAGES`."""


def code_hash(base: Path = PROJECT_ROOT) -> str:
    """Hash of the code, so a code change starts a new run instead of resuming a checkpoint of old code.

    Every ``*.py`` file of :data:`CODE_PACKAGES` (path and bytes): a hand-kept list of the modules a
    run executes goes stale (the training loop reaches ``lzn``, ``build``, ``params``, the data
    loaders and, for the online evaluation, ``pipeline.evaluate``). A change outside training only
    costs an interrupted run its resume. ``base``: the folder holding the packages.
    """
    files = sorted(p for package in CODE_PACKAGES for p in (base / package).rglob("*.py"))
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(base)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def plan_training(params: Params, params_raw: dict[str, Any], experiment: str, seed: int, root: Path) -> TrainPlan:
    """Resolve and validate one (experiment, seed) run; raises before any work on bad input.

    ``params`` is ``params_raw`` validated (:func:`pipeline.params.validate_params`).
    """
    if experiment not in EXPERIMENTS:
        raise UsageError(f"--experiment: unknown experiment {experiment!r}; expected one of {', '.join(EXPERIMENTS)}")
    exp = params.experiment(experiment)
    workers = params.train.workers
    if exp.batch_size % workers:
        raise ParamsError(
            f"train.{experiment}.batch_size: {exp.batch_size} is not divisible by train.workers={workers}"
        )
    root = Path(root).resolve()
    shard_dir = Layout(root).shards
    manifest = read_manifest(shard_dir)
    shape = DataShape.from_manifest(manifest)
    data_id = config_hash({"shards": [s.get("sha256") for split in ("train", "test") for s in manifest["splits"][split]["shards"]]})
    run_config = {
        "experiment": experiment,
        "seed": seed,
        "experiment_config": exp.model_dump(mode="json"),
        "model": params.model.model_dump(mode="json"),
        "augment": params.augment.model_dump(mode="json"),
        "data": data_id,
        "code": code_hash(),
    }
    name = f"{experiment}-s{seed}-{config_hash(run_config)}"
    train_count = int(manifest["counts"]["train"])
    if train_count < exp.batch_size:
        raise ParamsError(f"train.{experiment}.batch_size: {exp.batch_size} exceeds the {train_count} training images")
    return TrainPlan(
        root=root, experiment=experiment, seed=seed, params=params, params_raw=params_raw, shard_dir=shard_dir,
        data_shape=shape, train_count=train_count, run_config=run_config, run_name=name,
    )


def worker_config(plan: TrainPlan, *, tracking_uri: str | None, run_id: str | None) -> WorkerConfig:
    """The typed ``train_loop_config`` of ``plan``'s workers (a test's armed fault included)."""
    from pipeline.train import faults
    from pipeline.train.worker import WorkerConfig

    return WorkerConfig(
        params=plan.params,
        experiment=plan.experiment,
        seed=plan.seed,
        shard_dir=plan.shard_dir,
        data_shape=plan.data_shape,
        train_count=plan.train_count,
        root=plan.root,
        storage=plan.storage,
        run_name=plan.run_name,
        run_config=plan.run_config,
        tracking_uri=tracking_uri,
        run_id=run_id,
        fault=faults.armed(plan.storage / f"{plan.run_name}.failed-once"),
    )


def fit(plan: TrainPlan, *, tracking_uri: str | None, run_id: str | None, callbacks: list[Any] | None = None):
    """Run the TorchTrainer for one plan (Ray must be initialised); returns the ``ray.train.Result``.

    ``callbacks``: Ray Train ``UserCallback``s of the run (a sweep passes Tune's ``TuneReportCallback``).
    A user error raised on a worker (a checkpoint of another config) is re-raised as itself.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from pipeline.train.worker import train_worker

    t = plan.params.train
    resources = {"CPU": t.cpus_per_worker}
    scaling = ScalingConfig(num_workers=t.workers, use_gpu=t.use_gpu, resources_per_worker=resources)
    plan.storage.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        train_worker,
        # Ray's train_loop_config is a dict (its run-state export walks it): the typed config under one key
        train_loop_config={"worker": worker_config(plan, tracking_uri=tracking_uri, run_id=run_id)},
        torch_config=TorchConfig(backend="nccl" if t.use_gpu else "gloo"),
        scaling_config=scaling,
        run_config=RunConfig(
            name=plan.run_name,
            storage_path=str(plan.storage),
            failure_config=FailureConfig(max_failures=t.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks or []),
        ),
    )
    try:
        return trainer.fit()
    except Exception as err:
        failures = getattr(err, "worker_failures", None) or {}  # ray.train.WorkerGroupError
        user = [e for _, e in sorted(failures.items()) if isinstance(e, UserError)]
        if user:
            raise user[0] from err
        raise


def export(result, plan: TrainPlan, out_dir: Path, run: dict[str, Any]) -> Path:
    """Write the final checkpoint of ``result`` as ``out_dir`` (model.pt, config.json, run.json, history.json)."""
    from pipeline.train.state import read_checkpoint

    if result.checkpoint is None:
        raise RuntimeError(f"training run {plan.run_name} finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = read_checkpoint(Path(d))
    exp = plan.params.experiment(plan.experiment)
    if int(state["step"]) != exp.total_iterations:
        raise RuntimeError(
            f"training run {plan.run_name} ended at step {state['step']}, planned {exp.total_iterations}"
        )
    config = {
        "experiment": plan.experiment,
        "seed": plan.seed,
        "params": plan.params_raw,
        "data_shape": dataclasses.asdict(plan.data_shape),
        "run_name": plan.run_name,
        "run_config": plan.run_config,
        "steps": int(state["step"]),
        "skipped_steps": int(state["skipped"]),
        "resumed_from": [int(v) for v in state["resumed_from"].tolist()],
    }
    save_exported(out_dir, {"model": state["model"], "ema": state["ema"]}, config, run)
    (out_dir / "history.json").write_text(state["history_json"])  # inside the export's atomic folder
    return out_dir


def train_experiment(
    params: Params,
    params_raw: dict[str, Any],
    experiment: str,
    root: Path,
    *,
    seeds: list[int] | None = None,
) -> Path:
    """Train ``experiment`` for every seed and export ``<root>/models/<experiment>/seed_<s>/``.

    ``params`` is ``params_raw`` validated. The folder appears only once every seed is exported.
    """
    from pipeline import tracking
    from pipeline.cluster import check_resources, ensure_ray

    root = Path(root).resolve()
    seeds = list(seeds if seeds is not None else params.seeds)
    plans = [plan_training(params, params_raw, experiment, s, root) for s in seeds]
    resources = ensure_ray()
    check_resources(resources, params.train.workers, params.train.cpus_per_worker, params.train.use_gpu)
    uri = tracking.tracking_uri(root)
    final = Layout(root).models(experiment)
    with atomic_dir(final) as tmp:
        for plan in plans:
            flat = flatten({"train": plan.run_config["experiment_config"], "model": plan.run_config["model"]})
            flat.update({"experiment": experiment, "seed": plan.seed, "train.workers": params.train.workers})
            tags = {"git_sha": tracking.git_sha(root), "stage": "train", "experiment": experiment, "seed": str(plan.seed)}
            run_id = tracking.start_run(uri, plan.run_name, flat, tags)
            try:
                result = fit(plan, tracking_uri=uri, run_id=run_id)
                if result.error is not None:
                    raise result.error
                out = export(result, plan, tmp / f"seed_{plan.seed}", {"run_id": run_id, "tracking_uri": uri})
                tracking.log_artifact(uri, run_id, out / "config.json", "model")
                tracking.end_run(uri, run_id)
            except BaseException:
                tracking.end_run(uri, run_id, status="FAILED")
                raise
    return final
