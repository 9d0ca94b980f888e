"""The Ray Train worker loop shared by the six experiments (LZN_SPEC §2.0).

:class:`TrainingState` holds the modules, the Adam optimizer (one param group per module, each with
its own learning rate), the LinearLR warm-up, the EMAs and the step counter, and performs one
optimisation step: objective -> backward -> gradient averaging across ranks -> clipping -> a step
skipped on *every* rank when any rank's loss or gradient is non-finite -> EMA. Modules stop training
(``requires_grad=False``, EMA frozen) once the step passes their own iteration budget.

:func:`train_worker` is the ``train_loop_per_worker`` of the ``TorchTrainer``: it restores the latest
checkpoint, streams shards, logs one line per interval, reports metrics on every rank and attaches
checkpoints (model, EMA, optimizer, scheduler, step, config, history) from rank 0.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lzn.ema import EMA
from lzn.objectives import ObjectiveSpec, compute_objective
from pipeline.build import DataShape, build_models, objective_spec
from pipeline.errors import CheckpointMismatchError
from pipeline.params import ExperimentConfig, Params, config_hash, validate_params

STATE_FILE = "state.pt"


def config_difference(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts (for a clear refusal)."""
    diffs: list[str] = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}.{key}" if prefix else str(key)
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(config_difference(a, b, name))
        elif a != b:
            diffs.append(f"{name}: checkpoint {a!r} != current {b!r}")
    return diffs


class TrainingState:
    """Modules, optimizer, scheduler, EMAs and step of one experiment on one rank."""

    def __init__(
        self,
        modules: dict[str, nn.Module],
        exp: ExperimentConfig,
        spec: ObjectiveSpec,
        *,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.modules = {k: m.to(device) for k, m in modules.items()}
        self.exp = exp
        self.spec = spec
        self.seed = seed
        self.device = torch.device(device)
        self.step = 0
        self.skipped = 0
        self.names = sorted(self.modules)
        self.optimizer = torch.optim.Adam(
            [{"params": list(self.modules[n].parameters()), "lr": exp.lr[n], "name": n} for n in self.names]
        )
        warmup = max(exp.warmup, 1)
        self.scheduler = torch.optim.lr_scheduler.LinearLR(
            self.optimizer, start_factor=1.0 / warmup if exp.warmup > 0 else 1.0, end_factor=1.0, total_iters=warmup
        )
        self.emas = {n: EMA(self.modules[n], exp.ema_decay) for n in self.names}
        self.history: list[dict[str, float]] = []
        self.resumed_from: list[int] = []  # steps at which this run was restored from a checkpoint

    # ------------------------------------------------------------------ schedule
    def active_modules(self) -> list[str]:
        """Modules still inside their iteration budget at the current step."""
        return [n for n in self.names if self.step < self.exp.iterations[n]]

    @property
    def done(self) -> bool:
        return self.step >= self.exp.total_iterations

    def _set_trainable(self, active: list[str]) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        for n in self.names:
            on = n in active
            for p in self.modules[n].parameters():
                p.requires_grad_(on)
                if on:
                    params.append(p)
            self.modules[n].train(on)
        return params

    # ------------------------------------------------------------------ one step
    def _generator(self) -> torch.Generator:
        """Seeded by (seed, step) only — the same on every rank — so the noise of a step is one global
        draw sliced by rank (see :func:`lzn.objectives.global_randn`) and resuming replays it exactly."""
        g = torch.Generator(device=self.device)
        g.manual_seed((self.seed * 1_000_003 + self.step) % (2**63 - 1))
        return g

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, *, diagnose: bool = False) -> dict[str, float]:
        """One optimisation step on the local batch; returns the step's metrics (this rank's view)."""
        active = self.active_modules()
        trainable = self._set_trainable(active)
        images, labels = images.to(self.device), labels.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss, diag = compute_objective(self.spec, self.modules, images, labels, self._generator(), diagnose=diagnose)
        finite = torch.isfinite(loss.detach()).float()
        # Backward runs on every rank even for a non-finite loss: it holds collectives (gather_with_grad)
        # that all ranks must join; the non-finite gradients are then discarded on every rank below.
        loss.backward()
        grad_norm = self._sync_and_clip(trainable)
        ok = torch.stack([finite, torch.isfinite(grad_norm).float()]).min()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        stepped = bool(ok.item())
        if stepped:
            self.optimizer.step()
            self.scheduler.step()
            for n in active:
                self.emas[n].update(self.modules[n])
        else:
            self.skipped += 1
            self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        metrics = {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "skipped_steps": float(self.skipped)}
        metrics.update(diag)
        for group in self.optimizer.param_groups:
            metrics[f"lr_{group['name']}"] = float(group["lr"])
        return metrics

    def _sync_and_clip(self, trainable: list[nn.Parameter]) -> torch.Tensor:
        """Average gradients over ranks (one coalesced all_reduce), then clip their global norm."""
        if not trainable:
            return torch.tensor(0.0)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in trainable]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            offset = 0
            for p, g in zip(trainable, grads):
                n = g.numel()
                p.grad = flat[offset : offset + n].view_as(p).clone()
                offset += n
        else:
            for p, g in zip(trainable, grads):
                p.grad = g
        return torch.nn.utils.clip_grad_norm_(trainable, self.exp.clip)

    # ------------------------------------------------------------------ state
    def state_dict(self, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "experiment": self.exp.name,
            "config": config,
            "config_hash": config_hash(config),
            "step": self.step,
            "skipped": self.skipped,
            "model": {n: m.state_dict() for n, m in self.modules.items()},
            "ema": {n: self._ema_module_state(n) for n in self.names},
            "ema_state": {n: e.state_dict() for n, e in self.emas.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history_json": json.dumps(self.history),
            "resumed_from": torch.tensor(self.resumed_from, dtype=torch.long),
        }

    def _ema_module_state(self, name: str) -> dict[str, torch.Tensor]:
        ema = self.emas[name]
        state = {k: v.clone() for k, v in self.modules[name].state_dict().items()}
        for k, v in ema.shadow.items():
            state[k] = v.clone()
        for k, v in ema.buffers.items():
            state[k] = v.clone()
        return state

    def load_state_dict(self, state: dict[str, Any], config: dict[str, Any]) -> None:
        if state.get("experiment") != self.exp.name:
            raise CheckpointMismatchError(
                f"checkpoint is of experiment {state.get('experiment')!r}, not {self.exp.name!r}"
            )
        if state.get("config_hash") != config_hash(config):
            diffs = config_difference(state.get("config", {}), config)
            raise CheckpointMismatchError(
                "checkpoint was trained with another config: " + "; ".join(diffs[:8]) + (" …" if len(diffs) > 8 else "")
            )
        for n, m in self.modules.items():
            m.load_state_dict(state["model"][n])
        for n, e in self.emas.items():
            e.load_state_dict(state["ema_state"][n])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.skipped = int(state["skipped"])
        self.history = json.loads(state["history_json"])
        self.resumed_from = [int(v) for v in state["resumed_from"].tolist()] + [self.step]


def load_state_file(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


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


class _WorkerLayout:
    """Where each rank ran and which samples it read: ``<storage>/<run>/workers/rank_<r>.json``.

    A record of the job's layout (node, device, sample keys of the first pass) that makes the
    multi-node data split inspectable.
    """

    def __init__(self, config: dict[str, Any], rank: int, world: int, keep: int = 4096) -> None:
        import ray

        self.path = Path(config["storage"]) / config["run_name"] / "workers" / f"rank_{rank}.json" if config.get("storage") else None
        self.info: dict[str, Any] = {
            "rank": rank,
            "world_size": world,
            "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": os.uname().nodename,
            "pid": os.getpid(),
            "keys": [],
        }
        self.keep = keep

    def record(self, keys: list[str]) -> None:
        if len(self.info["keys"]) < self.keep:
            self.info["keys"].extend(list(keys)[: self.keep - len(self.info["keys"])])

    def write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.info))
        os.replace(tmp, self.path)


def train_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of the TorchTrainer (see module docstring).

    ``config`` keys: ``params`` (raw params dict), ``experiment``, ``seed``, ``shard_dir``,
    ``data_shape``, ``tracking_uri``, ``run_id``, ``run_config`` (the resolved config that identifies
    the run), ``label`` (prefix of log lines), ``fail_at_step`` (tests: raise once at that step).
    """
    import ray.train
    import ray.train.torch

    from pipeline.data.readers import train_loader

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    params: Params = validate_params(config["params"])
    exp = params.experiment(config["experiment"])
    torch.set_num_threads(params.train.threads_per_worker)
    torch.set_flush_denormal(True)  # denormals from vanishing probabilities slow CPU arithmetic ~100x
    seed = int(config["seed"])
    seed_everything(seed * 1000 + rank)
    device = ray.train.torch.get_device()
    shape = DataShape(**config["data_shape"])
    state = TrainingState(
        build_models(params, exp, shape), exp, objective_spec(params, exp, shape), seed=seed, device=device
    )
    run_config = config["run_config"]
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state.load_state_dict(load_state_file(Path(d) / STATE_FILE), run_config)
        if rank == 0:
            print(f"[{config['label']}] resumed from step {state.step}/{exp.total_iterations}", flush=True)

    per_rank = exp.batch_size // world
    # the shuffle buffer stays within one rank's share of a pass over the shards (see pipeline.data.readers)
    share = config["train_count"] // (2 * world)
    loader = train_loader(
        config["shard_dir"], "train", per_rank, seed=seed * 1000 + state.step, shuffle_buffer=max(1, min(1000, share))
    )
    batches = _endless(loader)
    layout = _WorkerLayout(config, rank, world)
    log_every, ckpt_every = params.train.log_every, params.train.checkpoint_every
    uri, run_id = config.get("tracking_uri"), config.get("run_id")
    fail_at = config.get("fail_at_step")
    fail_marker = Path(config["fail_marker"]) if config.get("fail_marker") else None
    t_last, n_last = time.perf_counter(), 0
    window: list[dict[str, float]] = []
    while not state.done:
        images, labels, keys = next(batches)
        layout.record(keys)
        if fail_at is not None and state.step == fail_at and rank == 0 and fail_marker and not fail_marker.exists():
            fail_marker.write_text("failed once")
            raise RuntimeError(f"injected failure at step {state.step}")
        upcoming = state.step + 1
        is_eval = bool(params.train.eval_every) and upcoming % params.train.eval_every == 0
        is_log = upcoming % log_every == 0 or upcoming == exp.total_iterations or is_eval
        metrics = state.train_step(images, labels, diagnose=is_log)
        window.append(metrics)
        n_last += images.shape[0] * world
        is_ckpt = state.step % ckpt_every == 0 or state.done
        if not (is_log or is_ckpt):
            continue
        keys = sorted({k for m in window for k in m})
        local = {k: float(np.nanmean([m.get(k, float("nan")) for m in window])) for k in keys}
        report = _mean_over_ranks(local, keys)
        elapsed = time.perf_counter() - t_last
        report.update(step=float(state.step), images_per_s=n_last / max(elapsed, 1e-9))
        t_last, n_last, window = time.perf_counter(), 0, []
        eval_every = params.train.eval_every
        if rank == 0 and eval_every and (state.step % eval_every == 0 or state.done):
            from pipeline.train.online_eval import online_metrics

            report.update(online_metrics(exp.name, state, params, Path(config["shard_dir"]), Path(config["root"])))
        if rank == 0:
            state.history.append({k: round(v, 6) for k, v in report.items()})
            shown = " ".join(
                f"{k} {report[k]:.4g}"
                for k in ("loss", "rf_loss", "align_loss", "label_loss", "nt_xent", "train_accuracy", "assignment_acc")
                if k in report
            )
            print(
                f"[{config['label']}] step {state.step}/{exp.total_iterations} {shown} "
                f"gnorm {report['grad_norm']:.3g} img/s {report['images_per_s']:.0f}",
                flush=True,
            )
            if uri and run_id:
                from pipeline.tracking import log_metrics

                log_metrics(uri, run_id, report, step=state.step)
        if is_ckpt:
            layout.write()
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = None
                if rank == 0:
                    torch.save(state.state_dict(run_config), os.path.join(tmp, STATE_FILE))
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report({k: v for k, v in report.items() if math.isfinite(v)}, checkpoint=ckpt)
        else:
            ray.train.report({k: v for k, v in report.items() if math.isfinite(v)})
