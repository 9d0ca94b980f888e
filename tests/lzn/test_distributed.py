"""Tests of lzn.distributed: two gloo processes must reproduce one process holding all rows."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lzn.anchors import class_weights
from lzn.distributed import all_reduce_sum, gather_with_grad, world_info
from lzn.flow import assign, compute_latents
from lzn.losses import alignment_loss

F64 = torch.float64
WORLD, LOCAL, DIM_IN, Q = 2, 8, 6, 16
SCALE = 2.0  # anchors of std ~2: the own-anchor and anchor-set gradient terms are large and cancel


def _problem():
    """Fixed data for the global batch of WORLD * LOCAL samples and a seeded tiny encoder."""
    g = torch.Generator().manual_seed(0)
    view1 = torch.randn(WORLD * LOCAL, DIM_IN, generator=g, dtype=F64)
    view2 = view1 + 1.0 * torch.randn(WORLD * LOCAL, DIM_IN, generator=g, dtype=F64)
    noise = torch.randn(WORLD * LOCAL, Q, generator=g, dtype=F64)
    labels = torch.randint(0, 3, (WORLD * LOCAL,), generator=g)
    torch.manual_seed(1)
    encoder = nn.Linear(DIM_IN, Q).double()
    with torch.no_grad():
        encoder.weight.mul_(SCALE)
    return view1, view2, noise, labels, encoder


def _lzn_loss(encoder, view1, view2, noise, rows):
    """LZN alignment loss of the rows ``rows`` against the (gathered) global anchor sets (eps = 1e-4)."""
    a1, a2 = encoder(view1[rows]), encoder(view2[rows])
    all1, all2 = gather_with_grad(a1), gather_with_grad(a2)
    z = compute_latents(all1, a1, noise[rows], steps=5, eps=1e-4, alpha=0.45)
    _, probs = assign(z, all2, steps=5)
    return alignment_loss(probs, torch.arange(rows.start, rows.stop))


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        view1, view2, noise, labels, encoder = _problem()
        rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
        loss = _lzn_loss(encoder, view1, view2, noise, rows)
        loss.backward()
        # what DDP does: average the parameter gradients and (for reporting) the losses
        grads = [all_reduce_sum(p.grad) / WORLD for p in encoder.parameters()]
        mean_loss = all_reduce_sum(loss) / WORLD
        result = {"loss": mean_loss, "grads": grads, "world_info": world_info()}
        # the gathered tensor is in rank order
        result["gathered"] = gather_with_grad(torch.full((2, 3), float(rank), dtype=F64))
        # global class frequencies
        result["weights"] = class_weights(labels[rows], 3, dtype=F64)
        # unequal local sizes are refused on every rank
        try:
            gather_with_grad(torch.zeros(LOCAL if rank == 0 else LOCAL - 1, 3))
            result["unequal"] = "no error"
        except ValueError as err:
            result["unequal"] = str(err)
        torch.save(result, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_identity_without_process_group():
    t = torch.randn(5, 3, requires_grad=True)
    assert gather_with_grad(t) is t
    assert world_info() == (0, 1)
    s = all_reduce_sum(t)
    assert torch.equal(s, t.detach()) and not s.requires_grad


def test_two_gloo_ranks_match_single_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    view1, view2, noise, labels, encoder = _problem()
    loss = _lzn_loss(encoder, view1, view2, noise, slice(0, WORLD * LOCAL))
    loss.backward()
    ref_grads = [p.grad for p in encoder.parameters()]

    for rank, res in enumerate(results):
        assert res["world_info"] == (rank, WORLD)
        assert torch.allclose(res["loss"], loss.detach(), atol=1e-10, rtol=0)
        # relative to the largest gradient entry (the bias gradient is 0 up to rounding: translation invariance)
        scale = max(float(ref.abs().max()) for ref in ref_grads)
        for got, ref in zip(res["grads"], ref_grads):
            assert float((got - ref).abs().max()) <= 1e-9 * scale
        expected = torch.cat([torch.zeros(2, 3), torch.ones(2, 3)]).to(F64)
        assert torch.equal(res["gathered"], expected)
        freq = torch.bincount(labels, minlength=3).to(F64) / len(labels)
        assert torch.allclose(res["weights"], freq)
        assert "same shape" in res["unequal"]
    assert ref_grads[0].abs().sum() > 0
