"""Collectives for latent parallelism (LZN_SPEC §1.6; paper App. A.3).

Every rank encodes its local shard; ``gather_with_grad`` builds the global anchor set on every
rank while keeping the autograd graph, so that the gradient a rank computes for a remote anchor
flows back to the rank that produced it. Works with any initialised ``torch.distributed``
process group (gloo on CPU, nccl on GPU); without one every function is the single-process
identity.

Gradient convention: the backward pass all-reduces (sums) the incoming ``[world * n, ...]``
gradient and returns this rank's slice, i.e. it yields this rank's share of the gradient of the
*sum over ranks* of the per-rank losses. With DDP, which averages parameter gradients over
ranks, a per-rank loss that is a mean over local rows therefore trains on the mean over the
global batch, exactly like one process holding all the rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["world_info", "gather_with_grad", "all_reduce_sum"]


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if not _active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


_MAX_DIMS = 8


def _check_equal_shapes(t: Tensor, world: int) -> None:
    """One all_gather of ``[ndim, *shape, 0 ...]``; ValueError on every rank if any shape differs."""
    if t.dim() > _MAX_DIMS:
        raise ValueError(f"gather_with_grad: t may have at most {_MAX_DIMS} dims, got {t.dim()}")
    shape = torch.zeros(_MAX_DIMS + 1, dtype=torch.int64, device=t.device)
    shape[: t.dim() + 1] = torch.tensor([t.dim(), *t.shape], dtype=torch.int64)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    found = [tuple(int(v) for v in s[1 : 1 + int(s[0])]) for s in shapes]
    if any(s != found[0] for s in found):
        raise ValueError(
            f"gather_with_grad: t must have the same shape [n, ...] on every rank (equal local "
            f"batch sizes); got shapes by rank {found}"
        )


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        ctx.rank, ctx.n = dist.get_rank(), t.shape[0]
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(t: Tensor) -> Tensor:
    """Autograd-aware all_gather: ``t [n, ...]`` on every rank -> ``[world * n, ...]`` (rank order).

    Rows ``rank * n : (rank + 1) * n`` of the result are this rank's ``t``. Every rank must call it
    with the same shape (checked; a ValueError lists the shapes otherwise). Identity when no
    process group is initialised.
    """
    if not isinstance(t, Tensor) or t.dim() < 1:
        raise ValueError("t must be a tensor of shape [n, ...] (at least 1 dim)")
    if not _active():
        return t
    world = dist.get_world_size()
    if world == 1:
        return t
    _check_equal_shapes(t, world)
    return _GatherWithGrad.apply(t)


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over ranks, as a new tensor without gradient (a detached copy without a group)."""
    if not isinstance(t, Tensor):
        raise ValueError(f"t must be a tensor, got {type(t).__name__}")
    out = t.detach().clone()
    if _active() and dist.get_world_size() > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out
