"""Standard Gaussian prior of the LZN latent space (LZN_SPEC §1.2; paper §2.1, pi_0 = N(0, I)).

Shapes: samples are ``[n, q]``. Generation draws the latents of ``rf_lzn`` and the label-flow noise of
``lzn_joint`` through :func:`sample_prior`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_prior"]


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
