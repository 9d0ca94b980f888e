"""The Ray Train V2 driver: validate, start or join Ray, fit a ``TorchTrainer``, export the model.

Everything that can be checked is checked before Ray starts (params, shards, batch divisibility);
the worker-group size is checked against the cluster's resources before the trainer is built, so
asking for more workers than CPUs is an error rather than a hang. Run names are deterministic
(experiment, seed and a hash of the config that defines the model), so re-running an interrupted
stage resumes from its latest checkpoint in ``<root>/<train.storage>/<run name>``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import save_exported
from pipeline.build import DataShape
from pipeline.errors import ShardsMissingError
from pipeline.params import EXPERIMENTS, Params, ParamsError, config_hash, flatten


@dataclass(frozen=True)
class TrainPlan:
    """Everything a training run needs, resolved and validated before Ray starts."""

    root: Path
    experiment: str
    seed: int
    params_raw: dict[str, Any]
    shard_dir: Path
    data_shape: DataShape
    train_count: int
    run_config: dict[str, Any]
    run_name: str

    @property
    def storage(self) -> Path:
        return (self.root / self.params.train.storage).resolve()

    @property
    def params(self) -> Params:
        from pipeline.params import validate_params

        return validate_params(self.params_raw)


def read_manifest(shard_dir: Path) -> dict[str, Any]:
    path = shard_dir / "manifest.json"
    if not path.is_file():
        raise ShardsMissingError(
            f"{path}: shards not found; run the data stage first: `dvc repro shard` (or `python stages/shard.py`)"
        )
    return json.loads(path.read_text())


TRAINING_CODE = ("training.py", "models.py", "readers.py")
"""Pipeline modules whose code changes what a training run computes (besides all of ``lzn/``)."""


def code_hash() -> str:
    """Hash of the training code, so a code change starts a new run instead of resuming an old one."""
    import hashlib

    base = Path(__file__).resolve().parents[1]
    files = sorted((base / "lzn").rglob("*.py")) + [base / "pipeline" / f for f in TRAINING_CODE]
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(base)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def plan_training(params: Params, params_raw: dict[str, Any], experiment: str, seed: int, root: Path) -> TrainPlan:
    """Resolve and validate one (experiment, seed) run; raises before any work on bad input."""
    if experiment not in EXPERIMENTS:
        raise ParamsError(f"--experiment: unknown experiment {experiment!r}; expected one of {', '.join(EXPERIMENTS)}")
    exp = params.experiment(experiment)
    workers = params.train.workers
    if exp.batch_size % workers:
        raise ParamsError(
            f"train.{experiment}.batch_size: {exp.batch_size} is not divisible by train.workers={workers}"
        )
    root = Path(root).resolve()
    shard_dir = root / "data" / "shards"
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
    return TrainPlan(root, experiment, seed, params_raw, shard_dir, shape, train_count, run_config, name)


def fit(
    plan: TrainPlan,
    *,
    tracking_uri: str | None,
    run_id: str | None,
    fail_at_step: int | None = None,
    callbacks: list[Any] | None = None,
):
    """Run the TorchTrainer for one plan (Ray must be initialised); returns the ``ray.train.Result``.

    ``callbacks``: Ray Train ``UserCallback``s of the run (a sweep passes Tune's ``TuneReportCallback``).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from pipeline.train.worker import train_worker

    params = plan.params
    t = params.train
    resources = {"CPU": t.cpus_per_worker}
    scaling = ScalingConfig(num_workers=t.workers, use_gpu=t.use_gpu, resources_per_worker=resources)
    plan.storage.mkdir(parents=True, exist_ok=True)
    loop_config: dict[str, Any] = {
        "params": plan.params_raw,
        "experiment": plan.experiment,
        "seed": plan.seed,
        "shard_dir": str(plan.shard_dir),
        "data_shape": plan.data_shape.__dict__,
        "train_count": plan.train_count,
        "tracking_uri": tracking_uri,
        "run_id": run_id,
        "run_config": plan.run_config,
        "label": f"{plan.experiment} s{plan.seed}",
        "storage": str(plan.storage),
        "root": str(plan.root),
        "run_name": plan.run_name,
    }
    if fail_at_step is not None:
        loop_config["fail_at_step"] = fail_at_step
        loop_config["fail_marker"] = str(plan.storage / f"{plan.run_name}.failed-once")
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
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
    return trainer.fit()


def export(result, plan: TrainPlan, out_dir: Path, run: dict[str, Any]) -> Path:
    """Write the final checkpoint of ``result`` as ``out_dir`` (model.pt, config.json, run.json, history.json)."""
    from pipeline.train.worker import STATE_FILE, load_state_file

    if result.checkpoint is None:
        raise RuntimeError(f"training run {plan.run_name} finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = load_state_file(Path(d) / STATE_FILE)
    exp = plan.params.experiment(plan.experiment)
    if int(state["step"]) != exp.total_iterations:
        raise RuntimeError(
            f"training run {plan.run_name} ended at step {state['step']}, planned {exp.total_iterations}"
        )
    config = {
        "experiment": plan.experiment,
        "seed": plan.seed,
        "params": plan.params_raw,
        "data_shape": plan.data_shape.__dict__,
        "run_name": plan.run_name,
        "run_config": plan.run_config,
        "steps": int(state["step"]),
        "skipped_steps": int(state["skipped"]),
        "resumed_from": [int(v) for v in state["resumed_from"].tolist()],
    }
    save_exported(out_dir, {"model": state["model"], "ema": state["ema"]}, config, run)
    (out_dir / "history.json").write_text(state["history_json"])
    return out_dir


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished temp directory into place, replacing an older one."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def train_experiment(
    params: Params,
    params_raw: dict[str, Any],
    experiment: str,
    root: Path,
    *,
    seeds: list[int] | None = None,
    fail_at_step: int | None = None,
) -> Path:
    """Train ``experiment`` for every seed and export ``<root>/models/<experiment>/seed_<s>/``."""
    from pipeline import tracking
    from pipeline.cluster import check_resources, ensure_ray

    root = Path(root).resolve()
    seeds = list(seeds if seeds is not None else params.seeds)
    plans = [plan_training(params, params_raw, experiment, s, root) for s in seeds]
    resources = ensure_ray()
    check_resources(resources, params.train.workers, params.train.cpus_per_worker, params.train.use_gpu)
    uri = tracking.tracking_uri(root)
    final = root / "models" / experiment
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{experiment}.", dir=final.parent))
    try:
        for plan in plans:
            flat = flatten({"train": plan.run_config["experiment_config"], "model": plan.run_config["model"]})
            flat.update({"experiment": experiment, "seed": plan.seed, "train.workers": params.train.workers})
            tags = {"git_sha": tracking.git_sha(root), "stage": "train", "experiment": experiment, "seed": str(plan.seed)}
            run_id = tracking.start_run(uri, plan.run_name, flat, tags)
            try:
                result = fit(plan, tracking_uri=uri, run_id=run_id, fail_at_step=fail_at_step)
                if result.error is not None:
                    raise result.error
                out = export(result, plan, tmp / f"seed_{plan.seed}", {"run_id": run_id, "tracking_uri": uri})
                tracking.log_artifact(uri, run_id, out / "config.json", "model")
                tracking.end_run(uri, run_id)
            except BaseException:
                tracking.end_run(uri, run_id, status="FAILED")
                raise
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
