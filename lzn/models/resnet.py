"""GroupNorm ResNet encoder with a contrastive projection head (LZN representation learning).

Implements the architecture of LZN_SPEC §2.2 (case study 2): a SimCLRv2-style ResNet (basic or
bottleneck blocks, projection shortcut on the first block of each stage) with **every BatchNorm
replaced by GroupNorm**; the last GroupNorm of each residual branch starts at weight 0. Inputs in
[-1, 1] are mapped back to [0, 1] (no mean/std normalisation). The projection head
(``ContrastiveHead``) maps the global-average-pooled backbone feature to the anchor:
``Linear(F -> proj_hidden, no bias) -> GN -> ReLU -> Linear(proj_hidden -> latent_dim, no bias) -> GN``
(``proj_layers = 2``) or ``Linear(F -> latent_dim, no bias) -> GN`` (``proj_layers = 1``; LZN_SPEC §5.1).

``imagenet_stem=True, bottleneck=True, layers=(3, 4, 6, 3), width=64`` is ResNet-50 (23,508,032 backbone
parameters, as with BatchNorm). The default small stem (3x3 conv, no max-pool) suits 8x8 / 32x32 images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResNetEncoder", "gn", "gn_vector"]


def gn(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count ``<= groups`` that divides ``channels`` (exactly ``groups``
    whenever it divides, e.g. 32 for every ResNet-50 width)."""
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    g = max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)
    return nn.GroupNorm(g, channels)


def gn_vector(channels: int, groups: int, min_per_group: int = 8) -> nn.GroupNorm:
    """GroupNorm for feature *vectors* ``[B, C]`` in the projection head: at least ``min_per_group``
    channels per group. With one channel per group a vector's groups normalise to exactly 0 (two
    channels: to ±1), which would collapse every anchor; the paper's sizes (q = 256, hidden 2048,
    32 groups) keep exactly 32 groups."""
    return gn(channels, max(1, min(groups, channels // min_per_group)))


class BasicBlock(nn.Module):
    """``relu(shortcut(x) + GN0(conv3x3(relu(GN(conv3x3_s(x))))))``: ``[B,in,H,W] -> [B,planes,H/s,W/s]``."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, groups: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.norm1 = gn(planes, groups)
        self.conv2 = nn.Conv2d(planes, out_ch, 3, padding=1, bias=False)
        self.norm2 = gn(out_ch, groups)
        nn.init.zeros_(self.norm2.weight)
        self.last_norm = self.norm2
        self.shortcut = _shortcut(in_ch, out_ch, stride, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(self.shortcut(x) + h)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4) bottleneck block: ``[B,in,H,W] -> [B,4·planes,H/s,W/s]``."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, groups: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.norm1 = gn(planes, groups)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm2 = gn(planes, groups)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.norm3 = gn(out_ch, groups)
        nn.init.zeros_(self.norm3.weight)
        self.last_norm = self.norm3
        self.shortcut = _shortcut(in_ch, out_ch, stride, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = F.relu(self.norm2(self.conv2(h)))
        h = self.norm3(self.conv3(h))
        return F.relu(self.shortcut(x) + h)


def _shortcut(in_ch: int, out_ch: int, stride: int, groups: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), gn(out_ch, groups))


class ResNetEncoder(nn.Module):
    """GroupNorm ResNet + projection head: ``[B, C, H, W] (in [-1, 1]) -> anchor [B, latent_dim]``.

    Args (keyword, config-free):
        in_channels: image channels.
        width: channels of the stem and of the first stage's blocks (stage i uses ``width·2^i`` planes).
        layers: blocks per stage (stage 0 keeps the resolution, later stages halve it).
        latent_dim: anchor size q.
        proj_hidden: hidden width of the 2-layer projection head.
        bottleneck: bottleneck blocks (expansion 4) instead of basic blocks.
        groups: GroupNorm groups (the paper uses 32; reduced to a divisor for small channel counts).
        imagenet_stem: 7x7/2 conv + 3x3/2 max-pool stem instead of a 3x3/1 conv.
        proj_layers: 2 (hidden layer, the released config) or 1 (the paper's parameter count).

    ``features(x) -> [B, feature_dim]`` (pooled backbone feature, for the linear probe);
    ``forward(x) -> [B, latent_dim]`` (anchor).
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 32,
        layers: tuple[int, ...] = (1, 1, 1),
        latent_dim: int = 64,
        proj_hidden: int = 128,
        bottleneck: bool = False,
        groups: int = 32,
        imagenet_stem: bool = False,
        proj_layers: int = 2,
    ) -> None:
        super().__init__()
        if not layers or any(n < 1 for n in layers):
            raise ValueError(
                f"layers must be a non-empty tuple of positive block counts, got {tuple(layers)}"
            )
        if width < 1 or latent_dim < 1 or proj_hidden < 1:
            raise ValueError(
                f"width, latent_dim and proj_hidden must be >= 1, got {width}, {latent_dim}, {proj_hidden}"
            )
        if proj_layers not in (1, 2):
            raise ValueError(f"proj_layers must be 1 or 2, got {proj_layers}")
        self.latent_dim = latent_dim
        if imagenet_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                gn(width, groups),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
                gn(width, groups),
                nn.ReLU(),
            )
        block = Bottleneck if bottleneck else BasicBlock
        stages = []
        in_ch = width
        for i, n_blocks in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(n_blocks):
                blocks.append(block(in_ch, planes, stride=(2 if i > 0 and j == 0 else 1), groups=groups))
                in_ch = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = in_ch
        if proj_layers == 2:
            self.head = nn.Sequential(
                nn.Linear(in_ch, proj_hidden, bias=False),
                gn_vector(proj_hidden, groups),
                nn.ReLU(),
                nn.Linear(proj_hidden, latent_dim, bias=False),
                gn_vector(latent_dim, groups),
            )
        else:
            self.head = nn.Sequential(nn.Linear(in_ch, latent_dim, bias=False), gn_vector(latent_dim, groups))

    def backbone_parameters(self) -> int:
        """Number of backbone (stem + stages) parameters, excluding the projection head."""
        return sum(p.numel() for m in (self.stem, self.stages) for p in m.parameters())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled backbone feature ``[B, feature_dim]`` of ``x`` in [-1, 1]."""
        h = self.stages(self.stem((x + 1.0) / 2.0))
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Anchor ``[B, latent_dim]`` = projection head of ``features(x)``."""
        return self.head(self.features(x))
