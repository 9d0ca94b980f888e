"""Shared plumbing of the evaluation stages (refnet, extract, probe, classify, generate, fid).

- which experiments a stage accepts (a wrong name is a one-line :class:`ValueError`);
- loading the exported model of every seed (``models/<experiment>/seed_<s>/``; a missing one is a
  :class:`pipeline.artifacts.ModelNotTrainedError` naming ``dvc repro train@<experiment>``);
- the per-seed -> mean / ``<key>_std`` (population std over seeds, 0 for one seed) / ``seed_count``
  aggregation every report uses;
- atomic writes (JSON files, whole output folders) and logging into the model's MLflow run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pipeline.artifacts import load_exported
from pipeline.build import DataShape
from pipeline.errors import DataError, ModelNotTrainedError, UsageError
from pipeline.params import ExperimentConfig, Params, validate_params
from pipeline.paths import Layout

__all__ = [
    "SeedModel",
    "aggregate_seeds",
    "build_report",
    "check_experiment",
    "dataset_name",
    "load_seed_models",
    "log_to_run",
    "progress",
    "run_id_of",
]

EVAL_PREFIX = "eval/"


def check_experiment(name: str, allowed: Sequence[str], stage: str) -> str:
    """Return ``name`` if the stage evaluates it, else raise a one-line :class:`pipeline.errors.UsageError`."""
    if name not in allowed:
        raise UsageError(f"--experiment: stage {stage!r} evaluates {', '.join(allowed)}; got {name!r}")
    return name


@dataclass
class SeedModel:
    """One exported model: modules (EMA weights, eval mode), the params it was trained with, run id."""

    seed: int
    path: Path
    modules: dict[str, nn.Module]
    params: Params
    exp: ExperimentConfig
    shape: DataShape
    run_id: str | None


def load_seed_models(root: Path, experiment: str, seeds: Iterable[int], *, ema: bool = True) -> list[SeedModel]:
    """Load ``models/<experiment>/seed_<s>`` for every seed (EMA weights by default).

    Raises:
        ModelNotTrainedError: a seed's model was never exported (names the training stage to run).
    """
    out = []
    for seed in seeds:
        path = Layout(root).model(experiment, seed)
        run_id_of(root, experiment, seed)  # a missing model names the training stage to run
        modules, config, run = load_exported(path, ema=ema)
        params = validate_params(config["params"], str(path / "config.json"))
        out.append(
            SeedModel(
                seed=int(seed),
                path=path,
                modules=modules,
                params=params,
                exp=params.experiment(config["experiment"]),
                shape=DataShape(**config["data_shape"]),
                run_id=run.get("run_id") or None,
            )
        )
    return out


def run_id_of(root: Path, experiment: str, seed: int) -> str | None:
    """The MLflow run id kept beside an exported model (``run.json``); None when it has none.

    Raises:
        ModelNotTrainedError: the model was never exported.
    """
    path = Layout(root).model(experiment, seed)
    if not (path / "model.pt").is_file():
        raise ModelNotTrainedError(
            f"{path / 'model.pt'}: no trained model for experiment {experiment!r} seed {seed}; "
            f"run `dvc repro train@{experiment}` (or `python stages/train.py --experiment {experiment}`) first"
        )
    run_file = path / "run.json"
    if not run_file.is_file():
        return None
    return json.loads(run_file.read_text()).get("run_id") or None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def aggregate_seeds(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of every numeric key, ``<key>_std`` (population std), and ``seed_count``.

    A key is aggregated only when every seed has a finite number for it; other keys are left out
    (they stay in the per-seed records).
    """
    records = list(per_seed.values())
    if not records:
        raise ValueError("no per-seed results to aggregate")
    out: dict[str, Any] = {}
    for key in records[0]:
        values = [r.get(key) for r in records]
        if not all(_is_number(v) for v in values):
            continue
        vals = [float(v) for v in values]
        mean = sum(vals) / len(vals)
        out[key] = mean
        out[f"{key}_std"] = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    out["seed_count"] = len(records)
    return out


def build_report(per_seed: Mapping[int, Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    """The report layout: descriptive ``extra`` fields, ``per_seed`` records, then the seed means."""
    report: dict[str, Any] = dict(extra)
    report["per_seed"] = {str(s): dict(r) for s, r in per_seed.items()}
    report.update(aggregate_seeds(per_seed))
    return report


def dataset_name(manifest: Mapping[str, Any]) -> str:
    """Short data description from the shard manifest, e.g. ``"digits 8x8"``."""
    source = manifest.get("source", {})
    name = source.get("name", "unknown") if isinstance(source, Mapping) else str(source)
    _, h, w = manifest["image_shape"]
    return f"{name} {h}x{w}"


def log_to_run(root: Path, run_id: str | None, metrics: Mapping[str, Any], *, prefix: str = EVAL_PREFIX,
               artifacts: Sequence[tuple[Path, str | None]] = ()) -> bool:
    """Log the numeric ``metrics`` (keys prefixed) and ``artifacts`` into an existing MLflow run.

    The store is :func:`pipeline.tracking.tracking_uri` of ``root`` (``MLFLOW_TRACKING_URI`` wins).
    Returns False (nothing logged) when the model carries no run id. A run that the store does not
    know is a one-line :class:`ValueError`.
    """
    if not run_id:
        return False
    from mlflow.exceptions import MlflowException

    from pipeline import tracking

    uri = tracking.tracking_uri(Path(root))
    try:
        tracking.log_metrics(uri, run_id, {f"{prefix}{k}": v for k, v in metrics.items() if _is_number(v)})
        for path, artifact_path in artifacts:
            tracking.log_artifact(uri, run_id, Path(path), artifact_path)
    except MlflowException as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"MLflow run {run_id} ({uri}): cannot log evaluation results: {first}") from None
    return True


def progress(iterable=None, **kwargs):
    """A tqdm progress bar (on stderr; ``TQDM_DISABLE=1`` silences it)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
