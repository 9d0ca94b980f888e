"""Latent Zoning Networks (Lin et al., NeurIPS 2025), the method in pure PyTorch.

The core API (DESIGN.md "The core API"): :func:`lzn.flow.velocity`, :func:`lzn.flow.compute_latents`,
:func:`lzn.flow.assign`, :class:`lzn.flow.FlowSpec`, :func:`lzn.losses.alignment_loss`,
:func:`lzn.distributed.gather_with_grad`; the six experiments as data in :mod:`lzn.experiments`.
"""

from lzn.distributed import gather_with_grad
from lzn.flow import FlowSpec, assign, compute_latents, velocity
from lzn.losses import alignment_loss

__all__ = ["FlowSpec", "alignment_loss", "assign", "compute_latents", "gather_with_grad", "velocity"]
