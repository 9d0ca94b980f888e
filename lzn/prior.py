"""Standard Gaussian prior of the LZN latent space (LZN_SPEC §1.2; paper §2.1, pi_0 = N(0, I)).

Shapes: samples and ``z`` are ``[n, q]``; ``log_prob`` returns ``[n]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sample_prior", "log_prob"]


def sample_prior(
    n: int,
    q: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw ``[n, q]`` samples of N(0, I) (``n >= 0``, ``q >= 1``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(q, bool) or not isinstance(q, int) or q < 1:
        raise ValueError(f"q must be an integer >= 1, got {q!r}")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    return torch.randn(n, q, generator=generator, device=device, dtype=dtype)


def log_prob(z: Tensor) -> Tensor:
    """Log-density ``[n]`` of N(0, I) at ``z [n, q]``: ``-||z||^2 / 2 - (q / 2) log(2 pi)``."""
    if not isinstance(z, Tensor) or z.dim() != 2 or not z.dtype.is_floating_point:
        raise ValueError("z must be a floating-point tensor of shape [n, q]")
    return -0.5 * z.pow(2).sum(dim=1) - 0.5 * z.shape[1] * math.log(2.0 * math.pi)
