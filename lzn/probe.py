"""Linear probe on frozen features (LZN_SPEC §2.2, "Linear probe").

The representation of a frozen encoder is evaluated by training a single ``Linear(d -> C)`` layer
with AdamW (lr 3e-4, weight decay 0 in the official code) and cross-entropy on precomputed
features, then reporting top-1 / top-5 accuracy on the test features. The features are inputs
(tensors); nothing but the linear layer is trained. Optional standardisation uses the training
features' per-dimension mean and std (a project default that makes short probes converge; the
official probe feeds the raw features).

Shapes: ``train_feats[n, d]``, ``train_labels[n]`` (int64 in [0, C)), ``test_feats[m, d]``,
``test_labels[m]``; ``logits[b, C]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["topk_accuracy", "train_linear_probe"]


def topk_accuracy(logits: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracies of ``logits[n, C]`` against ``labels[n]``.

    A ``k`` larger than ``C`` is clipped to ``C`` (every sample then counts as correct).

    Returns:
        ``{k: fraction of samples whose label is among the k highest logits}``.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits: expected [n, C], got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels: expected [{logits.shape[0]}], got shape {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("logits: needs at least one sample")
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"ks: every k must be >= 1, got {tuple(ks)}")
    labels = labels.to(logits.device).long()
    kmax = min(max(int(k) for k in ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # [n, kmax]
    hits = top == labels[:, None]
    out = {}
    for k in ks:
        kk = min(int(k), logits.shape[1])
        out[int(k)] = float(hits[:, :kk].any(dim=1).to(torch.float64).mean())
    return out


def _check_pair(name_f: str, feats: Tensor, name_l: str, labels: Tensor) -> None:
    if not isinstance(feats, Tensor) or feats.ndim != 2 or feats.shape[0] == 0:
        shape = tuple(feats.shape) if isinstance(feats, Tensor) else type(feats).__name__
        raise ValueError(f"{name_f}: expected a non-empty [n, d] tensor, got {shape}")
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != feats.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name_l}: expected [{feats.shape[0]}] integer labels, got {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name_l}: expected integer labels, got dtype {labels.dtype}")
    if bool((labels < 0).any()):
        raise ValueError(f"{name_l}: labels must be >= 0")
    if not bool(torch.isfinite(feats).all()):
        raise ValueError(f"{name_f}: contains non-finite values")


def train_linear_probe(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    *,
    epochs: int,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    batch_size: int,
    seed: int,
    standardize: bool = True,
    num_classes: int | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train ``Linear(d -> C)`` with AdamW + cross-entropy on frozen features; report test accuracy.

    Deterministic for a given ``seed`` (initialisation and shuffling use their own generator; the
    global RNG state is left untouched).

    Args:
        train_feats, train_labels: ``[n, d]`` features and ``[n]`` labels to fit.
        test_feats, test_labels: ``[m, d]`` features and ``[m]`` labels to evaluate.
        epochs: passes over the training features (spec: 300).
        lr, weight_decay: AdamW settings (spec: 3e-4, 0).
        batch_size: minibatch size (spec: 8192 global).
        seed: seed of the initialisation and the shuffling.
        standardize: scale features by the training mean/std before the linear layer.
        num_classes: C; defaults to ``max(label) + 1`` over both splits.
        on_epoch: optional ``callback(epoch, record)`` after each epoch (progress / logging).

    Returns:
        ``dict(top1, top5, top1_best, train_top1, final_loss, num_classes, epochs,
        history=[{epoch, loss, top1, top5}, ...])`` with accuracies as fractions in [0, 1];
        ``top1`` / ``top5`` are those of the final epoch.
    """
    _check_pair("train_feats", train_feats, "train_labels", train_labels)
    _check_pair("test_feats", test_feats, "test_labels", test_labels)
    if test_feats.shape[1] != train_feats.shape[1]:
        raise ValueError(
            f"test_feats: feature dimension {test_feats.shape[1]} does not match train_feats' {train_feats.shape[1]}"
        )
    if int(epochs) < 1:
        raise ValueError(f"epochs: must be >= 1, got {epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if lr <= 0:
        raise ValueError(f"lr: must be > 0, got {lr}")
    inferred = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    if num_classes is None:
        num_classes = inferred
    elif num_classes < inferred:
        raise ValueError(f"num_classes: {num_classes} is smaller than the largest label + 1 ({inferred})")

    device = train_feats.device
    x_tr = train_feats.detach().to(torch.float32)
    x_te = test_feats.detach().to(device=device, dtype=torch.float32)
    y_tr = train_labels.to(device).long()
    y_te = test_labels.to(device).long()
    if standardize:
        mean = x_tr.mean(dim=0, keepdim=True)
        std = x_tr.std(dim=0, keepdim=True).clamp_min(1e-6) if x_tr.shape[0] > 1 else torch.ones_like(mean)
        x_tr = (x_tr - mean) / std
        x_te = (x_te - mean) / std

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    d = x_tr.shape[1]
    with torch.random.fork_rng(devices=[]):  # nn.Linear's own init must not touch the caller's RNG
        probe = nn.Linear(d, num_classes)
    bound = 1.0 / d**0.5  # the default nn.Linear range, drawn from our own generator
    with torch.no_grad():
        probe.weight.copy_(torch.rand(probe.weight.shape, generator=gen) * 2 * bound - bound)
        probe.bias.copy_(torch.rand(probe.bias.shape, generator=gen) * 2 * bound - bound)
    probe = probe.to(device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)

    n = x_tr.shape[0]
    history = []
    for epoch in range(int(epochs)):
        perm = torch.randperm(n, generator=gen).to(device)
        total, seen = 0.0, 0
        probe.train()
        for b0 in range(0, n, int(batch_size)):
            idx = perm[b0 : b0 + int(batch_size)]
            loss = F.cross_entropy(probe(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.shape[0]
            seen += idx.shape[0]
        probe.eval()
        with torch.no_grad():
            acc = topk_accuracy(probe(x_te), y_te, ks=(1, 5))
        record = {"epoch": epoch + 1, "loss": total / seen, "top1": acc[1], "top5": acc[5]}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch + 1, record)

    with torch.no_grad():
        train_acc = topk_accuracy(probe(x_tr), y_tr, ks=(1,))[1]
    return {
        "top1": history[-1]["top1"],
        "top5": history[-1]["top5"],
        "top1_best": max(r["top1"] for r in history),
        "train_top1": train_acc,
        "final_loss": history[-1]["loss"],
        "num_classes": num_classes,
        "epochs": int(epochs),
        "history": history,
    }
