"""Tests of lzn.flow (closed-form velocity, latent computation, assignment) and lzn.prior."""

from __future__ import annotations

import math

import pytest
import torch
from naive_flow import naive_euler_assign, naive_euler_latents, naive_velocity
from scipy import stats
from torch.autograd import gradcheck

from lzn import dpm_solver, flow
from lzn.flow import assign, compute_latents, nearest_anchor, velocity
from lzn.prior import sample_prior

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# ----------------------------------------------------------------------------------------------
# velocity


@pytest.mark.parametrize("tau", [1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0])
def test_velocity_matches_naive_formula_float64(tau):
    g = _gen(1)
    n_anchors, q = 30, 5
    anchors = torch.randn(n_anchors, q, generator=g, dtype=F64) + 2.0  # common offset on purpose
    weights = torch.rand(n_anchors, generator=g, dtype=F64) * 3 + 0.1
    # half the rows random, half on the interpolation path of some anchor (velocity O(1))
    idx = torch.randint(n_anchors, (10,), generator=g)
    near = (1 - tau) * anchors[idx] + tau * torch.randn(10, q, generator=g, dtype=F64)
    x = torch.cat([torch.randn(10, q, generator=g, dtype=F64) * 3, near])
    for w in (None, weights):
        v, p = velocity(x, anchors, tau, w)
        v_ref, p_ref = naive_velocity(x, anchors, tau, w)
        assert _rel(v, v_ref) < 1e-10
        assert float((p - p_ref).abs().max()) < 1e-10
        assert torch.allclose(p.sum(1), torch.ones(20, dtype=F64), atol=1e-12)


def test_velocity_probs_at_tau_one_are_the_normalised_weights():
    g = _gen(2)
    anchors = torch.randn(7, 3, generator=g, dtype=F64)
    w = torch.rand(7, generator=g, dtype=F64) + 0.5
    x = torch.randn(4, 3, generator=g, dtype=F64)
    v, p = velocity(x, anchors, 1.0, w)
    assert torch.allclose(p, (w / w.sum()).expand(4, 7), atol=1e-14)
    assert torch.allclose(v, x - p @ anchors, atol=1e-12)


def test_velocity_float32_stable_at_small_tau_and_large_distances():
    g = _gen(3)
    anchors = torch.randn(50, 16, generator=g) * 100
    x = torch.randn(8, 16, generator=g) * 100
    w = torch.rand(50, generator=g)
    w[:10] = 0
    for tau in (1e-4, 1e-3, 0.5, 1.0):
        v, p = velocity(x, anchors, tau, w)
        assert torch.isfinite(v).all() and torch.isfinite(p).all()
        assert torch.allclose(p.sum(1), torch.ones(8), atol=1e-5)
        assert (p[:, :10] == 0).all()


def test_velocity_float32_agrees_with_float64():
    # measured max relative velocity error over these taus is ~1e-6 (x on reverse trajectories)
    g = _gen(4)
    anchors = torch.randn(64, 16, generator=g, dtype=F64)
    z = torch.randn(32, 16, generator=g, dtype=F64)
    for tau in (1.0, 0.5, 0.1, 0.05):
        x = (1 - tau) * anchors[:32] + tau * z
        v64, p64 = velocity(x, anchors, tau)
        v32, p32 = velocity(x.float(), anchors.float(), tau)
        assert _rel(v32.double(), v64) < 1e-4
        assert float((p32.double() - p64).abs().max()) < 1e-3


# ----------------------------------------------------------------------------------------------
# fused attention path


@pytest.mark.parametrize("tau", [1e-3, 0.05, 0.5, 1.0])
def test_fused_path_matches_naive(tau):
    g = _gen(5)
    anchors = torch.randn(40, 6, generator=g, dtype=F64) + 1.0
    w = torch.rand(40, generator=g, dtype=F64) + 0.1
    x = (1 - tau) * anchors[:12] + tau * torch.randn(12, 6, generator=g, dtype=F64) * 2
    for weights in (None, w):
        v_ref, _ = naive_velocity(x, anchors, tau, weights)
        for dtype, tol in ((F64, 1e-10), (torch.float32, 1e-4)):
            # float32 fused vs float64 naive: measured <= ~3e-6 relative on these inputs
            aset = flow._AnchorSet(anchors.to(dtype), None if weights is None else weights.to(dtype))
            y = x.to(dtype) - (1 - tau) * aset.centre  # the solvers' centred coordinates
            abar = aset.mean_anchor(y, tau) + aset.centre
            assert _rel((x - abar.double()) / tau, v_ref) < tol


def _op_names(fn):
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def test_fused_kernel_evaluates_without_autograd_and_matmul_path_with_it():
    g = _gen(6)
    anchors = torch.randn(64, 10, generator=g, requires_grad=True)
    own = anchors.detach()[:16].clone().requires_grad_(True)
    noise = torch.randn(16, 10, generator=g)

    def no_grad():
        with torch.no_grad():
            compute_latents(anchors, own, noise, steps=2)

    names = _op_names(no_grad)
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert "aten::_softmax" not in names  # no [n, N] softmax materialised
    # under autograd: the matmul + softmax form, whose backward is exact; the fused backward never runs
    names = _op_names(lambda: compute_latents(anchors, own, noise, steps=2).sum().backward())
    assert "aten::_softmax" in names
    assert not any("scaled_dot_product" in k for k in names)
    # a graph that needs no gradient (inputs that do not require grad) takes the fused kernel too
    names = _op_names(lambda: compute_latents(anchors.detach(), own.detach(), noise, steps=2))
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names


def test_compute_latents_euler_matches_naive_integration():
    g = _gen(7)
    anchors = torch.randn(25, 4, generator=g, dtype=F64)
    own = anchors[:10]
    noise = torch.randn(10, 4, generator=g, dtype=F64)
    w = torch.rand(25, generator=g, dtype=F64) + 0.2
    for weights in (None, w):
        z = compute_latents(anchors, own, noise, steps=7, eps=1e-3, alpha=0.45, weights=weights)
        z_ref = naive_euler_latents(anchors, own, noise, 7, 1e-3, 0.45, weights)
        assert _rel(z, z_ref) < 1e-9


def test_assign_euler_matches_naive_integration_and_records_probs():
    g = _gen(8)
    anchors = torch.randn(25, 4, generator=g, dtype=F64)
    z = torch.randn(9, 4, generator=g, dtype=F64)
    end, probs = assign(z, anchors, steps=6)
    end_ref, probs_ref = naive_euler_assign(z, anchors, 6)
    assert probs.shape == (6, 9, 25)
    assert _rel(end, end_ref) < 1e-9
    assert float((probs - probs_ref).abs().max()) < 1e-10
    assert torch.allclose(probs[0], torch.full((9, 25), 1 / 25, dtype=F64))


# ----------------------------------------------------------------------------------------------
# gradients


def test_gradcheck_velocity():
    g = _gen(9)
    x = torch.randn(3, 2, generator=g, dtype=F64, requires_grad=True)
    a = torch.randn(4, 2, generator=g, dtype=F64, requires_grad=True)
    w = (torch.rand(4, generator=g, dtype=F64) + 0.5).requires_grad_(True)
    for tau in (0.05, 0.4, 1.0):
        assert gradcheck(lambda x, a, w, t=tau: velocity(x, a, t, w), (x, a, w))


@pytest.mark.parametrize("solver,steps", [("euler", 3), ("dpm++", 4)])
@pytest.mark.parametrize("ckpt", [False, True])
def test_gradcheck_compute_latents(solver, steps, ckpt):
    g = _gen(10)
    a = torch.randn(5, 3, generator=g, dtype=F64, requires_grad=True)
    own = torch.randn(3, 3, generator=g, dtype=F64, requires_grad=True)
    noise = torch.randn(3, 3, generator=g, dtype=F64, requires_grad=True)
    w = (torch.rand(5, generator=g, dtype=F64) + 0.5).requires_grad_(True)

    def fn(a, own, noise, w):
        return compute_latents(a, own, noise, steps=steps, solver=solver, eps=0.1, weights=w, checkpoint=ckpt)

    assert gradcheck(fn, (a, own, noise, w))


@pytest.mark.parametrize("solver,steps", [("euler", 3), ("dpm++", 4)])
def test_gradcheck_assign(solver, steps):
    g = _gen(11)
    z = torch.randn(3, 2, generator=g, dtype=F64, requires_grad=True)
    a = torch.randn(4, 2, generator=g, dtype=F64, requires_grad=True)
    w = (torch.rand(4, generator=g, dtype=F64) + 0.5).requires_grad_(True)
    assert gradcheck(lambda z, a, w: assign(z, a, steps=steps, solver=solver, weights=w), (z, a, w))


@pytest.mark.parametrize("solver", ["euler", "dpm++"])
def test_checkpoint_gives_same_values_and_gradients(solver):
    g = _gen(12)
    a = torch.randn(20, 4, generator=g, dtype=F64, requires_grad=True)
    noise = torch.randn(20, 4, generator=g, dtype=F64)
    results = []
    for ckpt in (False, True):
        z = compute_latents(a, a, noise, steps=6, solver=solver, checkpoint=ckpt)
        end, probs = assign(z, a, steps=6, solver=solver, checkpoint=ckpt)
        loss = probs[-1].diagonal().sum() + end.sum()
        (grad,) = torch.autograd.grad(loss, a)
        results.append((z.detach(), probs.detach(), grad))
    for u, v in zip(results[0], results[1]):
        assert torch.allclose(u, v, atol=1e-12, rtol=0)


def _saved_sizes(fn):
    """Numbers of elements of the distinct tensors autograd saves while ``fn`` runs."""
    sizes = {}

    def pack(t):
        sizes[(t.data_ptr(), t.numel())] = t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return list(sizes.values())


def test_backward_memory_without_and_with_checkpointing():
    # n * N = 8192 elements per evaluation; trajectory points n * q = 128 per evaluation
    n, big_n, q, steps = 32, 256, 4, 5
    g = _gen(20)
    a = torch.randn(big_n, q, generator=g, requires_grad=True)
    noise = torch.randn(n, q, generator=g)
    z = torch.randn(n, q, generator=g)
    for solver in ("euler", "dpm++"):
        # without checkpointing: the [n, N] probabilities of every evaluation, O(steps * n * N)
        plain = _saved_sizes(lambda s=solver: compute_latents(a, a[:n], noise, steps=steps, solver=s))
        assert sum(1 for k in plain if k == n * big_n) == steps, solver
        # with it: only [n, q] points and the [N, q] anchor set, O(steps * n * q + N * q)
        ck = _saved_sizes(lambda s=solver: compute_latents(a, a[:n], noise, steps=steps, solver=s, checkpoint=True))
        assert max(ck) < n * big_n, (solver, max(ck))
        assert sum(ck) <= 4 * steps * n * q + 4 * big_n * q, (solver, sum(ck))
        assert max(_saved_sizes(lambda s=solver: assign(z, a, steps=steps, solver=s))) >= n * big_n
        assert max(_saved_sizes(lambda s=solver: assign(z, a, steps=steps, solver=s, checkpoint=True))) < n * big_n


# ----------------------------------------------------------------------------------------------
# solver accuracy


@pytest.mark.parametrize("solver", ["euler", "dpm++"])
def test_single_anchor_is_solved_exactly(solver):
    # with one anchor the data prediction is constant and both solvers are exact
    a = torch.tensor([[1.5, -2.0, 0.5]], dtype=F64)
    noise = torch.randn(4, 3, generator=_gen(13), dtype=F64)
    z = compute_latents(a, a.expand(4, 3), noise, steps=5, solver=solver, eps=1e-3, alpha=0.7)
    t_end = 1.0 if solver == "euler" else 1.0 - flow.DPM_TAU_MARGIN
    assert torch.allclose(z, (1 - t_end) * a + t_end * 0.7 * noise, atol=1e-12)
    end, probs = assign(z, a, steps=5, solver=solver)
    assert torch.allclose(end, a.expand(4, 3), atol=1e-12)
    assert torch.all(probs == 1)


def test_convergence_orders():
    # error vs a fine reference when the step count doubles from 20 to 40: Euler is first order
    # (measured ratio 2.0); the multistep DPM-Solver++ (orders 1, 2 warm-up, then 3) measured
    # ratio ~4.8. A sign error in a higher-order term drops the ratio to <= 2.
    g = _gen(0)
    a = torch.randn(6, 2, generator=g, dtype=F64)
    own, noise = a[:4], torch.randn(4, 2, generator=g, dtype=F64)
    kw = dict(eps=0.05)
    ref_dpm = compute_latents(a, own, noise, steps=3000, solver="dpm++", **kw)
    ref_euler = compute_latents(a, own, noise, steps=6000, solver="euler", **kw)

    def err(solver, steps, ref):
        return float((compute_latents(a, own, noise, steps=steps, solver=solver, **kw) - ref).abs().max())

    ratio_euler = err("euler", 20, ref_euler) / err("euler", 40, ref_euler)
    ratio_dpm = err("dpm++", 20, ref_dpm) / err("dpm++", 40, ref_dpm)
    assert 1.6 < ratio_euler < 2.5
    assert ratio_dpm > 3.5
    assert err("dpm++", 20, ref_dpm) < 0.2 * err("euler", 20, ref_euler)


def _reference_dpm_update(x, preds, taus, tau, order):
    """The multistep DPM-Solver++ update as written in dpm_solver_pytorch (dpmsolver++)."""
    lam = dpm_solver.lam
    s0, m0, alpha_t = taus[-1], preds[-1], 1 - tau
    h = lam(tau) - lam(s0)
    phi1 = math.expm1(-h)
    if order == 1:
        return (tau / s0) * x - alpha_t * phi1 * m0
    m1, r0 = preds[-2], (lam(s0) - lam(taus[-2])) / h
    d1_0 = (m0 - m1) / r0
    if order == 2:
        return (tau / s0) * x - alpha_t * phi1 * m0 - 0.5 * alpha_t * phi1 * d1_0
    m2, r1 = preds[-3], (lam(taus[-2]) - lam(taus[-3])) / h
    d1_1 = (m1 - m2) / r1
    d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    phi2 = phi1 / h + 1
    phi3 = phi2 / h - 0.5
    return (tau / s0) * x - alpha_t * phi1 * m0 + alpha_t * phi2 * d1 - alpha_t * phi3 * d2


@pytest.mark.parametrize("taus,tau", [([0.1, 0.2, 0.35], 0.5), ([0.9, 0.7, 0.6], 0.45)])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_dpm_update_matches_reference_formulas(taus, tau, order):
    g = _gen(19)
    x = torch.randn(5, 3, generator=g, dtype=F64)
    preds = [torch.randn(5, 3, generator=g, dtype=F64) for _ in range(3)]
    got = dpm_solver.dpm_update(x, preds, taus, tau, order)
    assert torch.allclose(got, _reference_dpm_update(x, preds, taus, tau, order), atol=1e-13, rtol=0)
    # the update to tau = 0 (sigma = 0) returns the newest data prediction
    assert torch.equal(dpm_solver.dpm_update(x, preds, taus, 0.0, 1), preds[-1])


def test_dpm_orders_follow_warm_up_and_lower_order_final():
    assert [dpm_solver.dpm_order(s, 20) for s in range(1, 21)] == [1, 2] + [3] * 18
    assert [dpm_solver.dpm_order(s, 5) for s in range(1, 6)] == [1, 2, 3, 2, 1]
    assert [dpm_solver.dpm_order(s, 1) for s in range(1, 2)] == [1]


def _round_trip(anchors, noise, steps, solver):
    z = compute_latents(anchors, anchors, noise, steps=steps, solver=solver)
    end, _ = assign(z, anchors, steps=steps, solver=solver)
    acc = float((nearest_anchor(end, anchors) == torch.arange(len(anchors))).double().mean())
    return acc, float((end - anchors).norm(dim=1).mean())


def test_round_trip_accuracy_euler_vs_dpm():
    # N = 200, q = 20 randn anchors, alpha = 1, eps = 1e-4, float64. Measured round-trip accuracy
    # (fraction of samples returning to their own anchor) / mean endpoint error:
    #   steps   euler          dpm++
    #   10      0.52 / 2.45    0.92 / 0.46
    #   20      0.79 / 1.09    0.975 / 0.13
    #   50      0.90 / 0.53    1.00 / 0.00
    #   100     0.945 / 0.28   1.00 / 0.00
    #   500     0.985 / 0.07   1.00 / 0.00
    # Plain Euler needs several hundred steps; DPM-Solver++ is exact on these by 50.
    g = _gen(0)
    anchors = torch.randn(200, 20, generator=g, dtype=F64)
    noise = torch.randn(200, 20, generator=g, dtype=F64)
    acc_e, err_e = _round_trip(anchors, noise, 20, "euler")
    acc_d, err_d = _round_trip(anchors, noise, 20, "dpm++")
    assert 0.5 < acc_e < 0.95
    assert acc_d > 0.95 and acc_d > acc_e + 0.1
    assert err_d < 0.5 * err_e
    acc_e50, _ = _round_trip(anchors, noise, 50, "euler")
    assert acc_e < acc_e50 < 1.0


def test_round_trip_exact_given_enough_steps():
    # N = 40, q = 8, anchors 3 * randn (min pairwise distance ~4). Measured accuracy:
    #   alpha = 1:    euler 100 -> 0.95, 500 -> 0.975, 2000 -> 1.0; dpm++ 50 -> 0.975, 200 -> 1.0
    #   alpha = 0.45: euler 100 -> 1.0;  dpm++ 50 -> 1.0
    # (larger separations make the zone switches sharper in time and need more steps).
    g = _gen(1)
    anchors = torch.randn(40, 8, generator=g, dtype=F64) * 3
    noise = torch.randn(40, 8, generator=g, dtype=F64)
    for solver, steps, alpha in (
        ("euler", 2000, 1.0),
        ("dpm++", 200, 1.0),
        ("euler", 100, 0.45),
        ("dpm++", 50, 0.45),
    ):
        z = compute_latents(anchors, anchors, noise, steps=steps, solver=solver, alpha=alpha)
        end, _ = assign(z, anchors, steps=steps, solver=solver)
        assert torch.equal(nearest_anchor(end, anchors), torch.arange(40)), (solver, steps, alpha)


def test_latents_of_all_anchors_are_standard_normal():
    # z = C(A) for every anchor: with an exact solver the latents are N(0, I). N = 2000, q = 4,
    # anchors 3 * randn; measured |mean| <= 0.01, |cov - I| <= 0.03, KS p-values 0.67-1.0.
    g = _gen(1)
    anchors = 3 * torch.randn(2000, 4, generator=g, dtype=F64)
    noise = torch.randn(2000, 4, generator=g, dtype=F64)
    z = compute_latents(anchors, anchors, noise, steps=20, solver="dpm++")
    assert float(z.mean(0).abs().max()) < 0.1
    assert float((torch.cov(z.T) - torch.eye(4, dtype=F64)).abs().max()) < 0.1
    for d in range(4):
        assert stats.kstest(z[:, d].numpy(), "norm").pvalue > 0.01
    # negative control: the starting points (scaled anchors) are far from N(0, I)
    assert stats.kstest(anchors[:, 0].numpy(), "norm").pvalue < 1e-6


# ----------------------------------------------------------------------------------------------
# weights


def test_doubling_a_weight_increases_its_probability():
    g = _gen(14)
    anchors = torch.randn(10, 3, generator=g, dtype=F64)
    x = torch.randn(50, 3, generator=g, dtype=F64)
    w = torch.ones(10, dtype=F64)
    w2 = w.clone()
    w2[3] = 2.0
    _, p1 = velocity(x, anchors, 0.6, w)
    _, p2 = velocity(x, anchors, 0.6, w2)
    inner = (p1[:, 3] > 1e-12) & (p1[:, 3] < 1 - 1e-12)
    assert inner.sum() > 10
    assert torch.all(p2[inner, 3] > p1[inner, 3])
    # exact odds: p_j / p_k doubles for the doubled anchor
    assert torch.allclose(p2[:, 3] / p2[:, 0], 2 * p1[:, 3] / p1[:, 0], rtol=1e-10)
    # and along the reverse flow, the final assignment mass of anchor 3 grows
    z = torch.randn(400, 3, generator=g, dtype=F64)
    _, q1 = assign(z, anchors, steps=20, weights=w)
    _, q2 = assign(z, anchors, steps=20, weights=w2)
    assert q2[-1, :, 3].sum() > q1[-1, :, 3].sum()


def test_zero_weight_is_never_assigned():
    g = _gen(15)
    anchors = torch.randn(12, 3, generator=g, dtype=F64)
    w = torch.ones(12, dtype=F64)
    w[[2, 7]] = 0
    z = torch.randn(300, 3, generator=g, dtype=F64)
    for solver in ("euler", "dpm++"):
        end, probs = assign(z, anchors, steps=30, solver=solver, weights=w)
        assert torch.all(probs[:, :, [2, 7]] == 0)
        idx = nearest_anchor(end, anchors)
        assert not torch.isin(idx, torch.tensor([2, 7])).any()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_zero_weights_stay_finite_up_to_tau_near_one(dtype):
    g = _gen(21)
    anchors = torch.randn(300, 4, generator=g, dtype=dtype) * 10
    w = torch.rand(300, generator=g, dtype=dtype)
    w[::2] = 0  # many zero weights, in every block of keys
    noise = torch.randn(300, 4, generator=g, dtype=dtype)
    own = anchors[1::2]
    for solver in ("euler", "dpm++"):
        z = compute_latents(anchors, own, noise[1::2], steps=200, solver=solver, weights=w)
        assert torch.isfinite(z).all()
        z_ref = compute_latents(anchors[1::2], own, noise[1::2], steps=200, solver=solver, weights=w[1::2])
        # float32: different centring rounding, amplified over 200 steps (measured 3e-3)
        assert torch.allclose(z, z_ref, atol=2e-2 if dtype == torch.float32 else 1e-9)


def test_zero_weight_gradients_are_finite():
    g = _gen(16)
    anchors = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.0, 1.0], dtype=F64, requires_grad=True)
    x = torch.randn(5, 3, generator=g, dtype=F64)
    v, p = velocity(x, anchors, 0.3, w)
    z = compute_latents(anchors, anchors, torch.randn(6, 3, generator=g, dtype=F64), steps=4, weights=w)
    (v.sum() + p.sum() + z.sum()).backward()
    assert torch.isfinite(anchors.grad).all() and torch.isfinite(w.grad).all()


def test_uniform_weights_equal_none():
    g = _gen(17)
    anchors = torch.randn(15, 4, generator=g, dtype=F64)
    noise = torch.randn(15, 4, generator=g, dtype=F64)
    w = torch.full((15,), 3.7, dtype=F64)  # any positive scale
    for solver in ("euler", "dpm++"):
        z0 = compute_latents(anchors, anchors, noise, steps=5, solver=solver)
        z1 = compute_latents(anchors, anchors, noise, steps=5, solver=solver, weights=w)
        assert torch.allclose(z0, z1, atol=1e-12)
        e0, p0 = assign(z0, anchors, steps=5, solver=solver)
        e1, p1 = assign(z0, anchors, steps=5, solver=solver, weights=w)
        assert torch.allclose(e0, e1, atol=1e-12) and torch.allclose(p0, p1, atol=1e-12)


def test_assign_first_probs_are_weight_proportional():
    g = _gen(18)
    anchors = torch.randn(5, 2, generator=g, dtype=F64)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0], dtype=F64)
    _, probs = assign(torch.randn(3, 2, generator=g, dtype=F64), anchors, steps=4, weights=w)
    assert torch.allclose(probs[0], (w / w.sum()).expand(3, 5), atol=1e-14)


# ----------------------------------------------------------------------------------------------
# misc


def test_nearest_anchor():
    anchors = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    pts = torch.tensor([[9.0, 1.0], [0.1, 0.2], [1.0, 8.0]])
    assert nearest_anchor(pts, anchors).tolist() == [1, 0, 2]


def test_prior():
    z = sample_prior(5, 3, generator=_gen(0), dtype=F64)
    assert z.shape == (5, 3) and z.dtype == F64
    # the same draw as torch.randn with that generator (generation's latents depend on it)
    assert torch.equal(z, torch.randn(5, 3, generator=_gen(0), dtype=F64))
    big = sample_prior(4000, 2, generator=_gen(1), dtype=F64)
    assert stats.kstest(big.flatten().numpy(), "norm").pvalue > 1e-3
    with pytest.raises(ValueError, match="q"):
        sample_prior(3, 0)


# ----------------------------------------------------------------------------------------------
# validation


A = torch.randn(6, 3)
X = torch.randn(4, 3)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: velocity(X, A, 0.0), "tau"),
        (lambda: velocity(X, A, 1.5), "tau"),
        (lambda: velocity(X, A, float("nan")), "tau"),
        (lambda: velocity(torch.randn(4, 2), A, 0.5), "x"),
        (lambda: velocity(X.double(), A, 0.5), "x"),
        (lambda: velocity(X, torch.randn(6), 0.5), "anchors"),
        (lambda: velocity(X, torch.full((6, 3), float("inf")), 0.5), "anchors"),
        (lambda: velocity(X, A, 0.5, torch.ones(5)), "weights"),
        (lambda: velocity(X, A, 0.5, -torch.ones(6)), "weights"),
        (lambda: velocity(X, A, 0.5, torch.zeros(6)), "weights"),
        (lambda: velocity(X, A, 0.5, torch.ones(6, dtype=F64)), "weights"),
        (lambda: compute_latents(A, X, X, solver="rk4"), "solver.*euler.*dpm"),
        (lambda: compute_latents(A, X, X, steps=0), "steps"),
        (lambda: compute_latents(A, X, X, eps=0.0), "eps"),
        (lambda: compute_latents(A, X, X, eps=1.0), "eps"),
        (lambda: compute_latents(A, X, X, alpha=-1.0), "alpha"),
        (lambda: compute_latents(A, X, X, alpha=float("inf")), "alpha"),
        (lambda: compute_latents(A, X, torch.randn(3, 3)), "noise"),
        (lambda: compute_latents(A, torch.randn(4, 2), X), "own"),
        (lambda: assign(X, A, steps=-2), "steps"),
        (lambda: assign(X, A, solver="heun"), "solver"),
        (lambda: assign(torch.randn(4, 5), A), "z"),
        (lambda: assign(X, A, weights=torch.tensor([1.0, float("nan"), 1, 1, 1, 1])), "weights"),
        (lambda: nearest_anchor(torch.randn(4, 2), A), "endpoint"),
        (lambda: velocity(torch.randn(4, 3, device="meta"), A, 0.5), "x.*device"),
        (lambda: compute_latents(A, X, torch.randn(4, 3, device="meta")), "noise.*device"),
        (lambda: compute_latents(A, X, X, weights=torch.ones(6, device="meta")), "weights.*device"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
