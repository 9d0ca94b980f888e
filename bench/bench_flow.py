"""Benchmark of the latent flow (lzn.flow) against the official code's broadcast formulation.

Run from the repository root::

    python bench/bench_flow.py            # full run (a few minutes on 2 CPU cores)
    python bench/bench_flow.py --quick    # smaller memory run and round-trip table

Three parts, each printed as a table:

1. Speed at n = N = 2048, q = 64 (float32): one step of ``compute_latents`` (fused attention
   path) and one ``velocity`` call (which also returns the [n, N] probabilities) against one
   step of the naive formulation (eps_hat as an [n, N, q] tensor, max-shifted exp, row
   normalisation). Targets: >= 100x and >= 50x.
2. Memory at n = N = 16384, q = 256: 20 Euler steps of ``compute_latents`` in a child process,
   peak-RSS growth from /proc/self/status (VmHWM, reset through /proc/self/clear_refs when the
   kernel allows it). Target: < 2 GiB. The naive form would need n * N * q * 4 bytes per
   [n, N, q] tensor.
3. Round-trip accuracy of each solver against the step count (N = 2000, q = 200 randn anchors):
   the fraction of samples whose ``assign(compute_latents(A))`` endpoint is nearest to their
   own anchor, and the mean endpoint error.
4. Training: forward + backward of one ``compute_latents`` call (n = N = 512, q = 64, 20 Euler
   steps, eps = 1e-4, float32, ``own`` the anchors themselves) against the naive broadcast form
   differentiated by autograd, in the same run (target >= 10x); peak-RSS growth of each (child
   processes), with and without ``checkpoint=True``; and the gradient accuracy table: relative
   error of dL/dA in float32 (this project's and the naive form's) and float64 against the
   naive form in float64, at the configs' settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lzn.flow import assign, compute_latents, nearest_anchor, velocity  # noqa: E402

THREADS = 2
GIB = 1024**3


def set_threads(n: int) -> None:
    global THREADS
    THREADS = n
    torch.set_num_threads(n)


def naive_step(x: torch.Tensor, anchors: torch.Tensor, tau: float, dt: float) -> torch.Tensor:
    """One Euler step with the official broadcast formulation ([n, N, q] intermediate)."""
    eps_hat = (x[:, None, :] - (1 - tau) * anchors[None, :, :]) / tau
    log_pdf = -0.5 * (eps_hat**2).sum(dim=2)
    pdf = torch.exp(log_pdf - log_pdf.max(dim=1, keepdim=True).values)
    pdf = pdf / pdf.sum(dim=1, keepdim=True)
    v = (pdf[:, :, None] * (eps_hat - anchors[None, :, :])).sum(dim=1)
    return x + dt * v


def interleaved_times(fns: dict, rounds: int, repeats: dict) -> dict:
    """Per-call seconds of each function, measured in interleaved rounds (fair under load drift)."""
    for name, fn in fns.items():
        if repeats[name] > 1:
            fn()  # warm-up (the naive step is too slow to warm up)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(repeats[name]):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def bench_speed(n: int, q: int) -> bool:
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(n, q, generator=g)
    noise = torch.randn(n, q, generator=g)
    eps = 1e-4
    x0 = (1 - eps) * anchors + eps * noise
    fns = {
        "naive": lambda: naive_step(x0, anchors, eps, 1 - eps),
        "fused": lambda: compute_latents(anchors, anchors, noise, steps=1),
        "velocity": lambda: velocity(x0, anchors, eps),
    }
    with torch.no_grad():
        times = interleaved_times(fns, rounds=3, repeats={"naive": 1, "fused": 5, "velocity": 5})
        # accuracy of one step on 256 rows against a float64 evaluation of the naive formula
        rows = slice(0, 256)
        ref = naive_step(x0[rows].double(), anchors.double(), eps, 1 - eps)
        scale = float(ref.abs().max())
        err_fused = float(
            (compute_latents(anchors, anchors[rows], noise[rows], steps=1).double() - ref).abs().max()
        )
        err_naive = float((naive_step(x0[rows], anchors, eps, 1 - eps).double() - ref).abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    ok_fused, ok_vel = med["naive"] / med["fused"] >= 100, med["naive"] / med["velocity"] >= 50
    print(f"\n[1] speed, n = N = {n}, q = {q}, float32, {THREADS} threads")
    print(f"{'method':<40}{'median s':>10}{'min s':>10}{'speed-up':>10}{'target':>8}{'':>6}")
    row = "{:<40}{:>10.4f}{:>10.4f}{:>10.1f}{:>8}{:>6}"
    print(row.format("naive broadcast step ([n,N,q] tensor)", med["naive"], low["naive"], 1.0, "", ""))
    for key, label, target, ok in (
        ("fused", "compute_latents, 1 step (fused SDPA)", ">=100", ok_fused),
        ("velocity", "velocity (returns [n,N] probs)", ">=50", ok_vel),
    ):
        speed_up = med["naive"] / med[key]
        print(row.format(label, med[key], low[key], speed_up, target, "PASS" if ok else "FAIL"))
    print("speed-up = ratio of medians (3 interleaved rounds: 1 naive call, 5 of each other per round)")
    print(
        f"float32 one-step error vs float64 (max abs / max |ref|, 256 rows, from tau = {eps:g}): "
        f"fused {err_fused / scale:.1e}, naive {err_naive / scale:.1e}"
    )
    return ok_fused and ok_vel


def _read_status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_child(n: int, q: int, steps: int) -> None:
    """Run in a fresh process: peak-RSS growth of ``steps`` Euler steps of compute_latents."""
    g = torch.Generator().manual_seed(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    before = _read_status("VmHWM")
    start = time.perf_counter()
    with torch.no_grad():
        anchors = torch.randn(n, q, generator=g)
        noise = torch.randn(n, q, generator=g)
        z = compute_latents(anchors, anchors, noise, steps=steps)
    seconds = time.perf_counter() - start
    after = _read_status("VmHWM")
    finite = bool(torch.isfinite(z).all())
    print(
        json.dumps(
            {"growth": after - before, "before": before, "seconds": seconds, "reset": reset, "finite": finite}
        )
    )


def bench_memory(n: int, q: int, steps: int) -> bool:
    cmd = [sys.executable, __file__, "--threads", str(THREADS), "--memory-child", str(n), str(q), str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    res = json.loads(out)
    naive = n * n * q * 4
    ok = res["growth"] < 2 * GIB and res["finite"]
    print(f"\n[2] memory, n = N = {n}, q = {q}, {steps} Euler steps of compute_latents (child process)")
    print(
        f"peak RSS growth (VmHWM{'' if res['reset'] else ', not reset'}): {res['growth'] / GIB:.3f} GiB "
        f"(target < 2 GiB: {'PASS' if ok else 'FAIL'}); baseline VmHWM {res['before'] / GIB:.3f} GiB; "
        f"{res['seconds']:.1f} s ({res['seconds'] / steps:.2f} s/step)"
    )
    print(
        f"naive form: one [n, N, q] float32 tensor = n*N*q*4 bytes = {naive / GIB:.1f} GiB "
        f"(the official step holds several); one [n, N] matrix = {n * n * 4 / GIB:.2f} GiB"
    )
    return ok


def bench_round_trip(n: int, q: int, step_list: list[int]) -> None:
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(n, q, generator=g)
    noise = torch.randn(n, q, generator=g)
    print(f"\n[3] round trip assign(compute_latents(A)), N = {n}, q = {q} randn anchors, alpha = 1, float32")
    print(f"{'steps':>6} | {'euler acc':>9} {'err':>7} {'s':>6} | {'dpm++ acc':>9} {'err':>7} {'s':>6}")
    for steps in step_list:
        cells = []
        for solver in ("euler", "dpm++"):
            start = time.perf_counter()
            with torch.no_grad():
                z = compute_latents(anchors, anchors, noise, steps=steps, solver=solver)
                end, _ = assign(z, anchors, steps=steps, solver=solver)
            seconds = time.perf_counter() - start
            acc = float((nearest_anchor(end, anchors) == torch.arange(n)).float().mean())
            err = float((end - anchors).norm(dim=1).mean())
            cells.append(f"{acc:>9.3f} {err:>7.3f} {seconds:>6.1f}")
        print(f"{steps:>6} | {cells[0]} | {cells[1]}")
    print("acc: fraction returning to their own anchor; err: mean ||endpoint - own anchor||")


# --------------------------------------------------------------------------------------------
# [4] training: forward + backward


def naive_latents(anchors, own, noise, steps, eps, alpha, solver="euler"):
    """compute_latents written naively (the [n, N, q] broadcast); DPM-Solver++ on the naive denoiser."""
    from lzn.dpm_solver import run_dpm
    from lzn.flow import DPM_TAU_MARGIN

    def mean_anchor(x, tau):
        eps_hat = (x[:, None, :] - (1 - tau) * anchors[None]) / tau
        probs = torch.softmax(-0.5 * eps_hat.pow(2).sum(-1), dim=1)
        return probs @ anchors

    x = (1 - eps) * own + eps * alpha * noise
    if solver == "euler":
        grid = [eps + (1 - eps) * k / steps for k in range(steps + 1)]
        for k in range(steps):
            x = x + (grid[k + 1] - grid[k]) * (x - mean_anchor(x, grid[k])) / grid[k]
        return x
    end = 1.0 - DPM_TAU_MARGIN
    return run_dpm(x, [eps + (end - eps) * k / steps for k in range(steps + 1)], mean_anchor)


def _train_call(variant: str, anchors: torch.Tensor, noise: torch.Tensor, cot: torch.Tensor,
                steps: int = 20, eps: float = 1e-4, alpha: float = 1.0, solver: str = "euler") -> torch.Tensor:
    a = anchors.clone().requires_grad_(True)
    if variant == "naive":
        z = naive_latents(a, a, noise, steps, eps, alpha, solver)
    else:
        z = compute_latents(a, a, noise, steps=steps, eps=eps, alpha=alpha, solver=solver,
                            checkpoint=variant == "checkpoint")
    (grad,) = torch.autograd.grad((z * cot).sum(), a)
    return grad


def _train_problem(n: int, q: int, std: float = 1.0, dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, q, generator=g, dtype=torch.float64).mul(s).to(dtype) for s in (std, 1.0, 1.0)]


def grad_memory_child(variant: str, n: int, q: int) -> None:
    """Run in a fresh process: peak-RSS growth of one forward + backward of ``variant``."""
    problem = _train_problem(n, q)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _read_status("VmHWM")
    grad = _train_call(variant, *problem)
    growth = _read_status("VmHWM") - before
    saved: dict[tuple[int, int], int] = {}  # distinct tensors autograd keeps between forward and backward

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[(t.untyped_storage().data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _train_call(variant, *problem)
    print(json.dumps({"growth": growth, "saved": sum(saved.values()), "reset": reset,
                      "finite": bool(torch.isfinite(grad).all())}))


def bench_training(n: int, q: int) -> bool:
    problem = _train_problem(n, q)
    fns = {v: (lambda v=v: _train_call(v, *problem)) for v in ("naive", "exact", "checkpoint")}
    times = interleaved_times(fns, rounds=3, repeats={"naive": 1, "exact": 5, "checkpoint": 5})
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {}
    for variant in fns:
        cmd = [sys.executable, __file__, "--threads", str(THREADS), "--grad-memory-child", variant, str(n), str(q)]
        mem[variant] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split("\n")[-2])
    ok = med["naive"] / med["exact"] >= 10
    print(f"\n[4] training: forward + backward of one call, n = N = {n}, q = {q}, 20 Euler steps, eps = 1e-4, "
          f"float32, own = anchors, {THREADS} threads")
    print(f"{'method':<44}{'median s':>10}{'speed-up':>10}{'peak RSS growth':>17}{'saved for bwd':>15}"
          f"{'target':>8}{'':>6}")
    row = "{:<44}{:>10.4f}{:>10.1f}{:>13.1f} MiB{:>11.1f} MiB{:>8}{:>6}"
    labels = {"naive": "naive broadcast under autograd", "exact": "compute_latents (exact backward)",
              "checkpoint": "compute_latents, checkpoint=True"}
    for v in fns:
        target, verdict = (">=10", "PASS" if ok else "FAIL") if v == "exact" else ("", "")
        print(row.format(labels[v], med[v], med["naive"] / med[v], mem[v]["growth"] / 2**20,
                         mem[v]["saved"] / 2**20, target, verdict))
    print("speed-up = ratio of medians (3 interleaved rounds: 1 naive call, 5 of each other per round); "
          f"peak RSS growth from VmHWM{'' if mem['exact']['reset'] else ' (not reset)'} in a child process; "
          "saved for bwd: the distinct tensors autograd holds between forward and backward")
    return ok


def bench_gradient_accuracy(n: int, q: int) -> None:
    cases = [("euler", 1e-4, 0.45, 1.0), ("euler", 1e-4, 0.45, 10.0), ("dpm++", 1e-3, 1.0, 1.0),
             ("dpm++", 1e-3, 1.0, 3.0), ("dpm++", 1e-3, 1.0, 10.0)]
    print(f"\n[4b] gradient accuracy: relative error ||dL/dA - ref|| / ||ref||, ref = naive form in float64; "
          f"N = n = {n}, q = {q}, 20 steps, own = anchors")
    print(f"{'solver':>7}{'eps':>8}{'alpha':>7}{'std':>6} | {'ours f64':>9}{'ours f32':>10}{'naive f32':>10}{'ratio':>7}")
    for solver, eps, alpha, std in cases:
        problem = _train_problem(n, q, std, torch.float64, seed=1)
        kw = {"eps": eps, "alpha": alpha, "solver": solver}
        ref = _train_call("naive", *problem, **kw)
        f32 = [t.float() for t in problem]
        errs = [_train_call("exact", *problem, **kw), _train_call("exact", *f32, **kw).double(),
                _train_call("naive", *f32, **kw).double()]
        rel = [float((e - ref).norm() / ref.norm()) for e in errs]
        print(f"{solver:>7}{eps:>8g}{alpha:>7g}{std:>6g} | {rel[0]:>9.1e}{rel[1]:>10.1e}{rel[2]:>10.1e}"
              f"{rel[1] / rel[2]:>7.2f}")
    print("ratio = ours f32 / naive f32 (the float32 default needs <= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller memory run and round-trip table")
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help=f"intra-op threads (default {THREADS}); on a machine loaded by other jobs, 1 avoids thread-pool stalls",
    )
    parser.add_argument(
        "--memory-child", nargs=3, type=int, metavar=("N", "Q", "STEPS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--grad-memory-child", nargs=3, metavar=("VARIANT", "N", "Q"), help=argparse.SUPPRESS)
    parser.add_argument("--only-training", action="store_true", help="run part [4] only")
    args = parser.parse_args()
    if args.memory_child:
        set_threads(args.threads)
        memory_child(*args.memory_child)
        return
    if args.grad_memory_child:
        set_threads(args.threads)
        variant, n, q = args.grad_memory_child
        grad_memory_child(variant, int(n), int(q))
        return
    set_threads(args.threads)
    start = time.perf_counter()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {THREADS} threads, {os.cpu_count()} CPUs, load average {load}")
    if args.only_training:
        ok = bench_training(512, 64)
        bench_gradient_accuracy(256, 64)
        print(f"\noverall: {'PASS' if ok else 'FAIL'} ({time.perf_counter() - start:.0f} s)")
        return
    ok = bench_speed(2048, 64)
    ok = bench_training(512, 64) and ok
    bench_gradient_accuracy(256, 64)
    if args.quick:
        ok = bench_memory(4096, 256, 5) and ok
        bench_round_trip(2000, 200, [10, 20])
    else:
        ok = bench_memory(16384, 256, 20) and ok
        bench_round_trip(2000, 200, [10, 20, 50, 100])
    print(f"\noverall: {'PASS' if ok else 'FAIL'} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
