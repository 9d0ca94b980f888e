"""The one conversion pair between stored images (uint8, 0..255) and network inputs (float32, [-1, 1]).

Shards, generated samples and every evaluation use these two functions, so a sample written and read
back is the same tensor: ``to_uint8(from_uint8(u)) == u`` for every uint8 ``u``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["from_uint8", "to_uint8"]


def from_uint8(images: Tensor) -> Tensor:
    """uint8 (any shape) -> float32 in [-1, 1]: ``u / 127.5 - 1``."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images: Tensor) -> Tensor:
    """Float in [-1, 1] (any shape) -> uint8: ``round((x + 1) * 127.5)``, clamped to 0..255."""
    return ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
