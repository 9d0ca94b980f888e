"""Per-experiment training objectives (LZN_SPEC §2.1-§2.3, Algorithms of the paper's case studies).

Each objective maps a *local* minibatch to ``(loss, diagnostics)``. Quantities that define the
latent zones (anchors) are gathered across ranks with gradients (:func:`lzn.distributed.gather_with_grad`),
so the zones are computed over the global batch while each rank integrates only its own latents
(latent parallelism, LZN_SPEC §1.6). Every loss is a mean over the *local* rows, so the objective of
the whole job is the mean of the ranks' losses and averaging gradients across ranks (as DDP does)
gives exactly the gradient of one process holding the whole batch.

Experiments (DESIGN.md):
- ``rf``        RF loss of an unconditional decoder.
- ``rf_lzn``    RF loss of a decoder conditioned on the LZN latent of an image encoder (case study 1).
- ``simclr``    NT-Xent on two views (baseline of case study 2).
- ``lzn_repr``  latent alignment of two views, log form with cut-off (case study 2).
- ``rf_cond``   RF loss of a class-conditional decoder (baseline of case study 3).
- ``lzn_joint`` RF loss on (latent, label) + label alignment through learnable label anchors (case study 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lzn.anchors import class_weights
from lzn.augment import random_flip, simclr_views
from lzn.distributed import gather_with_grad, world_info
from lzn.experiments import GENERATIVE, NAMES, TWO_VIEW
from lzn.flow import FlowSpec, nearest_anchor
from lzn.losses import alignment_loss, nt_xent, rf_loss

OBJECTIVES = NAMES


@dataclass(frozen=True)
class ObjectiveSpec:
    """Method hyperparameters of one experiment (plain values; the pipeline maps params onto it).

    ``latent_flow``: the forward flow of the image latents (anchor -> latent). ``align_flow``: the
    reverse flow of the alignment loss (and, checkpointed, of the label flow of ``lzn_joint``);
    ``align_cutoff``/``align_log``: cut-off fraction and log/probability form of the alignment loss.
    ``flip_p``: horizontal-flip probability (case studies 1 and 3).
    ``simclr``: keyword arguments of :func:`lzn.augment.simclr_views`.
    """

    name: str
    num_classes: int = 0
    flip_p: float = 0.0
    latent_flow: FlowSpec = FlowSpec()
    align_flow: FlowSpec = FlowSpec()
    align_cutoff: float = 0.2
    align_log: bool = True
    temperature: float = 0.2
    rf_weight: float = 1.0
    label_weight: float = 1.0
    simclr: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"name: unknown experiment {self.name!r}; expected one of {', '.join(OBJECTIVES)}")


def global_randn(shape_local: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal draws for the local rows, taken from one draw over the *global* batch.

    With a generator seeded identically on every rank, rank r receives rows ``[r·n, (r+1)·n)`` of the
    same global draw, so a job with W workers × n samples sees exactly the noise of one process with
    W·n samples: results do not depend on the number of workers.
    """
    rank, world = world_info()
    n = shape_local[0]
    full = torch.randn((n * world, *shape_local[1:]), generator=generator, device=like.device, dtype=like.dtype)
    return full[rank * n : (rank + 1) * n]


def global_rand(n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Uniform [0, 1) draws for the local rows of one global draw (see :func:`global_randn`)."""
    rank, world = world_info()
    full = torch.rand(n * world, generator=generator, device=like.device, dtype=like.dtype)
    return full[rank * n : (rank + 1) * n]


def local_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A per-rank generator derived from the shared one, for augmentations (views differ across ranks)."""
    if generator is None:
        return None
    rank, _ = world_info()
    g = torch.Generator(device=device)
    g.manual_seed((generator.initial_seed() * 31 + 7919 * (rank + 1)) % (2**63 - 1))
    return g


def rf_pair(x: Tensor, generator: torch.Generator | None, eps: float = 1e-3) -> tuple[Tensor, Tensor, Tensor]:
    """RF training pair (LZN_SPEC §2.1) with worker-count-independent draws: ``(x_t, t, x0)``.

    ``t ~ U[eps, 1]``, ``x0 ~ N(0, I)``, ``x_t = t·x + (1 − t)·x0``; the target velocity is ``x − x0``.
    """
    t = global_rand(x.shape[0], generator, x) * (1.0 - eps) + eps
    x0 = global_randn(tuple(x.shape), generator, x)
    tb = t.reshape(-1, *([1] * (x.dim() - 1)))
    return tb * x + (1.0 - tb) * x0, t, x0


def _local_target(n_local: int, device: torch.device) -> Tensor:
    """Column of each local row in the gathered (global) anchor matrix."""
    rank, _ = world_info()
    return rank * n_local + torch.arange(n_local, device=device)


def image_latents(
    encoder: nn.Module, x: Tensor, flow: FlowSpec, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Anchors of the local images, the global anchor set and the local latents.

    Returns ``(z_local [n,q], anchors_all [N,q], a_local [n,q])`` in ``flow.dtype`` with ``z = C(X)``
    computed over the global batch (LZN_SPEC §1.2, eq. 1/4).
    """
    a_local = encoder(x).to(flow.dtype)
    anchors = gather_with_grad(a_local)
    noise = global_randn(tuple(a_local.shape), generator, a_local)
    return flow.latents(anchors, a_local, noise), anchors, a_local


@torch.no_grad()
def assignment_stats(end: Tensor, probs: Tensor, anchors: Tensor, target: Tensor) -> dict[str, float]:
    """Diagnostics of a reverse flow (LZN_SPEC §2.2 "Logged diagnostics") from its endpoint and probabilities.

    ``assignment_acc``: share of endpoints nearest to their own anchor; ``assignment_prob``: mean
    probability of the own anchor at the last recorded step; ``ode_error``:
    ``‖anchor[argmax p_last] − x_end‖ / ‖anchor‖`` averaged over rows.
    """
    end, anchors, last = end.detach(), anchors.detach(), probs[-1].detach()
    top = anchors[last.argmax(dim=1)]
    return {
        "assignment_acc": (nearest_anchor(end, anchors) == target).float().mean().item(),
        "assignment_prob": last.gather(1, target[:, None]).mean().item(),
        "ode_error": ((top - end).norm(dim=1) / top.norm(dim=1).clamp_min(1e-12)).mean().item(),
    }


#: Reverse flow of the diagnostics: Euler, 20 steps.
_DIAGNOSTIC_FLOW = FlowSpec()


@torch.no_grad()
def assignment_diagnostics(
    z: Tensor, anchors: Tensor, target: Tensor, flow: FlowSpec = _DIAGNOSTIC_FLOW, *, weights: Tensor | None = None
) -> dict[str, float]:
    """Run the reverse flow ``flow`` of ``z`` over ``anchors`` and return :func:`assignment_stats`."""
    end, probs = flow.assign(z.detach(), anchors.detach(), weights=weights)
    return assignment_stats(end, probs, anchors, target)


def _rf_term(
    decoder: nn.Module, x: Tensor, generator: torch.Generator | None, **cond: Tensor | None
) -> Tensor:
    x_t, t, x0 = rf_pair(x, generator)
    pred = decoder(x_t, t, **{k: v for k, v in cond.items() if v is not None})
    return rf_loss(pred, x, x0)


def compute_objective(
    spec: ObjectiveSpec,
    modules: dict[str, nn.Module],
    images: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    diagnose: bool = False,
) -> tuple[Tensor, dict[str, float]]:
    """Loss of one training step of ``spec.name`` on the local batch ``images [n,C,H,W]``, ``labels [n]``.

    ``modules`` holds ``decoder``, ``encoder`` and/or ``labels`` (:class:`lzn.anchors.LabelAnchors`)
    as the experiment needs. With ``diagnose`` the (costlier) reverse-flow diagnostics are added.
    """
    name = spec.name
    diag: dict[str, float] = {}
    n = images.shape[0]
    aug_generator = local_generator(generator, images.device)
    if name in GENERATIVE and spec.flip_p > 0:
        images = random_flip(images, spec.flip_p, generator=aug_generator)

    if name == "rf":
        loss = _rf_term(modules["decoder"], images, generator)
        diag["rf_loss"] = loss.item()
        return loss, diag

    if name == "rf_cond":
        onehot = F.one_hot(labels, spec.num_classes).to(images.dtype)
        loss = _rf_term(modules["decoder"], images, generator, y_onehot=onehot)
        diag["rf_loss"] = loss.item()
        return loss, diag

    if name == "rf_lzn":
        z, anchors, _ = image_latents(modules["encoder"], images, spec.latent_flow, generator)
        loss = _rf_term(modules["decoder"], images, generator, z=z.to(images.dtype))
        diag["rf_loss"] = loss.item()
        diag["latent_std"] = z.detach().std().item()
        if diagnose:
            diag.update(assignment_diagnostics(z, anchors, _local_target(n, z.device)))
        return loss, diag

    if name in TWO_VIEW:
        v1, v2 = simclr_views(images, generator=aug_generator, **spec.simclr)
        encoder = modules["encoder"]
        if name == "simclr":
            h1, h2 = gather_with_grad(encoder(v1)), gather_with_grad(encoder(v2))
            loss = nt_xent(h1, h2, spec.temperature, rows=_local_target(n, h1.device))
            diag["nt_xent"] = loss.item()
            return loss, diag
        z, _, _ = image_latents(encoder, v1, spec.latent_flow, generator)
        anchors2 = gather_with_grad(encoder(v2).to(z.dtype))
        target = _local_target(n, z.device)
        end, probs = spec.align_flow.assign(z, anchors2)
        loss = alignment_loss(probs, target, cutoff=spec.align_cutoff, log=spec.align_log).to(images.dtype)
        diag["align_loss"] = loss.item()
        diag.update(assignment_stats(end, probs, anchors2, target))
        return loss, diag

    # lzn_joint: image latent -> (RF decoder with label) + label flow over learnable label anchors
    label_anchors = modules["labels"]
    z, anchors, _ = image_latents(modules["encoder"], images, spec.latent_flow, generator)
    onehot = F.one_hot(labels, spec.num_classes).to(images.dtype)
    rf = _rf_term(modules["decoder"], images, generator, z=z.to(images.dtype), y_onehot=onehot)
    weights = class_weights(labels, spec.num_classes, dtype=z.dtype)  # global class frequencies (LZN_SPEC §1.5)
    # the label flow is checkpointed as in the official code (LZN_SPEC §1.8) and runs at the latent
    # flow's precision (``.to`` is the identity when they agree)
    label_matrix = label_anchors.A.to(z.dtype)
    end, probs = spec.align_flow.replace(checkpoint=True).assign(z, label_matrix, weights=weights)
    pred = nearest_anchor(end, label_matrix)
    label = alignment_loss(probs, labels, cutoff=spec.align_cutoff, log=spec.align_log).to(images.dtype)
    loss = spec.rf_weight * rf + spec.label_weight * label
    diag.update(
        rf_loss=rf.item(),
        label_loss=label.item(),
        train_accuracy=(pred == labels).float().mean().item(),
        latent_std=z.detach().std().item(),
    )
    if diagnose:
        diag.update(assignment_diagnostics(z, anchors, _local_target(n, z.device)))
    return loss, diag
