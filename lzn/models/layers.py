"""Building blocks of the NCSN++ (DDPM++ / BigGAN-resblock) U-Net.

Implements the layers behind LZN_SPEC §2.1 ("Decoder" and "Encoder"): the score-SDE / rectified-flow
NCSN++ architecture with GroupNorm, SiLU ("swish"), BigGAN residual blocks with naive (non-FIR)
up/down-sampling, DDPM-style self-attention, ``skip_rescale`` (residual sums divided by sqrt(2)) and
``init_scale`` (the last layer of every residual branch starts at (almost) zero).

Shapes: feature maps are ``[B, C, H, W]``; time/condition embeddings are ``[B, E]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AttnBlock",
    "DownPath",
    "ResBlock",
    "check_unet_geometry",
    "conv1x1",
    "conv3x3",
    "dense",
    "group_norm",
    "timestep_embedding",
    "variance_scaling_",
]


def variance_scaling_(weight: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """In-place ``fan_avg`` / uniform variance-scaling initialisation (the DDPM/NCSN++ ``default_init``).

    ``weight`` is ``[out, in, *kernel]`` (conv) or ``[out, in]`` (linear). ``scale = 0`` is mapped to
    1e-10 as in the reference architecture, so a "zero-initialised" layer still has a (tiny) random
    direction and receives non-degenerate gradients.
    """
    scale = 1e-10 if scale == 0 else scale
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    fan_in = weight.shape[1] * receptive
    fan_out = weight.shape[0] * receptive
    variance = scale / ((fan_in + fan_out) / 2.0)
    bound = math.sqrt(3.0 * variance)
    with torch.no_grad():
        weight.uniform_(-bound, bound)
    return weight


def conv3x3(in_ch: int, out_ch: int, *, stride: int = 1, init_scale: float = 1.0) -> nn.Conv2d:
    """3x3 convolution, padding 1, variance-scaling weights and zero bias: ``[B,in,H,W] -> [B,out,H',W']``."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def conv1x1(in_ch: int, out_ch: int, *, init_scale: float = 1.0) -> nn.Conv2d:
    """1x1 convolution (the reference ``NIN``/``conv1x1``): ``[B,in,H,W] -> [B,out,H,W]``."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=1)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def dense(in_features: int, out_features: int, *, init_scale: float = 1.0) -> nn.Linear:
    """Linear layer with variance-scaling weights and zero bias: ``[B,in] -> [B,out]``."""
    lin = nn.Linear(in_features, out_features)
    variance_scaling_(lin.weight, init_scale)
    nn.init.zeros_(lin.bias)
    return lin


def group_norm(channels: int, *, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm with ``min(channels // 4, 32)`` groups, as in NCSN++.

    Raises ValueError when ``channels`` cannot be split into that many equal groups.
    """
    groups = min(channels // 4, 32)
    if groups < 1 or channels % groups != 0:
        raise ValueError(
            f"channels={channels} is not divisible into min(channels // 4, 32) GroupNorm groups; "
            "choose nf and ch_mult so that every channel count is a multiple of 4 (and of 32 above 128)"
        )
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=eps)


def timestep_embedding(timesteps: torch.Tensor, dim: int, *, max_period: float = 10000.0) -> torch.Tensor:
    """DDPM sinusoidal embedding ``[B] -> [B, dim]`` (``[sin | cos]``, frequencies ``max_period^(-k/(dim/2-1))``)."""
    if timesteps.dim() != 1:
        raise ValueError(f"timesteps must be 1-D [B], got shape {tuple(timesteps.shape)}")
    half = dim // 2
    exponent = -math.log(max_period) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=timesteps.device) * exponent)
    args = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class AttnBlock(nn.Module):
    """DDPM++ channel self-attention over all ``H*W`` positions: ``[B,C,H,W] -> [B,C,H,W]``.

    ``out = (x + W_o·softmax(QKᵀ/√C)V) / √2`` with ``skip_rescale`` (plain sum otherwise); the output
    projection starts at ``init_scale``.
    """

    def __init__(self, channels: int, *, skip_rescale: bool = True, init_scale: float = 0.0) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = conv1x1(channels, channels)
        self.k = conv1x1(channels, channels)
        self.v = conv1x1(channels, channels)
        self.proj = conv1x1(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hn = self.norm(x)
        q = self.q(hn).reshape(b, c, h * w).transpose(1, 2)  # [B, HW, C]
        k = self.k(hn).reshape(b, c, h * w).transpose(1, 2)
        v = self.v(hn).reshape(b, c, h * w).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(C)) v
        out = self.proj(out.transpose(1, 2).reshape(b, c, h, w))
        return (x + out) / math.sqrt(2.0) if self.skip_rescale else x + out


class ResBlock(nn.Module):
    """BigGAN-style NCSN++ residual block (``ResnetBlockBigGANpp`` without FIR).

    ``h = Conv(SiLU(GN(x)))`` (after optional nearest-up / 2x2-average-down sampling of both paths),
    ``h += Dense(SiLU(temb))`` when ``temb_dim`` is set, ``h = Conv_init_scale(Dropout(SiLU(GN(h))))``,
    shortcut = 1x1 conv when the channel count or resolution changes;
    output ``(shortcut + h) / √2`` with ``skip_rescale``.

    ``[B,in_ch,H,W], temb [B,temb_dim] | None -> [B,out_ch,H',W']`` with ``H' = 2H`` (up), ``H/2`` (down)
    or ``H``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None = None,
        *,
        temb_dim: int | None = None,
        up: bool = False,
        down: bool = False,
        dropout: float = 0.0,
        skip_rescale: bool = True,
        init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("a ResBlock cannot both up- and down-sample")
        out_ch = out_ch or in_ch
        self.in_ch, self.out_ch = in_ch, out_ch
        self.up, self.down = up, down
        self.skip_rescale = skip_rescale
        self.norm0 = group_norm(in_ch)
        self.conv0 = conv3x3(in_ch, out_ch)
        self.temb_proj = dense(temb_dim, out_ch) if temb_dim is not None else None
        self.norm1 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        self.shortcut = conv1x1(in_ch, out_ch) if (in_ch != out_ch or up or down) else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = F.silu(self.norm0(x))
        h = self._resample(h)
        x = self._resample(x)
        h = self.conv0(h)
        if self.temb_proj is not None:
            if temb is None:
                raise ValueError("temb is required: this ResBlock was built with temb_dim")
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        if self.shortcut is not None:
            x = self.shortcut(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


def check_unet_geometry(image_size: int, nf: int, ch_mult: tuple[int, ...], num_res_blocks: int) -> None:
    """Validate the U-Net hyper-parameters shared by the decoder and the encoder (ValueError naming the key)."""
    if len(ch_mult) < 1:
        raise ValueError("ch_mult must have at least one level")
    if any(m < 1 for m in ch_mult):
        raise ValueError(f"ch_mult entries must be >= 1, got {tuple(ch_mult)}")
    if num_res_blocks < 1:
        raise ValueError(f"num_res_blocks must be >= 1, got {num_res_blocks}")
    if nf < 4:
        raise ValueError(f"nf must be >= 4 (GroupNorm uses nf // 4 groups), got {nf}")
    factor = 2 ** (len(ch_mult) - 1)
    if image_size < factor or image_size % factor != 0:
        raise ValueError(
            f"image_size={image_size} must be divisible by 2**(len(ch_mult)-1)={factor} (ch_mult={tuple(ch_mult)})"
        )


class DownPath(nn.Module):
    """Downsampling half of NCSN++: input conv, per level ``num_res_blocks`` ResBlocks (+attention at
    ``attn_resolutions``), a down-sampling ResBlock between levels, then the middle Res-Attn-Res.

    ``forward(x [B,C,H,W], temb [B,4nf] | None) -> (skips, h)`` where ``skips`` is the list of every
    feature map the U-Net stores for its skip connections, in order (input conv, each ResBlock(+attn)
    output, each down-sampling output), and ``h`` is the middle-block output ``[B, nf*ch_mult[-1], H/2^(L-1), ...]``.
    ``skip_channels`` / ``skip_resolutions`` describe ``skips``; ``out_channels`` / ``out_resolution`` describe ``h``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        nf: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        attn_resolutions: tuple[int, ...],
        dropout: float,
        temb_dim: int | None,
        skip_rescale: bool,
        init_scale: float,
    ) -> None:
        super().__init__()
        check_unet_geometry(image_size, nf, ch_mult, num_res_blocks)
        self.num_res_blocks = num_res_blocks
        self.resolutions = [image_size // 2**i for i in range(len(ch_mult))]

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

        def attn(ch: int) -> AttnBlock:
            return AttnBlock(ch, skip_rescale=skip_rescale, init_scale=init_scale)

        self.conv_in = conv3x3(in_channels, nf)
        self.skip_channels = [nf]
        self.skip_resolutions = [image_size]
        self.blocks = nn.ModuleList()
        self.attns = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = nf
        for level, mult in enumerate(ch_mult):
            resolution = self.resolutions[level]
            for _ in range(num_res_blocks):
                self.blocks.append(res(ch, nf * mult))
                ch = nf * mult
                self.attns.append(attn(ch) if resolution in attn_resolutions else nn.Identity())
                self.skip_channels.append(ch)
                self.skip_resolutions.append(resolution)
            if level != len(ch_mult) - 1:
                self.downs.append(res(ch, down=True))
                self.skip_channels.append(ch)
                self.skip_resolutions.append(resolution // 2)
        self.mid_res0 = res(ch)
        self.mid_attn = attn(ch)
        self.mid_res1 = res(ch)
        self.out_channels = ch
        self.out_resolution = self.resolutions[-1]

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = [self.conv_in(x)]
        num_levels = len(self.resolutions)
        for level in range(num_levels):
            for i in range(self.num_res_blocks):
                idx = level * self.num_res_blocks + i
                h = self.blocks[idx](skips[-1], temb)
                skips.append(self.attns[idx](h))
            if level != num_levels - 1:
                skips.append(self.downs[level](skips[-1], temb))
        h = self.mid_res0(skips[-1], temb)
        h = self.mid_attn(h)
        h = self.mid_res1(h, temb)
        return skips, h
