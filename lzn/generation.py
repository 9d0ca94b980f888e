"""Sampling images from a trained generative experiment (LZN_SPEC §2.1 "Generation", §2.3).

- ``rf``:        x0 ~ N(0, I), solve the RF ODE.
- ``rf_lzn``:    z ~ N(0, I) (the encoder is not used at generation time), solve the RF ODE given z.
- ``rf_cond``:   solve the RF ODE given one-hot(k).
- ``lzn_joint``: z = latent of class k through the label flow (``EulerForward(A, A[k], ε, 100 steps)``,
                 i.e. a sample of class k's zone), then solve the RF ODE given (z, one-hot(k)).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lzn.anchors import LABEL_FLOW
from lzn.experiments import CONDITIONAL, GENERATIVE
from lzn.prior import sample_prior
from lzn.samplers import sample_euler, sample_rk45


@torch.no_grad()
def generation_condition(
    name: str,
    modules: dict[str, nn.Module],
    labels: Tensor | None,
    *,
    n: int,
    latent_dim: int | None,
    num_classes: int,
    generator: torch.Generator | None = None,
    label_steps: int = 100,
    alpha: float = 1.0,
) -> dict[str, Tensor]:
    """Conditioning inputs (``z [n,q]``, ``y_onehot [n,c]``) of the decoder for ``n`` samples."""
    if name not in GENERATIVE:
        raise ValueError(f"name: {name!r} is not a generative experiment; expected one of {', '.join(GENERATIVE)}")
    if name in CONDITIONAL:
        if labels is None or labels.shape != (n,):
            raise ValueError(f"labels: experiment {name!r} is class-conditional and needs labels of shape ({n},)")
    device = next(modules["decoder"].parameters()).device
    cond: dict[str, Tensor] = {}
    if name in CONDITIONAL:
        cond["y_onehot"] = F.one_hot(labels.to(device), num_classes).float()
    if name == "rf_lzn":
        cond["z"] = sample_prior(n, latent_dim, generator=generator, device=device)
    elif name == "lzn_joint":
        noise = sample_prior(n, latent_dim, generator=generator, device=device)
        flow = LABEL_FLOW.replace(steps=label_steps, alpha=alpha)
        cond["z"] = modules["labels"].latents_for(labels.to(device), noise, flow).float()
    return cond


@torch.no_grad()
def generate(
    name: str,
    modules: dict[str, nn.Module],
    n: int,
    *,
    image_shape: tuple[int, int, int],
    labels: Tensor | None = None,
    latent_dim: int | None = None,
    num_classes: int = 0,
    sampler: str = "rk45",
    steps: int = 10,
    generator: torch.Generator | None = None,
    label_steps: int = 100,
) -> tuple[Tensor, dict[str, Any]]:
    """``n`` images ``[n, C, H, W]`` in [-1, 1] (clamped) and sampler info (``nfe``)."""
    if sampler not in ("rk45", "euler"):
        raise ValueError(f"sampler: expected 'rk45' or 'euler', got {sampler!r}")
    decoder = modules["decoder"]
    device = next(decoder.parameters()).device
    cond = generation_condition(
        name, modules, labels, n=n, latent_dim=latent_dim, num_classes=num_classes,
        generator=generator, label_steps=label_steps,
    )
    noise = torch.randn((n, *image_shape), generator=generator, device=device)
    if sampler == "euler":
        x = sample_euler(decoder, noise, steps=steps, **cond)
        info: dict[str, Any] = {"nfe": steps}
    else:
        x, nfe = sample_rk45(decoder, noise, **cond)
        info = {"nfe": nfe}
    return x.clamp(-1.0, 1.0), info
