"""A picture of the latent zones of the label flow (case study 3: the zones of the 10 label anchors).

Every point z of a grid in the latent space is sent through the reverse label flow
(:func:`lzn.flow.assign` over the learned label anchors A) and coloured by the class whose anchor it
reaches. With a 2-D latent (``train.lzn_joint.latent_dim=2``) this is the full zone map; with more
dimensions it is the planar slice through the origin spanned by the two principal axes of A.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lzn.flow import assign, nearest_anchor
from pipeline.io import atomic_path


@torch.no_grad()
def zone_grid(anchors: torch.Tensor, *, extent: float = 3.0, resolution: int = 160, steps: int = 100):
    """Class index of each grid point ``[resolution, resolution]`` and the 2-D basis used ``[2, q]``."""
    a = anchors.detach().double()
    q = a.shape[1]
    if q == 2:
        basis = torch.eye(2, dtype=a.dtype)
    else:
        centred = a - a.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        basis = vh[:2]
    u = torch.linspace(-extent, extent, resolution, dtype=a.dtype)
    gu, gv = torch.meshgrid(u, u, indexing="xy")
    plane = torch.stack([gu.reshape(-1), gv.reshape(-1)], dim=1)
    z = plane @ basis
    end, _ = assign(z, a, steps=steps)
    return nearest_anchor(end, a).reshape(resolution, resolution).numpy(), basis


def plot_zones(anchors: torch.Tensor, out_png: Path, class_names: list[str], *, title: str = "") -> Path:
    """Draw the zone map and the anchors' projections; atomic write of ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extent = 3.0
    labels, basis = zone_grid(anchors, extent=extent)
    projected = (anchors.detach().double() @ basis.T).numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    cmap = plt.get_cmap("tab10", len(class_names))
    ax.imshow(labels, origin="lower", extent=(-extent, extent, -extent, extent), cmap=cmap,
              vmin=-0.5, vmax=len(class_names) - 0.5, alpha=0.75, interpolation="nearest")
    for k, (x, y) in enumerate(projected):
        if abs(x) <= extent and abs(y) <= extent:
            ax.scatter([x], [y], color="black", s=12)
            ax.annotate(class_names[k], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=9)
    q = anchors.shape[1]
    ax.set_title(title or ("latent zones (q = 2)" if q == 2 else f"latent zones: 2-D slice of q = {q} (principal axes of A)"),
                 fontsize=9)
    ax.set_xlabel("z · u1")
    ax.set_ylabel("z · u2")
    out_png = Path(out_png)
    try:
        with atomic_path(out_png, suffix=".png") as tmp:  # savefig picks the format from the suffix
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out_png

