"""Label anchors of case study 3: a learnable label encoder/decoder (LZN_SPEC §2.3, §1.5).

The label encoder maps class ``k`` to row ``A[k]`` of a learnable matrix ``A [C, q]``
(initialised with ``randn``); the label decoder runs the reverse latent flow over the ``C``
anchors and takes the nearest anchor (argmin L2, as the official ``LabelAnchor.get_label``).
During training the anchors are weighted by the class frequencies of the global batch
(LZN_SPEC §1.5).

Shapes: ``labels`` ``[n]`` int64 in ``[0, C)``; ``z``/``noise`` ``[n, q]``; ``probs``
``[r, n, C]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lzn.distributed import all_reduce_sum
from lzn.flow import FlowSpec, nearest_anchor

__all__ = ["LABEL_FLOW", "LabelAnchors", "class_weights"]

#: The label flow of case study 3 (LZN_SPEC §1.8): Euler, 100 steps, eps 1e-4, alpha 1.
LABEL_FLOW = FlowSpec(solver="euler", steps=100)


def _check_labels(labels: object, num_classes: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        raise ValueError("labels must be an integer tensor of shape [n]")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.numel() and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(f"labels must be in [0, {num_classes})")
    return labels.long()


def class_weights(labels: Tensor, num_classes: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Class frequencies ``[C]`` of the global batch: summed counts over ranks / global batch size.

    Without a process group this is the frequency in ``labels`` (``[n]``). No gradient.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    labels = _check_labels(labels, num_classes)
    counts = torch.bincount(labels, minlength=num_classes).to(dtype)
    total = all_reduce_sum(torch.cat([counts, counts.new_tensor([labels.numel()])]))
    if float(total[-1]) == 0:
        raise ValueError("labels must not be empty on every rank (the global batch is empty)")
    return total[:-1] / total[-1]


class LabelAnchors(nn.Module):
    """Learnable label anchors ``A [num_classes, latent_dim]`` (``randn`` init)."""

    def __init__(
        self, num_classes: int, latent_dim: int, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.A = nn.Parameter(torch.randn(num_classes, latent_dim, generator=generator))

    def encode(self, labels: Tensor) -> Tensor:
        """Label encoder: ``labels [n]`` -> anchors ``A[labels]`` ``[n, q]``."""
        return self.A[_check_labels(labels, self.num_classes)]

    def classify(
        self, z: Tensor, flow: FlowSpec = LABEL_FLOW, *, weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Label decoder: reverse flow ``flow`` of ``z [n, q]`` over ``A``, then the nearest anchor.

        Runs in ``flow.dtype``. Returns ``(pred_labels [n], probs [r, n, C])``; ``probs`` keeps its
        graph to ``z`` and ``A`` (feed it to ``lzn.losses.alignment_loss``).
        """
        anchors = self.A.to(flow.dtype)
        endpoint, probs = flow.assign(z, anchors, weights=weights)
        return nearest_anchor(endpoint, anchors), probs

    def latents_for(self, labels: Tensor, noise: Tensor, flow: FlowSpec = LABEL_FLOW) -> Tensor:
        """Latents ``[n, q]`` (in ``flow.dtype``) in the zones of ``labels`` (conditional generation, LZN_SPEC §2.3)."""
        return flow.latents(self.A, self.encode(labels), noise)
