"""NCSN++ U-Net rectified-flow decoder, conditioned on the LZN latent and an optional one-hot label.

Implements the image decoder of LZN_SPEC §2.1 (case study 1) and §2.3 (case study 3): the RF / score-SDE
NCSN++ ("DDPM++") U-Net with BigGAN residual blocks, GroupNorm, SiLU, ``skip_rescale`` and
``init_scale = 0``. The only LZN change: the latent ``z [B, q]`` and the one-hot label ``y [B, c]`` are
concatenated with the sinusoidal time embedding at the input of the time-embedding MLP,
``Linear(nf + q + c -> 4nf) -> SiLU -> Linear(4nf -> 4nf)``, whose output every ResBlock adds as
``Dense(SiLU(temb))``.

RF convention (LZN_SPEC §1.1): ``x_t = t·x1 + (1 − t)·x0``, ``t = 0`` noise, ``t = 1`` data; the network
predicts the velocity ``x1 − x0``. The time input is ``999·clamp(t, 0, 1)``.

Only the CIFAR-style configuration is implemented (positional time embedding, no FIR, no progressive
input/output pyramids, ``scale_by_sigma = False``); the 256² configs' Fourier embedding and FIR
resampling are not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lzn.models.layers import AttnBlock, DownPath, ResBlock, conv3x3, dense, group_norm, timestep_embedding

__all__ = ["UNet", "check_condition"]


def check_condition(name: str, value: torch.Tensor | None, dim: int, batch: int, built_with: str) -> None:
    """Raise ValueError (naming ``name``) unless ``value`` is ``[batch, dim]`` when ``dim > 0`` and None otherwise."""
    if dim > 0:
        if value is None:
            raise ValueError(f"{name} is required: the model was built with {built_with}={dim}")
        if value.dim() != 2 or value.shape[0] != batch or value.shape[1] != dim:
            raise ValueError(
                f"{name} must have shape [{batch}, {dim}] (batch, {built_with}), got {tuple(value.shape)}"
            )
    elif value is not None:
        raise ValueError(f"{name} was given but the model was built with {built_with}=0")


class UNet(nn.Module):
    """NCSN++ U-Net velocity model ``f(x_t, t, z, y) ≈ x1 − x0``.

    Args (keyword, config-free):
        in_channels: image channels C.
        image_size: image height = width H; divisible by ``2**(len(ch_mult) - 1)``.
        nf: base channel count (also the sinusoidal embedding size); the embedding MLP has width 4·nf.
        ch_mult: channel multiplier per resolution level.
        num_res_blocks: ResBlocks per level on the way down (one more on the way up).
        attn_resolutions: resolutions (feature-map sizes) that get a self-attention block.
        dropout: dropout inside every ResBlock.
        latent_dim: q, size of the LZN latent z (0 = unconditional RF).
        num_classes: c, size of the one-hot label (0 = no label input).
        skip_rescale: divide residual sums by √2.
        init_scale: scale of the last layer of each residual branch and of the output conv (0 = "zero").

    ``forward(x [B,C,H,W], t [B] or scalar, z [B,q] | None, y_onehot [B,c] | None) -> v [B,C,H,W]``.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        nf: int = 32,
        ch_mult: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attn_resolutions: tuple[int, ...] = (4,),
        dropout: float = 0.0,
        latent_dim: int = 0,
        num_classes: int = 0,
        skip_rescale: bool = True,
        init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if latent_dim < 0 or num_classes < 0:
            raise ValueError(f"latent_dim and num_classes must be >= 0, got {latent_dim}, {num_classes}")
        ch_mult = tuple(ch_mult)
        attn_resolutions = tuple(attn_resolutions)
        self.in_channels = in_channels
        self.image_size = image_size
        self.nf = nf
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        temb_dim = 4 * nf

        self.temb_mlp = nn.Sequential(
            dense(nf + latent_dim + num_classes, temb_dim), nn.SiLU(), dense(temb_dim, temb_dim)
        )
        self.down = DownPath(
            in_channels=in_channels,
            image_size=image_size,
            nf=nf,
            ch_mult=ch_mult,
            num_res_blocks=num_res_blocks,
            attn_resolutions=attn_resolutions,
            dropout=dropout,
            temb_dim=temb_dim,
            skip_rescale=skip_rescale,
            init_scale=init_scale,
        )

        def res(in_ch: int, out_ch: int | None = None, **kw) -> ResBlock:
            return ResBlock(
                in_ch,
                out_ch,
                temb_dim=temb_dim,
                dropout=dropout,
                skip_rescale=skip_rescale,
                init_scale=init_scale,
                **kw,
            )

        skip_channels = list(self.down.skip_channels)
        ch = self.down.out_channels
        self.num_res_blocks = num_res_blocks
        self.up_blocks = nn.ModuleList()
        self.up_attns = nn.ModuleList()
        self.ups = nn.ModuleList()
        for level in reversed(range(len(ch_mult))):
            for _ in range(num_res_blocks + 1):
                out_ch = nf * ch_mult[level]
                self.up_blocks.append(res(ch + skip_channels.pop(), out_ch))
                ch = out_ch
            resolution = self.down.resolutions[level]
            self.up_attns.append(
                AttnBlock(ch, skip_rescale=skip_rescale, init_scale=init_scale)
                if resolution in attn_resolutions
                else nn.Identity()
            )
            if level != 0:
                self.ups.append(res(ch, up=True))
        assert not skip_channels
        self.norm_out = group_norm(ch)
        self.conv_out = conv3x3(ch, in_channels, init_scale=init_scale)

    def _time_input(self, t: torch.Tensor | float, batch: int, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a scalar or have shape [{batch}], got {tuple(t.shape)}")
        return 999.0 * t.clamp(0.0, 1.0)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        z: torch.Tensor | None = None,
        y_onehot: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if (
            x.dim() != 4
            or x.shape[1] != self.in_channels
            or x.shape[2:] != (self.image_size, self.image_size)
        ):
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, {self.image_size}, {self.image_size}], "
                f"got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        check_condition("z", z, self.latent_dim, batch, "latent_dim")
        check_condition("y_onehot", y_onehot, self.num_classes, batch, "num_classes")

        emb = [timestep_embedding(self._time_input(t, batch, x.device), self.nf).to(x.dtype)]
        if z is not None:
            emb.append(z.to(x.dtype))
        if y_onehot is not None:
            emb.append(y_onehot.to(x.dtype))
        temb = self.temb_mlp(torch.cat(emb, dim=1))  # [B, 4nf]

        skips, h = self.down(x, temb)
        n_levels = len(self.down.resolutions)
        for i, level in enumerate(reversed(range(n_levels))):
            for j in range(self.num_res_blocks + 1):
                block = self.up_blocks[i * (self.num_res_blocks + 1) + j]
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            h = self.up_attns[i](h)
            if level != 0:
                h = self.ups[i](h, temb)
        return self.conv_out(F.silu(self.norm_out(h)))
