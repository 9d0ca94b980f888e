"""Online evaluation inside the training loop (rank 0, every ``train.eval_every`` steps).

Quick versions of the evaluation stages, computed on the EMA weights copied into a scratch copy of
the modules (the training modules, optimizer and RNG state are never touched), so that a sweep can
rank and stop trials on the quantity it cares about:

- ``probe_top1`` (encoders ``rf_lzn``, ``simclr``, ``lzn_repr``, ``lzn_joint``): linear probe
  (:func:`lzn.probe.train_linear_probe`, standardised features) on the backbone ``features(x)`` of
  the train split, top-1 on the test split; ``probe.lr/weight_decay/batch_size/seed`` with at most
  :data:`PROBE_EPOCHS` epochs.
- ``accuracy`` (``lzn_joint``): reverse label flow classification of the test split (LZN_SPEC §2.3)
  in consecutive batches of ``classify.batch_size``, alpha = 1, ``classify.label_steps`` steps.
- ``fid`` (generative ``rf``, ``rf_lzn``, ``rf_cond``, ``lzn_joint``): :data:`FID_SAMPLES` Euler
  samples (:data:`FID_STEPS` steps; class-balanced for the conditional models) against as many
  seeded training images, in the features of the reference classifier
  ``<root>/models/refnet/model.pt``. Without that file ``fid`` is omitted.

The noise, the probe initialisation and the generated samples are seeded by constants, so values at
different steps (and of different trials) differ only through the weights. On the 8x8 digits a call
takes about a second or two on one CPU thread.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.params import CONDITIONAL, ENCODERS, EXPERIMENTS, GENERATIVE, MODULES, Params

__all__ = [
    "FID_SAMPLES",
    "FID_STEPS",
    "ONLINE_METRICS",
    "PROBE_EPOCHS",
    "REFNET_METRICS",
    "TRAINING_METRICS",
    "ema_modules",
    "online_metrics",
    "reported_metrics",
]

PROBE_EPOCHS = 30
FID_SAMPLES = 256
FID_STEPS = 10
_SEED = 20_251  # fixed seed of the online evaluation's own draws

ONLINE_METRICS: dict[str, tuple[str, ...]] = {
    name: tuple(
        m
        for m, applies in (
            ("probe_top1", name in ENCODERS),
            ("accuracy", name == "lzn_joint"),
            ("fid", name in GENERATIVE),
        )
        if applies
    )
    for name in EXPERIMENTS
}
"""Metrics :func:`online_metrics` adds to the worker's reports, per experiment."""

REFNET_METRICS: tuple[str, ...] = ("fid",)
"""Online metrics that need ``models/refnet/model.pt`` (omitted without it)."""

_COMMON = ("loss", "grad_norm", "skipped_steps", "step", "images_per_s")
_OBJECTIVE: dict[str, tuple[str, ...]] = {
    "rf": ("rf_loss",),
    "rf_cond": ("rf_loss",),
    "rf_lzn": ("rf_loss", "latent_std", "assignment_acc", "assignment_prob", "ode_error"),
    "simclr": ("nt_xent",),
    "lzn_repr": ("align_loss", "assignment_acc", "assignment_prob", "ode_error"),
    "lzn_joint": (
        "rf_loss", "label_loss", "train_accuracy", "latent_std", "assignment_acc", "assignment_prob", "ode_error",
    ),
}
TRAINING_METRICS: dict[str, tuple[str, ...]] = {
    name: _COMMON + _OBJECTIVE[name] + tuple(f"lr_{m}" for m in sorted(MODULES[name])) for name in EXPERIMENTS
}
"""Metrics every report of the worker loop carries (``pipeline.train.worker``, ``lzn.objectives``), per experiment.

The reverse-flow diagnostics of ``rf_lzn`` / ``lzn_joint`` are computed on logging steps only
(``train.log_every``); a sweep logs on every evaluation step, so they are in each of its reports."""


def reported_metrics(experiment: str) -> tuple[str, ...]:
    """Every metric a training run of ``experiment`` with online evaluation reports."""
    return TRAINING_METRICS[experiment] + ONLINE_METRICS[experiment]


# ------------------------------------------------------------------------------------ helpers
def ema_modules(state: Any) -> dict[str, nn.Module]:
    """Scratch copies of ``state.modules`` holding the EMA weights, in eval mode without gradients."""
    out: dict[str, nn.Module] = {}
    for name, module in state.modules.items():
        scratch = copy.deepcopy(module)
        for p in scratch.parameters():
            p.grad = None
        state.emas[name].copy_to(scratch)
        out[name] = scratch.eval().requires_grad_(False)
    return out


# Per-process caches (a worker evaluates every ``train.eval_every`` steps), keyed by what they were
# computed from: a split by its shard folder; the reference network by its file's sha256, so a
# rewritten refnet is loaded again; its features of the real images by both.
_SPLITS: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}  # (resolved shard dir, split)
_NETS: dict[str, Any] = {}  # refnet sha256 -> network
_REAL_FEATURES: dict[tuple[str, str, int], Tensor] = {}  # (resolved shard dir, refnet sha256, n)


def _split(shard_dir: Path, split: str) -> tuple[Tensor, Tensor]:
    """``(float images [N, C, H, W] in [-1, 1], labels [N])`` of a split, read once per process."""
    key = (str(Path(shard_dir).resolve()), split)
    if key not in _SPLITS:
        from pipeline.data.images import from_uint8
        from pipeline.data.loaders import read_split

        images, labels, _ = read_split(Path(shard_dir), split)  # its count check is local to this process
        _SPLITS[key] = (from_uint8(images), labels)
    return _SPLITS[key]


@torch.no_grad()
def _batched(fn: Any, images: Tensor, device: torch.device, batch: int = 512) -> Tensor:
    return torch.cat([fn(images[i : i + batch].to(device)).float().cpu() for i in range(0, images.shape[0], batch)])


# ------------------------------------------------------------------------------------ metrics
def probe_top1(encoder: nn.Module, params: Params, shard_dir: Path, device: torch.device) -> float:
    from lzn.probe import train_linear_probe

    x_tr, y_tr = _split(shard_dir, "train")
    x_te, y_te = _split(shard_dir, "test")
    f_tr = _batched(encoder.features, x_tr, device)
    f_te = _batched(encoder.features, x_te, device)
    cfg = params.probe
    result = train_linear_probe(
        f_tr, y_tr, f_te, y_te, epochs=min(cfg.epochs, PROBE_EPOCHS), lr=cfg.lr, weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size, seed=cfg.seed, num_classes=int(max(y_tr.max(), y_te.max())) + 1,
    )
    return float(result["top1"])


@torch.no_grad()
def classify_accuracy(modules: dict[str, nn.Module], params: Params, exp: Any, shard_dir: Path,
                      device: torch.device) -> float:
    """Reverse label flow accuracy of the test split: the ``classify`` stage's default protocol
    (:func:`pipeline.evaluate.classify.label_flow_accuracy` at ``classify.batch_size`` and ``classify.alpha``)."""
    from pipeline.evaluate.classify import label_flow_accuracy, label_flow_spec

    images, labels = _split(shard_dir, "test")
    flow, cfg = exp.latent_flow.spec(), params.classify
    acc = label_flow_accuracy(
        modules["encoder"], modules["labels"], images.to(device), labels, batch_size=cfg.batch_size,
        alphas=[cfg.alpha], flow=flow, label_flow=label_flow_spec(flow, cfg),
        generator=torch.Generator().manual_seed(_SEED), desc="online classify",
    )
    return acc[float(cfg.alpha)]


def _reference_network(root: Path) -> tuple[str, Any] | None:
    """``(sha256 of the file, network)`` of ``<root>/models/refnet/model.pt``, or ``None`` without it."""
    from pipeline.evaluate.feature_nets import load_reference_classifier
    from pipeline.evaluate.refnet import refnet_path
    from pipeline.io import sha256_file

    path = refnet_path(root)
    if not path.is_file():
        return None
    digest = sha256_file(path)
    if digest not in _NETS:
        _NETS[digest] = load_reference_classifier(path)
    return digest, _NETS[digest]


@torch.no_grad()
def euler_fid(modules: dict[str, nn.Module], params: Params, exp: Any, shard_dir: Path,
              reference: tuple[str, Any], device: torch.device) -> float:
    """FID of :data:`FID_SAMPLES` Euler samples against as many seeded training images, in the features
    of ``reference`` (``(sha256, network)`` of :func:`_reference_network`)."""
    from lzn.generation import generate
    from lzn.metrics import fid_from_features

    images, _ = _split(shard_dir, "train")
    n = min(FID_SAMPLES, images.shape[0])
    digest, net = reference
    key = (str(Path(shard_dir).resolve()), digest, n)
    real = _REAL_FEATURES.get(key)
    if real is None:
        idx = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(_SEED))[:n]
        real = _REAL_FEATURES[key] = net.features(images[idx])
    num_classes = int(modules["labels"].num_classes) if "labels" in modules else _num_classes(shard_dir)
    labels = (torch.arange(n) % num_classes).to(device) if exp.name in CONDITIONAL else None
    fake, _ = generate(
        exp.name, modules, n, image_shape=tuple(images.shape[1:]), labels=labels, latent_dim=exp.latent_dim,
        num_classes=num_classes, sampler="euler", steps=FID_STEPS,
        generator=torch.Generator(device=device).manual_seed(_SEED), label_steps=params.classify.label_steps,
    )
    return fid_from_features(real, net.features(fake.cpu()))


def _num_classes(shard_dir: Path) -> int:
    from pipeline.data.manifest import load_manifest

    return len(load_manifest(shard_dir)["class_names"])


def online_metrics(experiment: str, state: Any, params: Params, shard_dir: Path, root: Path) -> dict[str, float]:
    """The :data:`ONLINE_METRICS` of ``experiment`` for the EMA weights of ``state`` (a ``TrainingState``).

    ``fid`` needs ``<root>/models/refnet/model.pt`` and is left out without it. Non-finite values
    (a diverged model) are returned as they are; the worker drops them from its report.
    """
    exp = params.experiment(experiment)
    device = torch.device(state.device)
    out: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        modules = ema_modules(state)
        if experiment in ENCODERS:
            out["probe_top1"] = _guard(probe_top1, modules["encoder"], params, Path(shard_dir), device)
        if experiment == "lzn_joint":
            out["accuracy"] = _guard(classify_accuracy, modules, params, exp, Path(shard_dir), device)
        if experiment in GENERATIVE:
            reference = _reference_network(Path(root))
            if reference is not None:
                out["fid"] = _guard(euler_fid, modules, params, exp, Path(shard_dir), reference, device)
    return out


def _guard(fn: Any, *args: Any) -> float:
    """A metric of a diverged model (non-finite weights/features) is NaN rather than an exception."""
    try:
        value = float(fn(*args))
    except ValueError as err:
        if "non-finite" in str(err):
            return math.nan
        raise
    return value
