"""The Ray Train worker loop shared by the six experiments (LZN_SPEC §2.0).

:func:`train_worker` is the ``train_loop_per_worker`` of the ``TorchTrainer``, run on every rank with
the same :class:`WorkerConfig` (built and validated once by :mod:`pipeline.train.driver`). It reads
top to bottom: build the :class:`~pipeline.train.state.TrainingState`, restore the latest checkpoint,
stream this rank's shards, then per step train, and per logging interval average the metrics over
the ranks, report them to Ray on every rank and, on rank 0 only (the one flag ``is_main``), evaluate
online, print one line, log to MLflow and attach the checkpoint. Every rank also records where it
ran and the first sample keys it read, in ``<storage>/<run>/workers/rank_<r>.json`` (it makes the
multi-node data split inspectable).
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from pipeline.build import DataShape, build_models, objective_spec
from pipeline.io import write_text
from pipeline.params import Params
from pipeline.train import faults
from pipeline.train.state import TrainingState

LAYOUT_KEYS = 4096
"""Sample keys each rank records in its ``workers/rank_<r>.json``."""

SHOWN_METRICS = ("loss", "rf_loss", "align_loss", "label_loss", "nt_xent", "train_accuracy", "assignment_acc")
"""Metrics of the printed line (besides the gradient norm and the throughput), where reported."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, validated once by the driver; Ray pickles it to every rank.

    ``run_config`` is the resolved config that identifies the run (its hash is in the run name); a
    checkpoint is stamped with it and resuming from one of another config is refused.
    """

    params: Params
    experiment: str
    seed: int
    shard_dir: Path
    data_shape: DataShape
    train_count: int
    root: Path
    storage: Path
    run_name: str
    run_config: dict[str, Any]
    tracking_uri: str | None = None
    run_id: str | None = None
    fault: faults.FailAt | None = None  # tests only (pipeline.train.faults); None in every real run

    @property
    def label(self) -> str:
        """Prefix of the printed lines."""
        return f"{self.experiment} s{self.seed}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _mean_over_ranks(metrics: dict[str, float], keys: list[str]) -> dict[str, float]:
    vec = torch.tensor([metrics.get(k, float("nan")) for k in keys], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(vec)
        vec /= dist.get_world_size()
    return dict(zip(keys, vec.tolist()))


def _endless(loader: Any) -> Any:
    """Batches across epochs of a loader that ends each epoch (``with_epoch``)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise RuntimeError("the training loader yielded no batch")


def train_worker(loop_config: dict[str, WorkerConfig]) -> None:
    """``train_loop_per_worker`` of the TorchTrainer (see the module docstring); the driver's
    :class:`WorkerConfig` is ``loop_config["worker"]``."""
    import ray
    import ray.train
    import ray.train.torch

    from pipeline.data.loaders import train_loader

    cfg = loop_config["worker"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    is_main = rank == 0  # rank 0 alone prints, evaluates online, logs to MLflow, checkpoints, runs the fault hook
    params = cfg.params
    exp = params.experiment(cfg.experiment)
    t = params.train
    torch.set_num_threads(t.threads_per_worker)
    torch.set_flush_denormal(True)  # denormals from vanishing probabilities slow CPU arithmetic ~100x
    seed_everything(cfg.seed * 1000 + rank)
    device = ray.train.torch.get_device()
    state = TrainingState(
        build_models(params, exp, cfg.data_shape), exp, objective_spec(params, exp, cfg.data_shape),
        seed=cfg.seed, device=device,
    )
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state.restore(Path(d), cfg.run_config)
        if is_main:
            print(f"[{cfg.label}] resumed from step {state.step}/{exp.total_iterations}", flush=True)

    per_rank = exp.batch_size // world
    # the shuffle buffer stays within one rank's share of a pass over the shards (see pipeline.data.loaders)
    share = cfg.train_count // (2 * world)
    loader = train_loader(
        cfg.shard_dir, "train", per_rank, seed=cfg.seed * 1000 + state.step, shuffle_buffer=max(1, min(1000, share))
    )
    batches = _endless(loader)
    layout_path = cfg.storage / cfg.run_name / "workers" / f"rank_{rank}.json"
    layout: dict[str, Any] = {
        "rank": rank,
        "world_size": world,
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": os.uname().nodename,
        "pid": os.getpid(),
        "keys": [],
    }
    t_last, n_last = time.perf_counter(), 0
    window: list[dict[str, float]] = []
    while not state.done:
        images, labels, keys = next(batches)
        if len(layout["keys"]) < LAYOUT_KEYS:
            layout["keys"].extend(list(keys)[: LAYOUT_KEYS - len(layout["keys"])])
        if is_main:
            faults.check(cfg.fault, state.step)  # tests only: a no-op unless a test armed it
        upcoming = state.step + 1
        is_eval = bool(t.eval_every) and upcoming % t.eval_every == 0
        is_log = upcoming % t.log_every == 0 or upcoming == exp.total_iterations or is_eval
        metrics = state.train_step(images, labels, diagnose=is_log)
        window.append(metrics)
        n_last += images.shape[0] * world
        is_ckpt = state.step % t.checkpoint_every == 0 or state.done
        if not (is_log or is_ckpt):
            continue

        # ---- a logging interval ends: metrics averaged over the interval's steps, then over the ranks
        names = sorted({k for m in window for k in m})
        local = {k: float(np.nanmean([m.get(k, float("nan")) for m in window])) for k in names}
        report = _mean_over_ranks(local, names)
        elapsed = time.perf_counter() - t_last
        report.update(step=float(state.step), images_per_s=n_last / max(elapsed, 1e-9))
        t_last, n_last, window = time.perf_counter(), 0, []
        if is_main and t.eval_every and (state.step % t.eval_every == 0 or state.done):
            from pipeline.train.online_eval import online_metrics

            report.update(online_metrics(exp.name, state, params, cfg.shard_dir, cfg.root))
        if is_main:
            state.history.append({k: round(v, 6) for k, v in report.items()})
            shown = " ".join(f"{k} {report[k]:.4g}" for k in SHOWN_METRICS if k in report)
            print(
                f"[{cfg.label}] step {state.step}/{exp.total_iterations} {shown} "
                f"gnorm {report['grad_norm']:.3g} img/s {report['images_per_s']:.0f}",
                flush=True,
            )
            if cfg.tracking_uri and cfg.run_id:
                from pipeline.tracking import log_metrics

                log_metrics(cfg.tracking_uri, cfg.run_id, report, step=state.step)
        finite = {k: v for k, v in report.items() if math.isfinite(v)}
        if is_ckpt:
            write_text(layout_path, json.dumps(layout))
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = None
                if is_main:
                    state.save(Path(tmp), cfg.run_config)
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report(finite, checkpoint=ckpt)
        else:
            ray.train.report(finite)
