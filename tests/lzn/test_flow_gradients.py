"""Gradients of the latent flow in the regime the configs train in (LZN_SPEC §1.6, §1.8).

Every LZN encoder is trained through these gradients. The references are the naive ``[n, N, q]``
broadcast form (``naive_flow``) differentiated by autograd in float64; the cases are the configs'
(eps 1e-4 for Euler as in case study 2, 1e-3 for DPM-Solver++ as in cases 1 and 3, both for both),
with hundreds of anchors, ``own`` the same tensor as ``anchors`` (the own-anchor and anchor-set terms
of dL/dA are each large and cancel there) and anchors of std 1, 3 and 10.
"""

from __future__ import annotations

import pytest
import torch
from naive_flow import naive_euler_assign, naive_latents
from torch.autograd import gradcheck

from lzn.flow import assign, compute_latents

F64 = torch.float64
N, Q, STEPS = 256, 64, 20


def _case(std: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(N, Q, generator=g, dtype=F64) * std
    noise = torch.randn(N, Q, generator=g, dtype=F64)
    cotangent = torch.randn(N, Q, generator=g, dtype=F64)
    weights = torch.rand(N, generator=g, dtype=F64) + 0.25
    return anchors, noise, cotangent, weights


def _grads(fn, anchors, noise, cotangent, weights, dtype):
    """``(z, dL/dA, dL/dw)`` of ``L = <z, cotangent>``, ``z = fn(A, A, noise, w)`` (own is A itself)."""
    a = anchors.to(dtype).requires_grad_(True)
    w = None if weights is None else weights.to(dtype).requires_grad_(True)
    z = fn(a, a, noise.to(dtype), w)
    inputs = (a,) if w is None else (a, w)
    grads = torch.autograd.grad((z * cotangent.to(dtype)).sum(), inputs)
    return [t.detach().double() for t in (z, *grads)]


def _rel(got, ref):
    return float((got - ref).norm() / ref.norm())


@pytest.mark.parametrize("solver", ["euler", "dpm++"])
@pytest.mark.parametrize("eps", [1e-4, 1e-3])
@pytest.mark.parametrize("std", [1.0, 3.0, 10.0])
def test_compute_latents_gradients_match_naive_formula(solver, eps, std):
    anchors, noise, cot, w = _case(std, seed=int(std * 10) + (solver == "dpm++"))
    alpha = 0.45 if solver == "euler" else 1.0  # case study 2 / cases 1 and 3
    for weights in (None, w):

        def naive(a, own, nz, wt):
            return naive_latents(a, own, nz, steps=STEPS, solver=solver, eps=eps, alpha=alpha, weights=wt)

        ref = _grads(naive, anchors, noise, cot, weights, F64)
        naive32 = _grads(naive, anchors, noise, cot, weights, torch.float32)
        for ckpt in (False, True):

            def ours(a, own, nz, wt, ckpt=ckpt):
                return compute_latents(a, own, nz, steps=STEPS, solver=solver, eps=eps, alpha=alpha, weights=wt,
                                       checkpoint=ckpt)

            got = _grads(ours, anchors, noise, cot, weights, F64)
            for g, r in zip(got, ref):  # z, dL/dA (and dL/dw)
                assert _rel(g, r) <= 1e-8, (weights is None, ckpt, _rel(g, r))
            # float32: no worse than 2x the naive form's float32 error (both against float64)
            got32 = _grads(ours, anchors, noise, cot, weights, torch.float32)
            for g, n32, r in zip(got32[1:], naive32[1:], ref[1:]):
                assert _rel(g, r) <= 2 * _rel(n32, r), (weights is None, ckpt, _rel(g, r), _rel(n32, r))


@pytest.mark.parametrize("std", [1.0, 10.0])
def test_assign_gradients_match_naive_formula(std):
    anchors, _, _, w = _case(std, seed=3)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(N, Q, generator=g, dtype=F64)
    cot_end = torch.randn(N, Q, generator=g, dtype=F64)
    cot_p = torch.randn(STEPS, N, N, generator=g, dtype=F64)
    for weights in (None, w):
        results = []
        for fn in (
            lambda zz, a, wt: naive_euler_assign(zz, a, STEPS, wt),
            lambda zz, a, wt: assign(zz, a, steps=STEPS, weights=wt),
            lambda zz, a, wt: assign(zz, a, steps=STEPS, weights=wt, checkpoint=True),
        ):
            zz, a = z.clone().requires_grad_(True), anchors.clone().requires_grad_(True)
            wt = None if weights is None else weights.clone().requires_grad_(True)
            end, probs = fn(zz, a, wt)
            loss = (end * cot_end).sum() + (probs * cot_p).sum()
            results.append(torch.autograd.grad(loss, [t for t in (zz, a, wt) if t is not None]))
        for got in results[1:]:
            for g_, r in zip(got, results[0]):
                assert _rel(g_, r) <= 1e-8


@pytest.mark.parametrize("solver,steps", [("euler", 6), ("dpm++", 6)])
def test_gradcheck_at_small_eps_with_own_the_anchors(solver, steps):
    g = torch.Generator().manual_seed(5)
    a = torch.randn(8, 3, generator=g, dtype=F64, requires_grad=True)
    noise = torch.randn(8, 3, generator=g, dtype=F64, requires_grad=True)
    w = (torch.rand(8, generator=g, dtype=F64) + 0.5).requires_grad_(True)
    for ckpt in (False, True):

        def fn(a, noise, w, ckpt=ckpt):
            return compute_latents(a, a, noise, steps=steps, solver=solver, eps=1e-4, weights=w, checkpoint=ckpt)

        assert gradcheck(fn, (a, noise, w))
