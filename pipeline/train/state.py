"""The training state of one experiment on one rank, and its checkpoints (LZN_SPEC §2.0).

:class:`TrainingState` holds the modules, the Adam optimizer (one param group per module, each with
its own learning rate), the LinearLR warm-up, the EMAs and the step counter, and performs one
optimisation step: objective -> backward -> gradient averaging across ranks -> clipping -> a step
skipped on *every* rank when any rank's loss or gradient is non-finite -> EMA. Modules stop training
(``requires_grad=False``, EMA frozen) once the step passes their own iteration budget.

A checkpoint is one file, :data:`STATE_FILE`, in a folder (Ray's checkpoint directory): modules, EMA
(both the EMA state and the EMA weights as a module state dict), optimizer, scheduler, step, the
config that identifies the run and its hash, the logged history and the steps it was resumed at.
:meth:`TrainingState.restore` refuses a checkpoint of another experiment or config
(:class:`pipeline.errors.CheckpointMismatchError`, naming the keys that differ).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lzn.ema import EMA
from lzn.objectives import ObjectiveSpec, compute_objective
from pipeline.errors import CheckpointMismatchError
from pipeline.params import ExperimentConfig, config_hash

__all__ = ["STATE_FILE", "TrainingState", "config_difference", "read_checkpoint"]

STATE_FILE = "state.pt"
"""The checkpoint's file inside a checkpoint folder."""


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
        """Everything to resume from, stamped with ``config`` (the run's identity) and its hash."""
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
        """Load ``state`` (of :meth:`state_dict`) unless it was saved for another experiment or ``config``."""
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

    # ------------------------------------------------------------------ checkpoint folders
    def save(self, directory: Path, config: dict[str, Any]) -> None:
        """Write this state (identified by ``config``) as the checkpoint folder ``directory``."""
        torch.save(self.state_dict(config), Path(directory) / STATE_FILE)

    def restore(self, directory: Path, config: dict[str, Any]) -> None:
        """Continue from the checkpoint folder ``directory``; refused unless it was written with ``config``."""
        self.load_state_dict(read_checkpoint(directory), config)


def read_checkpoint(directory: Path) -> dict[str, Any]:
    """The state dict saved in the checkpoint folder ``directory`` (on the CPU, tensors only)."""
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
