"""Starting or joining Ray.

``RAY_ADDRESS`` set (by ``ray job submit`` or by the user): join that cluster. Otherwise start a
local instance sized to the machine. Ray 2.60's plain ``ray.init()`` writes an auth token that makes
a later ``ray start`` demand token authentication, so the project always sets
``RAY_AUTH_MODE=disabled`` and binds the dashboard to 127.0.0.1.
"""

from __future__ import annotations

import os

from pipeline.errors import ClusterError


def prepare_environment() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # worker logs: our one line per interval, printed once (not re-logged through Train's logger)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_WORKER_STRUCTURED_LOGGING", "0")
    # Ray's tqdm bar manager otherwise replaces builtins.print in the driver for the rest of the process
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")


def ensure_ray(num_cpus: int | None = None) -> dict[str, float]:
    """Join ``RAY_ADDRESS`` or start a local Ray; return the cluster's total resources."""
    prepare_environment()
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, logging_level="WARNING")
        else:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=True,  # the Train controller queries the state API, served by the dashboard
                dashboard_host="127.0.0.1",
                logging_level="WARNING",
                configure_logging=True,
            )
    return dict(ray.cluster_resources())


def check_resources(resources: dict[str, float], workers: int, cpus_per_worker: float, use_gpu: bool) -> None:
    """Fail fast when the cluster can never place the worker group (Ray would wait forever)."""
    need_cpu = workers * cpus_per_worker
    have_cpu = resources.get("CPU", 0.0)
    if need_cpu > have_cpu + 1e-9:
        raise ClusterError(
            f"train.workers={workers} x train.cpus_per_worker={cpus_per_worker:g} needs {need_cpu:g} CPUs, "
            f"the Ray cluster has {have_cpu:g}; lower train.workers or train.cpus_per_worker"
        )
    if use_gpu and resources.get("GPU", 0.0) < workers:
        raise ClusterError(
            f"train.use_gpu=true with train.workers={workers} needs {workers} GPUs, "
            f"the Ray cluster has {resources.get('GPU', 0.0):g}"
        )
