"""Small CNN reference classifier: the feature network for the embedded ``digits`` default.

The paper's generation metrics (LZN_SPEC §2.1 evaluation protocol, §4) use Inception-v3 pool
features (FID, precision/recall) and its logits (Inception Score). Inception-v3 is meaningless on
8x8 digits and slow on 2 CPU cores, so the toy-scale pipeline evaluates with this classifier,
trained on the real training split: ``features(x)`` plays the role of the 2048-d ``pool_3``
features and ``forward(x)`` of the Inception logits. Numbers are comparable only between runs
that use the same reference weights (``reports/*.json`` records ``feature_network``).

Architecture (GroupNorm, so train and eval behave identically and batch size does not matter):
``conv3x3(in -> w)`` -> ``n_down`` x [``conv3x3 stride 2`` -> ``conv3x3``] (channels double up
to ``4w``) -> global average pool -> ``Linear(-> 4w)`` -> ReLU = **features** ``[n, 4w]`` ->
``Linear(4w -> C)`` = **logits**. ``n_down = max(1, ceil(log2(image_size / 4)))`` (8x8: 1,
32x32: 3).

Shapes: images ``[n, in_channels, image_size, image_size]`` in [-1, 1]; labels ``[n]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ReferenceClassifier", "train_reference_classifier"]


def _norm(channels: int) -> nn.GroupNorm:
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels)


class ReferenceClassifier(nn.Module):
    """Small CNN classifier; ``features`` = penultimate embedding, ``forward`` = logits."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: int = 32):
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("image_size", image_size),
            ("num_classes", num_classes),
        ):
            if int(v) < 1:
                raise ValueError(f"{name}: must be >= 1, got {v}")
        if int(width) < 1:
            raise ValueError(f"width: must be >= 1, got {width}")
        if image_size < 4:
            raise ValueError(f"image_size: must be >= 4, got {image_size}")
        self.hparams = {
            "in_channels": int(in_channels),
            "image_size": int(image_size),
            "num_classes": int(num_classes),
            "width": int(width),
        }
        self.in_channels = int(in_channels)
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.feature_dim = 4 * int(width)

        n_down = max(1, math.ceil(math.log2(image_size / 4)))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), _norm(width), nn.ReLU()]
        ch = width
        for _ in range(n_down):
            out = min(2 * ch, 4 * width)
            layers += [
                nn.Conv2d(ch, out, 3, stride=2, padding=1),
                _norm(out),
                nn.ReLU(),
                nn.Conv2d(out, out, 3, padding=1),
                _norm(out),
                nn.ReLU(),
            ]
            ch = out
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(ch, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected [n, {self.in_channels}, H, W] images, got shape {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """Penultimate embedding ``[n, 4*width]`` (non-negative, post-ReLU) of images ``[n, C, H, W]``."""
        self._check(x)
        h = self.body(x).mean(dim=(2, 3))
        return F.relu(self.embed(h))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[n, num_classes]``."""
        return self.head(self.features(x))


def train_reference_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    num_classes: int | None = None,
    width: int = 32,
    weight_decay: float = 0.0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> ReferenceClassifier:
    """Train a :class:`ReferenceClassifier` with Adam + cross-entropy (no augmentation, no flips).

    The learning rate follows a cosine decay from ``lr`` to 0 over all steps.

    Deterministic for a ``seed`` on a given device: the initialisation runs under a forked,
    seeded RNG and the shuffling uses its own generator (the caller's RNG state is untouched).

    Args:
        images: ``[n, C, S, S]`` training images in [-1, 1] (the model is built on their device).
        labels: ``[n]`` integer labels.
        epochs, lr, batch_size, seed: the optimisation settings.
        num_classes: defaults to ``max(label) + 1``.
        width: base channel count of the CNN.
        weight_decay: Adam weight decay.
        on_epoch: optional ``callback(epoch, mean_loss)`` after each epoch.

    Returns:
        The trained model in eval mode.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[2] != images.shape[3]:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images: expected square images [n, C, S, S], got {shape}")
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels: expected [{images.shape[0]}] integer labels")
    if images.shape[0] == 0:
        raise ValueError("images: empty training set")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images: contains non-finite values")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(f"epochs/batch_size: must be >= 1, got {epochs}/{batch_size}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    device = images.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = ReferenceClassifier(images.shape[1], images.shape[2], num_classes, width=width)
    model = model.to(device)
    x = images.to(torch.float32)
    y = labels.to(device).long()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / int(batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(epochs) * steps_per_epoch)
    model.train()
    for epoch in range(int(epochs)):
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for b0 in range(0, n, int(batch_size)):
            idx = perm[b0 : b0 + int(batch_size)]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.shape[0]
        if on_epoch is not None:
            on_epoch(epoch + 1, total / n)
    model.eval()
    return model
