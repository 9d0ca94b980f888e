"""Neural networks of LZN (LZN_SPEC §2.1-2.3): the NCSN++ rectified-flow decoder, the NCSN++ image encoder,
the GroupNorm ResNet encoder, and a linear classifier on an encoder's backbone feature (supervised
baseline / linear probe)."""

from __future__ import annotations

import torch
from torch import nn

from lzn.models.encoder import ImageEncoder
from lzn.models.resnet import ResNetEncoder
from lzn.models.unet import UNet

__all__ = ["Classifier", "ImageEncoder", "ResNetEncoder", "UNet"]


class Classifier(nn.Module):
    """``Linear(feature_dim -> num_classes)`` on ``backbone.features(x)``: ``[B, ...] -> logits [B, num_classes]``.

    ``backbone`` is any module with a ``features(x) -> [B, feature_dim]`` method (``ImageEncoder``,
    ``ResNetEncoder``); it is trained jointly unless the caller freezes it.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        if not callable(getattr(backbone, "features", None)):
            raise ValueError("backbone must provide a features(x) method")
        if feature_dim < 1 or num_classes < 1:
            raise ValueError(f"feature_dim and num_classes must be >= 1, got {feature_dim}, {num_classes}")
        self.backbone = backbone
        self.linear = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.backbone.features(x))
