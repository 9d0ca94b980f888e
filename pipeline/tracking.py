"""MLflow tracking: one run per experiment and seed per pipeline execution.

The store defaults to ``sqlite:///<absolute repo root>/mlflow.db``; ``MLFLOW_TRACKING_URI``
overrides it (a shared server, say). Only the driver creates experiments and runs; rank 0 of the
training job and the evaluation stages log into an existing run by its id.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MLFLOW_EXPERIMENT = "lzn"


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store under ``root``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def client(uri: str):
    """The one MLflow client factory of the project (MLflow and alembic logging kept at WARNING)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def git_sha(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _stringify(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v)[:6000] for k, v in params.items()}


def start_run(
    uri: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    *,
    experiment: str = MLFLOW_EXPERIMENT,
    parent_run_id: str | None = None,
) -> str:
    """Create (once) the MLflow experiment and a new run; log flattened params; return its id.

    An unfinished run with the same name (an interrupted execution being resumed) is reused.
    """
    from mlflow.entities import Param, RunTag

    mlflow_client = client(uri)
    exp = mlflow_client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else mlflow_client.create_experiment(experiment)
    existing = mlflow_client.search_runs(
        [exp_id],
        filter_string=f"tags.`mlflow.runName` = '{run_name}' and attributes.status != 'FINISHED'",
        max_results=1,
    )
    if existing:
        return existing[0].info.run_id
    all_tags = {"mlflow.runName": run_name, **tags}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = mlflow_client.create_run(exp_id, run_name=run_name, tags=all_tags)
    items = list(_stringify(params).items())
    for i in range(0, len(items), 100):
        mlflow_client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in items[i : i + 100]])
    mlflow_client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in all_tags.items() if k != "mlflow.runName"])
    return run.info.run_id


def log_metrics(uri: str, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log numeric metrics (non-finite and non-numeric values are skipped)."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(k, float(v), now, step or 0)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    ]
    if items:
        client(uri).log_batch(run_id, metrics=items)


def log_artifact(uri: str, run_id: str, path: Path, artifact_path: str | None = None) -> None:
    client(uri).log_artifact(run_id, str(path), artifact_path)


def set_tags(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    mlflow_client = client(uri)
    for k, v in tags.items():
        mlflow_client.set_tag(run_id, k, v)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(uri).set_terminated(run_id, status=status)
