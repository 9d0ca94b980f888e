"""NCSN++ image encoder with "latent transformation" heads (the LZN image encoder).

Implements the encoder of LZN_SPEC §2.1 (``NCSNPPEncoder``, also used in §2.3): the downsampling half of
the decoder's U-Net (input conv, ResBlocks(+attention), down-sampling ResBlocks, middle Res-Attn-Res,
no time embedding), with a head on every feature map the U-Net would store as a skip (input conv, each
ResBlock(+attn) output, each down-sampling output) and on the middle-block output. Each head is
``1x1 conv -> head_channels -> SiLU -> flatten -> Linear(-> head_hidden) -> SiLU -> Linear(-> q)``
and the anchor is the plain **sum** of the head outputs (no normalisation).
"""

from __future__ import annotations

import torch
from torch import nn

from lzn.models.layers import DownPath

__all__ = ["ImageEncoder", "LatentHead"]


class LatentHead(nn.Module):
    """One latent-transformation head: ``[B, C, H, W] -> [B, latent_dim]``."""

    def __init__(
        self, channels: int, resolution: int, latent_dim: int, *, head_channels: int, head_hidden: int
    ):
        super().__init__()
        self.conv = nn.Conv2d(channels, head_channels, kernel_size=1)
        self.act = nn.SiLU()
        self.fc0 = nn.Linear(head_channels * resolution * resolution, head_hidden)
        self.fc1 = nn.Linear(head_hidden, latent_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(h)).flatten(1)
        return self.fc1(self.act(self.fc0(h)))


class ImageEncoder(nn.Module):
    """LZN image encoder ``E: [B, C, H, W] (in [-1, 1]) -> anchor [B, latent_dim]``.

    Args (keyword, config-free): ``in_channels``, ``image_size``, ``latent_dim`` (q) and the U-Net
    hyper-parameters ``nf, ch_mult, num_res_blocks, attn_resolutions, dropout`` (as in ``UNet``);
    ``head_channels`` / ``head_hidden`` size each head; ``head_resolutions`` restricts heads to the
    feature maps of those resolutions (None = every feature map; maps without a head contribute 0).

    Attributes: ``num_feature_maps`` (skips + middle), ``head_keys`` (indices, into that list, of the
    maps that have a head), ``feature_dim`` (channels of the final map, the size of ``features(x)``).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        latent_dim: int,
        nf: int = 32,
        ch_mult: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attn_resolutions: tuple[int, ...] = (4,),
        dropout: float = 0.0,
        head_channels: int = 20,
        head_hidden: int = 200,
        head_resolutions: tuple[int, ...] | None = None,
        skip_rescale: bool = True,
        init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if head_channels < 1 or head_hidden < 1:
            raise ValueError(
                f"head_channels and head_hidden must be >= 1, got {head_channels}, {head_hidden}"
            )
        self.in_channels = in_channels
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.body = DownPath(
            in_channels=in_channels,
            image_size=image_size,
            nf=nf,
            ch_mult=tuple(ch_mult),
            num_res_blocks=num_res_blocks,
            attn_resolutions=tuple(attn_resolutions),
            dropout=dropout,
            temb_dim=None,
            skip_rescale=skip_rescale,
            init_scale=init_scale,
        )
        channels = [*self.body.skip_channels, self.body.out_channels]
        resolutions = [*self.body.skip_resolutions, self.body.out_resolution]
        if head_resolutions is not None:
            unknown = set(head_resolutions) - set(resolutions)
            if unknown:
                raise ValueError(
                    f"head_resolutions {sorted(unknown)} are not feature-map resolutions of this encoder "
                    f"({sorted(set(resolutions), reverse=True)})"
                )
        self.num_feature_maps = len(channels)
        self.heads = nn.ModuleDict()
        for i, (ch, res) in enumerate(zip(channels, resolutions)):
            if head_resolutions is None or res in head_resolutions:
                self.heads[str(i)] = LatentHead(
                    ch, res, latent_dim, head_channels=head_channels, head_hidden=head_hidden
                )
        if len(self.heads) == 0:
            raise ValueError("head_resolutions selects no feature map: the encoder would have no head")
        self.head_keys = [int(k) for k in self.heads]
        self.feature_dim = self.body.out_channels

    def _check_input(self, x: torch.Tensor) -> None:
        if (
            x.dim() != 4
            or x.shape[1] != self.in_channels
            or x.shape[2:] != (self.image_size, self.image_size)
        ):
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, {self.image_size}, {self.image_size}], "
                f"got {tuple(x.shape)}"
            )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All skip feature maps followed by the middle-block output (``num_feature_maps`` tensors)."""
        self._check_input(x)
        skips, h = self.body(x)
        return [*skips, h]

    def head_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-head outputs ``[B, latent_dim]``, in ``head_keys`` order (their sum is the anchor)."""
        maps = self.feature_maps(x)
        return [self.heads[str(i)](maps[i]) for i in self.head_keys]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Anchor ``[B, latent_dim]`` = sum of the head outputs."""
        return torch.stack(self.head_outputs(x), dim=0).sum(dim=0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature ``[B, feature_dim]``: global-average-pooled middle-block output."""
        self._check_input(x)
        _, h = self.body(x)
        return h.mean(dim=(2, 3))
