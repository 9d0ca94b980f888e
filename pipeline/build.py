"""Build the modules and the objective of an experiment from validated params (:class:`pipeline.params.Params`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from lzn.anchors import LabelAnchors
from lzn.experiments import EXPERIMENTS, TWO_VIEW
from lzn.models import ImageEncoder, ResNetEncoder, UNet
from lzn.objectives import ObjectiveSpec
from pipeline.errors import DataError
from pipeline.params import CONDITIONAL, MODULES, ExperimentConfig, Params


@dataclass(frozen=True)
class DataShape:
    """What the models need to know about the data (read from the shard manifest)."""

    channels: int
    image_size: int
    num_classes: int

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> DataShape:
        c, h, w = manifest["image_shape"]
        if h != w:
            raise DataError(f"manifest image_shape: square images expected, got {h}x{w}")
        return cls(channels=int(c), image_size=int(h), num_classes=len(manifest["class_names"]))


def encoder_kind(experiment: str) -> str:
    """``resnet`` for the representation-learning experiments (case study 2), else the NCSN++ encoder."""
    return EXPERIMENTS[experiment].encoder or "ncsnpp"


def build_models(params: Params, exp: ExperimentConfig, shape: DataShape) -> dict[str, nn.Module]:
    """The trainable modules of ``exp`` keyed by module name (``decoder``, ``encoder``, ``labels``)."""
    out: dict[str, nn.Module] = {}
    modules = MODULES[exp.name]
    if "decoder" in modules:
        d = params.model.decoder
        out["decoder"] = UNet(
            in_channels=shape.channels,
            image_size=shape.image_size,
            nf=d.nf,
            ch_mult=d.ch_mult,
            num_res_blocks=d.num_res_blocks,
            attn_resolutions=d.attn_resolutions,
            dropout=d.dropout,
            latent_dim=exp.latent_dim or 0,
            num_classes=shape.num_classes if exp.name in CONDITIONAL else 0,
        )
    if "encoder" in modules:
        if encoder_kind(exp.name) == "resnet":
            r = params.model.resnet
            out["encoder"] = ResNetEncoder(
                in_channels=shape.channels,
                width=r.width,
                layers=r.layers,
                latent_dim=exp.latent_dim,
                proj_hidden=r.proj_hidden,
                bottleneck=r.bottleneck,
                groups=32,  # GroupNorm(32) as the official ResNet; narrower layers use the largest divisor
                imagenet_stem=r.imagenet_stem,
            )
        else:
            e = params.model.encoder
            out["encoder"] = ImageEncoder(
                in_channels=shape.channels,
                image_size=shape.image_size,
                latent_dim=exp.latent_dim,
                nf=e.nf,
                ch_mult=e.ch_mult,
                num_res_blocks=e.num_res_blocks,
                attn_resolutions=e.attn_resolutions,
                dropout=e.dropout,
                head_channels=e.head_channels,
                head_hidden=e.head_hidden,
                head_resolutions=e.head_resolutions,
            )
    if "labels" in modules:
        out["labels"] = LabelAnchors(shape.num_classes, exp.latent_dim)
    return out


def objective_spec(params: Params, exp: ExperimentConfig, shape: DataShape) -> ObjectiveSpec:
    """Map the validated params of ``exp`` onto the method's :class:`ObjectiveSpec`."""
    kwargs: dict[str, Any] = {"name": exp.name, "num_classes": shape.num_classes, "flip_p": params.augment.flip_p}
    if exp.latent_flow is not None:
        kwargs["latent_flow"] = exp.latent_flow.spec()
    if exp.align is not None:
        kwargs.update(align_flow=exp.align_flow(), align_cutoff=exp.align.cutoff, align_log=exp.align.log)
    if exp.temperature is not None:
        kwargs["temperature"] = exp.temperature
    if exp.rf_weight is not None:
        kwargs["rf_weight"] = exp.rf_weight
    if exp.label_weight is not None:
        kwargs["label_weight"] = exp.label_weight
    if exp.name in TWO_VIEW:
        from pipeline.data.augment import augment_kwargs

        kwargs["simclr"] = augment_kwargs(params.augment.simclr)
    return ObjectiveSpec(**kwargs)
